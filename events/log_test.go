package events_test

import (
	"context"
	"errors"
	"github.com/kioskd/kioskd/internal/promtest"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/events"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testConfig() config.Events {
	c := config.Default().Events
	return c
}

func openLog(t *testing.T, path string, cfg config.Events, reg prometheus.Registerer, opts ...events.Option) *events.Log {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	l, err := events.Open(path, cfg, quiet(), reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func decisionEvent(result string) events.Event {
	return events.Event{Door: "lobby-1", Kind: events.KindDecision, Result: result, AuthenticationID: "auth-1", CorrelationID: "corr-1"}
}

func readAll(t *testing.T, path string) []events.Event {
	t.Helper()
	r, err := events.NewReader(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	if err := r.Each(time.Time{}, time.Time{}, func(e events.Event) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAppendReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	clk := &fakeClock{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	l := openLog(t, path, testConfig(), reg, events.WithClock(clk.Now))
	ctx := context.Background()
	ev := decisionEvent("PASS")
	ev.Name = "Ada Lovelace"
	ev.Credential = &events.Credential{Format: "wiegand26", Number: "123456789"}
	a, err := l.Append(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if a.Seq != 1 || a.ID == "" || !a.Time.Equal(clk.Now()) {
		t.Fatalf("appended %+v", a)
	}
	clk.Advance(time.Second)
	b, err := l.Append(ctx, events.Event{Door: "lobby-1", Kind: events.KindDoorForcedOpen})
	if err != nil {
		t.Fatal(err)
	}
	if b.Seq != 2 || b.ID == a.ID {
		t.Fatalf("second event %+v", b)
	}
	got := readAll(t, path)
	if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID {
		t.Fatalf("read back %+v", got)
	}
	if got[0].Credential.Number != "*****6789" || got[0].Credential.Format != "wiegand26" {
		t.Errorf("credential stored as %+v, want the number masked", got[0].Credential)
	}
	if got[0].Name != "Ada Lovelace" || got[0].CorrelationID != "corr-1" {
		t.Errorf("fields lost: %+v", got[0])
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v (%v), want 0600: events name people", fi.Mode().Perm(), err)
	}
	if v := promtest.Value(t, reg, "kioskd_events_appended_total", "kind", "decision"); v != 1 {
		t.Errorf("appended decision = %v", v)
	}

	// A reopened log continues the sequence.
	l2 := openLog(t, path, testConfig(), nil, events.WithClock(clk.Now))
	clk.Advance(time.Second)
	c, err := l2.Append(ctx, decisionEvent("FAIL"))
	if err != nil || c.Seq != 3 {
		t.Fatalf("after reopen: %+v %v", c, err)
	}

	// Since/until select by time.
	r, _ := events.NewReader(path, time.Second)
	var ids []string
	_ = r.Each(a.Time.Add(time.Second), a.Time.Add(2*time.Second), func(e events.Event) error { ids = append(ids, e.ID); return nil })
	if len(ids) != 1 || ids[0] != b.ID {
		t.Errorf("since/until gave %v, want only %s", ids, b.ID)
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	reg := prometheus.NewRegistry()
	l := openLog(t, path, testConfig(), reg)
	ctx := context.Background()
	for name, ev := range map[string]events.Event{
		"unknown kind": {Kind: "door.teleported"},
		"long field":   {Kind: events.KindDecision, Name: strings.Repeat("x", 300)},
		"bad utf8":     {Kind: events.KindDecision, Reason: "\xff\xfe"},
	} {
		if _, err := l.Append(ctx, ev); err == nil {
			t.Errorf("%s: appended", name)
		}
	}
	if n := len(readAll(t, path)); n != 0 {
		t.Errorf("%d events kept after bad input", n)
	}
	if v := promtest.Value(t, reg, "kioskd_events_append_errors_total"); v != 3 {
		t.Errorf("append errors = %v, want 3", v)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cctx, decisionEvent("PASS")); !errors.Is(err, context.Canceled) {
		t.Errorf("append with a canceled context: %v", err)
	}
}

func TestRetentionByAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	clk := &fakeClock{now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	cfg := testConfig()
	cfg.Retention = 24 * time.Hour
	reg := prometheus.NewRegistry()
	l := openLog(t, path, cfg, reg, events.WithClock(clk.Now))
	ctx := context.Background()
	for range 5 {
		if _, err := l.Append(ctx, decisionEvent("PASS")); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
	}
	// 20 h later the first five are 20..24 h old: none has expired yet.
	clk.Advance(19 * time.Hour)
	if _, err := l.Append(ctx, decisionEvent("FAIL")); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, path)); n != 6 {
		t.Fatalf("%d events, want 6", n)
	}
	// Two hours on, the first two are more than 24 h old.
	clk.Advance(2*time.Hour - time.Minute)
	if _, err := l.Append(ctx, decisionEvent("FAIL")); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, path)
	if len(got) != 5 || got[0].Seq != 3 {
		t.Fatalf("after expiry: %d events starting at seq %d, want 5 from seq 3", len(got), got[0].Seq)
	}
	// A quiet door forgets too: Expire without appending.
	clk.Advance(48 * time.Hour)
	if err := l.Expire(); err != nil {
		t.Fatal(err)
	}
	if n := len(readAll(t, path)); n != 0 {
		t.Errorf("%d events after Expire, want 0", n)
	}
	if v := promtest.Value(t, reg, "kioskd_events_dropped_total", "reason", "age"); v != 7 {
		t.Errorf("dropped by age = %v, want 7", v)
	}
	if v := promtest.Value(t, reg, "kioskd_events_log_events"); v != 0 {
		t.Errorf("log events gauge = %v, want 0", v)
	}
}

func TestRetentionBySizeAndCount(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	cfg := testConfig()
	cfg.MaxBytes = 64 << 10 // below what config allows, to keep the test short
	reg := prometheus.NewRegistry()
	path := filepath.Join(dir, "size.db")
	l := openLog(t, path, cfg, reg)
	ev := decisionEvent("PASS")
	ev.Name = strings.Repeat("n", 250)
	ev.Reason = strings.Repeat("r", 250)
	const n = 300 // about 190 kB of records
	for range n {
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, path)
	if len(got) == n || len(got) < 64 {
		t.Fatalf("%d events kept under a 64 KiB bound", len(got))
	}
	if got[len(got)-1].Seq != n {
		t.Errorf("the newest event was dropped: last seq %d", got[len(got)-1].Seq)
	}
	if d := promtest.Value(t, reg, "kioskd_events_dropped_total", "reason", "size"); int(d)+len(got) != n {
		t.Errorf("dropped by size %v + kept %d != %d", d, len(got), n)
	}
	if fs := promtest.Value(t, reg, "kioskd_events_log_bytes"); fs > 1<<20 {
		t.Errorf("log file is %v bytes under a 64 KiB bound", fs)
	}

	cfg = testConfig()
	cfg.MaxEvents = 10
	path = filepath.Join(dir, "count.db")
	l = openLog(t, path, cfg, nil)
	for range 25 {
		if _, err := l.Append(ctx, decisionEvent("PASS")); err != nil {
			t.Fatal(err)
		}
	}
	got = readAll(t, path)
	if len(got) != 10 || got[0].Seq != 16 {
		t.Errorf("count bound: %d events from seq %d, want 10 from 16", len(got), got[0].Seq)
	}
}

// A reader holding the file never makes a writer fail: it reads in short
// chunks, and a writer waits for the lock.
func TestReaderBesideWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	l := openLog(t, path, testConfig(), nil)
	ctx := context.Background()
	for range 520 {
		if _, err := l.Append(ctx, decisionEvent("PASS")); err != nil {
			t.Fatal(err)
		}
	}
	r, err := events.NewReader(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for range 50 {
			if _, err := l.Append(ctx, decisionEvent("FAIL")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 5 {
		seen := map[string]bool{}
		var last uint64
		err := r.Each(time.Time{}, time.Time{}, func(e events.Event) error {
			if seen[e.ID] || e.Seq <= last {
				t.Fatalf("event %s (seq %d) out of order or twice", e.ID, e.Seq)
			}
			seen[e.ID], last = true, e.Seq
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) < 520 {
			t.Fatalf("reader saw %d events", len(seen))
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("writer beside a reader: %v", err)
	}
	if n := len(readAll(t, path)); n != 570 {
		t.Errorf("%d events, want 570", n)
	}
}

func TestMaskNumber(t *testing.T) {
	for in, want := range map[string]string{"": "", "12": "**", "1234": "****", "12345": "*2345", "*2345": "*2345"} {
		if got := events.MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

// A reader that holds the file for too long makes an append fail with
// ErrLocked after the lock timeout instead of hanging the caller.
func TestAppendLockedTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	l := openLog(t, path, testConfig(), nil, events.WithLockTimeout(100*time.Millisecond))
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), decisionEvent("PASS")); !errors.Is(err, events.ErrLocked) {
		t.Fatalf("append beside a stuck reader: %v, want ErrLocked", err)
	}
	_ = db.Close()
	if _, err := l.Append(context.Background(), decisionEvent("PASS")); err != nil {
		t.Fatalf("append after the reader left: %v", err)
	}
}

// A log file removed under a running kioskd is started again, not refused.
func TestLogFileRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	l := openLog(t, path, testConfig(), nil)
	ctx := context.Background()
	if _, err := l.Append(ctx, decisionEvent("PASS")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	ev, err := l.Append(ctx, decisionEvent("FAIL"))
	if err != nil {
		t.Fatalf("append after the file was removed: %v", err)
	}
	got := readAll(t, path)
	if len(got) != 1 || got[0].ID != ev.ID {
		t.Fatalf("after removal: %+v", got)
	}
}

// The log is never opened through a symbolic link.
func TestLogRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("not yours"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "events.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Open(link, testConfig(), quiet(), prometheus.NewRegistry()); err == nil {
		t.Fatal("opened a log through a symbolic link")
	}
	if b, _ := os.ReadFile(target); string(b) != "not yours" {
		t.Fatal("the link's target was changed")
	}
}
