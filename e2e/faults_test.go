package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/internal/reliability"
	"github.com/kioskd/kioskd/internal/testmedia"
)

// This file holds the fault matrix of issue 8 (service faults) and the
// helpers the fault, bad-input and security tests share: generated clips,
// a door hook that records every unlock, a config writer with short
// timeouts, and the observation record behind docs/reliability.md.

// ---------------------------------------------------------------------------
// Observations for docs/reliability.md

// observation is one row of the reliability document. It is written when the
// test ends, with Passed set from the test's outcome, to the JSON-lines file
// named by $KIOSKD_RELIABILITY_OUT (nothing is written without it).
type observation struct {
	mu sync.Mutex
	o  reliability.Observation
}

func observe(t *testing.T, area, name, fault, expected string) *observation {
	t.Helper()
	ob := &observation{o: reliability.Observation{Area: area, Case: name, Fault: fault, Expected: expected, Test: t.Name()}}
	start := time.Now()
	// Registered first, so it runs after every other cleanup (processes
	// stopped, their output logged).
	t.Cleanup(func() {
		ob.mu.Lock()
		o := ob.o
		ob.mu.Unlock()
		o.Passed = !t.Failed() && !t.Skipped()
		o.Seconds = time.Since(start).Round(100 * time.Millisecond).Seconds()
		if t.Skipped() {
			return
		}
		if o.Happened == "" {
			o.Happened = "(the test stopped before recording what happened)"
		}
		t.Logf("observation: %s / %s: %s; lost: %s; passed %v", o.Area, o.Case, o.Happened, o.Lost, o.Passed)
		if path := os.Getenv("KIOSKD_RELIABILITY_OUT"); path != "" {
			if err := reliability.Append(path, o); err != nil {
				t.Errorf("record observation: %v", err)
			}
		}
	})
	return ob
}

// tempPathRE matches the directory part of a test's temporary paths, which
// would make the document change on every run.
var tempPathRE = regexp.MustCompile(`/tmp/[^\s"',;]*/`)

// happened adds a fact to what happened.
func (ob *observation) happened(format string, args ...any) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	s := tempPathRE.ReplaceAllString(fmt.Sprintf(format, args...), "…/")
	if ob.o.Happened == "" {
		ob.o.Happened = s
	} else {
		ob.o.Happened += "; " + s
	}
}

func (ob *observation) lost(format string, args ...any) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.o.Lost = fmt.Sprintf(format, args...)
}

// ---------------------------------------------------------------------------
// Generated camera clips

// relMedia renders each scene the fault tests use once per test binary;
// clips are then made of hard links to these files, which costs nothing.
var relMedia struct {
	once sync.Once
	dir  string
	err  error
}

const relVariants = 8 // swaying frames per person

func relFrames(t *testing.T) string {
	t.Helper()
	relMedia.once.Do(func() {
		dir := filepath.Join(binDir, "relmedia")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			relMedia.err = err
			return
		}
		g, err := testmedia.NewGenerator(filepath.Join(repoRoot, "testdata"))
		if err != nil {
			relMedia.err = err
			return
		}
		defer g.Close()
		frame := gocv.NewMat()
		defer frame.Close()
		for _, name := range []string{"empty", "a", "b"} {
			sc := testmedia.Scenes[name]
			n := 1
			if sc.HasFace() {
				sc.Sway, n = true, relVariants
			}
			for i := range n {
				if err := g.Render(sc, 640, 360, i, &frame); err != nil {
					relMedia.err = err
					return
				}
				p := filepath.Join(dir, fmt.Sprintf("%s-%d.jpg", name, i))
				if !gocv.IMWriteWithParams(p, frame, []int{gocv.IMWriteJpegQuality, 90}) {
					relMedia.err = fmt.Errorf("cannot write %s", p)
					return
				}
			}
		}
		relMedia.dir = dir
	})
	if relMedia.err != nil {
		t.Fatalf("render test frames: %v", relMedia.err)
	}
	return relMedia.dir
}

// relClip makes an image-folder camera source from a script such as
// "empty:5,a:14,empty:16" (scenes empty, a, b; counts in frames).
func relClip(t *testing.T, script string) string {
	t.Helper()
	src := relFrames(t)
	segs, err := testmedia.ParseScript(script)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, scene := range testmedia.FrameScenes(segs) {
		name := scene + "-0.jpg"
		if scene != "empty" {
			name = fmt.Sprintf("%s-%d.jpg", scene, i%relVariants)
		}
		from := filepath.Join(src, name)
		if _, err := os.Stat(from); err != nil {
			t.Fatalf("scene %q is not rendered for clips (use empty, a or b)", scene)
		}
		to := filepath.Join(dir, fmt.Sprintf("frame-%05d.jpg", i))
		if err := os.Link(from, to); err != nil {
			data, rerr := os.ReadFile(from)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if err := os.WriteFile(to, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// loopClip is the clip of the service matrix at 15 fps: person A walks up
// every 2.3 s. Each presence gives one attempt, so after a fault the next
// presence shows whether kioskd recovered.
const loopClip = "empty:5,a:14,empty:16"

// ---------------------------------------------------------------------------
// The door hook

// doorHook is an exec unlock output that appends one line per activation to
// a file: the strongest evidence of what the door was told, independent of
// kioskd's own logging.
type doorHook struct{ path string }

func newDoorHook(t *testing.T) *doorHook {
	t.Helper()
	return &doorHook{path: filepath.Join(t.TempDir(), "door-hook.log")}
}

// outputs is the actuator outputs list: a log-driver door, the exec hook
// (both role unlock) and a log-driver fail indicator.
func (d *doorHook) outputs() string {
	return fmt.Sprintf(`    - {name: door, role: unlock, driver: log, pulse: 1s}
    - {name: hook, role: unlock, driver: exec, pulse: 1s, command: [/bin/sh, -c, 'echo "$ROLE $STATE $RESULT $AUTHENTICATION_ID" >> %s'], timeout: 2s}
    - {name: red, role: fail, driver: log, pulse: 1s}`, d.path)
}

// unlocks returns the authentication IDs of every unlock the hook saw.
func (d *doorHook) unlocks(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(d.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "unlock" && f[1] == "on" {
			id := ""
			if len(f) >= 4 {
				id = f[3]
			}
			ids = append(ids, id)
		}
	}
	return ids
}

var doorOnRE = regexp.MustCompile(`"msg":"actuator output".*"output":"door".*"role":"unlock".*"state":"on"`)

// checkDoor asserts that the door was unlocked exactly once for each live
// PASS in kioskd's output, for that PASS's authentication, and never
// otherwise (not for a deferred PASS, a late one or a malformed one). It
// returns the number of unlocks.
func checkDoor(t *testing.T, k *proc, hook *doorHook) int {
	t.Helper()
	out := k.Output()
	var live []string
	for _, d := range decisions(out) {
		if d["result"] == "PASS" && d["deferred"] == false {
			id, _ := d["authentication_id"].(string)
			live = append(live, id)
		}
	}
	got := hook.unlocks(t)
	logged := len(doorOnRE.FindAllString(out, -1))
	slices.Sort(live)
	slices.Sort(got)
	if !slices.Equal(live, got) {
		t.Errorf("door hook unlocked for %q; live PASS decisions were for %q", got, live)
	}
	if logged != len(live) {
		t.Errorf("the log door driver switched on %d times for %d live PASS decisions", logged, len(live))
	}
	return len(got)
}

// ---------------------------------------------------------------------------
// Configuration

// fcfg is a kioskd configuration for the fault tests: short timeouts, an
// image-folder camera at 15 fps, the door hook, metrics and display on
// ports the OS chooses.
type fcfg struct {
	BaseURL     string
	Clip        string
	State       string // state_dir; default a new temporary directory
	QueuePath   string // default <state>/queue.db
	LiveTimeout string // default 2s
	Loop        bool
	Realtime    bool   // default true (set NoRealtime to read as fast as possible)
	NoRealtime  bool   //
	FPS         int    // default 15
	Mode        string // default door
	LogLevel    string // default info
	Outputs     string // actuator outputs; default log outputs
	Incode      string // extra lines under incode:
	Camera      string // extra lines under camera:
	Capture     string // extra lines under capture:
	Queue       string // extra lines under queue:
	Display     string // extra lines under display:
}

func (c fcfg) write(t *testing.T) string {
	t.Helper()
	if c.State == "" {
		c.State = t.TempDir()
	}
	if c.QueuePath == "" {
		c.QueuePath = filepath.Join(c.State, "queue.db")
	}
	if c.LiveTimeout == "" {
		c.LiveTimeout = "2s"
	}
	if c.FPS == 0 {
		c.FPS = 15
	}
	if c.Mode == "" {
		c.Mode = "door"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Outputs == "" {
		c.Outputs = `    - {name: door, role: unlock, driver: log, pulse: 1s}
    - {name: red, role: fail, driver: log, pulse: 1s}`
	}
	yaml := fmt.Sprintf(`device:
  source_id: e2e-door
  mode: %s
  state_dir: %s
incode:
  base_url: %s
  live_timeout: %s
  retry_wait_min: 100ms
  retry_wait_max: 400ms
  request_timeout: 5s
%s
camera:
  source: %s
  fps: %d
  loop: %v
  realtime: %v
%s
capture:
  min_face_px: 80
  presence_frames: 3
  window: 400ms
  cooldown: 3s
%s
queue:
  path: %s
  backoff_min: 200ms
  backoff_max: 1s
%s
actuator:
  outputs:
%s
display:
  listen: 127.0.0.1:0
%s
metrics:
  listen: 127.0.0.1:0
log:
  level: %s
  format: json
`, c.Mode, c.State, c.BaseURL, c.LiveTimeout, c.Incode, c.Clip, c.FPS, c.Loop, !c.NoRealtime, c.Camera,
		c.Capture, c.QueuePath, c.Queue, c.Outputs, c.Display, c.LogLevel)
	path := filepath.Join(t.TempDir(), "kioskd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ---------------------------------------------------------------------------
// Processes

// startArgv runs argv (a wrapper such as prlimit or setpriv around a built
// binary) like start does.
func startArgv(t *testing.T, env []string, argv ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = repoRoot
	p.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", argv[0], err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		err := p.cmd.Wait()
		pw.Close()
		p.exitMu.Lock()
		p.err = err
		p.exitMu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", strings.Join(argv, " "), p.Output())
		}
	})
	return p
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and asserts a clean exit: the process stayed up
// through whatever the test did to it.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if !p.running() {
		t.Fatalf("kioskd exited before the test stopped it:\n%s", tail(p.Output(), 30))
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d after SIGTERM", code)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var simListenRE = regexp.MustCompile(`listening on (https?://\S+)`)

// startSimArgs starts the emulator with exactly args (after the
// credentials and the enrolment) and waits for its address.
func startSimArgs(t *testing.T, args ...string) *sim {
	t.Helper()
	all := append([]string{"--api-key", apiKey, "--device-token", deviceToken, "--enroll", "testdata/enroll"}, args...)
	p := start(t, nil, "incode-sim", all...)
	line := p.waitLine(t, simListenRE, 20*time.Second)
	return &sim{proc: p, URL: simListenRE.FindStringSubmatch(line)[1]}
}

// selfSignedCert writes a certificate for 127.0.0.1 that no CA vouches for.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "not-incode.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// ---------------------------------------------------------------------------
// Decisions

// waitDecision waits for the first decision line for which match holds.
func waitDecision(t *testing.T, k *proc, what string, timeout time.Duration, match func(d map[string]any) bool) map[string]any {
	t.Helper()
	var got map[string]any
	eventually(t, timeout, what, func() bool {
		for _, d := range decisions(k.Output()) {
			if match(d) {
				got = d
				return true
			}
		}
		if !k.running() {
			t.Fatalf("kioskd exited while waiting for %s:\n%s", what, tail(k.Output(), 30))
		}
		return false
	})
	return got
}

func live(d map[string]any) bool     { return d["deferred"] == false }
func deferred(d map[string]any) bool { return d["deferred"] == true }

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// screenAfterFirstCheck is the first state the display showed after its
// first "checking": what the person was told about the first attempt.
func screenAfterFirstCheck(s *screen) string {
	checking := false
	for _, v := range s.seen() {
		switch {
		case v.State == "checking":
			checking = true
		case checking:
			return v.State
		}
	}
	return ""
}

// simKeyOutcomes lists what the emulator did with each request carrying key.
func simKeyOutcomes(reqs []map[string]any, key string) []string {
	var out []string
	for _, r := range reqs {
		if r["idempotencyKey"] == key {
			st, _ := r["status"].(float64)
			out = append(out, fmt.Sprintf("%v/%d", r["outcome"], int(st)))
		}
	}
	return out
}

func delivered(outcomes []string) bool {
	for _, o := range outcomes {
		if strings.HasSuffix(o, "/200") && !strings.HasPrefix(o, "half") && !strings.HasPrefix(o, "html") &&
			!strings.HasPrefix(o, "garbage") && !strings.HasPrefix(o, "wrongshape") && !strings.HasPrefix(o, "noauthid") {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// The service fault matrix

type metricWant struct {
	name   string
	labels []string
	min    float64 // at least
	max    float64 // at most, when >= 0 (use -1 for no bound)
}

type serviceCase struct {
	name     string
	fault    string // for the document
	script   string // emulator script for the first attempt
	tls      bool   // the emulator serves a certificate kioskd cannot verify
	kill     bool   // the emulator is SIGKILLed while it holds the request
	timeout  string // live_timeout
	result   string // the first decision's result
	reason   string
	queued   bool   // the first attempt's capture must be queued
	screen   string // what the display shows for it
	recovers bool   // the service is healthy after the script: a later live PASS must open the door
	metrics  []metricWant
	expected string
	minTook  time.Duration // the first decision takes at least this long (hang)
	minGap   time.Duration // between the first and the last request of the first attempt (Retry-After)
}

// TestServiceFaults runs kioskd against every scripted fault of the emulator.
// For each: the first attempt's decision, the door (unlocked only for a
// live PASS in time), the screen, the queue (kept or dropped as the rules
// say, then delivered without unlocking), the metrics, and that kioskd
// recovers by itself and stops cleanly.
func TestServiceFaults(t *testing.T) {
	offline := func(reason string) []metricWant {
		return []metricWant{
			{"kioskd_decision_attempts_total", []string{"result=OFFLINE"}, 1, -1},
			{"kioskd_decision_failures_total", []string{"reason=" + reason}, 1, -1},
			{"kioskd_queue_enqueued_total", nil, 1, -1},
			{"kioskd_decision_enqueue_errors_total", nil, 0, 0},
		}
	}
	errorNotQueued := []metricWant{
		{"kioskd_decision_attempts_total", []string{"result=ERROR"}, 1, -1},
		{"kioskd_decision_failures_total", []string{"reason=malformed"}, 1, -1},
		// A malformed answer is not retried: nothing is queued, ever.
		{"kioskd_queue_enqueued_total", nil, 0, 0},
	}
	delivered := []metricWant{
		{"kioskd_queue_delivered_total", nil, 1, -1},
		{"kioskd_decision_deferred_total", []string{"result=PASS"}, 1, -1},
	}
	cases := []serviceCase{
		{
			name: "503 burst outlasting the retries", fault: "4 × HTTP 503 (the live attempt and its 3 retries)",
			script: "http:503,http:503,http:503,http:503", result: "OFFLINE", reason: "server_error", queued: true,
			screen: "offline", recovers: true,
			metrics: append(append(offline("server_error"), delivered...),
				metricWant{"kioskd_uploader_retries_total", []string{"endpoint=authenticate"}, 3, -1}),
			expected: "door locked, \"offline\", capture queued and delivered later without unlocking",
		},
		{
			name: "503 burst within the retries", fault: "2 × HTTP 503, then the service answers",
			script: "http:503,http:503", result: "PASS", screen: "pass", recovers: true,
			metrics: []metricWant{
				{"kioskd_uploader_retries_total", []string{"endpoint=authenticate"}, 2, -1},
				{"kioskd_decision_attempts_total", []string{"result=PASS"}, 1, -1},
				{"kioskd_queue_enqueued_total", nil, 0, 0},
			},
			expected: "the retries reach a live PASS in time: the door opens once",
		},
		{
			name: "429, Retry-After within the live deadline", fault: "HTTP 429 with Retry-After: 1 (live_timeout 2s)",
			script: "http:429:retry-after=1", result: "PASS", screen: "pass", recovers: true, minGap: time.Second,
			metrics: []metricWant{
				{"kioskd_uploader_retries_total", []string{"endpoint=authenticate"}, 1, -1},
				{"kioskd_queue_enqueued_total", nil, 0, 0},
			},
			expected: "waits the Retry-After, then a live PASS opens the door",
		},
		{
			name: "429, Retry-After beyond the live deadline", fault: "HTTP 429 with Retry-After: 5 (live_timeout 2s)",
			script: "http:429:retry-after=5", result: "OFFLINE", reason: "rate_limited", queued: true,
			screen: "offline", recovers: true, metrics: append(offline("rate_limited"), delivered...),
			expected: "no retry past the deadline: door locked, \"offline\", capture queued and delivered later",
		},
		{
			name: "server accepts and never answers", fault: "emulator `hang` (live_timeout 2s)",
			script: "hang", result: "OFFLINE", reason: "timeout", queued: true, screen: "offline", recovers: true,
			minTook: 1900 * time.Millisecond, metrics: append(offline("timeout"), delivered...),
			expected: "the live attempt ends at live_timeout: door locked, \"offline\", capture queued and delivered later",
		},
		{
			name: "half a body, then reset", fault: "emulator `half`: 200 head and half a PASS body, then the connection closes",
			script: "half", result: "OFFLINE", reason: "transport", queued: true, screen: "offline", recovers: true,
			metrics:  append(offline("transport"), delivered...),
			expected: "the partial PASS is never decoded: door locked, \"offline\", capture queued and delivered later",
		},
		{
			name: "200 with an HTML page", fault: "emulator `html` (a captive portal)",
			script: "html", result: "ERROR", reason: "malformed", screen: "service_unavailable", recovers: true,
			metrics: errorNotQueued, expected: "door locked, \"service unavailable\", not queued (malformed answers are not retried)",
		},
		{
			name: "200 with bytes that are not JSON", fault: "emulator `garbage`",
			script: "garbage", result: "ERROR", reason: "malformed", screen: "service_unavailable", recovers: true,
			metrics: errorNotQueued, expected: "door locked, \"service unavailable\", not queued",
		},
		{
			name: "200 with JSON of the wrong shape", fault: "emulator `wrongshape`",
			script: "wrongshape", result: "ERROR", reason: "malformed", screen: "service_unavailable", recovers: true,
			metrics: errorNotQueued, expected: "door locked, \"service unavailable\", not queued",
		},
		{
			name: "PASS without authenticationId", fault: "emulator `noauthid`",
			script: "noauthid", result: "ERROR", reason: "malformed", screen: "service_unavailable", recovers: true,
			metrics: errorNotQueued, expected: "a PASS that cannot be audited is no PASS: door locked, \"service unavailable\"",
		},
		{
			name: "duplicate status member", fault: "emulator `dupstatus`: {\"status\":\"FAIL\",…,\"status\":\"PASS\"}",
			script: "dupstatus", result: "ERROR", reason: "malformed", screen: "service_unavailable", recovers: true,
			metrics:  append(slices.Clone(errorNotQueued), metricWant{"kioskd_uploader_malformed_answers_total", []string{"endpoint=authenticate"}, 1, -1}),
			expected: "a member named twice is refused, not read as its last value: door locked, \"service unavailable\", counted",
		},
		{
			name: "member names in another case", fault: "emulator `upperkeys`: {\"STATUS\":\"PASS\",\"AUTHENTICATIONID\":…}",
			script: "upperkeys", result: "ERROR", reason: "malformed", screen: "service_unavailable", recovers: true,
			metrics:  append(slices.Clone(errorNotQueued), metricWant{"kioskd_uploader_malformed_answers_total", []string{"endpoint=authenticate"}, 1, -1}),
			expected: "names are matched exactly: door locked, \"service unavailable\", counted",
		},
		{
			name: "PASS with a failureReason", fault: "emulator `passreason`: a PASS carrying failureReason spoofAttempt",
			script: "passreason", result: "ERROR", reason: "malformed", screen: "service_unavailable", recovers: true,
			metrics:  append(slices.Clone(errorNotQueued), metricWant{"kioskd_uploader_malformed_answers_total", []string{"endpoint=authenticate"}, 1, -1}),
			expected: "a PASS that also says why it failed is no PASS: door locked, \"service unavailable\", counted",
		},
		{
			name: "TLS certificate that does not verify", fault: "emulator on HTTPS with a self-signed certificate for 127.0.0.1",
			tls: true, result: "OFFLINE", reason: "transport", queued: true, screen: "offline",
			metrics:  offline("transport"),
			expected: "no request is sent: door locked, \"offline\", captures kept until the certificate is fixed",
		},
		{
			name: "emulator killed mid-request", fault: "`hang`, then SIGKILL of incode-sim while it holds the request; restarted on the same port",
			script: "hang", kill: true, result: "OFFLINE", reason: "transport", queued: true, screen: "offline", recovers: true,
			metrics:  append(offline("transport"), delivered...),
			expected: "door locked, \"offline\", capture queued and delivered to the restarted emulator without unlocking",
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runServiceCase(t, i, c)
		})
	}
}

func runServiceCase(t *testing.T, order int, c serviceCase) {
	ob := observe(t, "service", c.name, c.fault, c.expected)
	ob.o.Order = order
	var s *sim
	var simAddr string
	baseURL := ""
	if c.tls {
		cert, key := selfSignedCert(t)
		s = startSimArgs(t, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
		baseURL = s.URL
	} else {
		args := []string{"--listen", "127.0.0.1:0"}
		if c.script != "" {
			args = append(args, "--script", c.script)
		}
		s = startSimArgs(t, args...)
		baseURL = s.URL
		simAddr = strings.TrimPrefix(s.URL, "http://")
	}
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: baseURL, Clip: relClip(t, loopClip), Loop: true, LiveTimeout: c.timeout, Outputs: hook.outputs()}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	scr := watchScreen(t, displayAddr(t, k))

	if c.kill {
		eventually(t, 30*time.Second, "the emulator to hold a request", func() bool {
			st := simStatusOf(t, s)
			h, _ := st["hanging"].(float64)
			return h >= 1
		})
		if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		s.wait(t, 5*time.Second)
	}
	first := waitDecision(t, k, "the first live decision", 40*time.Second, live)
	took := time.Duration(first["latency_ms"].(float64)) * time.Millisecond
	ob.happened("%s", strings.TrimSpace(fmt.Sprint(first["result"], " ", str(first, "reason"))))
	if first["result"] != c.result || str(first, "reason") != c.reason {
		t.Errorf("first decision %s %q, want %s %q: %v", first["result"], str(first, "reason"), c.result, c.reason, first)
	}
	if q, _ := first["queued"].(bool); q != c.queued {
		t.Errorf("first decision queued=%v, want %v", first["queued"], c.queued)
	}
	if c.queued {
		ob.happened("capture queued")
	}
	if took < c.minTook {
		t.Errorf("first decision after %v, want at least %v", took, c.minTook)
	}
	if c.minTook > 0 {
		ob.happened("decided after %.1f s", took.Seconds())
	}
	id := str(first, "capture_id")
	if id == "" {
		t.Fatalf("decision without capture_id: %v", first)
	}
	if c.kill {
		// Back on the same address, healthy: the queue must drain into it.
		s = startSimArgs(t, "--listen", simAddr)
	}

	var def map[string]any
	if c.queued && c.recovers {
		def = waitDecision(t, k, "the deferred answer to the queued capture", 30*time.Second, func(d map[string]any) bool {
			return deferred(d) && d["capture_id"] == id
		})
		ob.happened("delivered later: deferred %s, door stayed locked", def["result"])
	}
	if c.recovers {
		next := waitDecision(t, k, "a later live PASS (recovery)", 30*time.Second, func(d map[string]any) bool {
			return live(d) && d["result"] == "PASS" && d["capture_id"] != id
		})
		_ = next
		ob.happened("next person: live PASS, door opened")
	} else {
		// The fault persists: a second attempt must end the same way.
		waitDecision(t, k, "a second live decision", 30*time.Second, func(d map[string]any) bool {
			return live(d) && d["capture_id"] != id
		})
		for _, d := range decisions(k.Output()) {
			if live(d) && d["result"] != c.result {
				t.Errorf("with the fault in place a live decision was %v", d)
			}
		}
	}
	fams := scrape(t, maddr)
	var moved []string
	for _, m := range c.metrics {
		v := metricValue(fams, m.name, m.labels...)
		if v < m.min || (m.max >= 0 && v > m.max) {
			t.Errorf("%s%v = %v, want %v..%v", m.name, m.labels, v, m.min, m.max)
		}
		label := ""
		if len(m.labels) > 0 {
			label = "{" + strings.Join(m.labels, ",") + "}"
		}
		moved = append(moved, fmt.Sprintf("%s%s %v", strings.TrimPrefix(m.name, "kioskd_"), label, v))
	}
	ob.happened("metrics: %s", strings.Join(moved, ", "))
	if v := metricValue(fams, "kioskd_actuator_unlocks_total"); v < 0 {
		t.Errorf("no kioskd_actuator_unlocks_total")
	}
	if got := screenAfterFirstCheck(scr); got != c.screen {
		t.Errorf("the screen said %q after the first check, want %q (states %v)", got, c.screen, scr.seen())
	}
	ob.happened("screen: %s", c.screen)
	k.stop(t)

	unlocks := checkDoor(t, k, hook)
	if c.result != "PASS" {
		for _, d := range decisions(k.Output()) {
			if d["capture_id"] == id && d["result"] == "PASS" && live(d) {
				t.Errorf("the faulty attempt became a live PASS: %v", d)
			}
		}
	}
	st := queueStats(t, cfg)
	depth, _ := st["depth"].(float64)
	deadLetters, _ := st["dead_letters"].(float64)
	if deadLetters != 0 {
		t.Errorf("%v dead letters after the run", deadLetters)
	}
	// Every capture the log says was queued is in the queue or reached the
	// emulator with its Idempotency-Key and got an answer.
	var reqs []map[string]any
	if c.tls {
		// Nothing may have reached the emulator: kioskd must refuse the
		// handshake before it sends the key, the token or the face.
		reqs = insecureRequests(t, s)
		if len(reqs) != 0 {
			t.Errorf("the emulator behind an unverifiable certificate received %d requests", len(reqs))
		}
		ob.happened("handshake refused, no request sent")
	} else {
		reqs = s.requests(t)
	}
	if c.minGap > 0 {
		var times []time.Time
		for _, r := range reqs {
			if r["idempotencyKey"] == id {
				ts, err := time.Parse(time.RFC3339Nano, str(r, "time"))
				if err != nil {
					t.Fatalf("emulator request time %v: %v", r["time"], err)
				}
				times = append(times, ts)
			}
		}
		if len(times) < 2 {
			t.Errorf("the first attempt reached the emulator %d times, want a retry", len(times))
		} else if gap := times[len(times)-1].Sub(times[0]); gap < c.minGap {
			t.Errorf("retried after %v, before the server's Retry-After %v", gap, c.minGap)
		} else {
			ob.happened("retried after %.1f s", gap.Seconds())
		}
	}
	queued := 0
	undelivered := 0
	for _, d := range decisions(k.Output()) {
		if q, _ := d["queued"].(bool); !q {
			continue
		}
		queued++
		if !delivered(simKeyOutcomes(reqs, str(d, "capture_id"))) {
			undelivered++
		}
	}
	if c.tls {
		if int(depth) != undelivered || undelivered == 0 {
			t.Errorf("queue depth %v, want every queued capture (%d) still kept", depth, undelivered)
		}
		ob.happened("%d captures still queued at exit, none lost", undelivered)
	} else if int(depth) != undelivered {
		t.Errorf("queue depth %v after the run, but %d queued captures never reached the emulator", depth, undelivered)
	}
	if c.queued && !c.tls && !delivered(simKeyOutcomes(reqs, id)) {
		t.Errorf("the queued capture %s never reached the emulator: %v", id, simKeyOutcomes(reqs, id))
	}
	ob.happened("%d unlock(s), each for a live PASS; exit 0 on SIGTERM", unlocks)
	switch {
	case c.queued && c.tls:
		ob.lost("nothing (kept in the queue)")
	case c.queued:
		ob.lost("nothing (%d queued, %d delivered, queue depth %d at exit)", queued, queued-undelivered, int(depth))
	case c.result == "PASS":
		ob.lost("nothing")
	default:
		ob.lost("nothing kept by design: an unusable answer is not retried; the person is told to use the badge")
	}
}

// simStatusOf reads the emulator's /_sim/status.
func simStatusOf(t *testing.T, s *sim) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/_sim/status", nil)
	resp, err := http.DefaultClient.Do(req)
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

// insecureRequests reads /_sim/requests from an emulator serving a
// certificate nobody trusts (the test knows it is its own).
func insecureRequests(t *testing.T, s *sim) []map[string]any {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the test's own emulator
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(s.URL + "/_sim/requests")
	if err != nil {
		t.Fatalf("sim requests: %v", err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("sim requests: %v", err)
	}
	return out
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }
