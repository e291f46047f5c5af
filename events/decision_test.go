package events_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/events"
)

// lineWatcher is a slog handler that, when the decision line is written,
// notes what the event log holds at that moment.
type lineWatcher struct {
	path string
	mu   *sync.Mutex
	seen *[]int
}

func (w lineWatcher) Enabled(context.Context, slog.Level) bool { return true }
func (w lineWatcher) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w lineWatcher) WithGroup(string) slog.Handler            { return w }
func (w lineWatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "decision" {
		return nil
	}
	r2, err := events.NewReader(w.path, time.Second)
	n := 0
	if err == nil {
		_ = r2.Each(time.Time{}, time.Time{}, func(events.Event) error { n++; return nil })
	}
	w.mu.Lock()
	*w.seen = append(*w.seen, n)
	w.mu.Unlock()
	return nil
}

// The Recorder's decision line comes after the event is on disk, and the
// event carries the record's identifiers.
func TestDecisionSinkBeforeTheLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	l := openLog(t, path, testConfig(), nil)
	var mu sync.Mutex
	var seen []int
	rec := decision.NewRecorder(slog.New(lineWatcher{path: path, mu: &mu, seen: &seen}), prometheus.NewRegistry(),
		events.DecisionSink{Log: l})
	now := time.Now()
	rec.Record(context.Background(), decision.Record{Time: now, Source: "lobby-1", Kind: decision.KindLive,
		Result: decision.Pass, AuthenticationID: "auth-9", CorrelationID: "corr-9", VerificationID: "ver-9",
		IdentityID: "id-9", Name: "Grace", CaptureID: "cap-9", Latency: 850 * time.Millisecond, Unlocked: true})
	rec.Record(context.Background(), decision.Record{Time: now, Source: "lobby-1", Kind: decision.KindDeferred,
		Result: decision.Fail, Reason: "faceMatchFailed", CaptureID: "cap-8"})
	if len(seen) != 2 || seen[0] != 1 || seen[1] != 2 {
		t.Fatalf("events on disk when each decision line was written: %v, want [1 2]", seen)
	}
	got := readAll(t, path)
	e := got[0]
	if e.Kind != events.KindDecision || e.Result != "PASS" || e.Door != "lobby-1" || e.AuthenticationID != "auth-9" ||
		e.CorrelationID != "corr-9" || e.VerificationID != "ver-9" || e.IdentityID != "id-9" || e.Name != "Grace" ||
		e.CaptureID != "cap-9" || e.LatencyMS != 850 || e.Deferred {
		t.Errorf("live event %+v", e)
	}
	if d := got[1]; !d.Deferred || d.Result != "FAIL" || d.Reason != "faceMatchFailed" {
		t.Errorf("deferred event %+v", d)
	}
}
