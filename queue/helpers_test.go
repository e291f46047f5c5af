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

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/clock"
	"github.com/kioskd/kioskd/queue"
)

// newFakeClock drives the queue's and the drainer's time: timers fire when
// Advance passes their deadline, and every new timer is announced on
// Armed, which tells a test that the drainer has gone to sleep.
func newFakeClock() *clock.Fake {
	return clock.NewFake(time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC))
}

// clockOptions runs a Queue or Drainer on c.
func clockOptions(c *clock.Fake) []queue.Option {
	return []queue.Option{queue.WithClock(c.Now), queue.WithTimer(c.NewTimer)}
}

// waitTimer waits until the drainer arms a timer, i.e. has nothing to do
// until then, and returns its duration.
func waitTimer(t *testing.T, c *clock.Fake) time.Duration {
	t.Helper()
	select {
	case d := <-c.Armed():
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
