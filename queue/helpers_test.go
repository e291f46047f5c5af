package queue_test

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
)

// fakeClock drives the queue's and the drainer's time. Timers fire when
// Advance passes their deadline; every new timer is announced on created,
// which tells a test that the drainer has gone to sleep.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	timers  []*fakeTimer
	created chan time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC), created: make(chan time.Duration, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) NewTimer(d time.Duration) queue.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: c.t.Add(d)}
	if d <= 0 {
		t.c <- c.t
		t.fired = true
	} else {
		c.timers = append(c.timers, t)
	}
	select {
	case c.created <- d:
	default:
	}
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		t.mu.Lock()
		switch {
		case t.stopped:
		case !t.at.After(c.t):
			t.fired = true
			t.c <- c.t
		default:
			kept = append(kept, t)
		}
		t.mu.Unlock()
	}
	c.timers = kept
}

func (c *fakeClock) options() []queue.Option {
	return []queue.Option{queue.WithClock(c.Now), queue.WithTimer(c.NewTimer)}
}

type fakeTimer struct {
	mu             sync.Mutex
	c              chan time.Time
	at             time.Time
	stopped, fired bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := !t.stopped && !t.fired
	t.stopped = true
	return was
}

// waitTimer waits until the drainer arms a timer, i.e. has nothing to do
// until then, and returns its duration.
func (c *fakeClock) waitTimer(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.created:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the drainer never went to sleep")
		return 0
	}
}

func testConfig(t *testing.T) config.Queue {
	t.Helper()
	cfg := config.Default().Queue
	cfg.Path = filepath.Join(t.TempDir(), "state", "queue.db")
	// Most tests look at plain images; crypt_test turns encryption on.
	cfg.Encrypt = false
	cfg.MaxBytes = 64 << 20
	cfg.BackoffMin = time.Second
	cfg.BackoffMax = time.Minute
	return cfg
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func open(t *testing.T, cfg config.Queue, opts ...queue.Option) (*queue.Queue, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	q, err := queue.Open(cfg, quiet(), reg, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q, reg
}

// testJPEG is a real photo from testdata.
func testJPEG(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) {
		t.Fatalf("%s is not a JPEG", name)
	}
	return b
}

// fakeJPEG is n bytes that start and end like a JPEG, with seeded random
// content: enough for a queue, which never decodes images.
func fakeJPEG(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0})
	copy(b[n-2:], []byte{0xFF, 0xD9})
	return b
}

func enqueue(t testing.TB, q *queue.Queue, it queue.Item) queue.Item {
	t.Helper()
	got, err := q.Enqueue(context.Background(), it)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return got
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matchLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

func matchLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		ok := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func seqs(items []queue.Item) []uint64 {
	out := make([]uint64, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

func corruptFiles(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
