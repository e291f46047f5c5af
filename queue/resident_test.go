//go:build linux

package queue_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
)

// mappedKB is the resident size of this process's mappings of path
// (/proc/self/smaps), in kB.
func mappedKB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps")
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fs := strings.Fields(line); len(fs) >= 5 && strings.Contains(fs[0], "-") {
			in = len(fs) >= 6 && fs[5] == path
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			total += n
		}
	}
	return total
}

func TestDrainedQueueLeavesNoMappedPagesResident(t *testing.T) {
	cfg := config.Default().Queue
	cfg.Path = filepath.Join(t.TempDir(), "queue.db")
	cfg.Encrypt = false
	cfg.MaxBytes = 1 << 30
	q, _ := open(t, cfg)
	path, err := filepath.EvalSymlinks(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	img := fakeJPEG(150<<10, 7)
	const n = 100
	for range n {
		if _, err := q.Enqueue(context.Background(), queue.Item{JPEG: img}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		it, err := q.Lease()
		if err != nil || it == nil || len(it.JPEG) != len(img) {
			t.Fatalf("lease %d: %v %v", i, it, err)
		}
		if i == n/2 {
			// Reading the captures maps them in: this is what is released.
			if kb := mappedKB(t, path); kb < 100 {
				t.Fatalf("only %d kB of the queue file resident after a read; the test measures nothing", kb)
			}
		}
		if err := q.Ack(it.Seq); err != nil {
			t.Fatal(err)
		}
		if kb := mappedKB(t, path); kb > 1<<10 {
			t.Fatalf("after %d acks, %d kB of the queue file resident, want under 1 MB", i+1, kb)
		}
	}
	if kb := mappedKB(t, path); kb > 1<<10 {
		t.Errorf("%d kB of the drained queue file still resident, want under 1 MB", kb)
	}
}
