package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/incodesim"
	"github.com/kioskd/kioskd/queue"
)

const (
	qAPIKey = "sk-QUEUECLI-api-key-5150"
	qToken  = "hw-QUEUECLI-device-token-8086"
)

type queueCLI struct {
	dir, cfgPath, qPath string
}

// newQueueCLI writes a configuration whose queue lives in a temporary
// directory; baseURL may be empty when nothing is delivered.
func newQueueCLI(t *testing.T, baseURL, extra string) queueCLI {
	t.Helper()
	if baseURL == "" {
		baseURL = "http://127.0.0.1:9"
	}
	dir := t.TempDir()
	c := queueCLI{dir: dir, cfgPath: filepath.Join(dir, "kioskd.yaml"), qPath: filepath.Join(dir, "state", "queue.db")}
	doc := fmt.Sprintf(`device:
  source_id: lobby-door-1
  state_dir: %s
incode:
  base_url: %s
  max_retries: 0
camera:
  source: /dev/video0
queue:
  path: %s
%slog:
  format: json
`, filepath.Dir(c.qPath), baseURL, c.qPath, extra)
	if err := os.WriteFile(c.cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c queueCLI) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args[:1:1], append([]string{"--config", c.cfgPath}, args[1:]...)...)
	code := runQueue(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func (c queueCLI) cfg(t *testing.T, encrypt bool) config.Queue {
	t.Helper()
	q := config.Default().Queue
	q.Path = c.qPath
	q.Encrypt = false
	if encrypt {
		q.Encrypt, q.Key = true, strings.Repeat("ab", 32)
	}
	return q
}

func (c queueCLI) seed(t *testing.T, cfg config.Queue, photos []string, dead int) []queue.Item {
	t.Helper()
	q, err := queue.Open(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var out []queue.Item
	for _, p := range photos {
		img, err := os.ReadFile(filepath.Join("..", "..", "testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		it, err := q.Enqueue(context.Background(), queue.Item{JPEG: img, Source: "lobby-door-1"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, it)
	}
	for _, it := range out[:dead] {
		if err := q.DeadLetter(it.Seq, "bad_request: 400"); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestQueueCommandStatsListRetryPurge(t *testing.T) {
	// No secret anywhere: these commands must not need one.
	t.Setenv("KIOSKD_API_KEY", "")
	t.Setenv("KIOSKD_HARDWARE_ID", "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	c := newQueueCLI(t, "", "")
	items := c.seed(t, c.cfg(t, false), []string{"chelsea.jpg", "coffee.jpg", "brick.jpg"}, 1)

	code, out, errOut := c.run(t, "stats", "--json")
	if code != 0 {
		t.Fatalf("stats: exit %d: %s", code, errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("stats --json: %v: %s", err, out)
	}
	for _, k := range []string{"depth", "bytes", "oldest_age_seconds", "dead_letters"} {
		if _, ok := st[k]; !ok {
			t.Errorf("stats --json lacks %q: %s", k, out)
		}
	}
	if st["depth"] != 2.0 || st["dead_letters"] != 1.0 || st["bytes"].(float64) < 100000 {
		t.Errorf("stats %s", out)
	}
	if code, out, _ := c.run(t, "stats"); code != 0 || !strings.Contains(out, "depth") || !strings.Contains(out, "dead_letters") {
		t.Errorf("stats text: %d %s", code, out)
	}

	code, out, _ = c.run(t, "list", "--json")
	var list []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatalf("list --json: %d %s", code, out)
	}
	if list[0]["seq"] != float64(items[1].Seq) || list[0]["id"] != items[1].ID || list[0]["size"] == 0.0 {
		t.Errorf("list entry %v", list[0])
	}
	noImages(t, out)
	code, out, _ = c.run(t, "list")
	if code != 0 || !strings.Contains(out, items[2].ID) {
		t.Errorf("list text: %d %s", code, out)
	}
	noImages(t, out)
	code, out, _ = c.run(t, "list", "--dead", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0]["last_error"] != "bad_request: 400" {
		t.Fatalf("list --dead: %d %s", code, out)
	}

	if code, out, _ := c.run(t, "retry", "--json"); code != 0 || strings.TrimSpace(out) != "{\n  \"moved\": 1\n}" {
		t.Errorf("retry: %d %q", code, out)
	}
	if code, out, _ := c.run(t, "purge", "--dead"); code != 0 || !strings.HasPrefix(out, "0 dead letters") {
		t.Errorf("purge --dead: %d %q", code, out)
	}
	if code, out, _ := c.run(t, "purge", "--json"); code != 0 || !strings.Contains(out, `"deleted": 3`) {
		t.Errorf("purge: %d %q", code, out)
	}
	if _, out, _ := c.run(t, "stats", "--json"); !strings.Contains(out, `"depth": 0`) {
		t.Errorf("after purge: %s", out)
	}
}

func noImages(t *testing.T, out string) {
	t.Helper()
	// A JPEG starts FF D8 FF: "/9j/" in base64.
	if strings.Contains(out, "/9j/") || strings.Contains(out, "\xff\xd8\xff") || strings.Contains(strings.ToLower(out), "jpeg") {
		t.Fatalf("image data in the output: %.200s", out)
	}
}

func TestQueueCommandEncryptedWithoutKey(t *testing.T) {
	t.Setenv("KIOSKD_QUEUE_KEY", "")
	c := newQueueCLI(t, "", "  encrypt: true\n")
	c.seed(t, c.cfg(t, true), []string{"chelsea.jpg"}, 0)
	code, out, errOut := c.run(t, "stats", "--json")
	if code != 0 || !strings.Contains(out, `"depth": 1`) || !strings.Contains(out, `"encrypted": true`) {
		t.Fatalf("stats of an encrypted queue without its key: %d %s %s", code, out, errOut)
	}
}

func TestQueueCommandWhileKioskdRuns(t *testing.T) {
	c := newQueueCLI(t, "", "")
	q, err := queue.Open(c.cfg(t, false), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	code, _, errOut := c.run(t, "stats")
	if code != 1 || !strings.Contains(errOut, "is in use by another process") || !strings.Contains(errOut, "stop the service") {
		t.Fatalf("stats on a held file: exit %d, %q", code, errOut)
	}
}

func TestQueueCommandUsage(t *testing.T) {
	c := newQueueCLI(t, "", "")
	for _, args := range [][]string{{}, {"--json"}, {"frobnicate"}} {
		var stdout, stderr bytes.Buffer
		if code := runQueue(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage: kioskd queue") {
			t.Errorf("%q: exit %d, %q", args, code, stderr.String())
		}
	}
	if code, _, errOut := c.run(t, "stats", "extra"); code != 2 || !strings.Contains(errOut, "unexpected") {
		t.Errorf("stray argument: %d %q", code, errOut)
	}
	// drain needs the secrets the service needs.
	t.Setenv("KIOSKD_API_KEY", "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	if code, _, errOut := c.run(t, "drain"); code != 2 || !strings.Contains(errOut, "incode.api_key_file") {
		t.Errorf("drain without secrets: %d %q", code, errOut)
	}
}

// simServer runs the emulator, recording each request's idempotency key.
func simServer(t *testing.T, script ...string) (*httptest.Server, func() []string) {
	t.Helper()
	sim, err := incodesim.New(incodesim.Options{APIKey: qAPIKey, DeviceToken: qToken,
		EnrollDir: filepath.Join("..", "..", "testdata", "enroll"), Script: script}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
	})
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), keys...)
	}
}

func TestQueueCommandDrain(t *testing.T) {
	srv, keys := simServer(t)
	t.Setenv("KIOSKD_API_KEY", qAPIKey)
	t.Setenv("KIOSKD_HARDWARE_ID", qToken)
	c := newQueueCLI(t, srv.URL, "")
	items := c.seed(t, c.cfg(t, false), []string{"astronaut.jpg", "chelsea.jpg"}, 0)

	code, out, errOut := c.run(t, "drain", "--json")
	if code != 0 {
		t.Fatalf("drain: exit %d\n%s\n%s", code, out, errOut)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil || sum["delivered"] != 2.0 || sum["remaining"] != 0.0 {
		t.Fatalf("summary %s", out)
	}
	if got := keys(); len(got) != 2 || got[0] != items[0].ID || got[1] != items[1].ID {
		t.Errorf("idempotency keys %q, want the items' IDs", got)
	}
	decisions := decisionLines(t, errOut)
	if len(decisions) != 2 {
		t.Fatalf("%d decision lines:\n%s", len(decisions), errOut)
	}
	for i, want := range []string{"PASS", "FAIL"} {
		d := decisions[i]
		if d["result"] != want || d["deferred"] != true || d["source"] != "lobby-door-1" || d["latency_ms"] == nil {
			t.Errorf("decision %d: %v", i, d)
		}
	}
	if decisions[0]["authentication_id"] == nil || decisions[0]["authentication_id"] == "" {
		t.Errorf("PASS without authentication_id: %v", decisions[0])
	}
	for _, secret := range []string{qAPIKey, qToken, "/9j/"} {
		if strings.Contains(errOut+out, secret) {
			t.Errorf("output contains %q", secret)
		}
	}
	if _, out, _ := c.run(t, "stats", "--json"); !strings.Contains(out, `"depth": 0`) {
		t.Errorf("queue not empty after drain: %s", out)
	}
}

func TestQueueCommandDrainStopsWhenTheServiceFails(t *testing.T) {
	srv, _ := simServer(t, "pass", "http:503")
	t.Setenv("KIOSKD_API_KEY", qAPIKey)
	t.Setenv("KIOSKD_HARDWARE_ID", qToken)
	c := newQueueCLI(t, srv.URL, "")
	c.seed(t, c.cfg(t, false), []string{"astronaut.jpg", "chelsea.jpg", "coffee.jpg"}, 0)

	code, out, errOut := c.run(t, "drain")
	if code != 1 || !strings.Contains(out, "delivered 1, dead-lettered 0, remaining 2") || !strings.Contains(out, "server_error") {
		t.Fatalf("drain: exit %d\n%s\n%s", code, out, errOut)
	}
	_, out, _ = c.run(t, "list", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || list[0]["attempts"] != 1.0 {
		t.Fatalf("pending after the failure: %s", out)
	}
}

func decisionLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "decision" {
			out = append(out, m)
		}
	}
	return out
}

// TestQueueCommandsCreateNothing: before the service ever ran there is no
// queue file; every command says so and creates neither the file nor its
// directory (as root, either would be unusable by the service user).
func TestQueueCommandsCreateNothing(t *testing.T) {
	t.Setenv("KIOSKD_API_KEY", qAPIKey)
	t.Setenv("KIOSKD_HARDWARE_ID", qToken)
	c := newQueueCLI(t, "", "")
	for _, args := range [][]string{{"stats", "--json"}, {"list"}, {"retry"}, {"purge"}, {"purge", "--dead"}, {"drain"}} {
		code, out, errOut := c.run(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s%s", args, code, out, errOut)
		}
		if args[0] == "stats" && !strings.Contains(out, `"depth": 0`) {
			t.Errorf("stats of no file: %s", out)
		}
	}
	if _, err := os.Lstat(filepath.Dir(c.qPath)); !os.IsNotExist(err) {
		t.Fatalf("a queue command created %s: %v", filepath.Dir(c.qPath), err)
	}
}
