package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

const compactSuffix = ".compact"

// bbolt reuses freed pages but never shrinks its file: after a long outage
// has filled the queue and the drainer has emptied it, the file keeps its
// peak size. When the file is more than twice what its items need, plus
// some slack so that this stays rare, it is rewritten.
func (q *Queue) compactThreshold() int64 {
	live := q.n.pendingBytes + q.n.deadBytes
	slack := max(int64(q.cfg.MaxBytes)/4, 1<<20)
	return 2*live + slack
}

// Deleted images are biometric data, and bbolt leaves a deleted value's
// bytes in its free pages. So the file is also rewritten as soon as the
// queue is empty, and otherwise at most queue wipe interval (5 minutes)
// after the first deletion since the last rewrite: a delivered, purged or
// expired face cannot be read back from the file after that.
func (q *Queue) maybeCompactLocked() {
	size := q.fileSize()
	wipe := !q.deletedAt.IsZero() && !q.opt.readOnly &&
		(q.n.pending+q.n.dead == 0 || q.opt.now().Sub(q.deletedAt) >= q.opt.wipeEvery)
	if size <= q.compactThreshold() && !wipe {
		return
	}
	if err := q.compactLocked(); err != nil {
		q.m.errors.WithLabelValues("compact").Inc()
		q.log.Error("queue compaction failed; the file keeps its size", "err", err)
		return
	}
	q.log.Info("queue file compacted", "before_bytes", size, "after_bytes", q.fileSize())
}

// compactLocked copies the live items into a new file and renames it over
// the old one. The new file is locked before the rename, so no other
// process can slip in between, and it is complete and fsync'd before it
// replaces the old one: a crash leaves one or the other, whole.
func (q *Queue) compactLocked() error {
	tmp := q.path + compactSuffix
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("compact: %w", err)
	}
	var dst *bolt.DB
	err := guard(func() error {
		var err error
		if dst, err = bolt.Open(tmp, 0o600, q.boltOptions()); err != nil {
			return err
		}
		// Bounded transactions keep memory flat on a large queue.
		return bolt.Compact(dst, q.db, 32<<20)
	})
	if err != nil {
		if dst != nil {
			_ = dst.Close()
		}
		_ = os.Remove(tmp)
		return fmt.Errorf("compact: %w", err)
	}
	if err := keepOwner(q.path, tmp); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("compact: %w", err)
	}
	if err := os.Rename(tmp, q.path); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("compact: %w", err)
	}
	old := q.db
	q.db = dst
	_ = old.Close()
	q.deletedAt = time.Time{}
	q.m.compactions.Inc()
	if err := syncDir(filepath.Dir(q.path)); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// keepOwner gives the new file (which kioskd just created) the owner of the
// file it replaces, so that `sudo kioskd queue purge` never leaves a file
// the service user cannot open. Only root can, and needs to, change it.
func keepOwner(old, created string) error {
	fi, err := os.Lstat(old)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || (int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid()) {
		return nil
	}
	return os.Lchown(created, int(st.Uid), int(st.Gid))
}
