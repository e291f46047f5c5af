package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	stopDoorOnRE  = regexp.MustCompile(`"msg":"actuator output","output":"door","role":"unlock","state":"on"`)
	stopDoorOffRE = regexp.MustCompile(`"msg":"actuator output","output":"door","role":"unlock","state":"off"`)
)

// lineIndexes are the numbers of the lines of out that match re.
func lineIndexes(out string, re *regexp.Regexp) []int {
	var idx []int
	for i, l := range strings.Split(out, "\n") {
		if re.MatchString(l) {
			idx = append(idx, i)
		}
	}
	return idx
}

// longPulse keeps the door open far longer than any test waits, so that
// only a relock can close it.
const longPulse = `    - {name: door, role: unlock, driver: log, pulse: 60s}
    - {name: green, role: pass, driver: log, pulse: 1s}
    - {name: red, role: fail, driver: log, pulse: 1s}`

// TestStopDuringUnlockPulseRelocks sends SIGTERM while the door is open for
// a PASS: kioskd drives the strike off before it exits, exits 0 well within
// 10 s, and leaves the queue file closed, so that `kioskd queue stats`
// opens it at once.
func TestStopDuringUnlockPulseRelocks(t *testing.T) {
	t.Parallel()
	s := startSim(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true, Loop: true, Actuators: longPulse})
	k := startKioskd(t, cfg)
	// A scrape stalled half-way through its request headers keeps the
	// metrics server's shutdown waiting: the stop must still be bounded.
	stalled := stallRequest(t, listenAddr(t, k, "metrics"))
	defer stalled.Close()
	k.waitLine(t, stopDoorOnRE, 60*time.Second)
	on := lineIndexes(k.Output(), stopDoorOnRE)
	if off := lineIndexes(k.Output(), stopDoorOffRE); off[len(off)-1] > on[0] {
		t.Fatalf("the door went off before SIGTERM, with a 60 s pulse")
	}
	sent := time.Now()
	k.signal(t, syscall.SIGTERM)
	code := k.wait(t, 12*time.Second)
	took := time.Since(sent)
	if code != 0 {
		t.Fatalf("kioskd exited %d after SIGTERM, want 0", code)
	}
	if took > 10*time.Second {
		t.Fatalf("kioskd took %s to stop, want at most 10s", took)
	}
	out := k.Output()
	on, off := lineIndexes(out, stopDoorOnRE), lineIndexes(out, stopDoorOffRE)
	stopping := lineIndexes(out, regexp.MustCompile(`"msg":"stopping"`))
	stopped := lineIndexes(out, regexp.MustCompile(`"msg":"stopped"`))
	if len(on) != 1 || len(stopping) != 1 || len(stopped) != 1 {
		t.Fatalf("want one door-on, one stopping and one stopped line; got %d, %d, %d", len(on), len(stopping), len(stopped))
	}
	if off[len(off)-1] < stopping[0] || off[len(off)-1] > stopped[0] {
		t.Fatalf("the door was not driven off between SIGTERM and exit (door-off lines %v, stopping at %d, stopped at %d)", off, stopping[0], stopped[0])
	}
	if strings.Contains(out, "took too long") || strings.Contains(out, "door may still be unlocked") {
		t.Fatalf("unclean stop:\n%s", out)
	}
	t.Logf("stopped %s after SIGTERM", took.Round(time.Millisecond))
	// The queue file is free the moment kioskd is gone.
	st := queueStats(t, cfg)
	if st["depth"] != float64(0) {
		t.Fatalf("queue stats after the stop: %v, want depth 0", st)
	}
}

// TestStopAbandonsInFlightAttemptIntoQueue sends SIGTERM while the live
// request hangs at the service: the attempt is abandoned at once, the
// capture is kept in the queue under the key the service saw (flushed
// before exit), the door stays shut and kioskd exits 0 within 10 s.
func TestStopAbandonsInFlightAttemptIntoQueue(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--script", "hang")
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true, Loop: true, Actuators: longPulse})
	k := startKioskd(t, cfg)
	eventually(t, 60*time.Second, "a request hanging at the emulator", func() bool {
		return simStatus(t, s)["hanging"] == float64(1)
	})
	sent := time.Now()
	k.signal(t, syscall.SIGTERM)
	if code := k.wait(t, 12*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d after SIGTERM, want 0", code)
	}
	if took := time.Since(sent); took > 10*time.Second {
		t.Fatalf("kioskd took %s to stop, want at most 10s", took)
	}
	out := k.Output()
	if on := lineIndexes(out, stopDoorOnRE); len(on) != 0 {
		t.Fatalf("the door opened for an abandoned attempt")
	}
	ds := decisions(out)
	if len(ds) != 1 || ds[0]["result"] != "OFFLINE" || ds[0]["queued"] != true || ds[0]["deferred"] != false {
		t.Fatalf("decisions %v: want one OFFLINE with queued=true", ds)
	}
	var hung string
	for _, r := range s.requests(t) {
		if r["outcome"] == "hang" {
			hung, _ = r["idempotencyKey"].(string)
		}
	}
	if hung == "" {
		t.Fatal("the emulator recorded no hanging request with an idempotency key")
	}
	ids := queuedIDs(t, cfg)
	if len(ids) != 1 || ids[0] != hung {
		t.Fatalf("queue holds %v, want exactly the abandoned capture %s", ids, hung)
	}
}

// TestSecondSignalExitsAtOnce makes the graceful stop wait (a scrape
// stalled in its request headers holds the metrics server's shutdown for
// its 2 s bound) and sends a second SIGTERM during that wait: kioskd exits
// at once, says so, and does not report success.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	s := startSim(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true, Loop: true})
	k := startKioskd(t, cfg)
	stalled := stallRequest(t, listenAddr(t, k, "metrics"))
	defer stalled.Close()
	k.signal(t, syscall.SIGTERM)
	k.waitLine(t, regexp.MustCompile(`"msg":"stopping"`), 5*time.Second)
	sent := time.Now()
	k.signal(t, syscall.SIGTERM)
	code := k.wait(t, 5*time.Second)
	took := time.Since(sent)
	if !strings.Contains(k.Output(), "second signal: exiting now") {
		t.Fatalf("no 'second signal' line: the stop ended on its own (exit %d)", code)
	}
	if code == 0 {
		t.Fatalf("kioskd exited 0 after a second signal; an interrupted stop must not look clean")
	}
	if took > 1500*time.Millisecond {
		t.Fatalf("kioskd took %s to exit after the second signal, want at once", took)
	}
}

// stallRequest opens a connection to addr and sends half of a request's
// headers, as a stuck scraper or browser would. It returns once the server
// holds the connection: the kernel completes a dial before the server
// accepts it, and a stop in between would not wait for it. The server
// accepts in arrival order, so a scrape dialled afterwards that is answered
// proves it; the scrape also sees both connections open.
func stallRequest(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: " + addr + "\r\n")); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(scrape(t, addr), "kioskd_http_open_connections", "server=metrics"); n < 2 {
		t.Fatalf("the metrics server holds %v connections during a scrape after the stalled one, want at least 2", n)
	}
	return c
}

// TestSIGHUPReload starts kioskd with a brightness floor that rejects every
// frame of the demo clip as too dark, so nobody is ever sent to the
// service. The config file then gets the default thresholds, log level
// debug and a camera setting, and kioskd gets SIGHUP: it logs what it
// applied and warns that the camera change needs a restart, and the new
// thresholds and level take effect in the running process — A passes,
// B fails, debug lines appear.
func TestSIGHUPReload(t *testing.T) {
	t.Parallel()
	s := startSim(t)
	o := runOpts{BaseURL: s.URL, State: t.TempDir(), Realtime: true, Loop: true,
		Capture: "  min_brightness: 230\n  max_brightness: 250"}
	cfg := writeConfig(t, o)
	k := startKioskd(t, cfg)
	scr := watchScreen(t, displayAddr(t, k))
	// A comes and goes, then B: "face the screen" for each, ready after.
	tooDark := screenView{State: "guidance", Tone: "guide", Text: "Face the screen and take off any hat or cap"}
	eventually(t, 30*time.Second, "both people of the clip rejected as too dark", func() bool {
		n := 0
		for _, v := range scr.seen() {
			switch {
			case v == tooDark && n%2 == 0, v.State == "ready" && n%2 == 1:
				n++
			}
		}
		return n >= 4
	})
	if ds := decisions(k.Output()); len(ds) != 0 {
		t.Fatalf("decisions %v with every frame too dark", ds)
	}
	if strings.Contains(k.Output(), `"level":"DEBUG"`) {
		t.Fatal("debug lines at log level info")
	}

	o.Capture, o.LogLevel, o.Camera = "", "debug", "  buffer_size: 2"
	if got := writeConfig(t, o); got != cfg {
		t.Fatalf("config written to %s, want %s", got, cfg)
	}
	k.signal(t, syscall.SIGHUP)
	line := k.waitLine(t, regexp.MustCompile(`"msg":"reloaded"`), 10*time.Second)
	var m struct {
		Applied []string `json:"applied"`
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Applied, ",") != "log.level,capture" {
		t.Fatalf("reloaded line %s: want applied [log.level capture]", line)
	}
	warn := k.waitLine(t, regexp.MustCompile(`"msg":"reload: these changes need a restart`), 5*time.Second)
	var w struct {
		Level    string   `json:"level"`
		Sections []string `json:"sections"`
	}
	if err := json.Unmarshal([]byte(warn), &w); err != nil {
		t.Fatal(err)
	}
	if w.Level != "WARN" || strings.Join(w.Sections, ",") != "camera" {
		t.Fatalf("restart warning %s: want WARN naming [camera]", warn)
	}
	k.waitLine(t, regexp.MustCompile(`"msg":"capture: reconfigured"`), 10*time.Second)
	k.waitLine(t, regexp.MustCompile(`"msg":"decision".*"result":"PASS"`), 30*time.Second)
	k.waitLine(t, regexp.MustCompile(`"msg":"decision".*"result":"FAIL".*"reason":"faceMatchFailed"`), 30*time.Second)
	k.waitLine(t, regexp.MustCompile(`"level":"DEBUG"`), 10*time.Second)
	k.signal(t, syscall.SIGTERM)
	if code := k.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d after SIGTERM", code)
	}
}

// simStatus reads the emulator's /_sim/status.
func simStatus(t *testing.T, s *sim) map[string]any {
	t.Helper()
	resp, err := http.Get(s.URL + "/_sim/status")
	if err != nil {
		t.Fatalf("sim status: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("sim status: %v", err)
	}
	return m
}

// queuedIDs lists the IDs (idempotency keys) of the captures in a stopped
// kioskd's queue, oldest first.
func queuedIDs(t *testing.T, cfgPath string) []string {
	t.Helper()
	out, errOut, code := kioskdCmd(t, "queue", "list", "--json", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("kioskd queue list exited %d: %s%s", code, out, errOut)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("kioskd queue list --json: %v: %s", err, out)
	}
	var ids []string
	for _, it := range items {
		id, _ := it["id"].(string)
		if id == "" {
			t.Fatalf("queue list item without an id: %v", it)
		}
		ids = append(ids, id)
	}
	return ids
}
