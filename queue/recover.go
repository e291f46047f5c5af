package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// A damaged bbolt file does not always fail cleanly: bbolt follows page
// numbers found in the file and may panic, or touch memory past the end
// of a truncated file (SIGBUS). guard turns both into ErrCorrupt so that
// kioskd moves the file aside instead of crash-looping on it.
func guard(fn func() error) (err error) {
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

func (q *Queue) boltOptions() *bolt.Options {
	return &bolt.Options{Timeout: q.opt.lockTimeout, FreelistType: bolt.FreelistMapType,
		ReadOnly: q.opt.readOnly, OpenFile: openNoFollow}
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
func (q *Queue) checkPath() (exists bool, err error) {
	dir := filepath.Dir(q.path)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && q.opt.existing:
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
	fi, err = os.Lstat(q.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("open queue: %w", err)
	case fi.Mode()&os.ModeSymlink != 0:
		return false, fmt.Errorf("open queue: %w: %s is a symbolic link: kioskd does not follow links to its queue; name the file itself in queue.path", ErrUnsafePath, q.path)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("open queue: %w: %s is not a regular file", ErrUnsafePath, q.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		q.log.Warn("queue file is accessible to other users; kioskd leaves the mode of a file it did not create alone: chmod 0600 it",
			"path", q.path, "mode", fmt.Sprintf("%04o", perm))
	}
	return true, nil
}

// openFile opens the bbolt file, moving it aside when it is damaged. The
// file is checked under an exclusive lock, so a file another process is
// writing is never mistaken for a damaged one.
func (q *Queue) openFile() (*bolt.DB, error) {
	exists, err := q.checkPath()
	if err != nil {
		return nil, err
	}
	if !exists && q.opt.existing {
		return nil, fmt.Errorf("open queue: %w at %s: nothing has been queued yet", ErrNoFile, q.path)
	}
	if q.opt.readOnly {
		return q.openReadOnly()
	}
	created, err := q.precheck(!exists)
	if err != nil {
		return nil, err
	}
	var db *bolt.DB
	err = guard(func() error {
		var err error
		db, err = bolt.Open(q.path, 0o600, q.boltOptions())
		return err
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("open queue: %w", &LockedError{Path: q.path})
	case err != nil:
		q.log.Error("queue file cannot be opened", "path", q.path, "err", err)
		// bbolt released its lock on the way out (unless it panicked, in
		// which case the lock looks held and the error is returned).
		if err := q.withLock(false, func(f *os.File) error { return q.damaged(err) }); err != nil {
			return nil, err
		}
		return q.openFresh()
	}
	if created {
		if err := syncDir(filepath.Dir(q.path)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open queue: %w", err)
		}
	}
	if verr := verify(db); verr != nil {
		// Still holding bbolt's lock: move the file, then let go of it.
		merr := q.damaged(verr)
		_ = db.Close()
		if merr != nil {
			return nil, merr
		}
		return q.openFresh()
	}
	return db, nil
}

// openReadOnly opens an existing file without writing to it: under a
// shared lock, read-only, damage reported rather than repaired.
func (q *Queue) openReadOnly() (*bolt.DB, error) {
	err := q.withLockMode(syscall.LOCK_SH, os.O_RDONLY, false, func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("open queue: %w", err)
		}
		if fi.Size() == 0 {
			return fmt.Errorf("open queue: %w at %s: the file is empty", ErrNoFile, q.path)
		}
		if cerr := checkLayout(f, fi.Size()); cerr != nil {
			return q.damaged(cerr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var db *bolt.DB
	err = guard(func() error {
		var err error
		db, err = bolt.Open(q.path, 0o600, q.boltOptions())
		return err
	})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("open queue: %w", &LockedError{Path: q.path})
	case err != nil:
		return nil, q.damaged(err)
	}
	if verr := verify(db); verr != nil {
		_ = db.Close()
		return nil, q.damaged(verr)
	}
	return db, nil
}

// damaged moves a damaged file aside, or, when this open must not change
// or create files (an operator command), reports the damage.
func (q *Queue) damaged(cause error) error {
	if q.opt.existing {
		if !errors.Is(cause, ErrCorrupt) {
			cause = fmt.Errorf("%w: %v", ErrCorrupt, cause)
		}
		return fmt.Errorf("open queue: %s: %w (kioskd run moves it aside at its next start)", q.path, cause)
	}
	return q.moveAside(cause)
}

func (q *Queue) openFresh() (*bolt.DB, error) {
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(q.path, 0o600, q.boltOptions())
		return err
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open queue: %w", &LockedError{Path: q.path})
	}
	if err != nil {
		return nil, fmt.Errorf("open queue: new file: %w", err)
	}
	if err := syncDir(filepath.Dir(q.path)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open queue: %w", err)
	}
	return db, nil
}

// precheck validates the file's meta pages, its length and its freelist
// before bbolt maps it: those are what bbolt trusts blindly at Open. It
// creates the file (0600) when create is set, and reports whether it did.
func (q *Queue) precheck(create bool) (created bool, err error) {
	err = q.withLock(create, func(f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("open queue: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("open queue: %w: %s is not a regular file", ErrUnsafePath, q.path)
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
func (q *Queue) withLock(create bool, fn func(f *os.File) error) error {
	return q.withLockMode(syscall.LOCK_EX, os.O_RDWR, create, fn)
}

func (q *Queue) withLockMode(how, flag int, create bool, fn func(f *os.File) error) error {
	if create {
		flag |= os.O_CREATE | os.O_EXCL
	}
	f, err := openNoFollow(q.path, flag, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("open queue: %w: %s is a symbolic link", ErrUnsafePath, q.path)
	}
	if err != nil {
		return fmt.Errorf("open queue: %w", err)
	}
	defer f.Close()
	deadline := time.Now().Add(q.opt.lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("open queue: lock %s: %w", q.path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("open queue: %w", &LockedError{Path: q.path})
		}
		t := time.NewTimer(50 * time.Millisecond)
		<-t.C
	}
	return fn(f)
}

// moveAside renames the damaged file to <path>.corrupt-<UTC time>, keeping
// its contents for inspection; the caller then opens a new file.
func (q *Queue) moveAside(cause error) error {
	base := q.path + corruptInfix + q.opt.now().UTC().Format(corruptTime)
	dst := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(q.path, dst); err != nil {
		return fmt.Errorf("open queue: move damaged file aside: %w", err)
	}
	if err := syncDir(filepath.Dir(q.path)); err != nil {
		return fmt.Errorf("open queue: %w", err)
	}
	q.m.recovered.Inc()
	q.log.Error("queue file is damaged: moved aside, continuing with an empty queue",
		"path", q.path, "moved_to", dst, "err", cause)
	return nil
}

// recoverLocked handles damage found while running: if the file fails a
// full check it is moved aside and replaced; otherwise the failure was not
// the file's and is only reported.
func (q *Queue) recoverLocked(cause error) {
	if verify(q.db) == nil {
		q.log.Error("queue operation failed unexpectedly", "err", cause, "stack", string(debug.Stack()))
		return
	}
	if q.opt.existing || q.opt.readOnly {
		q.log.Error("queue file is damaged; kioskd run moves it aside at its next start", "err", cause)
		return
	}
	if err := q.moveAside(cause); err != nil {
		q.log.Error("damaged queue file could not be moved aside", "err", err)
		return
	}
	_ = q.db.Close()
	db, err := q.openFresh()
	if err == nil {
		q.db = db
		err = q.load()
	}
	if err != nil {
		// Leave the queue closed rather than writing to a broken file; the
		// agent keeps making live decisions.
		q.closed = true
		q.down.Store(true)
		q.log.Error("queue unavailable after moving a damaged file aside", "err", err)
		return
	}
	clear(q.leased)
	q.publishLocked()
}

// removeOldCorrupt deletes moved-aside files older than the TTL: they
// hold faces too, and no face stays on disk much past the TTL.
func (q *Queue) removeOldCorrupt() {
	matches, _ := filepath.Glob(q.path + corruptInfix + "*")
	now := q.opt.now()
	for _, m := range matches {
		stamp := strings.TrimPrefix(m, q.path+corruptInfix)
		if len(stamp) > len(corruptTime) {
			stamp = stamp[:len(corruptTime)]
		}
		t, err := time.Parse(corruptTime, stamp)
		if err != nil || now.Sub(t) < q.cfg.TTL {
			continue
		}
		if err := os.Remove(m); err == nil {
			q.log.Info("deleted a damaged queue file older than the TTL", "path", m)
		}
	}
}

// verify reads every bucket, key and value and runs bbolt's consistency
// check. It runs under guard first, so that bbolt's own checker (which
// runs on a goroutine of its own, beyond recover) only sees pages that
// were already read safely.
func verify(db *bolt.DB) error {
	return guard(func() error {
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

func syncDir(dir string) error {
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
