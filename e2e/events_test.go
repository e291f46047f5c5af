package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// exportEvents runs `kioskd events export` and returns the events by
// capture id, failing on a duplicate event id.
func exportEvents(t *testing.T, cfg string) (byCapture map[string][]map[string]any, all []map[string]any) {
	t.Helper()
	out, errOut, code := kioskdCmd(t, "events", "export", "--config", cfg)
	if code != 0 {
		t.Fatalf("kioskd events export exited %d: %s", code, errOut)
	}
	byCapture = map[string][]map[string]any{}
	ids := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		id := str(e, "id")
		if id == "" || ids[id] {
			t.Fatalf("event id %q missing or repeated", id)
		}
		ids[id] = true
		all = append(all, e)
		if c := str(e, "captureId"); c != "" {
			byCapture[c] = append(byCapture[c], e)
		}
	}
	return byCapture, all
}

// checkDecisionEvents: every decision line has its access event, with the
// same result, reason, authentication id and deferred flag.
func checkDecisionEvents(t *testing.T, out string, byCapture map[string][]map[string]any) int {
	t.Helper()
	n := 0
	for _, d := range decisions(out) {
		c := str(d, "capture_id")
		if c == "" {
			t.Fatalf("decision line without capture_id: %v", d)
		}
		deferred, _ := d["deferred"].(bool)
		found := false
		for _, e := range byCapture[c] {
			ed, _ := e["deferred"].(bool)
			if ed != deferred || str(e, "kind") != "decision" {
				continue
			}
			found = true
			if str(e, "result") != str(d, "result") || str(e, "reason") != str(d, "reason") ||
				str(e, "authenticationId") != str(d, "authentication_id") || str(e, "door") != "e2e-door" {
				t.Errorf("event %v does not match decision %v", e, d)
			}
		}
		if !found {
			t.Fatalf("decision %v (capture %s) has no access event", d, c)
		}
		n++
	}
	return n
}

// TestEventsOnLiveDaemonAndAfterSIGKILL reads the access-event log with
// the CLI while kioskd runs, then SIGKILLs kioskd right after a decision
// line: every decision that was logged has its event, none twice.
func TestEventsOnLiveDaemonAndAfterSIGKILL(t *testing.T) {
	t.Parallel()
	ob := observe(t, "process", "SIGKILL right after a decision: the access-event log",
		"kioskd decides about once a second (PASS and FAIL) and sends its events to an HTTP sink; `kioskd events export` and `list` run while it does; then kill -9 the moment a decision line appears, and restart it",
		"the CLI reads the log while kioskd runs; after the kill every decision line has its access event (same result, reason, authentication id), no event id twice; after the restart the sink has every event")
	s := startSim(t, "--script", "pass,fail:faceMatchFailed,pass,fail:spoofAttempt,pass,pass,fail:faceMatchFailed,pass,pass,pass,pass,pass,pass,pass")
	state := t.TempDir()
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, "empty:2,a:10,empty:6"), Loop: true, State: state,
		Capture: "  max_attempts: 0"}.write(t)
	// An HTTP sink: a building system that takes batches of events.
	var mu sync.Mutex
	received := map[string]int{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Events []map[string]any `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, e := range b.Events {
			received[str(e, "id")]++
		}
		mu.Unlock()
	}))
	defer sink.Close()
	appendFile(t, cfg, fmt.Sprintf("events:\n  sinks:\n    - {type: http, url: %q, backoff_min: 100ms, backoff_max: 500ms}\n", sink.URL))
	allReceived := func(evs []map[string]any) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range evs {
			if received[str(e, "id")] == 0 {
				return false
			}
		}
		return true
	}
	k := startKioskd(t, cfg)
	eventually(t, 60*time.Second, "two decisions", func() bool { return len(decisions(k.Output())) >= 2 || !k.running() })
	if !k.running() {
		t.Fatalf("kioskd exited:\n%s", tail(k.Output(), 30))
	}

	// While it runs.
	byCapture, _ := exportEvents(t, cfg)
	seen := 0
	for _, d := range decisions(k.Output()) {
		if len(byCapture[str(d, "capture_id")]) > 0 {
			seen++
		}
	}
	if seen < 2 {
		t.Fatalf("the live export holds %d of the decisions logged so far", seen)
	}
	list, errOut, code := kioskdCmd(t, "events", "list", "--config", cfg, "--since", "1h")
	if code != 0 || !strings.HasPrefix(list, "TIME") || !strings.Contains(list, "decision") {
		t.Fatalf("kioskd events list on a live daemon: exit %d\n%s%s", code, list, errOut)
	}
	if !k.running() {
		t.Fatal("kioskd stopped while the CLI read its log")
	}

	// Kill it the moment the next decision line is out.
	n := len(decisions(k.Output()))
	eventually(t, 60*time.Second, "another decision", func() bool { return len(decisions(k.Output())) > n || !k.running() })
	k.signal(t, syscall.SIGKILL)
	k.wait(t, 10*time.Second)
	byCapture, all := exportEvents(t, cfg)
	got := checkDecisionEvents(t, k.Output(), byCapture)
	ob.happened("the live export and list read %d decisions' events while kioskd ran", seen)
	ob.happened("killed after %d decision lines; the log holds an event for each (%d events in all, no id twice)", got, len(all))

	// Restarted, it sends the HTTP sink whatever the kill left unsent.
	k = startKioskd(t, cfg)
	eventually(t, 30*time.Second, "every event at the HTTP sink", func() bool { return allReceived(all) })
	k.signal(t, syscall.SIGTERM)
	k.wait(t, 20*time.Second)
	mu.Lock()
	dups := 0
	for _, n := range received {
		dups += n - 1
	}
	mu.Unlock()
	ob.happened("after a restart the HTTP sink had every event of the log (%d sent twice)", dups)
	ob.lost("nothing")
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}
