package main

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Credentials of the local emulator; not secrets.
const (
	benchAPIKey = "bench-api-key"
	benchToken  = "bench-device-token"
)

// pinned prefixes a command with taskset when the machine has the cores:
// kioskd gets core 0, the emulator core 1. The bench machine is shared, so
// both also run at a higher priority (nice -10, when allowed): "one core
// for the pipeline" means the other work on that core waits for it, as it
// would on a kiosk that runs nothing else, and the service's own time is
// what the emulator measures, not its wait for a shared core. CPU shares
// are CPU time either way.
func pinned(core int, name string, args ...string) *exec.Cmd {
	if _, err := exec.LookPath("taskset"); err != nil {
		return exec.Command(name, args...)
	}
	cmd := append([]string{"-c", strconv.Itoa(core), name}, args...)
	if os.Geteuid() == 0 {
		return exec.Command("nice", append([]string{"-n", "-10", "taskset"}, cmd...)...)
	}
	return exec.Command("taskset", cmd...)
}

// sim is a running bin/incode-sim.
type sim struct {
	cmd *exec.Cmd
	url string
}

type simOpts struct {
	latency   time.Duration
	bandwidth string
}

func startSim(root, dir string, o simOpts) (*sim, error) {
	args := []string{"--listen", "127.0.0.1:0", "--api-key", benchAPIKey, "--device-token", benchToken,
		"--enroll", filepath.Join(root, "testdata", "enroll"), "--log-level", "warn"}
	if o.latency > 0 {
		args = append(args, "--latency", o.latency.String())
	}
	if o.bandwidth != "" {
		args = append(args, "--bandwidth", o.bandwidth)
	}
	cmd := pinned(1, filepath.Join(root, "bin", "incode-sim"), args...)
	logf, err := os.Create(filepath.Join(dir, "sim.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start incode-sim: %w", err)
	}
	s := &sim{cmd: cmd}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case line <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-line:
		_, u, ok := strings.Cut(l, "listening on ")
		if !ok {
			s.stop()
			return nil, fmt.Errorf("incode-sim said %q", l)
		}
		s.url = strings.TrimSpace(u)
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, errors.New("incode-sim did not start within 10s")
	}
	return s, nil
}

func (s *sim) stop() {
	stopProcess(s.cmd, 5*time.Second)
}

// stopProcess sends SIGTERM, then SIGKILL after grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

type simRecord struct {
	Endpoint         string `json:"endpoint"`
	Outcome          string `json:"outcome"`
	Status           int    `json:"status"`
	AuthenticationID string `json:"authenticationId"`
	IdempotencyKey   string `json:"idempotencyKey"`
	BodyBytes        int64  `json:"bodyBytes"`
	DurationMs       int64  `json:"durationMs"`
	Image            *struct {
		Bytes  int `json:"bytes"`
		Width  int `json:"width"`
		Height int `json:"height"`
	} `json:"image"`
}

func (s *sim) requests() ([]simRecord, error) {
	resp, err := http.Get(s.url + "/_sim/requests")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var recs []simRecord
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		return nil, fmt.Errorf("/_sim/requests: %w", err)
	}
	return recs, nil
}

func (s *sim) script(items string) error {
	resp, err := http.Post(s.url+"/_sim/script", "text/plain", strings.NewReader(items))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_sim/script: status %d", resp.StatusCode)
	}
	return nil
}

// kioskdConf is what differs between runs.
type kioskdConf struct {
	clip        string
	simURL      string
	fps         int
	loop        bool
	maxFailures string // YAML value; "" keeps the default
	extra       string // more capture: lines, indented
}

const kioskdYAML = `device:
  source_id: bench-door
  state_dir: {{DIR}}/state
incode:
  base_url: {{URL}}
  live_timeout: 4s
camera:
  source: {{CLIP}}
  fps: {{FPS}}
  loop: {{LOOP}}
  realtime: true
capture:
{{CAPTURE}}queue:
  path: {{DIR}}/state/queue.db
actuator:
  outputs:
    - {name: door, role: unlock, driver: log, pulse: 1s}
    - {name: green, role: pass, driver: log, pulse: 1s}
    - {name: red, role: fail, driver: log, pulse: 1s}
display:
  listen: 127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
log:
  level: info
  format: json
`

func (c kioskdConf) yaml(dir string) string {
	capture := ""
	if c.maxFailures != "" {
		capture += "  max_failures: " + c.maxFailures + "\n"
	}
	capture += c.extra
	if capture == "" {
		capture = "  window: 400ms\n"
	}
	r := strings.NewReplacer("{{DIR}}", dir, "{{URL}}", c.simURL, "{{CLIP}}", c.clip,
		"{{FPS}}", strconv.Itoa(c.fps), "{{LOOP}}", strconv.FormatBool(c.loop), "{{CAPTURE}}", capture)
	return r.Replace(kioskdYAML)
}

// decision is one "msg":"decision" log line of a live attempt.
type decision struct {
	Time       time.Time `json:"time"`
	Result     string    `json:"result"`
	Reason     string    `json:"reason"`
	Deferred   bool      `json:"deferred"`
	LatencyMs  float64   `json:"latency_ms"`
	PresenceMs float64   `json:"presence_ms"`
	WindowMs   float64   `json:"window_ms"`
	SelectMs   float64   `json:"select_ms"`
	EncodeMs   float64   `json:"encode_ms"`
	UploadMs   float64   `json:"upload_ms"`
	ActuatorMs float64   `json:"actuator_ms"`
	AuthID     string    `json:"authentication_id"`
}

// kioskd is a running bin/kioskd whose log is parsed as it is written.
type kioskd struct {
	cmd     *exec.Cmd
	pid     int
	dir     string
	metrics string // http://addr

	mu        sync.Mutex
	decisions []decision
	deferred  int
	metricsC  chan string
	done      chan struct{}
}

func startKioskd(root, dir string, c kioskdConf) (*kioskd, error) {
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "kioskd.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.yaml(dir)), 0o600); err != nil {
		return nil, err
	}
	cmd := pinned(0, filepath.Join(root, "bin", "kioskd"), "run", "--config", cfgPath)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KIOSKD_API_KEY="+benchAPIKey, "KIOSKD_HARDWARE_ID="+benchToken)
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "kioskd.log"))
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start kioskd: %w", err)
	}
	k := &kioskd{cmd: cmd, pid: cmd.Process.Pid, dir: dir, metricsC: make(chan string, 1), done: make(chan struct{})}
	go k.readLog(errPipe, logf)
	select {
	case addr := <-k.metricsC:
		k.metrics = "http://" + addr
	case <-k.done:
		stopProcess(cmd, time.Second)
		return nil, fmt.Errorf("kioskd exited at start; see %s", filepath.Join(dir, "kioskd.log"))
	case <-time.After(15 * time.Second):
		stopProcess(cmd, time.Second)
		return nil, fmt.Errorf("kioskd did not start its metrics server within 15s; see %s", filepath.Join(dir, "kioskd.log"))
	}
	return k, nil
}

func (k *kioskd) readLog(r io.Reader, logf *os.File) {
	defer close(k.done)
	defer logf.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		logf.Write(line)
		logf.Write([]byte{'\n'})
		if bytes.Contains(line, []byte(`"msg":"decision"`)) {
			var d decision
			if json.Unmarshal(line, &d) == nil {
				k.mu.Lock()
				if d.Deferred {
					k.deferred++
				} else {
					k.decisions = append(k.decisions, d)
				}
				k.mu.Unlock()
			}
			continue
		}
		if bytes.Contains(line, []byte(`"msg":"listening"`)) && bytes.Contains(line, []byte(`"server":"metrics"`)) {
			var l struct{ Addr string }
			if json.Unmarshal(line, &l) == nil {
				select {
				case k.metricsC <- l.Addr:
				default:
				}
			}
		}
	}
}

func (k *kioskd) decided() []decision {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]decision(nil), k.decisions...)
}

func (k *kioskd) deferredCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.deferred
}

// waitDecisions waits for n live decisions, or the timeout.
func (k *kioskd) waitDecisions(ctx context.Context, n int, timeout time.Duration) []decision {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if d := k.decided(); len(d) >= n {
			return d[:n]
		}
		select {
		case <-k.done:
			return k.decided()
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return k.decided()
}

func (k *kioskd) stop() {
	stopProcess(k.cmd, 12*time.Second)
	<-k.done
}

// scrape reads the Prometheus text exposition into name{labels} -> value.
func (k *kioskd) scrape() (map[string]float64, error) {
	resp, err := http.Get(k.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: status %d", k.metrics, resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// procSample is what /proc says about a process at one moment.
type procSample struct {
	at     time.Time
	cpu    time.Duration // user + system
	rssKB  int64
	hwmKB  int64
	thread int64
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which may hold spaces, in parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return s, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return s, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of stat
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpu = time.Duration(ut+st) * time.Second / clockTick
	status := fmt.Sprintf("/proc/%d/status", pid)
	s.rssKB = procField(status, "VmRSS:")
	s.hwmKB = procField(status, "VmHWM:")
	s.thread = procField(status, "Threads:")
	return s, nil
}

// cpuShare is the share of one core used between two samples, in percent.
func cpuShare(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.cpu-a.cpu) / float64(wall)
}
