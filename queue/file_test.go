package queue_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/kioskd/kioskd/queue"
)

// fileState is what must not change when the file is only read.
type fileState struct {
	sum   [32]byte
	mode  os.FileMode
	mtime time.Time
	names []string
}

func stateOf(t *testing.T, path string) fileState {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	entries, _ := os.ReadDir(filepath.Dir(path))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return fileState{sha256.Sum256(b), fi.Mode(), fi.ModTime(), names}
}

func (a fileState) equal(b fileState) bool {
	return a.sum == b.sum && a.mode == b.mode && a.mtime.Equal(b.mtime) && strings.Join(a.names, ",") == strings.Join(b.names, ",")
}

// TestReadOnlyOpen: stats and list read the file without changing a byte,
// its mode or its directory, also when the file is damaged (reported, not
// moved aside) and when its mode is loose; a missing file is ErrNoFile and
// is not created.
func TestReadOnlyOpen(t *testing.T) {
	cfg := testConfig(t)
	q, _ := open(t, cfg)
	for i := range 3 {
		enqueue(t, q, queue.Item{JPEG: fakeJPEG(4<<10, uint64(i))})
	}
	q.Close()
	if err := os.Chmod(cfg.Path, 0o640); err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, cfg.Path)
	ro, err := queue.Open(cfg, quiet(), prometheus.NewRegistry(), queue.WithReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	st, err := ro.Stats()
	if err != nil || st.Depth != 3 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	if items, err := ro.List(false); err != nil || len(items) != 3 {
		t.Fatalf("list: %d items, %v", len(items), err)
	}
	if _, err := ro.Purge(); err == nil {
		t.Error("purge through a read-only queue succeeded")
	}
	// A reader does not keep the service out for longer than it reads,
	// and two readers share the file.
	ro2, err := queue.Open(cfg, quiet(), prometheus.NewRegistry(), queue.WithReadOnly())
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	ro2.Close()
	ro.Close()
	if after := stateOf(t, cfg.Path); !after.equal(before) {
		t.Fatalf("read-only open changed the file or its directory: %+v -> %+v", before, after)
	}

	// Damage: reported, not repaired.
	b, _ := os.ReadFile(cfg.Path)
	copy(b[:4096], bytes.Repeat([]byte{0xAA}, 4096))
	copy(b[4096:8192], bytes.Repeat([]byte{0xAA}, 4096))
	if err := os.WriteFile(cfg.Path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	before = stateOf(t, cfg.Path)
	for _, opt := range []queue.Option{queue.WithReadOnly(), queue.WithExisting()} {
		_, err = queue.Open(cfg, quiet(), prometheus.NewRegistry(), opt)
		if !errors.Is(err, queue.ErrCorrupt) || !strings.Contains(err.Error(), "moves it aside") {
			t.Fatalf("damaged file: err = %v, want ErrCorrupt", err)
		}
	}
	if after := stateOf(t, cfg.Path); !after.equal(before) {
		t.Fatal("an operator open moved or changed a damaged file")
	}

	// Nothing there: nothing created, not even the directory.
	missing := testConfig(t)
	for _, opt := range []queue.Option{queue.WithReadOnly(), queue.WithExisting()} {
		if _, err := queue.Open(missing, quiet(), prometheus.NewRegistry(), opt); !errors.Is(err, queue.ErrNoFile) {
			t.Fatalf("missing file: err = %v, want ErrNoFile", err)
		}
	}
	if _, err := os.Lstat(filepath.Dir(missing.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory was created: %v", err)
	}
}

// TestNewerFormatIsRefused: a file written by a newer kioskd (format 2) is
// refused with the message the packaging documents, and left in place.
func TestNewerFormatIsRefused(t *testing.T) {
	cfg := testConfig(t)
	q, _ := open(t, cfg)
	enqueue(t, q, queue.Item{JPEG: fakeJPEG(1<<10, 1)})
	q.Close()
	db, err := bolt.Open(cfg.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{2}) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := stateOf(t, cfg.Path)
	for _, opts := range [][]queue.Option{nil, {queue.WithReadOnly()}} {
		_, err := queue.Open(cfg, quiet(), prometheus.NewRegistry(), opts...)
		want := "queue file format 2 is newer than this kioskd supports (1): upgrade kioskd, or move the file aside"
		if !errors.Is(err, queue.ErrFormat) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want ErrFormat with %q", err, want)
		}
	}
	if after := stateOf(t, cfg.Path); !after.equal(before) {
		t.Fatal("the newer file was changed or moved")
	}
}

// TestDeletedFacesLeaveTheFile scans the raw file for the image bytes of
// items after ack, purge and TTL expiry: an emptied queue is rewritten at
// once, and a queue still holding items within the wipe interval. The
// bytes of an item still queued are found, so the scan can fail.
func TestDeletedFacesLeaveTheFile(t *testing.T) {
	found := func(t *testing.T, path string, img []byte) bool {
		t.Helper()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Any 64-byte run of the image is enough to recover it.
		return bytes.Contains(raw, img[len(img)/2:len(img)/2+64])
	}
	clk := newFakeClock()
	setup := func(t *testing.T) (*queue.Queue, string) {
		cfg := testConfig(t)
		cfg.TTL = time.Hour
		q, _ := open(t, cfg, append(clockOptions(clk), queue.WithWipeInterval(5*time.Minute))...)
		return q, cfg.Path
	}
	t.Run("ack", func(t *testing.T) {
		q, path := setup(t)
		img := testJPEG(t, "chelsea.jpg")
		it := enqueue(t, q, queue.Item{JPEG: img})
		if !found(t, path, img) {
			t.Fatal("the queued image is not in the file: the scan cannot see anything")
		}
		if err := q.Ack(it.Seq); err != nil {
			t.Fatal(err)
		}
		if found(t, path, img) {
			t.Fatal("acknowledged face still in the file of an empty queue")
		}
	})
	t.Run("purge", func(t *testing.T) {
		q, path := setup(t)
		imgs := [][]byte{fakeJPEG(20<<10, 1), fakeJPEG(20<<10, 2)}
		for _, img := range imgs {
			enqueue(t, q, queue.Item{JPEG: img})
		}
		if _, err := q.Purge(); err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			if found(t, path, img) {
				t.Fatal("purged face still in the file")
			}
		}
	})
	t.Run("ttl", func(t *testing.T) {
		q, path := setup(t)
		img := fakeJPEG(20<<10, 3)
		enqueue(t, q, queue.Item{JPEG: img})
		clk.Advance(2 * time.Hour)
		if n, err := q.Expire(); err != nil || n != 1 {
			t.Fatalf("expire: %d %v", n, err)
		}
		if found(t, path, img) {
			t.Fatal("expired face still in the file")
		}
	})
	t.Run("overflow", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.TTL, cfg.MaxItems = time.Hour, 2
		q, _ := open(t, cfg, append(clockOptions(clk), queue.WithWipeInterval(5*time.Minute))...)
		gone := fakeJPEG(20<<10, 6)
		enqueue(t, q, queue.Item{JPEG: gone})
		enqueue(t, q, queue.Item{JPEG: fakeJPEG(20<<10, 7)})
		enqueue(t, q, queue.Item{JPEG: fakeJPEG(20<<10, 8)})
		if st, _ := q.Stats(); st.Depth != 2 {
			t.Fatalf("depth %d, want 2 after an overflow", st.Depth)
		}
		clk.Advance(5 * time.Minute)
		q.Maintain()
		if found(t, cfg.Path, gone) {
			t.Fatal("face dropped by max_items still in the file after the wipe interval")
		}
	})
	t.Run("ack with items left", func(t *testing.T) {
		q, path := setup(t)
		gone, kept := fakeJPEG(20<<10, 4), fakeJPEG(20<<10, 5)
		it := enqueue(t, q, queue.Item{JPEG: gone})
		enqueue(t, q, queue.Item{JPEG: kept})
		if err := q.Ack(it.Seq); err != nil {
			t.Fatal(err)
		}
		clk.Advance(5 * time.Minute)
		q.Maintain()
		if found(t, path, gone) {
			t.Fatal("acknowledged face still in the file after the wipe interval")
		}
		if !found(t, path, kept) {
			t.Fatal("the face still queued is gone from the file")
		}
		if st, _ := q.Stats(); st.Depth != 1 {
			t.Fatalf("depth %d after the rewrite, want 1", st.Depth)
		}
	})
}
