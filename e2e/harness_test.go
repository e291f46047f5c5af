package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Secrets used by every end-to-end run; tests grep output for them.
const (
	apiKey      = "e2e-api-key-5f1c9a"
	deviceToken = "e2e-device-token-77b2"
)

var (
	binDir   string
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "kioskd-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	for _, c := range []string{"kioskd", "incode-sim"} {
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version=e2e", "-o", filepath.Join(dir, c), "./cmd/"+c)
		cmd.Dir = repoRoot
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", c, err)
			return 1
		}
	}
	return m.Run()
}

// outDir is where tests leave artefacts (screenshots, logs) for people.
func outDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("KIOSKD_TEST_OUT")
	if base == "" {
		return t.TempDir()
	}
	d := filepath.Join(base, t.Name())
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// proc is a running child process whose output is captured.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
	exitMu sync.Mutex
	err    error
}

func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	return startArgv(t, env, append([]string{filepath.Join(binDir, name)}, args...)...)
}

// Output is everything the process printed so far.
func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLine waits for a printed line matching re and returns the first one.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(p.Output(), "\n") {
			if re.MatchString(l) {
				return l
			}
		}
		select {
		case <-p.done:
			for _, l := range strings.Split(p.Output(), "\n") {
				if re.MatchString(l) {
					return l
				}
			}
			t.Fatalf("process exited before a line matching %q", re)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line matching %q within %s", re, timeout)
		}
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s", timeout)
	}
	p.exitMu.Lock()
	defer p.exitMu.Unlock()
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatalf("signal %v: %v", s, err)
	}
}

// sim is a running incode-sim.
type sim struct {
	*proc
	URL string
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

func startSim(t *testing.T, args ...string) *sim {
	t.Helper()
	all := append([]string{"--listen", "127.0.0.1:0", "--api-key", apiKey, "--device-token", deviceToken, "--enroll", "testdata/enroll"}, args...)
	p := start(t, nil, "incode-sim", all...)
	line := p.waitLine(t, listenRE, 20*time.Second)
	return &sim{proc: p, URL: listenRE.FindStringSubmatch(line)[1]}
}

// requests returns what the emulator received.
func (s *sim) requests(t *testing.T) []map[string]any {
	t.Helper()
	resp, err := http.Get(s.URL + "/_sim/requests")
	if err != nil {
		t.Fatalf("sim requests: %v", err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		var wrapped struct {
			Requests []map[string]any `json:"requests"`
		}
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil {
			t.Fatalf("sim requests: %v: %s", err, body)
		}
		out = wrapped.Requests
	}
	return out
}

func (s *sim) script(t *testing.T, items string) {
	t.Helper()
	resp, err := http.Post(s.URL+"/_sim/script", "text/plain", strings.NewReader(items))
	if err != nil {
		t.Fatalf("sim script: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("sim script: %s", resp.Status)
	}
}

// kioskdConfig writes a configuration for a run on the given clip.
type runOpts struct {
	BaseURL   string
	Clip      string
	State     string
	Mode      string
	Loop      bool
	Realtime  bool
	Extra     string // appended verbatim (top-level YAML sections)
	LogLevel  string
	Capture   string // extra lines under capture:
	Camera    string // extra lines under camera:
	Incode    string // extra lines under incode:
	Actuators string // the actuator outputs list; default: log outputs
	Display   string // display listen address
	Queue     string // lines under queue: after path; default backoff 200ms..1s
	DisplayX  string // extra lines under display:
}

func writeConfig(t *testing.T, o runOpts) string {
	t.Helper()
	if o.State == "" {
		o.State = t.TempDir()
	}
	if o.Clip == "" {
		o.Clip = "testdata/clips/demo.avi"
	}
	if o.Mode == "" {
		o.Mode = "door"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Actuators == "" {
		o.Actuators = `    - {name: door, role: unlock, driver: log, pulse: 3s}
    - {name: green, role: pass, driver: log, pulse: 1s}
    - {name: red, role: fail, driver: log, pulse: 1s}`
	}
	if o.Queue == "" {
		o.Queue = "  backoff_min: 200ms\n  backoff_max: 1s"
	}
	if o.Display == "" {
		o.Display = "127.0.0.1:0"
	}
	cfg := fmt.Sprintf(`device:
  source_id: e2e-door
  mode: %s
  state_dir: %s
incode:
  base_url: %s
  live_timeout: 4s
%s
camera:
  source: %s
  fps: 15
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
  path: %s/queue.db
%s
actuator:
  outputs:
%s
display:
  listen: %s
%s
metrics:
  listen: 127.0.0.1:0
log:
  level: %s
  format: json
%s`, o.Mode, o.State, o.BaseURL, o.Incode, o.Clip, o.Loop, o.Realtime, o.Camera, o.Capture, o.State, o.Queue, o.Actuators, o.Display, o.DisplayX, o.LogLevel, o.Extra)
	path := filepath.Join(o.State, "kioskd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func kioskdEnv() []string {
	return []string{"KIOSKD_API_KEY=" + apiKey, "KIOSKD_HARDWARE_ID=" + deviceToken}
}

func startKioskd(t *testing.T, cfgPath string, env ...string) *proc {
	t.Helper()
	return start(t, append(kioskdEnv(), env...), "kioskd", "run", "--config", cfgPath)
}

// logLines parses the JSON log lines a process printed.
func logLines(out string) []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

func decisions(out string) []map[string]any {
	var ds []map[string]any
	for _, l := range logLines(out) {
		if l["msg"] == "decision" {
			ds = append(ds, l)
		}
	}
	return ds
}

// listenAddr finds the address a kioskd server logged for name.
func listenAddr(t *testing.T, p *proc, name string) string {
	t.Helper()
	re := regexp.MustCompile(`"msg":"listening".*"server":"` + name + `"`)
	l := p.waitLine(t, re, 20*time.Second)
	var m map[string]any
	if err := json.Unmarshal([]byte(l), &m); err != nil {
		t.Fatal(err)
	}
	return m["addr"].(string)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// screenView is one state the kiosk page was sent over /events.
type screenView struct {
	State string `json:"state"`
	Tone  string `json:"tone"`
	Text  string `json:"text"`
}

// screen follows the display's Server-Sent Events, as the kiosk page does,
// and keeps every state it was sent.
type screen struct {
	mu    sync.Mutex
	views []screenView
	done  chan struct{}
}

func watchScreen(t *testing.T, addr string) *screen {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("display events: %v", err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		cancel()
		t.Fatalf("display events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	s := &screen{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var v screenView
			if json.Unmarshal([]byte(data), &v) == nil {
				s.mu.Lock()
				s.views = append(s.views, v)
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// seen returns the states received so far.
func (s *screen) seen() []screenView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]screenView(nil), s.views...)
}

// waitState waits until the page was sent state and returns that view.
func (s *screen) waitState(t *testing.T, state string, timeout time.Duration) screenView {
	t.Helper()
	var got screenView
	eventually(t, timeout, "the screen to show "+state, func() bool {
		for _, v := range s.seen() {
			if v.State == state {
				got = v
				return true
			}
		}
		return false
	})
	return got
}

// kioskdCmd runs a short kioskd command (queue stats, check-config …) and
// returns its stdout, stderr and exit code.
func kioskdCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kioskd"), args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), kioskdEnv()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("kioskd %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// queueStats runs `kioskd queue stats --json` on a stopped kioskd's queue.
func queueStats(t *testing.T, cfgPath string) map[string]any {
	t.Helper()
	out, errOut, code := kioskdCmd(t, "queue", "stats", "--json", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("kioskd queue stats exited %d: %s%s", code, out, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("kioskd queue stats --json: %v: %s", err, out)
	}
	return m
}
