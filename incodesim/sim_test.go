package incodesim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	testKey   = "sim-test-api-key-0123"
	testToken = "sim-test-device-token-4567"
)

func newTestSim(t *testing.T, opts Options) (*Sim, *httptest.Server) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	if opts.DeviceToken == "" {
		opts.DeviceToken = testToken
	}
	sim, err := New(opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return sim, srv
}

func enrollDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for dst, src := range files {
		b, err := os.ReadFile(testdataPath(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type req struct {
	method  string
	path    string
	headers map[string]string
	body    string
}

func apiHeaders(overrides map[string]string) map[string]string {
	h := map[string]string{
		"api-version":          "1.0",
		"x-api-key":            testKey,
		"X-Incode-Hardware-Id": testToken,
		"Content-Type":         "application/json",
	}
	for k, v := range overrides {
		if v == "-" {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	return h
}

func do(t *testing.T, base string, r req) (*http.Response, []byte) {
	t.Helper()
	hr, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func authBody(t *testing.T, jpeg []byte, source string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"face": map[string]string{"base64Image": base64.StdEncoding.EncodeToString(jpeg)}, "source": source})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testdataPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The API document's header and error rules, over real HTTP.
func TestHeaderAndErrorRules(t *testing.T) {
	start := time.Now()
	_, srv := newTestSim(t, Options{EnrollDir: enrollDir(t, map[string]string{"astronaut.jpg": "enroll/astronaut.jpg"})})
	face := authBody(t, readTestdata(t, "astronaut.jpg"), "door-1")
	const authPath = "/omni/incode-id/authenticate"
	notImage := authBody(t, []byte("this is not an image"), "door-1")
	cases := []struct {
		name   string
		r      req
		status int
		msg    string
	}{
		{"ok", req{"POST", authPath, apiHeaders(nil), face}, 200, ""},
		{"no api-version", req{"POST", authPath, apiHeaders(map[string]string{"api-version": "-"}), face}, 400, "api-version"},
		{"api-version 2.0", req{"POST", authPath, apiHeaders(map[string]string{"api-version": "2.0"}), face}, 400, "api-version"},
		{"no api key", req{"POST", authPath, apiHeaders(map[string]string{"x-api-key": "-"}), face}, 403, "x-api-key"},
		{"wrong api key", req{"POST", authPath, apiHeaders(map[string]string{"x-api-key": "nope"}), face}, 403, "x-api-key"},
		{"no token", req{"POST", authPath, apiHeaders(map[string]string{"X-Incode-Hardware-Id": "-"}), face}, 401, "X-Incode-Hardware-Id"},
		{"wrong token", req{"POST", authPath, apiHeaders(map[string]string{"X-Incode-Hardware-Id": "nope"}), face}, 401, "X-Incode-Hardware-Id"},
		{"bad key and token: key first", req{"POST", authPath, apiHeaders(map[string]string{"x-api-key": "a", "X-Incode-Hardware-Id": "b"}), face}, 403, "x-api-key"},
		{"unknown path", req{"POST", "/omni/incode-id/authenticat", apiHeaders(nil), face}, 404, "no such endpoint"},
		{"root", req{"GET", "/", nil, ""}, 404, "no such endpoint"},
		{"authentication without id", req{"GET", "/omni/incode-id/authentication/", apiHeaders(nil), ""}, 404, ""},
		{"wrong method", req{"GET", authPath, apiHeaders(nil), ""}, 405, "use POST"},
		{"wrong method userinfo", req{"POST", "/omni/incode-id/userinfo", apiHeaders(nil), "{}"}, 405, "use GET"},
		{"body not JSON", req{"POST", authPath, apiHeaders(nil), "face=1"}, 400, "not a JSON"},
		{"trailing data", req{"POST", authPath, apiHeaders(nil), face + "{}"}, 400, "after the JSON"},
		{"content type", req{"POST", authPath, apiHeaders(map[string]string{"Content-Type": "text/plain"}), face}, 400, "Content-Type"},
		{"no face", req{"POST", authPath, apiHeaders(nil), `{"source":"x"}`}, 400, "base64Image is required"},
		{"not base64", req{"POST", authPath, apiHeaders(nil), `{"face":{"base64Image":"***"}}`}, 400, "not base64"},
		{"not an image", req{"POST", authPath, apiHeaders(nil), notImage}, 400, "not a JPEG or PNG"},
		{"imageUrl only", req{"POST", authPath, apiHeaders(nil), `{"face":{"imageUrl":"https://x/y.jpg"}}`}, 400, "base64Image only"},
		{"accept html", req{"POST", authPath, apiHeaders(map[string]string{"Accept": "text/html"}), face}, 406, "application/json"},
		{"accept json q=0", req{"POST", authPath, apiHeaders(map[string]string{"Accept": "application/json;q=0"}), face}, 406, ""},
		{"accept html or anything", req{"POST", authPath, apiHeaders(map[string]string{"Accept": "text/html, */*;q=0.1"}), face}, 200, ""},
		{"accept application/*", req{"POST", authPath, apiHeaders(map[string]string{"Accept": "application/*"}), face}, 200, ""},
		{"userinfo with device token", req{"GET", "/omni/incode-id/userinfo", apiHeaders(nil), ""}, 401, "user token"},
		{"unknown authentication", req{"GET", "/omni/incode-id/authentication/abc", apiHeaders(nil), ""}, 404, "not found"},
		{"unknown verification", req{"GET", "/omni/incode-id/verification/abc", apiHeaders(nil), ""}, 404, "not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, srv.URL, c.r)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, c.status, body)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if c.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if c.status == 200 {
				return
			}
			var e map[string]any
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			for _, k := range []string{"timestamp", "status", "error", "message", "path"} {
				if _, ok := e[k]; !ok {
					t.Errorf("error body lacks %q: %s", k, body)
				}
			}
			ts, _ := e["timestamp"].(float64)
			if ms := int64(ts); ms < start.UnixMilli() || ms > time.Now().UnixMilli() {
				t.Errorf("timestamp %d is not milliseconds of now", ms)
			}
			if e["status"] != float64(c.status) || e["error"] != http.StatusText(c.status) || e["path"] != c.r.path {
				t.Errorf("error body %s", body)
			}
			if msg, _ := e["message"].(string); !strings.Contains(msg, c.msg) {
				t.Errorf("message %q lacks %q", msg, c.msg)
			}
		})
	}
}

func TestImageLimits(t *testing.T) {
	_, srv := newTestSim(t, Options{MaxBase64Bytes: 200 << 10, MaxImageSide: 4000})
	wide := image.NewGray(image.Rect(0, 0, 4001, 1))
	huge := encodePNG(t, wide)
	resp, body := do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", apiHeaders(nil), authBody(t, huge, "")})
	if resp.StatusCode != 400 || !strings.Contains(string(body), "4001x1") {
		t.Errorf("4001x1 image: %d %s", resp.StatusCode, body)
	}
	big := bytes.Repeat([]byte{0xff}, 200<<10)
	resp, body = do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", apiHeaders(nil), authBody(t, big, "")})
	if resp.StatusCode != 400 || !strings.Contains(string(body), "larger than") {
		t.Errorf("oversized upload: %d %s", resp.StatusCode, body)
	}
}

func TestRequestLogRedactsAndHashes(t *testing.T) {
	sim, srv := newTestSim(t, Options{EnrollDir: enrollDir(t, map[string]string{"astronaut.jpg": "enroll/astronaut.jpg"})})
	img := readTestdata(t, "astronaut.jpg")
	h := apiHeaders(map[string]string{"Idempotency-Key": "k-1", "User-Agent": "kioskd/test"})
	resp, _ := do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", h, authBody(t, img, "lobby")})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", apiHeaders(map[string]string{"x-api-key": "wrong-key-value"}), authBody(t, img, "lobby")})

	resp, raw := do(t, srv.URL, req{method: "GET", path: "/_sim/requests"})
	if resp.StatusCode != 200 {
		t.Fatalf("/_sim/requests: %d", resp.StatusCode)
	}
	for _, secret := range []string{testKey, testToken, "wrong-key-value", base64.StdEncoding.EncodeToString(img)[:64]} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("/_sim/requests contains %q", secret[:8])
		}
	}
	var recs []Record
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	r := recs[0]
	sum := sha256.Sum256(img)
	switch {
	case r.Method != "POST" || r.Path != "/omni/incode-id/authenticate" || r.Source != "lobby":
		t.Errorf("record %+v", r)
	case r.Image == nil || r.Image.Bytes != len(img) || r.Image.SHA256 != hex.EncodeToString(sum[:]) ||
		r.Image.Format != "jpeg" || r.Image.Width != 512 || r.Image.Height != 512:
		t.Errorf("image info %+v", r.Image)
	case r.IdempotencyKey != "k-1" || r.Outcome != "PASS" || r.Status != 200 || r.Identity != "astronaut":
		t.Errorf("record %+v", r)
	case r.Headers["X-Api-Key"][0] != "REDACTED" || r.Headers["X-Incode-Hardware-Id"][0] != "REDACTED":
		t.Errorf("headers not redacted: %v", r.Headers)
	case r.Headers["User-Agent"][0] != "kioskd/test" || r.APIKey != "valid" || r.HardwareID != "device":
		t.Errorf("record %+v", r)
	}
	if r := recs[1]; r.Status != 403 || r.APIKey != "invalid" || r.Outcome != "error:403" {
		t.Errorf("second record %+v", r)
	}
	if got := sim.Requests(); len(got) != 2 {
		t.Errorf("Requests() has %d", len(got))
	}

	resp, _ = do(t, srv.URL, req{method: "POST", path: "/_sim/reset"})
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("reset: %d", resp.StatusCode)
	}
	if _, raw = do(t, srv.URL, req{method: "GET", path: "/_sim/requests"}); strings.TrimSpace(string(raw)) != "[]" {
		t.Errorf("after reset: %s", raw)
	}
}

func TestScriptControlAndIdempotency(t *testing.T) {
	_, srv := newTestSim(t, Options{Script: []string{"fail:hasLenses"}})
	face := authBody(t, readTestdata(t, "coffee.jpg"), "")
	post := func(key string) map[string]any {
		t.Helper()
		h := apiHeaders(nil)
		if key != "" {
			h["Idempotency-Key"] = key
		}
		resp, b := do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", h, face})
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["_code"] = resp.StatusCode
		return m
	}
	if m := post(""); m["status"] != "FAIL" || m["failureReason"] != "hasLenses" {
		t.Fatalf("scripted fail: %v", m)
	}
	if m := post(""); m["failureReason"] != "faceMatchFailed" {
		t.Fatalf("after the script, the matcher: %v", m)
	}
	// Replace the script in each accepted format.
	for _, body := range []string{"pass, http:503", `["pass","http:503"]`, `{"script":["pass","http:503"]}`} {
		resp, b := do(t, srv.URL, req{method: "POST", path: "/_sim/script", body: body})
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"authenticate":["pass","http:503"]`) {
			t.Fatalf("POST /_sim/script %q: %d %s", body, resp.StatusCode, b)
		}
	}
	first := post("same-key")
	again := post("same-key") // replayed, the script's http:503 stays queued
	if first["status"] != "PASS" || again["authenticationId"] != first["authenticationId"] {
		t.Fatalf("idempotent replay: %v then %v", first, again)
	}
	if m := post("other-key"); m["_code"] != 503 {
		t.Fatalf("queued http:503 not played: %v", m)
	}
	resp, b := do(t, srv.URL, req{method: "POST", path: "/_sim/script", body: "pass,explode"})
	if resp.StatusCode != 400 || !strings.Contains(string(b), "explode") {
		t.Fatalf("bad script: %d %s", resp.StatusCode, b)
	}
}

func TestParseScript(t *testing.T) {
	sc, err := parseScript([]string{"pass, fail:hasFaceMask,http:503", "http:429:retry-after=2,delay:1s", "userinfo:http:500,authentication:garbage,verification:hang"})
	if err != nil {
		t.Fatal(err)
	}
	a := sc[epAuthenticate]
	if len(a) != 5 || a[1].reason != "hasFaceMask" || a[2].code != 503 || a[2].retryAfter != -1 || a[3].retryAfter != 2 || a[4].delay != time.Second {
		t.Errorf("authenticate items %+v", a)
	}
	if len(sc[epUserInfo]) != 1 || sc[epUserInfo][0].code != 500 || sc[epAuthentication][0].kind != kindGarbage || sc[epVerification][0].kind != kindHang {
		t.Errorf("prefixed items %+v", sc)
	}
	for _, bad := range []string{"fail", "fail:", "http:200", "http:abc", "http:429:retry=1", "delay:soon", "reset:now", "userinfo:pass", "verification:fail:x", "nothing"} {
		if _, err := parseScript([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestWebhooksRetryUntil204(t *testing.T) {
	var calls atomic.Int32
	got := make(chan webhookBody, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var wb webhookBody
		if err := json.NewDecoder(r.Body).Decode(&wb); err != nil || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(400)
			return
		}
		if wb.Event == eventAuthenticationCompleted && calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusInternalServerError) // the receiver fails twice
			return
		}
		w.WriteHeader(http.StatusNoContent)
		got <- wb
	}))
	defer recv.Close()
	sim, srv := newTestSim(t, Options{
		EnrollDir:      enrollDir(t, map[string]string{"Eileen_Collins.jpg": "enroll/astronaut.jpg"}),
		WebhookURLs:    []string{recv.URL},
		WebhookBackoff: 10 * time.Millisecond,
	})
	resp, b := do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", apiHeaders(nil), authBody(t, readTestdata(t, "astronaut.jpg"), "d")})
	var ar authResponse
	if err := json.Unmarshal(b, &ar); err != nil || resp.StatusCode != 200 || ar.Status != "PASS" {
		t.Fatalf("authenticate: %d %s", resp.StatusCode, b)
	}
	events := map[string]webhookBody{}
	timeout := time.After(10 * time.Second)
	for len(events) < 2 {
		select {
		case wb := <-got:
			events[wb.Event] = wb
		case <-timeout:
			t.Fatalf("webhooks received: %v", events)
		}
	}
	v := events[eventVerificationCompleted]
	if v.Object != "verification" || v.ID != ar.VerificationID || v.Token == "" || v.Timestamp == 0 {
		t.Errorf("verification webhook %+v", v)
	}
	a := events[eventAuthenticationCompleted]
	if a.Object != "authentication" || a.ID != ar.AuthenticationID || a.Token != ar.Token || a.Timestamp == 0 {
		t.Errorf("authentication webhook %+v", a)
	}
	// The receiver answers before the emulator logs the attempt.
	var attempts []int
	for end := time.Now().Add(5 * time.Second); len(attempts) < 3 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		attempts = attempts[:0]
		for _, d := range sim.Webhooks() {
			if d.Event == eventAuthenticationCompleted {
				attempts = append(attempts, d.Attempt)
				if d.Delivered != (d.Attempt == 3) {
					t.Errorf("delivery %+v", d)
				}
			}
		}
	}
	if len(attempts) != 3 {
		t.Errorf("authentication.completed attempts %v, want 1,2,3", attempts)
	}
	// The verification token from the webhook answers userinfo.
	resp, b = do(t, srv.URL, req{"GET", "/omni/incode-id/userinfo", apiHeaders(map[string]string{"X-Incode-Hardware-Id": v.Token}), ""})
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"fullName":"Eileen Collins"`) {
		t.Errorf("userinfo with the verification token: %d %s", resp.StatusCode, b)
	}
}

func TestLatencyBandwidthAndClose(t *testing.T) {
	small := encodeJPEG(t, scaleBy(loadImage(t, "astronaut.jpg"), 0.5), 80)
	body := authBody(t, small, "")
	const bps = 400_000 // 50 kB/s
	_, srv := newTestSim(t, Options{Latency: 150 * time.Millisecond, BandwidthBps: bps})
	start := time.Now()
	resp, _ := do(t, srv.URL, req{"POST", "/omni/incode-id/authenticate", apiHeaders(nil), body})
	took := time.Since(start)
	want := 150*time.Millisecond + time.Duration(float64(len(body)*8)/bps*float64(time.Second))
	if resp.StatusCode != 200 || took < want {
		t.Errorf("status %d after %v, want 200 after at least %v", resp.StatusCode, took, want)
	}

	sim, srv2 := newTestSim(t, Options{Script: []string{"hang"}})
	errc := make(chan error, 1)
	go func() {
		hr, _ := http.NewRequest("POST", srv2.URL+"/omni/incode-id/authenticate", strings.NewReader(body))
		for k, v := range apiHeaders(nil) {
			hr.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(hr)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for sim.hanging.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
	sim.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("a hanging request got an answer after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a hanging request")
	}
}

func TestParseBandwidth(t *testing.T) {
	for in, want := range map[string]int64{
		"2Mbit/s": 2_000_000, "2Mbps": 2_000_000, "500kbit": 500_000, "250KB/s": 2_000_000,
		"1MiB/s": 8 << 20, "1000000": 1_000_000, "0": 0, "1.5Mbit/s": 1_500_000, "64kbps": 64_000,
	} {
		if got, err := ParseBandwidth(in); err != nil || got != want {
			t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "-1Mbit/s", "2 Tbit/s", "3b", "1Mbit/h"} {
		if _, err := ParseBandwidth(bad); err == nil {
			t.Errorf("ParseBandwidth(%q) accepted", bad)
		}
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.jpg"), []byte("not a jpeg"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{EnrollDir: dir, Script: []string{"bogus"}, WebhookURLs: []string{"ftp://x"}}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("New accepted a broken configuration")
	}
	for _, want := range []string{"API key", "device token", "broken.jpg", "bogus", "ftp://x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
