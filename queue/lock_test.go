package queue

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
)

// TestEnqueueContextBoundsTheWait: while something else holds the queue
// (a compaction, a slow fsync), Enqueue returns when its context ends, and
// Err, which readiness uses, answers without waiting.
func TestEnqueueContextBoundsTheWait(t *testing.T) {
	cfg := config.Default().Queue
	cfg.Path, cfg.Encrypt = filepath.Join(t.TempDir(), "queue.db"), false
	q, err := Open(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	q.mu.Lock()
	// Live when Enqueue starts, over while it waits.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = q.Enqueue(ctx, Item{JPEG: []byte{0xFF, 0xD8, 0xFF, 0xD9}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue while the queue is held: %v, want context.DeadlineExceeded", err)
	}
	if err := q.Err(); err != nil {
		t.Fatalf("Err while the queue is held: %v", err)
	}
	q.mu.Unlock()
	if _, err := q.Enqueue(context.Background(), Item{JPEG: []byte{0xFF, 0xD8, 0xFF, 0xD9}}); err != nil {
		t.Fatal(err)
	}
}
