package uploader

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
)

// The real client against the real emulator: every endpoint, every decision.
func TestContractEndpoints(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := ctxTimeout(t, 10*time.Second)

	pass, err := e.c.Authenticate(ctx, faceRequest(t, "astronaut.jpg"), WithIdempotencyKey("attempt-1"))
	if err != nil {
		t.Fatal(err)
	}
	if pass.Status != StatusPass || pass.AuthenticationID == "" || pass.Token == "" || pass.VerificationID == "" ||
		pass.CorrelationID == "" || pass.Source != "lobby-door-1" || pass.FailureReason != "" {
		t.Fatalf("PASS answer %+v", pass)
	}
	fail, err := e.c.Authenticate(ctx, faceRequest(t, "coffee.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if fail.Status != StatusFail || fail.FailureReason != ReasonFaceMatchFailed || !fail.FailureReason.Known() || fail.Token != "" {
		t.Fatalf("FAIL answer %+v", fail)
	}

	a, err := e.c.Authentication(ctx, pass.AuthenticationID)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != pass.AuthenticationID || !a.Status.Passed() || !a.Status.Known() || a.SourceID != "lobby-door-1" ||
		a.VerificationID != pass.VerificationID || a.CreatedAt == 0 {
		t.Errorf("authentication %+v", a)
	}
	af, err := e.c.Authentication(ctx, fail.AuthenticationID)
	if err != nil || af.Status != AuthenticationFail || af.VerificationID != "" {
		t.Errorf("failed authentication %+v, %v", af, err)
	}

	v, err := e.c.Verification(ctx, pass.VerificationID)
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != pass.VerificationID || v.Status != StatusVerified || v.Data == nil || v.Data.Name == nil || v.Data.Name.FullName != "Eileen Collins" {
		t.Errorf("verification %+v", v)
	}

	u, err := e.c.UserInfo(ctx, pass.Token)
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != IdentityActive || u.IdentityID != pass.VerificationID || u.Name == nil ||
		u.Name.FullName != "Eileen Collins" || u.Name.FirstName != "Eileen" || u.Name.LastName != "Collins" ||
		u.IDAttestation == nil || u.IDAttestation.Overall == nil || u.IDAttestation.Overall.Status != CheckOK {
		t.Errorf("userinfo %+v", u)
	}

	// What the emulator received: the Incode API documentation's headers on every call.
	recs := e.sim.Requests()
	if len(recs) != 6 {
		t.Fatalf("emulator received %d requests, want 6", len(recs))
	}
	for _, r := range recs {
		h := r.Headers
		if h["Api-Version"][0] != "1.0" || h["Content-Type"][0] != "application/json" || h["User-Agent"][0] != "kioskd/test" ||
			r.APIKey != "valid" || r.Status != 200 {
			t.Errorf("%s %s: %+v", r.Method, r.Path, r)
		}
		want := "device"
		if r.Endpoint == "userinfo" {
			want = "user"
		}
		if r.HardwareID != want {
			t.Errorf("%s: X-Incode-Hardware-Id was %s, want the %s token", r.Path, r.HardwareID, want)
		}
	}
	if recs[0].IdempotencyKey != "attempt-1" || recs[1].IdempotencyKey != "" {
		t.Errorf("idempotency keys %q, %q", recs[0].IdempotencyKey, recs[1].IdempotencyKey)
	}
	if got := testutil.ToFloat64(e.c.m.uploaded); got < float64(recs[0].BodyBytes+recs[1].BodyBytes) {
		t.Errorf("uploaded bytes %v, want at least %d", got, recs[0].BodyBytes+recs[1].BodyBytes)
	}
	if got := testutil.ToFloat64(e.c.m.responses.WithLabelValues("authenticate", "2xx")); got != 2 {
		t.Errorf("2xx authenticate responses %v, want 2", got)
	}
}

// Every scripted outcome of authenticate, without retries, decoded into the
// typed result or the typed error.
func TestContractAuthenticateScript(t *testing.T) {
	type want struct {
		status   Status
		reason   FailureReason
		known    bool
		errCode  int    // *APIError status
		errClass string // Reason(err)
		malform  string // part of the ErrMalformed message
	}
	cases := []struct {
		item string
		want want
	}{
		{"pass", want{status: StatusPass}},
		{"fail:hasFaceMask", want{status: StatusFail, reason: ReasonHasFaceMask, known: true}},
		{"fail:hasLenses", want{status: StatusFail, reason: ReasonHasLenses, known: true}},
		{"fail:spoofAttempt", want{status: StatusFail, reason: ReasonSpoofAttempt, known: true}},
		{"fail:faceMatchFailed", want{status: StatusFail, reason: ReasonFaceMatchFailed, known: true}},
		{"fail:otherError", want{status: StatusFail, reason: ReasonOtherError, known: true}},
		{"fail:wearingHat", want{status: StatusFail, reason: "wearingHat", known: false}},
		{"delay:200ms", want{status: StatusFail, reason: ReasonFaceMatchFailed, known: true}},
		{"http:400", want{errCode: 400, errClass: "bad_request"}},
		{"http:401", want{errCode: 401, errClass: "unauthorized"}},
		{"http:403", want{errCode: 403, errClass: "forbidden"}},
		{"http:404", want{errCode: 404, errClass: "client_error"}},
		{"http:409", want{errCode: 409, errClass: "client_error"}},
		{"http:429:retry-after=1", want{errCode: 429, errClass: "rate_limited"}},
		{"http:500", want{errCode: 500, errClass: "server_error"}},
		{"http:502", want{errCode: 502, errClass: "server_error"}},
		{"http:503", want{errCode: 503, errClass: "server_error"}},
		{"http:504", want{errCode: 504, errClass: "server_error"}},
		{"reset", want{errClass: "transport"}},
		{"hang", want{errClass: "timeout"}},
		// The connection broke mid-answer: retryable, never decoded.
		{"half", want{errClass: "transport"}},
		{"html", want{errClass: "malformed", malform: "text/html"}},
		{"garbage", want{errClass: "malformed", malform: "not a JSON"}},
		{"wrongshape", want{errClass: "malformed", malform: "wrong shape"}},
		{"noauthid", want{errClass: "malformed", malform: "PASS without authenticationId"}},
	}
	for _, c := range cases {
		t.Run(c.item, func(t *testing.T) {
			e := newEnv(t, []string{c.item}, func(cfg *config.Incode) { cfg.MaxRetries = 0 })
			ctx := ctxTimeout(t, 2*time.Second)
			if c.item == "hang" {
				ctx = ctxTimeout(t, 300*time.Millisecond)
			}
			start := time.Now()
			resp, err := e.c.Authenticate(ctx, tinyFace(t))
			took := time.Since(start)
			w := c.want
			if w.errClass == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if resp.Status != w.status || resp.FailureReason != w.reason || (resp.Status == StatusFail && resp.FailureReason.Known() != w.known) {
					t.Fatalf("answer %+v", resp)
				}
				if w.status == StatusPass && (resp.AuthenticationID == "" || resp.Token == "") {
					t.Fatalf("PASS without ids: %+v", resp)
				}
				if c.item == "delay:200ms" && took < 200*time.Millisecond {
					t.Errorf("answered after %v, before the scripted delay", took)
				}
				if !w.known && w.status == StatusFail {
					if got := testutil.ToFloat64(e.c.m.unknown.WithLabelValues("failure_reason")); got != 1 {
						t.Errorf("unknown failure reasons counted %v, want 1", got)
					}
					if !strings.Contains(e.logs.String(), "wearingHat") {
						t.Error("the unknown failure reason was not logged")
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; answer %+v", resp)
			}
			if got := Reason(err); got != w.errClass {
				t.Errorf("Reason %q, want %q (err %v)", got, w.errClass, err)
			}
			var ae *APIError
			if w.errCode != 0 {
				if !errors.As(err, &ae) || ae.StatusCode != w.errCode || ae.Method != "POST" || ae.Path != "/omni/incode-id/authenticate" {
					t.Fatalf("want *APIError %d, got %T %v", w.errCode, err, err)
				}
				if ae.Body == nil || ae.Body.Status != w.errCode || ae.Body.Path != "/omni/incode-id/authenticate" || ae.Body.Message == "" {
					t.Errorf("error body %+v", ae.Body)
				}
				if ms, ok := ae.Body.Timestamp.Millis(); !ok || ms < start.UnixMilli() {
					t.Errorf("error timestamp %v", ae.Body.Timestamp)
				}
				if w.errCode == 429 && ae.RetryAfter != time.Second {
					t.Errorf("RetryAfter %v", ae.RetryAfter)
				}
				if Retryable(err) != (w.errClass == "rate_limited" || w.errClass == "server_error") {
					t.Errorf("Retryable(%d) = %v", w.errCode, Retryable(err))
				}
			}
			if w.malform != "" {
				if !errors.Is(err, ErrMalformed) || Retryable(err) {
					t.Fatalf("want ErrMalformed, not retryable; got %v", err)
				}
				msg := err.Error()
				for _, part := range []string{"POST", "/omni/incode-id/authenticate", "HTTP 200", w.malform} {
					if !strings.Contains(msg, part) {
						t.Errorf("error %q does not name %q", msg, part)
					}
				}
			}
			switch c.item {
			case "noauthid":
				// The answer is returned for logging, but it is no PASS.
				if resp == nil || resp.Status != StatusPass || resp.AuthenticationID != "" {
					t.Errorf("noauthid answer %+v", resp)
				}
			case "hang":
				if !errors.Is(err, context.DeadlineExceeded) || took > 1500*time.Millisecond || !Retryable(err) {
					t.Errorf("hang: %v after %v", err, took)
				}
			case "reset":
				if !Retryable(err) {
					t.Errorf("reset not retryable: %v", err)
				}
			case "half":
				if !Retryable(err) || errors.Is(err, ErrMalformed) || resp != nil || !strings.Contains(err.Error(), "HTTP 200: body truncated") {
					t.Errorf("half: %v, answer %+v; want a retryable transport error and no answer", err, resp)
				}
			default:
				if resp != nil {
					t.Errorf("answer %+v with error %v", resp, err)
				}
			}
		})
	}
}

// Scripted outcomes of the three GET endpoints.
func TestContractGetScript(t *testing.T) {
	e := newEnv(t, nil, func(cfg *config.Incode) { cfg.MaxRetries = 0 })
	ctx := ctxTimeout(t, 10*time.Second)
	pass, err := e.c.Authenticate(ctx, faceRequest(t, "astronaut.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(context.Context) (any, error){
		"authentication": func(ctx context.Context) (any, error) { return e.c.Authentication(ctx, pass.AuthenticationID) },
		"verification":   func(ctx context.Context) (any, error) { return e.c.Verification(ctx, pass.VerificationID) },
		"userinfo":       func(ctx context.Context) (any, error) { return e.c.UserInfo(ctx, pass.Token) },
	}
	paths := map[string]string{
		"authentication": "/omni/incode-id/authentication/" + pass.AuthenticationID,
		"verification":   "/omni/incode-id/verification/" + pass.VerificationID,
		"userinfo":       "/omni/incode-id/userinfo",
	}
	items := map[string]string{
		"http:503": "server_error", "http:401": "unauthorized", "http:429": "rate_limited",
		"reset": "transport", "half": "transport", "html": "malformed", "garbage": "malformed",
		"wrongshape": "malformed", "hang": "timeout", "delay:50ms": "",
	}
	for ep, call := range calls {
		for item, class := range items {
			t.Run(ep+"/"+item, func(t *testing.T) {
				if err := e.sim.SetScript([]string{ep + ":" + item}); err != nil {
					t.Fatal(err)
				}
				ctx := ctxTimeout(t, 2*time.Second)
				if item == "hang" {
					ctx = ctxTimeout(t, 200*time.Millisecond)
				}
				if item == "reset" {
					// net/http itself resends an idempotent request once when a
					// reused keep-alive connection dies before any answer; on a
					// fresh connection the reset reaches the caller.
					e.c.hc.CloseIdleConnections()
				}
				v, err := call(ctx)
				if got := Reason(err); got != class {
					t.Fatalf("Reason %q, want %q; err %v", got, class, err)
				}
				if class == "" {
					if v == nil {
						t.Fatal("no answer")
					}
					return
				}
				if class == "malformed" && (!strings.Contains(err.Error(), "GET "+paths[ep]) || !strings.Contains(err.Error(), "HTTP 200")) {
					t.Errorf("error %q does not name the method, path and status", err)
				}
				var ae *APIError
				if strings.HasPrefix(item, "http:") && (!errors.As(err, &ae) || ae.Method != "GET" || ae.Path != paths[ep]) {
					t.Errorf("want *APIError for GET %s, got %v", paths[ep], err)
				}
			})
		}
	}
	// Unknown ids are 404s; ids that are not one path segment never leave.
	if _, err := e.c.Authentication(ctx, "no-such-id"); Reason(err) != "client_error" {
		t.Errorf("unknown authentication: %v", err)
	}
	before := len(e.sim.Requests())
	for _, bad := range []string{"", "..", "a/b", "x?y=1", strings.Repeat("a", 300)} {
		if _, err := e.c.Verification(ctx, bad); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Verification(%q): %v", bad, err)
		}
	}
	if _, err := e.c.UserInfo(ctx, ""); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("UserInfo without a token: %v", err)
	}
	if _, err := e.c.Authenticate(ctx, AuthenticateRequest{}); !errors.Is(err, ErrInvalidRequest) || Reason(err) != "bad_request" {
		t.Errorf("Authenticate without a face: %v", err)
	}
	if n := len(e.sim.Requests()); n != before {
		t.Errorf("invalid calls reached the server (%d requests)", n-before)
	}
}

// 401 (bad device token) and 403 (bad API key) from the emulator's own
// header checks are told apart.
func TestContractUnauthorizedVersusForbidden(t *testing.T) {
	for _, c := range []struct {
		name   string
		mod    func(*config.Incode)
		code   int
		reason string
	}{
		{"bad device token", func(cfg *config.Incode) { cfg.HardwareID = "not-the-device" }, http.StatusUnauthorized, "unauthorized"},
		{"bad api key", func(cfg *config.Incode) { cfg.APIKey = "not-the-key" }, http.StatusForbidden, "forbidden"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil, c.mod)
			_, err := e.c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "astronaut.jpg"))
			var ae *APIError
			if !errors.As(err, &ae) || ae.StatusCode != c.code || Reason(err) != c.reason || Retryable(err) {
				t.Fatalf("got %v, want %d %s", err, c.code, c.reason)
			}
			if e.retries("authenticate") != 0 || e.requests("authenticate") != 1 {
				t.Errorf("retried: %v retries, %d requests", e.retries("authenticate"), e.requests("authenticate"))
			}
		})
	}
	// A user token that the emulator never issued.
	e := newEnv(t, nil, nil)
	_, err := e.c.UserInfo(ctxTimeout(t, 5*time.Second), "never-issued-token")
	if Reason(err) != "unauthorized" {
		t.Errorf("userinfo with a bad token: %v", err)
	}
}
