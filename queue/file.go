package queue

import (
	"runtime/debug"
	"time"

	"github.com/kioskd/kioskd/queue/qfile"
)

// guard runs a bbolt call on the queue file so that damage becomes
// ErrCorrupt instead of a crash (see qfile.Guard).
func guard(fn func() error) error { return qfile.Guard(fn) }

// recoverLocked handles damage found while running: if the file fails a
// full check it is moved aside and replaced; otherwise the failure was not
// the file's and is only reported.
func (q *Queue) recoverLocked(cause error) {
	if qfile.Verify(q.db) == nil {
		q.log.Error("queue operation failed unexpectedly", "err", cause, "stack", string(debug.Stack()))
		return
	}
	if q.opt.existing || q.opt.readOnly {
		q.log.Error("queue file is damaged; kioskd run moves it aside at its next start", "err", cause)
		return
	}
	if err := q.file.MoveAside(cause); err != nil {
		q.log.Error("damaged queue file could not be moved aside", "err", err)
		return
	}
	_ = q.db.Close()
	db, err := q.file.OpenFresh()
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

// bbolt reuses freed pages but never shrinks its file: after a long outage
// has filled the queue and the drainer has emptied it, the file keeps its
// peak size. When the file is more than twice what its items need, plus
// some slack so that this stays rare, it is rewritten.
func (q *Queue) compactThreshold() int64 {
	live := q.n.bytes()
	slack := max(int64(q.cfg.MaxBytes)/4, 1<<20)
	return 2*live + slack
}

// Deleted images are biometric data, and bbolt leaves a deleted value's
// bytes in its free pages. So the file is also rewritten as soon as the
// queue is empty, and otherwise at most queue wipe interval (5 minutes)
// after the first deletion since the last rewrite: a delivered, purged or
// expired face cannot be read back from the file after that.
//
// Why the rewrite runs under q.mu, which Ack, purge, expiry and Maintain
// hold: bolt.Compact reads the whole source in one read transaction
// (walk's db.View, bbolt v1.4.3), and while a read transaction is open a
// write transaction that has to grow the file's mapping waits for it
// inside bbolt (db.mmap takes mmaplock), with no context to end the wait.
// Run outside q.mu, an Enqueue from the decision worker arriving during a
// rewrite could wait inside bbolt for the whole rewrite; under q.mu it
// waits in LockContext, which its context ends (TestEnqueueContextBoundsTheWait).
// Readiness (Err) and the gauges (the collector's snapshot) never take
// q.mu; in the service its only other users are the drainer, which runs
// the rewrite itself (Ack, Expire, Maintain), and that Enqueue. The
// `kioskd queue` commands are other processes. The fsync of each commit stays under q.mu too: Enqueue promises
// durability on return, and q.n must change with the commit it describes.
// Moving the rewrite out would take a copier of our own working in bounded
// read transactions, an InitialMmapSize covering queue.max_bytes, and a
// check (or replay) under q.mu of writes made meanwhile before the rename.
func (q *Queue) maybeCompactLocked() {
	size := q.file.Size()
	wipe := !q.deletedAt.IsZero() && !q.opt.readOnly &&
		(q.n.items() == 0 || q.opt.now().Sub(q.deletedAt) >= q.opt.wipeEvery)
	if size <= q.compactThreshold() && !wipe {
		return
	}
	if err := q.compactLocked(); err != nil {
		q.m.errors.WithLabelValues("compact").Inc()
		q.log.Error("queue compaction failed; the file keeps its size", "err", err)
		return
	}
	q.log.Info("queue file compacted", "before_bytes", size, "after_bytes", q.file.Size())
}

func (q *Queue) compactLocked() error {
	db, err := q.file.Compact(q.db)
	if db != nil {
		old := q.db
		q.db = db
		_ = old.Close()
		q.deletedAt = time.Time{}
		q.m.compactions.Inc()
	}
	return err
}
