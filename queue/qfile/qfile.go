// Package qfile is the queue's bbolt file on disk: opening it without
// following links, the checks made before bbolt maps it, moving a damaged
// file aside, rewriting it to shrink it and wipe deleted images, and
// dropping its mapped pages from resident memory. What the items in it mean
// (leases, retries, bounds, dead letters) is package queue's.
package qfile

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrCorrupt wraps damage found in the file.
	ErrCorrupt = errors.New("queue file is corrupt")
	// ErrLocked is matched by LockedError.
	ErrLocked = errors.New("queue file is in use by another process")
	// ErrNoFile: an open that must not create found no file.
	ErrNoFile = errors.New("no queue file")
	// ErrUnsafePath: the file or its directory is a link or not a regular
	// file or directory.
	ErrUnsafePath = errors.New("unsafe queue path")
)

// LockedError names the file another process holds.
type LockedError struct{ Path string }

func (e *LockedError) Error() string {
	return fmt.Sprintf("queue file %s is in use by another process", e.Path)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Options says how the file is opened.
type Options struct {
	Path        string
	LockTimeout time.Duration // how long to wait for another process's lock
	// ReadOnly opens an existing file under a shared lock and changes
	// nothing on disk; it implies Existing.
	ReadOnly bool
	// Existing never creates a file or directory and reports damage
	// instead of moving the file aside.
	Existing   bool
	Now        func() time.Time // names moved-aside files and ages them
	Log        *slog.Logger
	MovedAside func() // called after a damaged file was moved aside
}

// File is the queue file's handling; it holds no open database itself.
type File struct {
	o Options
}

// New returns the handling of the file at o.Path.
func New(o Options) *File {
	o.Path = filepath.Clean(o.Path)
	if o.ReadOnly {
		o.Existing = true
	}
	if o.MovedAside == nil {
		o.MovedAside = func() {}
	}
	return &File{o: o}
}

// Path is the file's path.
func (q *File) Path() string { return q.o.Path }

// Size is the file's size in bytes, 0 when it cannot be read.
func (q *File) Size() int64 {
	fi, err := os.Stat(q.o.Path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// A damaged bbolt file does not always fail cleanly: bbolt follows page
// numbers found in the file and may panic, or touch memory past the end
// of a truncated file (SIGBUS). Guard turns both into ErrCorrupt so that
// kioskd moves the file aside instead of crash-looping on it; every bbolt
// call on the queue file runs under it.
func Guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

const corruptInfix = ".corrupt-"

// corruptTime is the UTC timestamp in a moved-aside file's name.
const corruptTime = "20060102T150405Z"

func (q *File) boltOptions() *bolt.Options {
	return &bolt.Options{Timeout: q.o.LockTimeout, FreelistType: bolt.FreelistMapType,
		ReadOnly: q.o.ReadOnly, OpenFile: openNoFollow}
}

// openNoFollow is os.OpenFile refusing a symbolic link as the last element
// of the path (ELOOP), so that bbolt never opens a file a link points to.
func openNoFollow(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag|syscall.O_NOFOLLOW, perm)
}

// checkPath refuses a queue file or directory that is a symbolic link or
// not a regular file or directory, and creates a missing directory (0700)
// unless the open must not create anything. It reports whether the file
// exists. A file with group or other permissions is only warned about:
// kioskd changes the mode of no file it did not create.
func (q *File) checkPath() (exists bool, err error) {
	dir := filepath.Dir(q.o.Path)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && q.o.Existing:
		return false, nil
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("open queue: %w", err)
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("open queue: %w", err)
	case fi.Mode()&os.ModeSymlink != 0:
		return false, fmt.Errorf("open queue: %w: directory %s is a symbolic link: name the real directory in queue.path", ErrUnsafePath, dir)
	case !fi.IsDir():
		return false, fmt.Errorf("open queue: %w: %s is not a directory", ErrUnsafePath, dir)
	}
	fi, err = os.Lstat(q.o.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("open queue: %w", err)
	case fi.Mode()&os.ModeSymlink != 0:
		return false, fmt.Errorf("open queue: %w: %s is a symbolic link: kioskd does not follow links to its queue; name the file itself in queue.path", ErrUnsafePath, q.o.Path)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("open queue: %w: %s is not a regular file", ErrUnsafePath, q.o.Path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		q.o.Log.Warn("queue file is accessible to other users; kioskd leaves the mode of a file it did not create alone: chmod 0600 it",
			"path", q.o.Path, "mode", fmt.Sprintf("%04o", perm))
	}
	return true, nil
}

// Open opens the bbolt file, moving it aside (and starting an empty one)
// when it is damaged, unless Existing says to report the damage instead.
// The file is checked under an exclusive lock, so a file another process
// is writing is never mistaken for a damaged one.
func (q *File) Open() (*bolt.DB, error) {
	exists, err := q.checkPath()
	if err != nil {
		return nil, err
	}
	if !exists && q.o.Existing {
		return nil, fmt.Errorf("open queue: %w at %s: nothing has been queued yet", ErrNoFile, q.o.Path)
	}
	if q.o.ReadOnly {
		return q.openReadOnly()
	}
	created, err := q.precheck(!exists)
	if err != nil {
		return nil, err
	}
	db, err := q.openBolt()
	switch {
	case errors.Is(err, ErrLocked):
		return nil, err
	case err != nil:
		q.o.Log.Error("queue file cannot be opened", "path", q.o.Path, "err", err)
		// bbolt released its lock on the way out (unless it panicked, in
		// which case the lock looks held and the error is returned).
		if err := q.withLock(false, func(f *os.File) error { return q.damaged(err) }); err != nil {
			return nil, err
		}
		return q.OpenFresh()
	}
	if created {
		if err := SyncDir(filepath.Dir(q.o.Path)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open queue: %w", err)
		}
	}
	if verr := Verify(db); verr != nil {
		// Still holding bbolt's lock: move the file, then let go of it.
		merr := q.damaged(verr)
		_ = db.Close()
		if merr != nil {
			return nil, merr
		}
		return q.OpenFresh()
	}
	return db, nil
}

// openBolt is bolt.Open under Guard; another process's lock is a
// LockedError.
func (q *File) openBolt() (*bolt.DB, error) {
	var db *bolt.DB
	err := Guard(func() error {
		var err error
		db, err = bolt.Open(q.o.Path, 0o600, q.boltOptions())
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open queue: %w", &LockedError{Path: q.o.Path})
	}
	return db, err
}

// openReadOnly opens an existing file without writing to it: under a
// shared lock, read-only, damage reported rather than repaired.
func (q *File) openReadOnly() (*bolt.DB, error) {
	err := q.withLockMode(syscall.LOCK_SH, os.O_RDONLY, false, func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("open queue: %w", err)
		}
		if fi.Size() == 0 {
			return fmt.Errorf("open queue: %w at %s: the file is empty", ErrNoFile, q.o.Path)
		}
		if cerr := checkLayout(f, fi.Size()); cerr != nil {
			return q.damaged(cerr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	db, err := q.openBolt()
	switch {
	case errors.Is(err, ErrLocked):
		return nil, err
	case err != nil:
		return nil, q.damaged(err)
	}
	if verr := Verify(db); verr != nil {
		_ = db.Close()
		return nil, q.damaged(verr)
	}
	return db, nil
}

// damaged moves a damaged file aside, or, when this open must not change
// or create files (an operator command), reports the damage.
func (q *File) damaged(cause error) error {
	if q.o.Existing {
		if !errors.Is(cause, ErrCorrupt) {
			cause = fmt.Errorf("%w: %v", ErrCorrupt, cause)
		}
		return fmt.Errorf("open queue: %s: %w (kioskd run moves it aside at its next start)", q.o.Path, cause)
	}
	return q.MoveAside(cause)
}

// OpenFresh opens (creating) the file after a damaged one was moved aside.
func (q *File) OpenFresh() (*bolt.DB, error) {
	db, err := q.openBolt()
	if errors.Is(err, ErrLocked) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("open queue: new file: %w", err)
	}
	if err := SyncDir(filepath.Dir(q.o.Path)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	return db, nil
}

// precheck validates the file's meta pages, its length and its freelist
// before bbolt maps it: those are what bbolt trusts blindly at Open. It
// creates the file (0600) when create is set, and reports whether it did.
func (q *File) precheck(create bool) (created bool, err error) {
	err = q.withLock(create, func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("open queue: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("open queue: %w: %s is not a regular file", ErrUnsafePath, q.o.Path)
		}
		if fi.Size() == 0 {
			created = true
			return nil
		}
		if cerr := checkLayout(f, fi.Size()); cerr != nil {
			return q.damaged(cerr)
		}
		return nil
	})
	return created, err
}

// withLock runs fn with the file open and exclusively flock'ed, as bbolt
// locks it, waiting up to the lock timeout. With create it makes the file
// (0600, failing if it appeared meanwhile).
func (q *File) withLock(create bool, fn func(f *os.File) error) error {
	return q.withLockMode(syscall.LOCK_EX, os.O_RDWR, create, fn)
}

func (q *File) withLockMode(how, flag int, create bool, fn func(f *os.File) error) error {
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := openNoFollow(q.o.Path, flag, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("open queue: %w: %s is a symbolic link", ErrUnsafePath, q.o.Path)
	}
	if err != nil {
		return fmt.Errorf("open queue: %w", err)
	}
	defer f.Close()
	deadline := time.Now().Add(q.o.LockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("open queue: lock %s: %w", q.o.Path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("open queue: %w", &LockedError{Path: q.o.Path})
		}
		t := time.NewTimer(50 * time.Millisecond)
		<-t.C
	}
	return fn(f)
}

// MoveAside renames the damaged file to <path>.corrupt-<UTC time>, keeping
// its contents for inspection; the caller then opens a new file.
func (q *File) MoveAside(cause error) error {
	base := q.o.Path + corruptInfix + q.o.Now().UTC().Format(corruptTime)
	dst := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(q.o.Path, dst); err != nil {
		return fmt.Errorf("open queue: move damaged file aside: %w", err)
	}
	if err := SyncDir(filepath.Dir(q.o.Path)); err != nil {
		return fmt.Errorf("open queue: %w", err)
	}
	q.o.MovedAside()
	q.o.Log.Error("queue file is damaged: moved aside, continuing with an empty queue",
		"path", q.o.Path, "moved_to", dst, "err", cause)
	return nil
}

// RemoveLeftovers deletes a compaction left half-done and moved-aside
// files older than ttl: they hold faces too, and no face stays on disk
// much past the TTL. Only the service's lock holder may call it.
func (q *File) RemoveLeftovers(ttl time.Duration) {
	if err := os.Remove(q.o.Path + compactSuffix); err == nil {
		q.o.Log.Info("removed an unfinished compaction", "path", q.o.Path+compactSuffix)
	}
	matches, _ := filepath.Glob(q.o.Path + corruptInfix + "*")
	now := q.o.Now()
	for _, m := range matches {
		stamp := strings.TrimPrefix(m, q.o.Path+corruptInfix)
		if len(stamp) > len(corruptTime) {
			stamp = stamp[:len(corruptTime)]
		}
		t, err := time.Parse(corruptTime, stamp)
		if err != nil || now.Sub(t) < ttl {
			continue
		}
		if err := os.Remove(m); err == nil {
			q.o.Log.Info("deleted a damaged queue file older than the TTL", "path", m)
		}
	}
}

// Verify reads every bucket, key and value and runs bbolt's consistency
// check. It runs under Guard first, so that bbolt's own checker (which
// runs on a goroutine of its own, beyond recover) only sees pages that
// were already read safely.
func Verify(db *bolt.DB) error {
	return Guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var sink byte
			var walk func(b *bolt.Bucket) error
			walk = func(b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if v == nil {
						if child := b.Bucket(k); child != nil {
							return walk(child)
						}
						return nil
					}
					if len(v) > 0 {
						sink ^= v[0] ^ v[len(v)-1]
					}
					return nil
				})
			}
			err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
			_ = sink
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			var problems []string
			for err := range tx.Check() {
				if len(problems) < 5 {
					problems = append(problems, err.Error())
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(problems, "; "))
			}
			return nil
		})
	})
}

// SyncDir fsyncs a directory, making a create or rename in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
