package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSim builds the real binary once per test run.
func buildSim(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "incode-sim")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running incode-sim.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *bytes.Buffer
	done   chan error
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "incode-sim listening on ")
		if !ok || !strings.HasPrefix(addr, "http://127.0.0.1:") {
			t.Fatalf("first line %q", line)
		}
		p.base = addr
	case <-time.After(15 * time.Second):
		t.Fatalf("no listening line; stderr: %s", p.stderr)
	}
	go func() {
		for line := range lines {
			t.Errorf("unexpected stdout line %q", line)
		}
	}()
	return p
}

func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after %v: %v; stderr: %s", sig, err, p.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after %v", sig)
	}
}

func call(t *testing.T, method, url string, h map[string]string, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestBinary(t *testing.T) {
	bin := buildSim(t)

	t.Run("help documents every flag", func(t *testing.T) {
		out, err := exec.Command(bin, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("--help: %v", err)
		}
		for _, f := range []string{"--listen ADDR", "--api-key KEY", "--device-token TOKEN", "--enroll DIR", "--script ITEMS", "--webhook-url URL",
			"--latency", "--bandwidth BPS", "--webhook-attempts", "--webhook-backoff", "--tls-cert FILE", "--tls-key FILE", "--log-level LEVEL",
			"--log-format FORMAT", "--max-image-side PIXELS", "--max-image-bytes BYTES", "--api-key-file FILE", "--device-token-file FILE",
			"hasFaceMask", "retry-after=N", "wrongshape", "noauthid", "/_sim/requests", "/_sim/script", "/_sim/reset"} {
			if !bytes.Contains(out, []byte(f)) {
				t.Errorf("--help does not mention %s", f)
			}
		}
	})

	t.Run("bad flags exit 2", func(t *testing.T) {
		for _, args := range [][]string{
			{"--device-token", "T"},
			{"--api-key", "K", "--device-token", "T", "--bandwidth", "fast"},
			{"--api-key", "K", "--device-token", "T", "--script", "pass,explode"},
			{"--api-key", "K", "--device-token", "T", "--enroll", "/nonexistent"},
			{"--api-key", "K", "--device-token", "T", "--no-such-flag"},
		} {
			cmd := exec.Command(bin, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || stderr.Len() == 0 {
				t.Errorf("%v: %v, stderr %q", args, err, stderr.String())
			}
		}
	})

	t.Run("serves the API and stops on SIGTERM", func(t *testing.T) {
		p := start(t, bin, "--listen", "127.0.0.1:0", "--api-key", "cmd-key", "--device-token", "cmd-token",
			"--enroll", filepath.Join("..", "..", "testdata", "enroll"), "--latency", "10ms", "--bandwidth", "100Mbit/s")
		face := func(file string) string {
			b, err := os.ReadFile(filepath.Join("..", "..", "testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(map[string]any{"face": map[string]string{"base64Image": base64.StdEncoding.EncodeToString(b)}, "source": "cmd-test"})
			return string(j)
		}
		h := func(over map[string]string) map[string]string {
			m := map[string]string{"api-version": "1.0", "x-api-key": "cmd-key", "X-Incode-Hardware-Id": "cmd-token", "Content-Type": "application/json"}
			for k, v := range over {
				m[k] = v
			}
			return m
		}
		auth := p.base + "/omni/incode-id/authenticate"
		for _, c := range []struct {
			name   string
			method string
			url    string
			h      map[string]string
			body   string
			status int
			want   string
		}{
			{"pass", "POST", auth, h(nil), face("astronaut.jpg"), 200, `"status":"PASS"`},
			{"fail", "POST", auth, h(nil), face("chelsea.jpg"), 200, `"failureReason":"faceMatchFailed"`},
			{"bad key", "POST", auth, h(map[string]string{"x-api-key": "nope"}), face("astronaut.jpg"), 403, `"status":403`},
			{"bad token", "POST", auth, h(map[string]string{"X-Incode-Hardware-Id": "nope"}), face("astronaut.jpg"), 401, `"status":401`},
			{"api-version", "POST", auth, h(map[string]string{"api-version": "0.9"}), face("astronaut.jpg"), 400, "api-version"},
			{"accept", "POST", auth, h(map[string]string{"Accept": "image/png"}), face("astronaut.jpg"), 406, `"status":406`},
			{"not json", "POST", auth, h(nil), "nope", 400, `"path":"/omni/incode-id/authenticate"`},
			{"unknown path", "GET", p.base + "/omni/incode-id/nothing", h(nil), "", 404, `"status":404`},
			{"wrong method", "DELETE", auth, h(nil), "", 405, `"status":405`},
		} {
			code, body := call(t, c.method, c.url, c.h, c.body)
			if code != c.status || !strings.Contains(string(body), c.want) {
				t.Errorf("%s: %d %s", c.name, code, body)
			}
		}
		code, body := call(t, "GET", p.base+"/_sim/requests", nil, "")
		if code != 200 || bytes.Contains(body, []byte("cmd-key")) || bytes.Contains(body, []byte("cmd-token")) || !bytes.Contains(body, []byte("REDACTED")) {
			t.Errorf("/_sim/requests: %d %.300s", code, body)
		}
		var recs []map[string]any
		if err := json.Unmarshal(body, &recs); err != nil || len(recs) != 9 {
			t.Errorf("%d records: %v", len(recs), err)
		}

		// A request held by a scripted hang does not stop shutdown.
		if code, body := call(t, "POST", p.base+"/_sim/script", nil, "hang"); code != 200 {
			t.Fatalf("/_sim/script: %d %s", code, body)
		}
		hung := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest("POST", auth, strings.NewReader(face("astronaut.jpg")))
			for k, v := range h(nil) {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			hung <- err
		}()
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			_, st := call(t, "GET", p.base+"/_sim/status", nil, "")
			if bytes.Contains(st, []byte(`"hanging":1`)) {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("the request never hung: %s", st)
			}
		}
		p.stop(t, syscall.SIGTERM)
		select {
		case err := <-hung:
			if err == nil {
				t.Error("the hanging request got an answer")
			}
		case <-time.After(5 * time.Second):
			t.Error("the hanging request was not released")
		}
		if !strings.Contains(p.stderr.String(), "stopping") {
			t.Errorf("stderr: %s", p.stderr)
		}
	})

	t.Run("stops on SIGINT", func(t *testing.T) {
		p := start(t, bin, "--listen", "127.0.0.1:0", "--api-key", "k", "--device-token", "d")
		p.stop(t, syscall.SIGINT)
	})
}
