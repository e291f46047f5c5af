package qfile_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kioskd/kioskd/queue/qfile"
)

var now = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

func options(path string) qfile.Options {
	return qfile.Options{Path: path, LockTimeout: 200 * time.Millisecond, Now: func() time.Time { return now },
		Log: slog.New(slog.DiscardHandler)}
}

// fill writes n values of size bytes into bucket "b" of a real file.
func fill(t *testing.T, db *bolt.DB, n, size int, mark byte) {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("b"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put([]byte{byte(i >> 8), byte(i)}, bytes.Repeat([]byte{mark}, size)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSymlinksAreNotFollowed: a queue path, or its directory, that is a
// symbolic link is refused, and the file it points to is left as it was.
func TestSymlinksAreNotFollowed(t *testing.T) {
	target := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(target, []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "queue.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	realDir := t.TempDir()
	dirLink := filepath.Join(t.TempDir(), "state")
	if err := os.Symlink(realDir, dirLink); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"file": link, "directory": filepath.Join(dirLink, "queue.db")} {
		for _, mode := range []string{"service", "read-only", "existing"} {
			o := options(path)
			o.ReadOnly, o.Existing = mode == "read-only", mode == "existing"
			db, err := qfile.New(o).Open()
			if db != nil {
				_ = db.Close()
			}
			if !errors.Is(err, qfile.ErrUnsafePath) || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("%s link, %s open: err = %v, want ErrUnsafePath", name, mode, err)
			}
		}
	}
	fi, _ := os.Stat(target)
	b, _ := os.ReadFile(target)
	if fi.Mode().Perm() != 0o644 || string(b) != "root:x:0:0\n" {
		t.Errorf("the link's target changed: mode %04o, %q", fi.Mode().Perm(), b)
	}
	if entries, _ := os.ReadDir(realDir); len(entries) != 0 {
		t.Errorf("files created through the directory link: %v", entries)
	}
}

// TestTruncatedFileIsCaughtBeforeBboltMapsIt: a file cut short (bbolt
// would fault reading past its end) is reported by an operator's open and
// moved aside by the service's, which then starts an empty file.
func TestTruncatedFileIsCaughtBeforeBboltMapsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	db, err := qfile.New(options(path)).Open()
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db, 200, 4000, 'x')
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}

	o := options(path)
	o.Existing = true
	if _, err := qfile.New(o).Open(); !errors.Is(err, qfile.ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("existing open of a truncated file: err = %v, want ErrCorrupt (truncated)", err)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("an operator's open moved the file: %v", m)
	}

	moved := 0
	o = options(path)
	o.MovedAside = func() { moved++ }
	db, err = qfile.New(o).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, _ := filepath.Glob(path + ".corrupt-*")
	if moved != 1 || len(m) != 1 || !strings.HasSuffix(m[0], ".corrupt-20260314T090000Z") {
		t.Fatalf("moved = %d, files %v", moved, m)
	}
	if err := qfile.Verify(db); err != nil {
		t.Fatalf("the fresh file: %v", err)
	}
}

// TestCompactWipesDeletedValues: after Compact the bytes of deleted values
// are no longer in the file, the live ones are, and the file shrank.
func TestCompactWipesDeletedValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	f := qfile.New(options(path))
	db, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db, 100, 3000, 'D')
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("b")); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("live"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), bytes.Repeat([]byte{'L'}, 3000))
	})
	if err != nil {
		t.Fatal(err)
	}
	before := f.Size()
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, bytes.Repeat([]byte{'D'}, 3000)) {
		t.Fatal("test premise: the deleted values should still be in the free pages")
	}
	nd, err := f.Compact(db)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	defer nd.Close()
	raw, _ = os.ReadFile(path)
	if bytes.Contains(raw, bytes.Repeat([]byte{'D'}, 64)) {
		t.Error("deleted values are still in the file after Compact")
	}
	if !bytes.Contains(raw, bytes.Repeat([]byte{'L'}, 3000)) {
		t.Error("the live value is not in the compacted file")
	}
	if after := f.Size(); after >= before {
		t.Errorf("file size %d -> %d, want smaller", before, after)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("compaction left its temporary file: %v", err)
	}
}

// TestRemoveLeftovers: a half-done compaction and damaged files older than
// the TTL go; a younger damaged file stays.
func TestRemoveLeftovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	old := path + ".corrupt-" + now.Add(-49*time.Hour).Format("20060102T150405Z")
	young := path + ".corrupt-" + now.Add(-time.Hour).Format("20060102T150405Z") + "-2"
	for _, p := range []string{path + ".compact", old, young} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	qfile.New(options(path)).RemoveLeftovers(48 * time.Hour)
	for p, want := range map[string]bool{path + ".compact": false, old: false, young: true} {
		_, err := os.Stat(p)
		if exists := err == nil; exists != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), exists, want)
		}
	}
}
