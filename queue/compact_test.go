package queue_test

import (
	"errors"
	"github.com/kioskd/kioskd/internal/promtest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/queue"
)

// TestFileSizeStaysBounded runs enqueue/ack cycles with a backlog, as a
// door does through a flaky network: bbolt must reuse its free pages, so
// the file stays within the byte limit. BenchmarkFileSize runs the full
// 10,000 cycles of 150 KB.
func TestFileSizeStaysBounded(t *testing.T) {
	cycles := 1500
	if testing.Short() {
		cycles = 300
	}
	cfg := testConfig(t)
	cfg.MaxBytes = 4 << 20
	q, _ := open(t, cfg)
	img := fakeJPEG(15<<10, 1)
	var backlog []uint64
	var peak int64
	for i := range cycles {
		it := enqueue(t, q, queue.Item{JPEG: img})
		backlog = append(backlog, it.Seq)
		// Up to 40 items (600 KB) wait at times; then the service is back.
		if len(backlog) > 40 || i%7 != 0 {
			if err := q.Ack(backlog[0]); err != nil {
				t.Fatal(err)
			}
			backlog = backlog[1:]
		}
		st, _ := q.Stats()
		peak = max(peak, st.FileBytes)
	}
	if peak > int64(cfg.MaxBytes) {
		t.Fatalf("file grew to %d bytes over %d cycles, past the %d byte limit", peak, cycles, int64(cfg.MaxBytes))
	}
	t.Logf("%d cycles: peak file size %d bytes (limit %d)", cycles, peak, int64(cfg.MaxBytes))
	// The churned file passes the open-time checks as it is.
	q.Close()
	q2, reg := open(t, cfg)
	if st, _ := q2.Stats(); st.Depth != len(backlog) || promtest.Value(t, reg, "kioskd_queue_recovered_files_total") != 0 {
		t.Fatalf("after reopen: depth %d, want %d, without recovery", st.Depth, len(backlog))
	}
}

// TestCompaction fills the queue to its byte limit, drains it and checks
// that the file gives the space back, keeps its lock throughout, and
// still holds what was left in it.
func TestCompaction(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes = 8 << 20
	reg := prometheus.NewRegistry()
	q, err := queue.Open(cfg, quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var all []queue.Item
	for i := range 60 {
		all = append(all, enqueue(t, q, queue.Item{JPEG: fakeJPEG(120<<10, uint64(i))}))
	}
	full, _ := q.Stats()
	if full.FileBytes < 7<<20 {
		t.Fatalf("file only %d bytes when full", full.FileBytes)
	}
	for _, it := range all[:59] {
		if err := q.Ack(it.Seq); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := q.Stats()
	if st.FileBytes > 2<<20 {
		t.Fatalf("file still %d bytes with %d bytes of items left", st.FileBytes, st.Bytes)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_compactions_total"); v < 1 {
		t.Fatalf("compactions_total = %v", v)
	}
	if _, err := os.Stat(cfg.Path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if fi, _ := os.Stat(cfg.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("compacted file mode %04o", fi.Mode().Perm())
	}
	// The compacted file is still ours alone.
	if _, err := queue.Open(cfg, quiet(), prometheus.NewRegistry(), queue.WithLockTimeout(100*time.Millisecond)); !errors.Is(err, queue.ErrLocked) {
		t.Fatalf("second Open after compaction: %v, want ErrLocked", err)
	}
	// It works and keeps the sequence going.
	last := enqueue(t, q, queue.Item{JPEG: fakeJPEG(1000, 99)})
	if last.Seq <= all[59].Seq {
		t.Fatalf("sequence went back to %d after compaction", last.Seq)
	}
	q.Close()
	q2, _ := open(t, cfg)
	for _, want := range []queue.Item{all[59], last} {
		it, err := q2.Lease()
		if err != nil || it == nil || it.Seq != want.Seq || it.ID != want.ID {
			t.Fatalf("after reopen: %v, %v; want %v", it, err, want)
		}
	}
}
