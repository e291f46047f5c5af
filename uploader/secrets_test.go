package uploader

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// No API key, device token, user token or image bytes in any log line (at
// debug level), error string or metric, whatever the server answers, even
// when a hostile server echoes the secrets back.
func TestNoSecretsInLogsErrorsOrMetrics(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := ctxTimeout(t, 20*time.Second)
	var errs []string
	note := func(_ any, err error) {
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	face := faceRequest(t, "astronaut.jpg")
	pass, err := e.c.Authenticate(ctx, face, WithIdempotencyKey("secret-test"))
	if err != nil {
		t.Fatal(err)
	}
	userToken := pass.Token
	note(e.c.UserInfo(ctx, userToken))
	for _, item := range []string{
		"http:503,pass", "http:429:retry-after=0,pass", "reset,pass", "http:401", "http:403", "html", "garbage",
		"wrongshape", "noauthid", "half", "fail:wearingHat", "http:503,http:503,http:503,http:503",
		"userinfo:http:401", "userinfo:html", "userinfo:reset,userinfo:http:500,userinfo:http:502,userinfo:http:504",
	} {
		if err := e.sim.SetScript([]string{item}); err != nil {
			t.Fatal(err)
		}
		note(e.c.Authenticate(ctx, face))
		note(e.c.UserInfo(ctx, userToken))
	}
	_ = e.sim.SetScript([]string{"hang"})
	hctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	note(e.c.Authenticate(hctx, face))
	cancel()

	// A hostile server echoing every header in its messages and bodies.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all := r.Header.Get("x-api-key") + " " + r.Header.Get("X-Incode-Hardware-Id")
		switch r.URL.Path {
		case "/omni/incode-id/authenticate":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"status":%q}`, all) // an unknown status, quoted in the error
		case "/omni/incode-id/userinfo":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "<html>proxy error for %s</html>", all)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"timestamp":1,"status":500,"error":%q,"message":%q,"path":%q}`, all, all, all)
		}
	}))
	defer echo.Close()
	hc, err := New(testConfig(echo.URL), "kioskd/test", e.c.log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	note(hc.Authenticate(ctx, face))
	note(hc.UserInfo(ctx, userToken))
	note(hc.Authentication(ctx, "abc"))
	note(hc.Verification(ctx, "abc"))

	if len(errs) < 20 {
		t.Fatalf("only %d error strings collected", len(errs)/3)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) || !strings.Contains(logs, "incode call retrying") {
		t.Fatalf("debug logs were not captured: %.300s", logs)
	}
	mfs, err := e.reg.Gather()
	if err != nil || len(mfs) != 6 {
		t.Fatalf("gathered %d metric families: %v", len(mfs), err)
	}
	metrics := fmt.Sprint(mfs)
	image := base64.StdEncoding.EncodeToString(readTestdata(t, "astronaut.jpg"))
	secrets := map[string]string{
		"api key":      testAPIKey,
		"device token": testDeviceToken,
		"user token":   userToken,
		"image":        image[1000:1040],
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the %s is in the logs", what)
		}
		if strings.Contains(string(metrics), s) {
			t.Errorf("the %s is in the metrics", what)
		}
		for _, msg := range errs {
			if strings.Contains(msg, s) {
				t.Errorf("the %s is in an error: %s", what, msg)
				break
			}
		}
	}
	if !strings.Contains(strings.Join(errs, "\n"), "REDACTED") {
		t.Error("the echoed secrets were not visibly redacted")
	}
}
