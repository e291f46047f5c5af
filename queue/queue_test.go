package queue_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/kioskd/kioskd/internal/promtest"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/queue"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEnqueueLeaseAck(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(t)
	q, reg := open(t, cfg, clockOptions(clk)...)

	photo := testJPEG(t, "chelsea.jpg")
	a := enqueue(t, q, queue.Item{JPEG: photo, Source: "door-1", CapturedAt: clk.Now().Add(-2 * time.Second)})
	b := enqueue(t, q, queue.Item{JPEG: fakeJPEG(1000, 2), Source: "door-1", ID: "live-attempt-key-7"})
	if a.Seq == 0 || b.Seq <= a.Seq {
		t.Fatalf("seqs %d, %d: want increasing from 1", a.Seq, b.Seq)
	}
	if !uuidPattern.MatchString(a.ID) {
		t.Errorf("assigned ID %q is not a random UUID", a.ID)
	}
	if b.ID != "live-attempt-key-7" {
		t.Errorf("caller's ID replaced by %q", b.ID)
	}
	if !a.NextAttempt.Equal(clk.Now()) || !a.EnqueuedAt.Equal(clk.Now()) {
		t.Errorf("next attempt %v, enqueued %v: want now", a.NextAttempt, a.EnqueuedAt)
	}

	st, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Depth != 2 || st.Bytes < int64(len(photo)+1000) || st.OldestAge != 2*time.Second || st.DeadLetters != 0 {
		t.Errorf("stats %+v", st)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_depth"); v != 2 {
		t.Errorf("depth gauge %v", v)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_oldest_age_seconds"); v != 2 {
		t.Errorf("oldest age gauge %v", v)
	}

	got, err := q.Lease()
	if err != nil || got == nil {
		t.Fatalf("Lease: %v, %v", got, err)
	}
	if got.Seq != a.Seq || !bytes.Equal(got.JPEG, photo) || got.Source != "door-1" || got.ID != a.ID {
		t.Fatalf("leased seq %d id %q (%d bytes), want the first item back intact", got.Seq, got.ID, len(got.JPEG))
	}
	// A leased item is not handed out twice.
	second, err := q.Lease()
	if err != nil || second == nil || second.Seq != b.Seq {
		t.Fatalf("second Lease: %+v, %v", second, err)
	}
	if third, err := q.Lease(); err != nil || third != nil {
		t.Fatalf("third Lease: %+v, %v; want nil", third, err)
	}
	if err := q.Ack(a.Seq); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(a.Seq); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("second Ack: %v, want ErrNotFound", err)
	}
	if err := q.Ack(b.Seq); err != nil {
		t.Fatal(err)
	}
	st, _ = q.Stats()
	if st.Depth != 0 || st.Bytes != 0 || st.OldestAge != 0 {
		t.Errorf("after acks: %+v", st)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_enqueued_total"); v != 2 {
		t.Errorf("enqueued_total %v", v)
	}
}

func TestEnqueueRejects(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes = 1 << 20
	q, _ := open(t, cfg)
	ctx := context.Background()
	if _, err := q.Enqueue(ctx, queue.Item{}); err == nil {
		t.Error("empty image accepted")
	}
	if _, err := q.Enqueue(ctx, queue.Item{JPEG: fakeJPEG(100, 1), ID: "has space"}); err == nil {
		t.Error("ID with a space accepted")
	}
	if _, err := q.Enqueue(ctx, queue.Item{JPEG: fakeJPEG(2<<20, 1)}); !errors.Is(err, queue.ErrTooLarge) {
		t.Errorf("oversized item: %v, want ErrTooLarge", err)
	}
	old := time.Now().Add(-cfg.TTL - time.Minute)
	if _, err := q.Enqueue(ctx, queue.Item{JPEG: fakeJPEG(100, 1), CapturedAt: old}); !errors.Is(err, queue.ErrExpired) {
		t.Errorf("expired item: %v, want ErrExpired", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := q.Enqueue(cctx, queue.Item{JPEG: fakeJPEG(100, 1)}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	if st, _ := q.Stats(); st.Depth != 0 {
		t.Errorf("rejected items were stored: %+v", st)
	}
}

func TestLeaseHonoursDueTimes(t *testing.T) {
	clk := newFakeClock()
	q, _ := open(t, testConfig(t), clockOptions(clk)...)
	later := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1), NextAttempt: clk.Now().Add(time.Minute)})
	now := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 2)})

	got, _ := q.Lease()
	if got == nil || got.Seq != now.Seq {
		t.Fatalf("Lease = %+v, want the due item %d", got, now.Seq)
	}
	if got, _ := q.Lease(); got != nil {
		t.Fatalf("Lease returned %d before it is due", got.Seq)
	}
	oldest, _ := q.LeaseOldest()
	if oldest == nil || oldest.Seq != later.Seq {
		t.Fatalf("LeaseOldest = %+v, want %d", oldest, later.Seq)
	}
}

func TestRetryLaterBacksOffAndDeadLetters(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(t)
	cfg.BackoffMin = time.Second
	cfg.BackoffMax = 8 * time.Second
	cfg.MaxAttempts = 6
	q, reg := open(t, cfg, append(clockOptions(clk), queue.WithRand(rand.New(rand.NewPCG(1, 2))))...)
	it := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})

	ceil := []time.Duration{1, 2, 4, 8, 8}
	for i, c := range ceil {
		if _, err := q.LeaseOldest(); err != nil {
			t.Fatal(err)
		}
		if err := q.RetryLater(it.Seq, "service_unavailable: 503"); err != nil {
			t.Fatal(err)
		}
		items, _ := q.List(false)
		if len(items) != 1 {
			t.Fatalf("attempt %d: %d pending", i+1, len(items))
		}
		got := items[0]
		delay := got.NextAttempt.Sub(clk.Now())
		if got.Attempts != i+1 || got.LastError != "service_unavailable: 503" {
			t.Errorf("attempt %d: attempts %d, last error %q", i+1, got.Attempts, got.LastError)
		}
		if delay < c*time.Second/2 || delay > c*time.Second {
			t.Errorf("attempt %d: delay %s, want within [%s, %s]", i+1, delay, c*time.Second/2, c*time.Second)
		}
		if got.JPEG != nil {
			t.Error("List returned image bytes")
		}
	}
	// The sixth failure reaches max_attempts.
	if err := q.RetryLater(it.Seq, "timeout"); err != nil {
		t.Fatal(err)
	}
	dead, _ := q.List(true)
	if len(dead) != 1 || dead[0].Seq != it.Seq || dead[0].Attempts != 6 || !contains(dead[0].LastError, "timeout") || dead[0].DeadAt.IsZero() {
		t.Fatalf("dead letters %+v", dead)
	}
	if st, _ := q.Stats(); st.Depth != 0 || st.DeadLetters != 1 || st.DeadBytes == 0 {
		t.Errorf("stats %+v", st)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_drops_total", "reason", "max_attempts"); v != 1 {
		t.Errorf("drops{max_attempts} = %v", v)
	}
}

func TestDeadLetterRetryDeadPurge(t *testing.T) {
	clk := newFakeClock()
	q, reg := open(t, testConfig(t), clockOptions(clk)...)
	var all []queue.Item
	for i := range 4 {
		all = append(all, enqueue(t, q, queue.Item{JPEG: fakeJPEG(500, uint64(i))}))
	}
	if err := q.DeadLetter(all[1].Seq, "bad_request: 400 face not found"); err != nil {
		t.Fatal(err)
	}
	if err := q.DeadLetter(all[2].Seq, "bad_request"); err != nil {
		t.Fatal(err)
	}
	if err := q.DeadLetter(all[2].Seq, "again"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("dead-lettering a dead letter: %v", err)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_drops_total", "reason", "permanent"); v != 2 {
		t.Errorf("drops{permanent} = %v", v)
	}
	pending, _ := q.List(false)
	dead, _ := q.List(true)
	if !slices.Equal(seqs(pending), []uint64{all[0].Seq, all[3].Seq}) || !slices.Equal(seqs(dead), []uint64{all[1].Seq, all[2].Seq}) {
		t.Fatalf("pending %v dead %v", seqs(pending), seqs(dead))
	}
	if dead[0].LastError != "bad_request: 400 face not found" {
		t.Errorf("reason not kept: %q", dead[0].LastError)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_dead_letters"); v != 2 {
		t.Errorf("dead letters gauge %v", v)
	}

	n, err := q.RetryDead()
	if err != nil || n != 2 {
		t.Fatalf("RetryDead = %d, %v", n, err)
	}
	pending, _ = q.List(false)
	if !slices.Equal(seqs(pending), seqs(all)) {
		t.Fatalf("after RetryDead pending %v, want the original order %v", seqs(pending), seqs(all))
	}
	// The retried items are whole: their images still come back.
	for range 4 {
		it, err := q.Lease()
		if err != nil || it == nil || len(it.JPEG) != 500 {
			t.Fatalf("Lease after RetryDead: %+v, %v", it, err)
		}
	}

	if err := q.DeadLetter(all[0].Seq, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := q.Purge(); err != nil || n != 3 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if n, err := q.PurgeDead(); err != nil || n != 1 {
		t.Fatalf("PurgeDead = %d, %v", n, err)
	}
	st, _ := q.Stats()
	if st != (queue.Stats{FileBytes: st.FileBytes}) {
		t.Errorf("after purges: %+v", st)
	}
}

func TestReopenKeepsItemsAndSequence(t *testing.T) {
	cfg := testConfig(t)
	q1, err := queue.Open(cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a := enqueue(t, q1, queue.Item{JPEG: fakeJPEG(300, 1), Source: "door"})
	b := enqueue(t, q1, queue.Item{JPEG: fakeJPEG(300, 2)})
	if err := q1.DeadLetter(b.Seq, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := q1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q1.Stats(); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Stats after Close: %v", err)
	}

	q2, _ := open(t, cfg)
	st, _ := q2.Stats()
	if st.Depth != 1 || st.DeadLetters != 1 {
		t.Fatalf("after reopen: %+v", st)
	}
	c := enqueue(t, q2, queue.Item{JPEG: fakeJPEG(300, 3)})
	if c.Seq <= b.Seq {
		t.Errorf("sequence reused: %d after %d", c.Seq, b.Seq)
	}
	it, _ := q2.Lease()
	if it == nil || it.Seq != a.Seq || it.ID != a.ID || it.Source != "door" || !bytes.Equal(it.JPEG, fakeJPEG(300, 1)) {
		t.Fatalf("reopened item %+v", it)
	}

	fi, err := os.Stat(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %04o, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(cfg.Path))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %04o, want 0700", di.Mode().Perm())
	}
}

// TestOpenLeavesModeAlone: kioskd changes the mode of no file it did not
// create (with queue.path pointing at the wrong file, a chmod would be the
// damage); it says so instead.
func TestOpenLeavesModeAlone(t *testing.T) {
	cfg := testConfig(t)
	q, err := queue.Open(cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := os.Chmod(cfg.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	q, err = queue.Open(cfg, logs.logger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if fi, _ := os.Stat(cfg.Path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %04o after Open, want the operator's 0644 left alone", fi.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "chmod 0600") {
		t.Errorf("no warning about the mode: %s", logs.String())
	}
}

func TestBoundsDropOldestFirst(t *testing.T) {
	t.Run("max_items", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.MaxItems = 3
		q, reg := open(t, cfg)
		var all []queue.Item
		for i := range 5 {
			all = append(all, enqueue(t, q, queue.Item{JPEG: fakeJPEG(200, uint64(i))}))
		}
		pending, _ := q.List(false)
		if !slices.Equal(seqs(pending), seqs(all[2:])) {
			t.Fatalf("pending %v, want the newest three %v", seqs(pending), seqs(all[2:]))
		}
		if v := promtest.Value(t, reg, "kioskd_queue_drops_total", "reason", "overflow"); v != 2 {
			t.Errorf("drops{overflow} = %v", v)
		}
	})
	t.Run("max_bytes", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.MaxBytes = 1 << 20
		q, reg := open(t, cfg)
		var all []queue.Item
		for i := range 6 {
			all = append(all, enqueue(t, q, queue.Item{JPEG: fakeJPEG(300<<10, uint64(i))}))
			st, _ := q.Stats()
			if st.Bytes+st.DeadBytes > int64(cfg.MaxBytes) {
				t.Fatalf("after %d items: %d bytes, over the %d limit", i+1, st.Bytes, cfg.MaxBytes)
			}
		}
		pending, _ := q.List(false)
		if !slices.Equal(seqs(pending), seqs(all[3:])) {
			t.Fatalf("pending %v, want %v", seqs(pending), seqs(all[3:]))
		}
		if v := promtest.Value(t, reg, "kioskd_queue_drops_total", "reason", "overflow"); v != 3 {
			t.Errorf("drops{overflow} = %v", v)
		}
	})
	t.Run("pending before dead letters", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.MaxItems = 3
		q, _ := open(t, cfg)
		a := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})
		b := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 2)})
		enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 3)})
		if err := q.DeadLetter(a.Seq, "x"); err != nil {
			t.Fatal(err)
		}
		if err := q.DeadLetter(b.Seq, "x"); err != nil {
			t.Fatal(err)
		}
		d := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 4)})
		pending, _ := q.List(false)
		dead, _ := q.List(true)
		if !slices.Equal(seqs(pending), []uint64{d.Seq}) || !slices.Equal(seqs(dead), []uint64{a.Seq, b.Seq}) {
			t.Fatalf("pending %v dead %v: want the older pending item dropped, not a dead letter", seqs(pending), seqs(dead))
		}
		// With nothing older pending, the oldest dead letter goes.
		cfg2 := testConfig(t)
		cfg2.MaxItems = 2
		q2, _ := open(t, cfg2)
		a = enqueue(t, q2, queue.Item{JPEG: fakeJPEG(100, 1)})
		b = enqueue(t, q2, queue.Item{JPEG: fakeJPEG(100, 2)})
		_ = q2.DeadLetter(a.Seq, "x")
		_ = q2.DeadLetter(b.Seq, "x")
		c := enqueue(t, q2, queue.Item{JPEG: fakeJPEG(100, 3)})
		pending, _ = q2.List(false)
		dead, _ = q2.List(true)
		if !slices.Equal(seqs(pending), []uint64{c.Seq}) || !slices.Equal(seqs(dead), []uint64{b.Seq}) {
			t.Fatalf("pending %v dead %v: want the new item kept and the oldest dead letter dropped", seqs(pending), seqs(dead))
		}
	})
}

func TestTTL(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(t)
	cfg.TTL = time.Hour
	q, reg := open(t, cfg, clockOptions(clk)...)
	a := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})
	d := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 2)})
	if err := q.DeadLetter(d.Seq, "x"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	// A capture time ahead of the clock does not stretch the TTL.
	future := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 3), CapturedAt: clk.Now().Add(10 * time.Hour)})
	b := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 4)})

	clk.Advance(30*time.Minute + time.Second)
	it, err := q.Lease()
	if err != nil || it == nil || it.Seq != future.Seq {
		t.Fatalf("Lease after the first item expired: %+v, %v", it, err)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_drops_total", "reason", "ttl"); v != 2 {
		t.Errorf("drops{ttl} = %v, want 2 (a pending item and a dead letter)", v)
	}
	if dead, _ := q.List(true); len(dead) != 0 {
		t.Errorf("expired dead letter kept: %v", seqs(dead))
	}
	_ = a

	// The leased item is being delivered: TTL leaves it alone.
	clk.Advance(31 * time.Minute)
	n, err := q.Expire()
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want b (%d) gone", n, err, b.Seq)
	}
	pending, _ := q.List(false)
	if !slices.Equal(seqs(pending), []uint64{future.Seq}) {
		t.Fatalf("pending %v", seqs(pending))
	}
	if err := q.Ack(future.Seq); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(); st.Depth != 0 || st.Bytes != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLockedFileIsNotCorrupt(t *testing.T) {
	cfg := testConfig(t)
	q, _ := open(t, cfg)
	enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})

	start := time.Now()
	reg := prometheus.NewRegistry()
	_, err := queue.Open(cfg, quiet(), reg, queue.WithLockTimeout(200*time.Millisecond))
	if !errors.Is(err, queue.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !contains(err.Error(), "queue file "+cfg.Path+" is in use by another process") {
		t.Errorf("error %q does not say the file is in use", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("second Open took %s: it must fail fast", time.Since(start))
	}
	if m := corruptFiles(t, cfg.Path); len(m) != 0 {
		t.Fatalf("a locked file was moved aside: %v", m)
	}
	// The failed Open registered nothing, so a retry can use the registry.
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("failed Open left %d metric families registered", len(mfs))
	}
	if st, err := q.Stats(); err != nil || st.Depth != 1 {
		t.Fatalf("first queue after the contention: %+v, %v", st, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := queue.Open(cfg, quiet(), reg)
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	q2.Close()
}

func TestMetricsInitialised(t *testing.T) {
	_, reg := open(t, testConfig(t))
	for _, r := range []string{"overflow", "ttl", "permanent", "max_attempts"} {
		if v := promtest.Value(t, reg, "kioskd_queue_drops_total", "reason", r); v != 0 {
			t.Errorf("drops{%s} = %v", r, v)
		}
	}
	for _, name := range []string{"kioskd_queue_depth", "kioskd_queue_bytes", "kioskd_queue_oldest_age_seconds",
		"kioskd_queue_dead_letters", "kioskd_queue_enqueued_total", "kioskd_queue_recovered_files_total"} {
		promtest.Value(t, reg, name)
	}
	promtest.Value(t, reg, "kioskd_queue_errors_total", "op", "enqueue")
}
