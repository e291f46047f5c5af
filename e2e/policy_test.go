package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLobbyIsNeverLockedOut: with the default brute-force guard, twenty
// enrolled people arriving about 3 s apart all get in. Passes never count
// towards the guard.
func TestLobbyIsNeverLockedOut(t *testing.T) {
	t.Parallel()
	const arrivals = 20
	ob := observe(t, "decision", "a busy lobby with the default guard",
		fmt.Sprintf("%d enrolled arrivals about 3 s apart (person A, 14 frames in view, 30 frames gone, 15 fps); capture defaults (max_failures 5 in 3m)", arrivals),
		"every arrival gets a live PASS and an unlock; no lockout is shown")
	s := startSim(t)
	hook := newDoorHook(t)
	clip := "empty:3" + strings.Repeat(",a:14,empty:30", arrivals)
	// A live_timeout with room for a loaded test machine: this test is
	// about the guard, not the service's speed.
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, clip), LiveTimeout: "5s", Outputs: hook.outputs()}.write(t)
	k := startKioskd(t, cfg)
	scr := watchScreen(t, displayAddr(t, k))
	maddr := listenAddr(t, k, "metrics")
	waitDecision(t, k, "the last arrival's decision", 120*time.Second, func(map[string]any) bool {
		n := 0
		for _, d := range decisions(k.Output()) {
			if live(d) {
				n++
			}
		}
		return n >= arrivals
	})
	lockouts := metricValue(scrape(t, maddr), "kioskd_capture_lockouts_total")
	if code := k.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
	pass := countLive(k.Output(), "PASS")
	if pass != arrivals {
		t.Errorf("%d live PASS decisions for %d arrivals: %v", pass, arrivals, decisions(k.Output()))
	}
	if sawState(scr, "lockout") || lockouts != 0 {
		t.Errorf("a lobby of people who pass was locked out (lockouts_total %v)", lockouts)
	}
	n := checkDoor(t, k, hook)
	ob.happened("%d arrivals: %d live PASS, %d unlocks, lockouts_total %v, lockout shown: %v", arrivals, pass, n, lockouts, sawState(scr, "lockout"))
	ob.lost("nothing")
}

// TestLatePassGetsItsWholePulse: a PASS arriving late within live_timeout
// still drives every unlock output for its whole configured time; the exec
// hook is not cut off by what was left of the live deadline.
func TestLatePassGetsItsWholePulse(t *testing.T) {
	t.Parallel()
	ob := observe(t, "decision", "a PASS late within live_timeout",
		"emulator `delay:3s` then PASS, live_timeout 5s; an exec unlock hook that takes 2.5 s (timeout 4s); door pulse 1s",
		"the door opens for its whole 1 s pulse and the hook completes: no deadline error")
	// The hook outlasts what is left of the live deadline (at most 2 s),
	// so it completes only with a timeout of its own.
	s := startSim(t, "--script", "delay:3s")
	hook := newDoorHook(t)
	outputs := fmt.Sprintf(`    - {name: door, role: unlock, driver: log, pulse: 1s}
    - {name: hook, role: unlock, driver: exec, pulse: 1s, command: [/bin/sh, -c, 'sleep 2.5; echo "$ROLE $STATE $RESULT $AUTHENTICATION_ID" >> %s'], timeout: 4s}
    - {name: red, role: fail, driver: log, pulse: 1s}`, hook.path)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, "empty:3,a:14,empty:120"), LiveTimeout: "5s", Outputs: outputs}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	d := waitDecision(t, k, "the live decision", 30*time.Second, live)
	if d["result"] != "PASS" {
		t.Fatalf("decision %v, want a live PASS", d)
	}
	eventually(t, 10*time.Second, "the door to close again", func() bool {
		return strings.Contains(k.Output(), `"output":"door","role":"unlock","state":"off"`)
	})
	errs := metricValue(scrape(t, maddr), "kioskd_actuator_errors_total", "driver=exec")
	if code := k.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
	var on, off time.Time
	for _, l := range logLines(k.Output()) {
		if l["msg"] != "actuator output" || l["output"] != "door" {
			continue
		}
		ts, _ := time.Parse(time.RFC3339Nano, str(l, "time"))
		switch {
		case l["state"] == "on" && on.IsZero():
			on = ts
		case l["state"] == "off" && !on.IsZero() && off.IsZero():
			off = ts
		}
	}
	if held := off.Sub(on); on.IsZero() || held < 900*time.Millisecond {
		t.Errorf("the door was open %v (on %v, off %v), want its 1 s pulse", held, on, off)
	}
	if errs != 0 || strings.Contains(k.Output(), "context deadline exceeded") || strings.Contains(k.Output(), "door did not open") {
		t.Errorf("an unlock output failed (exec errors %v)", errs)
	}
	if n := checkDoor(t, k, hook); n != 1 {
		t.Errorf("the hook unlocked %d times, want 1", n)
	}
	ob.happened("live PASS after %v ms; door open %.2f s; exec hook completed, actuator errors %v", d["latency_ms"], off.Sub(on).Seconds(), errs)
	ob.lost("nothing")
}

// TestGreetingWithoutANameObject: with display.greet_by_name, a userinfo
// answer without its optional name object does not crash kioskd: the door
// opens once, the decision line is written and the screen says welcome.
func TestGreetingWithoutANameObject(t *testing.T) {
	t.Parallel()
	ob := observe(t, "decision", "userinfo without the name object",
		"display.greet_by_name on; emulator `userinfo:noname` (the optional name object missing)",
		"no crash: one live PASS, one unlock, a welcome without a name, kioskd keeps running")
	s := startSim(t, "--script", "userinfo:noname")
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, "empty:3,a:14,empty:30,a:14,empty:30"), Outputs: hook.outputs(), Display: "  greet_by_name: true"}.write(t)
	k := startKioskd(t, cfg)
	scr := watchScreen(t, displayAddr(t, k))
	if code := k.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d: %s", code, tail(k.Output(), 2000))
	}
	if strings.Contains(k.Output(), "panic") {
		t.Fatalf("kioskd panicked: %s", tail(k.Output(), 2000))
	}
	if n := countLive(k.Output(), "PASS"); n != 2 {
		t.Errorf("%d live PASS decisions, want 2 (the second person is greeted by name)", n)
	}
	if !sawState(scr, "pass") {
		t.Errorf("no welcome on screen: %v", scr.seen())
	}
	n := checkDoor(t, k, hook)
	ob.happened("%d live PASS, %d unlocks, no panic, exit 0", countLive(k.Output(), "PASS"), n)
	ob.lost("the greeting name of the first person")
}

// deferredRequests returns the times of the emulator's authenticate
// requests with idempotency key id.
func keyRequestTimes(t *testing.T, s *sim, id string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, r := range s.requests(t) {
		if r["idempotencyKey"] != id || r["endpoint"] != "authenticate" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, str(r, "time"))
		if err != nil {
			t.Fatalf("request time %v: %v", r["time"], err)
		}
		out = append(out, ts)
	}
	return out
}

// TestDrainerHonoursRetryAfter: a queued capture answered 429 with
// Retry-After: 3600 is not tried again within the run (the wait is held up
// to queue.retry_after_max, 15 min by default), and the metric shows it.
func TestDrainerHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	ob := observe(t, "service", "429 with Retry-After: 3600 on the queue",
		"HTTP 429 with Retry-After: 3600 to the live attempt and to the drainer's first try; 10 s run",
		"one live request, one drain try, then nothing: the wait (capped at 15 min) is honoured and shown in kioskd_decision_deferred_retry_after_seconds")
	s := startSim(t, "--script", "http:429:retry-after=3600,http:429:retry-after=3600")
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, "empty:3,a:14,empty:150")}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	d := waitDecision(t, k, "the live decision", 30*time.Second, live)
	if d["result"] != "OFFLINE" || d["queued"] != true {
		t.Fatalf("live decision %v, want OFFLINE and queued", d)
	}
	id := str(d, "capture_id")
	eventually(t, 20*time.Second, "the drainer's first try", func() bool { return len(keyRequestTimes(t, s, id)) >= 2 })
	var wait float64
	eventually(t, 10*time.Second, "the wait in the metrics", func() bool {
		wait = metricValue(scrape(t, maddr), "kioskd_decision_deferred_retry_after_seconds")
		return wait > 0
	})
	if code := k.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
	reqs := keyRequestTimes(t, s, id)
	if len(reqs) != 2 {
		t.Errorf("%d requests for the capture, want 2 (live, then one drain try)", len(reqs))
	}
	if wait != 900 {
		t.Errorf("retry-after gauge %v, want 900 (3600 capped at 15 min)", wait)
	}
	ob.happened("%d requests for the capture over the run (%v after the live one the drain try); then none; wait metric %v s", len(reqs), reqs[len(reqs)-1].Sub(reqs[0]).Round(time.Millisecond), wait)
	ob.lost("nothing: the capture stays queued")
}

// TestDrainerOneRequestPerTry: while the service answers 500, the drainer
// sends one request per try and waits longer each time, instead of
// retrying inside each try.
func TestDrainerOneRequestPerTry(t *testing.T) {
	t.Parallel()
	ob := observe(t, "service", "HTTP 500 to every queued try",
		"HTTP 500 to every request (60 scripted) for a 10 s run; queue backoff 200ms..1s",
		"the live attempt retries within its deadline; the drainer then makes one request per try with a growing backoff")
	s := startSim(t, "--script", strings.TrimSuffix(strings.Repeat("http:500,", 60), ","))
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, "empty:3,a:14,empty:150")}.write(t)
	k := startKioskd(t, cfg)
	d := waitDecision(t, k, "the live decision", 30*time.Second, live)
	if d["result"] != "OFFLINE" || d["queued"] != true {
		t.Fatalf("live decision %v, want OFFLINE and queued", d)
	}
	if code := k.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
	id := str(d, "capture_id")
	reqs := keyRequestTimes(t, s, id)
	live := 1 + 3 // the live attempt and its incode.max_retries
	if len(reqs) <= live {
		t.Fatalf("%d requests for the capture: the drainer never tried", len(reqs))
	}
	drain := reqs[live:]
	tries := strings.Count(k.Output(), `"msg":"queued item not delivered: will retry"`)
	// The clip's end stops kioskd, which may cut one try short: its request
	// may or may not have reached the service.
	cut := strings.Count(k.Output(), `"msg":"queued item delivery cut short by the stop`)
	if len(drain) < tries || len(drain) > tries+cut {
		t.Errorf("%d drain requests for %d drain tries (%d cut short by the stop): want one request per try", len(drain), tries, cut)
	}
	var gaps []time.Duration
	for i := 1; i < len(drain); i++ {
		gaps = append(gaps, drain[i].Sub(drain[i-1]).Round(10*time.Millisecond))
	}
	// The test configuration's backoff runs from 200ms to 1s, each wait
	// jittered down to half: the later gaps sit near the ceiling.
	if len(gaps) < 6 {
		t.Fatalf("only %d drain tries in the run (gaps %v)", len(drain), gaps)
	}
	late := slices.Clone(gaps[len(gaps)-5:])
	slices.Sort(late)
	if late[2] < 450*time.Millisecond || gaps[0] > late[2] {
		t.Errorf("the backoff does not grow to its ceiling: gaps %v", gaps)
	}
	ob.happened("live: %d requests within live_timeout; drainer: %d tries (%d cut short by the stop), %d requests, gaps %v (backoff 200ms..1s)", live, tries, cut, len(drain), gaps)
	ob.lost("nothing: the capture stays queued")
}
