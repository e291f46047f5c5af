package actuator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/config"
)

// script writes an executable shell script into a fresh directory.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the hook did not record its environment: %v", err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = v
	}
	return env
}

func TestExecDriverEnvironment(t *testing.T) {
	t.Setenv("KIOSKD_API_KEY", "sk-must-not-leak")
	out := filepath.Join(t.TempDir(), "env.txt")
	hook := script(t, `env > "$1"`+"\n")
	reg := prometheus.NewRegistry()
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{
		{Name: "hook", Role: "unlock", Driver: "exec", Command: []string{hook, out}, Pulse: 3 * time.Second},
	}}, discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ev := actuator.Event{Result: "PASS", Source: "lobby-door-1", AuthenticationID: "auth-42"}
	if err := b.Pass(context.Background(), ev); err != nil {
		t.Fatalf("Pass: %v", err)
	}
	env := readEnv(t, out)
	want := map[string]string{
		"RESULT": "PASS", "REASON": "", "SOURCE": "lobby-door-1", "AUTHENTICATION_ID": "auth-42",
		"ROLE": "unlock", "OUTPUT": "hook", "STATE": "on", "PULSE_MS": "3000",
	}
	for k, v := range want {
		got, ok := env[k]
		if !ok || got != v {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := env["KIOSKD_API_KEY"]; ok {
		t.Errorf("the hook inherited KIOSKD_API_KEY")
	}
	if v := metric(t, reg, "kioskd_actuator_unlocks_total"); v != 1 {
		t.Errorf("unlocks_total = %v, want 1", v)
	}

	// FAIL reaches fail outputs only; an unlock hook hears nothing.
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	if err := b.Fail(context.Background(), actuator.Event{Result: "FAIL", Reason: "hasFaceMask"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Fail ran the unlock hook")
	}
}

func TestExecDriverFailOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env.txt")
	hook := script(t, `env > "$1"`+"\n")
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{
		{Name: "red", Role: "fail", Driver: "exec", Command: []string{hook, out}},
	}}, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Fail(context.Background(), actuator.Event{Result: "FAIL", Reason: "hasFaceMask", Source: "s"}); err != nil {
		t.Fatal(err)
	}
	env := readEnv(t, out)
	if env["RESULT"] != "FAIL" || env["REASON"] != "hasFaceMask" || env["ROLE"] != "fail" {
		t.Errorf("fail hook env = %v", env)
	}
}

func TestExecFailureRelocksDoor(t *testing.T) {
	hook := script(t, "echo 'controller offline' >&2\nexit 3\n")
	p := newPin("door", gpio.Low)
	reg := prometheus.NewRegistry()
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{
		gpioOut("door", "unlock", 3*time.Second),
		{Name: "hook", Role: "unlock", Driver: "exec", Command: []string{hook}, Pulse: 3 * time.Second},
	}}, discard(), reg, actuator.WithPin("door", p), actuator.WithClock(newClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Pass(context.Background(), pass)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "controller offline") {
		t.Fatalf("Pass = %v, want the hook's exit status and message", err)
	}
	if p.Read() != gpio.Low {
		t.Errorf("gpio strike left unlocked after the unlock hook failed")
	}
	if h := p.history(); len(h) != 3 || h[1] != gpio.High || h[2] != gpio.Low {
		t.Errorf("door writes = %v, want locked, unlocked, relocked", h)
	}
	if v := metric(t, reg, "kioskd_actuator_errors_total", "driver", "exec"); v != 1 {
		t.Errorf("errors_total{exec} = %v, want 1", v)
	}
	if v := metric(t, reg, "kioskd_actuator_unlocks_total"); v != 0 {
		t.Errorf("unlocks_total = %v, want 0", v)
	}
}

func TestExecTimeoutKillsTheHook(t *testing.T) {
	// The child keeps the output pipe open: without killing the process
	// group, Run would wait for it.
	hook := script(t, "sleep 30 &\nwait\n")
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{
		{Name: "hook", Role: "pass", Driver: "exec", Command: []string{hook}, Timeout: 100 * time.Millisecond},
	}}, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	err = b.Pass(context.Background(), pass)
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("Pass = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("Pass took %s with a 100ms hook timeout", d)
	}
}

type controller struct {
	mu     sync.Mutex
	codes  []int // answered in order; the last one repeats
	bodies []map[string]any
	got    chan map[string]any
}

func (c *controller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	data, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(data, &body)
	c.mu.Lock()
	c.bodies = append(c.bodies, body)
	code := c.codes[min(len(c.bodies), len(c.codes))-1]
	c.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		code = http.StatusBadRequest
	}
	w.WriteHeader(code)
	if c.got != nil {
		c.got <- body
	}
}

func (c *controller) requests() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.bodies...)
}

func httpOut(url string, retries int) config.Output {
	return config.Output{Name: "ctl", Role: "unlock", Driver: "http", URL: url, Pulse: 3 * time.Second,
		Retries: &retries, Timeout: 2 * time.Second}
}

func TestHTTPDriverRetriesThenSucceeds(t *testing.T) {
	ctl := &controller{codes: []int{503, 502, 204}}
	srv := httptest.NewServer(ctl)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{httpOut(srv.URL+"/door/1", 2)}}, discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Pass(context.Background(), pass); err != nil {
		t.Fatalf("Pass: %v", err)
	}
	reqs := ctl.requests()
	if len(reqs) != 3 {
		t.Fatalf("controller got %d requests, want 3 (two failures, one success)", len(reqs))
	}
	last := reqs[2]
	for k, v := range map[string]any{"output": "ctl", "role": "unlock", "state": "on", "result": "PASS",
		"source": "lobby-door-1", "authentication_id": "auth-1", "pulse_ms": 3000.0} {
		if last[k] != v {
			t.Errorf("event %s = %v, want %v", k, last[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, last["time"].(string)); err != nil {
		t.Errorf("event time %v: %v", last["time"], err)
	}
	if v := metric(t, reg, "kioskd_actuator_unlocks_total"); v != 1 {
		t.Errorf("unlocks_total = %v, want 1", v)
	}
	if v := metric(t, reg, "kioskd_actuator_errors_total", "driver", "http"); v != 0 {
		t.Errorf("errors_total{http} = %v after an eventual success, want 0", v)
	}
}

func TestHTTPDriverGivesUp(t *testing.T) {
	ctl := &controller{codes: []int{503}}
	srv := httptest.NewServer(ctl)
	defer srv.Close()
	reg := prometheus.NewRegistry()
	// Credentials in the URL must not reach the error.
	url := strings.Replace(srv.URL, "http://", "http://admin:hunter2@", 1) + "/door?token=s3cret"
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{httpOut(url, 1)}}, discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Pass(context.Background(), pass)
	if err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("Pass = %v, want status 503", err)
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error leaks URL credentials: %v", err)
	}
	if n := len(ctl.requests()); n != 2 {
		t.Errorf("controller got %d requests, want 2 (retries: 1)", n)
	}
	if v := metric(t, reg, "kioskd_actuator_errors_total", "driver", "http"); v != 1 {
		t.Errorf("errors_total{http} = %v, want 1", v)
	}
	if v := metric(t, reg, "kioskd_actuator_door_unlocked"); v != 0 {
		t.Errorf("door_unlocked = %v after the controller refused, want 0", v)
	}
}

func TestHTTPDriverDoesNotRetryClientErrors(t *testing.T) {
	ctl := &controller{codes: []int{404}}
	srv := httptest.NewServer(ctl)
	defer srv.Close()
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{httpOut(srv.URL, 3)}}, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Pass(context.Background(), pass); err == nil || !strings.Contains(err.Error(), "status 404") {
		t.Fatalf("Pass = %v, want status 404", err)
	}
	if n := len(ctl.requests()); n != 1 {
		t.Errorf("a 404 was retried: %d requests", n)
	}
}

func TestHTTPBusyEdgesInOrder(t *testing.T) {
	ctl := &controller{codes: []int{200}, got: make(chan map[string]any, 4)}
	srv := httptest.NewServer(ctl)
	defer srv.Close()
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{
		{Name: "amber", Role: "busy", Driver: "http", URL: srv.URL},
	}}, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, on := range []bool{true, false} {
		b.Busy(on)
		want := map[bool]string{true: "on", false: "off"}[on]
		select {
		case body := <-ctl.got:
			if body["state"] != want || body["role"] != "busy" {
				t.Fatalf("busy event = %v, want state %q", body, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no busy %s event within 5s", want)
		}
	}
}

func TestExecTimeoutIsBoundedByContext(t *testing.T) {
	hook := script(t, "exec sleep 30\n")
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{
		{Name: "hook", Role: "pass", Driver: "exec", Command: []string{hook}, Timeout: 30 * time.Second},
	}}, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Pass(ctx, pass); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pass = %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("Pass outlived the caller's 100ms deadline: %s", d)
	}
}
