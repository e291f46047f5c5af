package queue_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/kioskd/kioskd/internal/promtest"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
)

// filledQueue writes a closed queue file holding n items.
func filledQueue(t *testing.T, cfg config.Queue, n, size int) {
	t.Helper()
	q, err := queue.Open(cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		enqueue(t, q, queue.Item{JPEG: fakeJPEG(size, uint64(i))})
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// pageOf returns the page size and the root page of the pending bucket.
func pageOf(t *testing.T, path string) (pageSize int, root int64, freelist int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		root = int64(tx.Bucket([]byte("pending")).RootPage())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db.Info().PageSize, root, 2
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func garbage(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCorruptFileIsMovedAside(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"garbage bytes", func(t *testing.T, path string) {
			if err := os.WriteFile(path, garbage(64<<10, 1), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"a few bytes", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a db"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			filledQueue(t, testConfigAt(path), 20, 30<<10)
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"both meta pages overwritten", func(t *testing.T, path string) {
			filledQueue(t, testConfigAt(path), 5, 10<<10)
			ps, _, _ := pageOf(t, path)
			overwrite(t, path, 0, garbage(2*ps, 2))
		}},
		{"pending bucket page overwritten", func(t *testing.T, path string) {
			filledQueue(t, testConfigAt(path), 30, 2<<10)
			ps, root, _ := pageOf(t, path)
			if root == 0 {
				t.Fatal("pending bucket is inline: add items")
			}
			overwrite(t, path, root*int64(ps), garbage(ps, 3))
		}},
		{"pending bucket page overwritten with a plausible header", func(t *testing.T, path string) {
			filledQueue(t, testConfigAt(path), 30, 2<<10)
			ps, root, _ := pageOf(t, path)
			page := garbage(ps, 4)
			// Keep the page id and a leaf flag, so bbolt believes it and
			// follows the garbage element offsets.
			copy(page, []byte{byte(root), byte(root >> 8), 0, 0, 0, 0, 0, 0, 0x02, 0, 0x40, 0x00, 0, 0, 0, 0})
			overwrite(t, path, root*int64(ps), page)
		}},
		{"branch page pointing at itself", func(t *testing.T, path string) {
			// Enough headers for the pending bucket's root to be a branch.
			filledQueue(t, testConfigAt(path), 120, 100)
			ps, root, _ := pageOf(t, path)
			page := make([]byte, 24)
			f, _ := os.Open(path)
			_, _ = f.ReadAt(page, root*int64(ps))
			f.Close()
			if binary.LittleEndian.Uint16(page[8:]) != 0x01 {
				t.Fatal("the pending bucket's root is not a branch page: add items")
			}
			// Element 0's child is the page itself: bbolt would descend
			// forever.
			binary.LittleEndian.PutUint64(page[16:], uint64(root))
			overwrite(t, path, root*int64(ps)+16+8, page[16:24])
		}},
		{"freelist page overwritten", func(t *testing.T, path string) {
			filledQueue(t, testConfigAt(path), 10, 2<<10)
			ps, _, _ := pageOf(t, path)
			overwrite(t, path, freelistPage(t, path, ps)*int64(ps), garbage(ps, 5))
		}},
		{"freelist naming pages beyond the file", func(t *testing.T, path string) {
			filledQueue(t, testConfigAt(path), 10, 2<<10)
			ps, _, _ := pageOf(t, path)
			fl := freelistPage(t, path, ps)
			// A valid freelist header with one ID far past the end.
			page := make([]byte, 24)
			binary.LittleEndian.PutUint64(page, uint64(fl))
			binary.LittleEndian.PutUint16(page[8:], 0x10)
			binary.LittleEndian.PutUint16(page[10:], 1)
			binary.LittleEndian.PutUint64(page[16:], 1<<40)
			overwrite(t, path, fl*int64(ps), page)
		}},
		{"every page after the meta pages overwritten", func(t *testing.T, path string) {
			filledQueue(t, testConfigAt(path), 10, 2<<10)
			ps, _, _ := pageOf(t, path)
			fi, _ := os.Stat(path)
			overwrite(t, path, int64(2*ps), garbage(int(fi.Size())-2*ps, 6))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			cfg := testConfig(t)
			if err := os.MkdirAll(dirOf(cfg.Path), 0o700); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, cfg.Path)
			damaged, _ := os.ReadFile(cfg.Path)

			var logs logBuffer
			reg := prometheus.NewRegistry()
			q, err := queue.Open(cfg, logs.logger(), reg, queue.WithClock(clk.Now))
			if err != nil {
				t.Fatalf("Open on a damaged file: %v", err)
			}
			defer q.Close()
			moved := corruptFiles(t, cfg.Path)
			want := cfg.Path + ".corrupt-20260314T090000Z"
			if len(moved) != 1 || moved[0] != want {
				t.Fatalf("moved-aside files %v, want %s", moved, want)
			}
			if kept, _ := os.ReadFile(want); !bytes.Equal(kept, damaged) {
				t.Error("the moved-aside file is not the damaged file")
			}
			if v := promtest.Value(t, reg, "kioskd_queue_recovered_files_total"); v != 1 {
				t.Errorf("recovered_files_total = %v", v)
			}
			if !contains(logs.String(), "moved aside") || !contains(logs.String(), want) {
				t.Errorf("log does not report the move: %s", logs.String())
			}
			// The new queue is empty and works.
			if st, _ := q.Stats(); st.Depth != 0 {
				t.Errorf("new queue not empty: %+v", st)
			}
			it := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})
			got, err := q.Lease()
			if err != nil || got == nil || got.Seq != it.Seq {
				t.Fatalf("Lease on the new queue: %+v, %v", got, err)
			}
		})
	}
}

func TestHealthyFileIsNotMovedAside(t *testing.T) {
	cfg := testConfig(t)
	filledQueue(t, cfg, 50, 20<<10)
	reg := prometheus.NewRegistry()
	q, err := queue.Open(cfg, quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st, _ := q.Stats(); st.Depth != 50 {
		t.Fatalf("depth %d", st.Depth)
	}
	if m := corruptFiles(t, cfg.Path); len(m) != 0 || promtest.Value(t, reg, "kioskd_queue_recovered_files_total") != 0 {
		t.Fatalf("healthy file treated as damaged: %v", m)
	}
}

func TestDamagedImageIsDeadLettered(t *testing.T) {
	cfg := testConfig(t)
	q, err := queue.Open(cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	img := fakeJPEG(64<<10, 7)
	a := enqueue(t, q, queue.Item{JPEG: img})
	b := enqueue(t, q, queue.Item{JPEG: fakeJPEG(64<<10, 8)})
	q.Close()

	// Flip bytes in the middle of the first image, where bbolt's structure
	// is untouched: only the item's checksum can tell.
	data, _ := os.ReadFile(cfg.Path)
	found := 0
	for off := 0; ; {
		i := bytes.Index(data[off:], img[1000:1064])
		if i < 0 {
			break
		}
		overwrite(t, cfg.Path, int64(off+i), bytes.Repeat([]byte{0}, 64))
		off += i + 64
		found++
	}
	if found == 0 {
		t.Fatal("image bytes not found in the file")
	}

	q, reg := open(t, cfg)
	got, err := q.Lease()
	if err != nil || got == nil || got.Seq != b.Seq {
		t.Fatalf("Lease = %v, %v; want the damaged item skipped", got != nil, err)
	}
	dead, _ := q.List(true)
	if len(dead) != 1 || dead[0].Seq != a.Seq || !contains(dead[0].LastError, "checksum") {
		t.Fatalf("dead letters %v (%d)", seqs(dead), len(dead))
	}
	if v := promtest.Value(t, reg, "kioskd_queue_errors_total", "op", "lease"); v != 1 {
		t.Errorf("errors{lease} = %v", v)
	}
}

func TestOldCorruptFilesExpire(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(t)
	cfg.TTL = time.Hour
	if err := os.MkdirAll(dirOf(cfg.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	old := cfg.Path + ".corrupt-20260314T075900Z"
	recent := cfg.Path + ".corrupt-20260314T083000Z"
	for _, p := range []string{old, recent} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	open(t, cfg, queue.WithClock(clk.Now))
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("moved-aside file older than the TTL was kept")
	}
	if _, err := os.Stat(recent); err != nil {
		t.Error("recent moved-aside file deleted")
	}
}

// freelistPage reads the freelist page ID from the newer meta page
// (bbolt's layout: 16-byte page header, freelist at meta offset 32, txid at
// 48).
func freelistPage(t *testing.T, path string, ps int) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m0, m1 := data[16:], data[ps+16:]
	m := m0
	if binary.LittleEndian.Uint64(m1[48:]) > binary.LittleEndian.Uint64(m0[48:]) {
		m = m1
	}
	return int64(binary.LittleEndian.Uint64(m[32:]))
}

func testConfigAt(path string) config.Queue {
	cfg := config.Default().Queue
	cfg.Path = path
	cfg.Encrypt = false
	cfg.MaxBytes = 64 << 20
	return cfg
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "."
}

func TestDamageFoundWhileRunning(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(t)
	reg := prometheus.NewRegistry()
	q, err := queue.Open(cfg, quiet(), reg, queue.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 30 {
		enqueue(t, q, queue.Item{JPEG: fakeJPEG(2<<10, uint64(i))})
	}
	ps, root, _ := pageOfOpen(t, q)
	// bbolt maps the file shared: the damage is visible to the open queue.
	overwrite(t, cfg.Path, root*int64(ps), garbage(ps, 9))

	if _, err := q.List(false); err == nil {
		t.Fatal("List on a damaged page succeeded")
	}
	if moved := corruptFiles(t, cfg.Path); len(moved) != 1 {
		t.Fatalf("moved-aside files %v", moved)
	}
	if v := promtest.Value(t, reg, "kioskd_queue_recovered_files_total"); v != 1 {
		t.Errorf("recovered_files_total = %v", v)
	}
	if st, err := q.Stats(); err != nil || st.Depth != 0 {
		t.Fatalf("after recovery: %+v, %v", st, err)
	}
	it := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})
	if got, err := q.Lease(); err != nil || got == nil || got.Seq != it.Seq {
		t.Fatalf("Lease after recovery: %v, %v", got, err)
	}
}

// pageOfOpen finds the pending bucket's root page of an open queue by
// reading the file: bbolt's read-only open would wait for the lock.
func pageOfOpen(t *testing.T, q *queue.Queue) (int, int64, int64) {
	t.Helper()
	tmp := t.TempDir() + "/copy.db"
	data, err := os.ReadFile(q.Path())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return pageOf(t, tmp)
}

// FuzzOpenDamagedFile writes arbitrary bytes (seeded with a real queue
// file) as the queue file: Open must never crash or hang, and whatever it
// opens must be usable.
func FuzzOpenDamagedFile(f *testing.F) {
	seedPath := f.TempDir() + "/seed.db"
	q, err := queue.Open(testConfigAt(seedPath), quiet(), prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	for i := range 8 {
		if _, err := q.Enqueue(f.Context(), queue.Item{JPEG: fakeJPEG(300+i*700, uint64(i))}); err != nil {
			f.Fatal(err)
		}
	}
	q.Close()
	seed, err := os.ReadFile(seedPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		cfg := testConfigAt(t.TempDir() + "/queue.db")
		if err := os.WriteFile(cfg.Path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		q, err := queue.Open(cfg, quiet(), prometheus.NewRegistry(), queue.WithLockTimeout(100*time.Millisecond))
		if err != nil {
			if errors.Is(err, queue.ErrLocked) {
				t.Fatalf("a damaged file reported as locked: %v", err)
			}
			return // e.g. a readable file of another format version: refused, not crashed
		}
		defer q.Close()
		if _, err := q.Stats(); err != nil {
			t.Fatalf("Stats: %v", err)
		}
		_, _ = q.List(false)
		_, _ = q.List(true)
		for range 20 {
			it, err := q.LeaseOldest()
			if err != nil || it == nil {
				break
			}
		}
		if _, err := q.Enqueue(t.Context(), queue.Item{JPEG: fakeJPEG(100, 1)}); err != nil {
			t.Fatalf("Enqueue on the opened file: %v", err)
		}
	})
}
