package queue

import "context"

// lock is the queue's mutex as a one-slot channel, so that a caller with a
// context (Enqueue, from the decision worker) can stop waiting for it: a
// compaction or a slow fsync holding it must not hold a live decision past
// its deadline.
type lock chan struct{}

func newLock() lock { return make(lock, 1) }

func (l lock) Lock()   { l <- struct{}{} }
func (l lock) Unlock() { <-l }

// LockContext waits for the lock until ctx ends.
func (l lock) LockContext(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
