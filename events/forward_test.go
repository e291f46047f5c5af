package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/kioskd/kioskd/internal/promtest"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/events"
)

// received collects delivered event ids and signals when a wanted set is
// complete.
type received struct {
	mu     sync.Mutex
	count  map[string]int
	order  []string
	change chan struct{}
}

func newReceived() *received {
	return &received{count: map[string]int{}, change: make(chan struct{}, 1)}
}

func (r *received) add(id string) {
	r.mu.Lock()
	if r.count[id] == 0 {
		r.order = append(r.order, id)
	}
	r.count[id]++
	r.mu.Unlock()
	select {
	case r.change <- struct{}{}:
	default:
	}
}

// waitFor waits until every id has been received at least once.
func (r *received) waitFor(t *testing.T, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		missing := 0
		for _, id := range ids {
			if r.count[id] == 0 {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-r.change:
		case <-deadline.C:
			t.Fatalf("%d of %d events not delivered within %s", missing, len(ids), within)
		}
	}
}

func (r *received) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.count {
		n += c - 1
	}
	return n
}

func appendN(t *testing.T, l *events.Log, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		ev, err := l.Append(context.Background(), events.Event{Door: "lobby-1", Kind: events.KindDecision, Result: "PASS", Reason: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	return ids
}

func runForwarder(t *testing.T, f *events.Forwarder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func sinkConfig(typ, url string) config.EventSink {
	s := config.EventSink{Type: typ, URL: url, BatchSize: 25, Timeout: 2 * time.Second,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	return s.WithDefaults(0)
}

// The HTTP sink gets every event in batches, through failures, and a
// restarted forwarder resumes after the last batch accepted.
func TestHTTPSinkAtLeastOnceAcrossRestart(t *testing.T) {
	got := newReceived()
	var mu sync.Mutex
	fail := 2
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = r.Header.Get("Authorization")
		f := fail > 0
		fail--
		mu.Unlock()
		if f {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var b struct {
			Events []events.Event `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || len(b.Events) == 0 || len(b.Events) > 25 {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		for _, e := range b.Events {
			got.add(e.ID)
		}
	}))
	defer srv.Close()

	path := filepath.Join(t.TempDir(), "events.db")
	sc := sinkConfig("http", srv.URL)
	sc.Token = "sink-token"
	reg := prometheus.NewRegistry()
	l := openLog(t, path, testConfig(), reg)
	before := appendN(t, l, 40) // queued before the sink runs
	s, err := events.NewHTTPSink(sc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := events.NewForwarder(l, s, sc, quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runForwarder(t, f)
	ids := append(before, appendN(t, l, 20)...)
	got.waitFor(t, ids, 20*time.Second)
	// The receiver has them before the forwarder has the answer.
	waitCond(t, 10*time.Second, "the cursor to reach the last event", func() bool { return f.Pending() == 0 })
	stop()
	if auth != "Bearer sink-token" {
		t.Errorf("Authorization %q", auth)
	}
	if v := promtest.Value(t, reg, "kioskd_events_sink_errors_total", "sink", "http-0"); v < 1 {
		t.Errorf("sink errors = %v, want the 503s counted", v)
	}
	if v := promtest.Value(t, reg, "kioskd_events_sink_pending", "sink", "http-0"); v != 0 {
		t.Errorf("pending = %v after delivery", v)
	}

	// A restart (new log handle, new forwarder) resumes after the cursor.
	l2 := openLog(t, path, testConfig(), nil)
	more := appendN(t, l2, 10)
	s2, _ := events.NewHTTPSink(sc)
	f2, err := events.NewForwarder(l2, s2, sc, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	stop = runForwarder(t, f2)
	got.waitFor(t, more, 20*time.Second)
	waitCond(t, 10*time.Second, "the cursor to reach the last event", func() bool { return f2.Pending() == 0 })
	stop()
	if d := got.duplicates(); d != 0 {
		t.Errorf("%d events sent twice although every batch was acknowledged", d)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for i, id := range append(ids, more...) {
		if got.order[i] != id {
			t.Fatalf("event %d delivered out of order", i)
		}
	}
}

// waitCond polls a condition that has no event to wait on.
func waitCond(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
