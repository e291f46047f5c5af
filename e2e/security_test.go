package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskd/kioskd/config"
)

// get fetches url with an optional Host header and returns the status,
// headers and at most limit bytes of the body (streams are cut off).
func get(t *testing.T, url, host string, limit int64) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, limit)) // a stream ends at the limit or the timeout
	return resp.StatusCode, resp.Header, body
}

// streamFor reads a streaming endpoint for d and returns what came.
func streamFor(t *testing.T, url string, d time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, resp.Body)
	return b.Bytes()
}

// TestNoSecretsOrImagesInOutput runs kioskd at debug level through a PASS,
// a FAIL, every malformed answer, 503s and a queued capture delivered
// later, and greps everything kioskd and the emulator printed, /metrics,
// /healthz, /readyz, the display's page and event stream and the queue
// CLI's output for the API key, the device token and JPEG bytes (raw or
// base64).
func TestNoSecretsOrImagesInOutput(t *testing.T) {
	t.Parallel()
	ob := observe(t, "security", "no secrets or images in any output",
		"log.level debug; PASS, FAIL, 503s (queued, delivered later), half, html, garbage, wrongshape, noauthid",
		"no API key, device token, base64 JPEG (\"/9j/\") or raw JPEG bytes (FF D8 FF) in logs, metrics, health, display page and events, queue CLI")
	s := startSim(t, "--log-level", "debug", "--script",
		"pass,fail:spoofAttempt,http:503,http:503,http:503,http:503,half,html,garbage,wrongshape,noauthid,http:500")
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, loopClip), Loop: true, LogLevel: "debug", Outputs: hook.outputs(),
		Display: "  greet_by_name: true", Capture: "  max_failures: 0"}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	daddr := displayAddr(t, k)
	scr := watchScreen(t, daddr)
	// Eight live decisions cover the script (the drainer may take some of
	// its items); a deferred one covers the queue.
	eventually(t, 60*time.Second, "the scripted decisions and a deferred delivery", func() bool {
		n, def := 0, 0
		for _, d := range decisions(k.Output()) {
			if live(d) {
				n++
			} else {
				def++
			}
		}
		if !k.running() {
			t.Fatalf("kioskd exited:\n%s", tail(k.Output(), 20))
		}
		return n >= 8 && def >= 1
	})
	surfaces := map[string][]byte{}
	_, _, surfaces["/metrics"] = get(t, "http://"+maddr+"/metrics", "", 8<<20)
	_, _, surfaces["/healthz"] = get(t, "http://"+maddr+"/healthz", "", 1<<20)
	_, _, surfaces["/readyz"] = get(t, "http://"+maddr+"/readyz", "", 1<<20)
	_, _, surfaces["display page"] = get(t, "http://"+daddr+"/", "", 1<<20)
	surfaces["display events"] = streamFor(t, "http://"+daddr+"/events", 500*time.Millisecond)
	var ev bytes.Buffer
	for _, v := range scr.seen() {
		fmt.Fprintf(&ev, "%s %s %s\n", v.State, v.Tone, v.Text)
	}
	surfaces["display events (whole run)"] = ev.Bytes()
	k.stop(t)
	surfaces["kioskd output"] = []byte(k.Output())
	surfaces["incode-sim output"] = []byte(s.Output())
	for _, sub := range []string{"stats", "list"} {
		out, errOut, _ := kioskdCmd(t, "queue", sub, "--json", "--config", cfg)
		surfaces["kioskd queue "+sub] = []byte(out + errOut)
	}
	out, errOut, _ := kioskdCmd(t, "check-config", "--config", cfg)
	surfaces["kioskd check-config"] = []byte(out + errOut)

	forbidden := map[string][]byte{
		"the API key":            []byte(apiKey),
		"the device token":       []byte(deviceToken),
		"base64 JPEG (/9j/)":     []byte("/9j/"),
		"raw JPEG (FF D8 FF)":    {0xFF, 0xD8, 0xFF},
		"the API key (base64)":   []byte(base64.StdEncoding.EncodeToString([]byte(apiKey))),
		"the device token (b64)": []byte(base64.StdEncoding.EncodeToString([]byte(deviceToken))),
	}
	total := 0
	for name, data := range surfaces {
		total += len(data)
		if len(data) == 0 && name != "kioskd queue list" {
			t.Errorf("%s: nothing was read; the check would prove nothing", name)
		}
		for what, needle := range forbidden {
			if i := bytes.Index(data, needle); i >= 0 {
				lo, hi := max(i-80, 0), min(i+80, len(data))
				t.Errorf("%s contains %s: …%q…", name, what, data[lo:hi])
			}
		}
	}
	// The run did what it claims: debug lines, malformed answers, a queue.
	for _, want := range []string{`"level":"DEBUG"`, `"reason":"malformed"`, `"queued":true`, `"deferred":true`} {
		if !strings.Contains(k.Output(), want) {
			t.Errorf("kioskd's output has no %s: the grep did not cover that path", want)
		}
	}
	ob.happened("%d decisions (PASS, FAIL, OFFLINE queued and delivered, ERROR malformed); %d bytes from %d outputs searched; none of the %d patterns found",
		len(decisions(k.Output())), total, len(surfaces), len(forbidden))
	ob.lost("—")
}

// TestDeferredAnswerNeverUnlocks takes the service away before the only
// attempt, brings it back answering PASS, and checks that the drainer's
// delivery is recorded as deferred and never opens the door.
func TestDeferredAnswerNeverUnlocks(t *testing.T) {
	t.Parallel()
	ob := observe(t, "security", "a deferred answer never unlocks",
		"emulator down during the only attempt (connection refused), then started on the same address; it answers PASS",
		"OFFLINE queued; the drainer delivers; decision PASS deferred=true; the door never unlocks")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: "http://" + addr, Clip: relClip(t, "empty:3,a:15,empty:150"), Outputs: hook.outputs()}.write(t)
	k := startKioskd(t, cfg)
	scr := watchScreen(t, displayAddr(t, k))
	first := waitDecision(t, k, "the offline decision", 30*time.Second, live)
	if first["result"] != "OFFLINE" || first["queued"] != true {
		t.Fatalf("first decision %v, want OFFLINE queued", first)
	}
	ob.happened("OFFLINE %s, queued", str(first, "reason"))
	s := startSimArgs(t, "--listen", addr)
	def := waitDecision(t, k, "the deferred answer", 30*time.Second, func(d map[string]any) bool {
		return deferred(d) && d["capture_id"] == first["capture_id"]
	})
	if def["result"] != "PASS" {
		t.Errorf("deferred answer %v, want PASS (person A is enrolled)", def)
	}
	ob.happened("emulator back: deferred %s for the same capture_id", def["result"])
	k.stop(t)
	if n := checkDoor(t, k, hook); n != 0 {
		t.Errorf("the door was unlocked %d times", n)
	}
	if sawState(scr, "pass") {
		t.Errorf("the screen said welcome for a deferred answer: %v", scr.seen())
	}
	if !delivered(simKeyOutcomes(s.requests(t), str(first, "capture_id"))) {
		t.Errorf("the emulator has no answered request for the capture")
	}
	ob.happened("door never unlocked, screen never said welcome; queue empty")
	if st := queueStats(t, cfg); st["depth"] != float64(0) {
		t.Errorf("queue after delivery: %v", st)
	}
	ob.lost("nothing")
}

// TestLatePassDoesNotUnlock delays the service's PASS past live_timeout:
// the person is told to use the badge, the door stays shut, and the
// capture's answer arrives later as a deferred decision.
func TestLatePassDoesNotUnlock(t *testing.T) {
	t.Parallel()
	ob := observe(t, "security", "a PASS after the live deadline",
		"emulator `delay:2s` then PASS, with live_timeout 1s",
		"the live attempt ends at 1 s without unlocking; the capture's PASS comes back deferred and does not unlock")
	s := startSim(t, "--script", "delay:2s")
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, "empty:3,a:15,empty:150"), LiveTimeout: "1s", Outputs: hook.outputs()}.write(t)
	k := startKioskd(t, cfg)
	scr := watchScreen(t, displayAddr(t, k))
	first := waitDecision(t, k, "the live decision", 30*time.Second, live)
	if first["result"] == "PASS" {
		t.Fatalf("a PASS that took 2 s opened the door with live_timeout 1s: %v", first)
	}
	ob.happened("live: %s %s", first["result"], str(first, "reason"))
	def := waitDecision(t, k, "the deferred answer", 30*time.Second, func(d map[string]any) bool {
		return deferred(d) && d["capture_id"] == first["capture_id"]
	})
	ob.happened("deferred %s later for the same capture", def["result"])
	k.stop(t)
	if n := checkDoor(t, k, hook); n != 0 {
		t.Errorf("the door was unlocked %d times", n)
	}
	if got := screenAfterFirstCheck(scr); got == "pass" {
		t.Errorf("the screen said welcome")
	}
	ob.happened("door never unlocked; screen: %s", screenAfterFirstCheck(scr))
	ob.lost("nothing")
}

// TestAttemptCapSurvivesRestart reaches the brute-force guard with a
// person who fails, restarts kioskd on the same state directory, and puts
// an enrolled person in front of it: still locked out, nothing sent.
func TestAttemptCapSurvivesRestart(t *testing.T) {
	t.Parallel()
	ob := observe(t, "security", "brute force: attempt cap across a restart",
		"capture.max_failures 2 (window and lockout 10 min); person B (not enrolled: faceMatchFailed) tries three times; kioskd restarted on the same state_dir; then enrolled person A",
		"third try locked out; after the restart still locked out: no request sent, no unlock, screen shows the lockout")
	s := startSim(t)
	state := t.TempDir()
	hook := newDoorHook(t)
	capture := "  max_failures: 2\n  failure_window: 10m\n  lockout: 10m"
	cfg1 := fcfg{BaseURL: s.URL, State: state, Clip: relClip(t, "empty:3,b:14,empty:12,b:14,empty:12,b:14,empty:50"), Capture: capture, Outputs: hook.outputs()}.write(t)
	k1 := startKioskd(t, cfg1)
	scr1 := watchScreen(t, displayAddr(t, k1))
	if code := k1.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("first run exited %d", code)
	}
	if n := len(decisions(k1.Output())); n != 2 {
		t.Fatalf("first run made %d decisions, want 2 (the cap)", n)
	}
	if !sawState(scr1, "lockout") {
		t.Errorf("the third try was not shown the lockout: %v", scr1.seen())
	}
	sent := len(s.requests(t))
	fi, err := os.Stat(filepath.Join(state, "attempts.json"))
	if err != nil {
		t.Fatalf("attempt history: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("attempts.json mode %04o, want 0600", fi.Mode().Perm())
	}
	ob.happened("run 1: 2 FAIL decisions, third presence locked out")

	cfg2 := fcfg{BaseURL: s.URL, State: state, Clip: relClip(t, "empty:3,a:15,empty:10"), Capture: capture, Outputs: hook.outputs()}.write(t)
	k2 := startKioskd(t, cfg2)
	scr2 := watchScreen(t, displayAddr(t, k2))
	if code := k2.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("second run exited %d", code)
	}
	if ds := decisions(k2.Output()); len(ds) != 0 {
		t.Errorf("after the restart kioskd decided %v: the cap did not survive", ds)
	}
	if n := len(s.requests(t)); n != sent {
		t.Errorf("after the restart %d more requests reached the service", n-sent)
	}
	if !sawState(scr2, "lockout") {
		t.Errorf("after the restart the screen did not show the lockout: %v", scr2.seen())
	}
	checkDoor(t, k2, hook)
	if n := len(hook.unlocks(t)); n != 0 {
		t.Errorf("%d unlocks", n)
	}
	ob.happened("run 2 (restarted, enrolled person): locked out, 0 requests, 0 unlocks; attempts.json mode 0600")
	ob.lost("—")
}

// TestHTTPSurfacesAreLocalAndGuarded checks the defaults (loopback), the
// Host check on every surface (DNS rebinding), and the display's caching
// and Content-Security-Policy headers.
func TestHTTPSurfacesAreLocalAndGuarded(t *testing.T) {
	t.Parallel()
	ob := observe(t, "security", "HTTP surfaces: loopback, Host check, headers",
		"default listen addresses; requests to /metrics, /healthz, /readyz, the display page, /events, /healthz and /preview.mjpeg with a foreign Host",
		"loopback by default; foreign Host refused (421) everywhere; display: Cache-Control no-store, strict CSP, no framing")
	def := config.Default()
	for name, listen := range map[string]string{"display.listen": def.Display.Listen, "metrics.listen": def.Metrics.Listen} {
		host, _, err := net.SplitHostPort(listen)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Errorf("default %s = %q, want a loopback address", name, listen)
		}
	}
	s := startSim(t)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, loopClip), Loop: true, Display: "  preview: true"}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	daddr := displayAddr(t, k)
	for _, a := range []string{maddr, daddr} {
		if host, _, _ := net.SplitHostPort(a); !net.ParseIP(host).IsLoopback() {
			t.Errorf("listening on %s", a)
		}
	}
	urls := []string{
		"http://" + maddr + "/metrics", "http://" + maddr + "/healthz", "http://" + maddr + "/readyz",
		"http://" + daddr + "/", "http://" + daddr + "/events", "http://" + daddr + "/healthz", "http://" + daddr + "/preview.mjpeg",
	}
	for _, u := range urls {
		_, port, _ := net.SplitHostPort(strings.Split(strings.TrimPrefix(u, "http://"), "/")[0])
		for _, host := range []string{"attacker.example:" + port, "attacker.example", "localhost.attacker.example:" + port} {
			code, _, _ := get(t, u, host, 4096)
			if code != http.StatusMisdirectedRequest {
				t.Errorf("%s with Host %s: %d, want 421", u, host, code)
			}
		}
		for _, host := range []string{"", "localhost:" + port} {
			code, _, _ := get(t, u, host, 4096)
			if code != http.StatusOK && !(strings.HasSuffix(u, "/readyz") && code == 503) {
				t.Errorf("%s with Host %q: %d, want 200", u, host, code)
			}
		}
	}
	ob.happened("metrics and display listen on loopback by default; %d endpoints refused 3 foreign Host forms with 421 and answered loopback names", len(urls))
	for _, path := range []string{"/", "/events", "/healthz", "/preview.mjpeg"} {
		_, h, _ := get(t, "http://"+daddr+path, "", 4096)
		if cc := h.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("display %s Cache-Control %q, want no-store", path, cc)
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "script-src 'sha256-"} {
			if !strings.Contains(csp, want) {
				t.Errorf("display %s CSP %q lacks %q", path, csp, want)
			}
		}
		for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:"} {
			if strings.Contains(csp, bad) {
				t.Errorf("display %s CSP %q allows %s", path, csp, bad)
			}
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("display %s: X-Frame-Options %q, X-Content-Type-Options %q", path, h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
		}
	}
	ob.happened("display answers carry Cache-Control: no-store, X-Frame-Options: DENY, nosniff and a CSP of default-src 'none' with hashed script and style only")
	k.stop(t)
	ob.lost("—")
}
