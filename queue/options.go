package queue

import (
	"math/rand/v2"
	"time"
)

// Option configures a Queue (Open) or a Drainer (NewDrainer); options that
// do not apply to one of them are ignored there.
type Option func(*options)

// Timer is a stoppable one-shot timer, as time.Timer; tests inject fakes
// through WithTimer so that waits follow a fake clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type options struct {
	now         func() time.Time
	newTimer    func(d time.Duration) Timer
	rand        *rand.Rand
	lockTimeout time.Duration
	heartbeat   time.Duration
	metaOnly    bool
	readOnly    bool
	existing    bool
	wipeEvery   time.Duration
}

func buildOptions(opts []Option) options {
	o := options{
		now:         time.Now,
		newTimer:    newRealTimer,
		lockTimeout: time.Second,
		heartbeat:   5 * time.Second,
		wipeEvery:   5 * time.Minute,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.rand == nil {
		// Jitter only spreads retries; it needs no cryptographic quality.
		o.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return o
}

// WithClock sets the time source for capture ages, due times, TTL expiry
// and the drainer's progress.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithTimer sets how the drainer waits; pair it with WithClock.
func WithTimer(newTimer func(d time.Duration) Timer) Option {
	return func(o *options) { o.newTimer = newTimer }
}

// WithRand sets the source of backoff jitter (not of item IDs, which always
// come from crypto/rand).
func WithRand(r *rand.Rand) Option { return func(o *options) { o.rand = r } }

// WithLockTimeout sets how long Open waits for another process to release
// the file (default 1s).
func WithLockTimeout(d time.Duration) Option { return func(o *options) { o.lockTimeout = d } }

// WithHeartbeat sets the longest the drainer stays idle without refreshing
// its progress, the age gauge and TTL expiry (default 5s).
func WithHeartbeat(d time.Duration) Option { return func(o *options) { o.heartbeat = d } }

// WithMetadataOnly opens the queue without its encryption key, for
// operations that never read an image: Stats, List, RetryDead, Purge,
// PurgeDead, Ack and DeadLetter. Enqueue and Lease fail, and the file's
// key check value is left alone. `kioskd queue` uses it where the key,
// often a systemd credential, is only available to the service.
func WithMetadataOnly() Option { return func(o *options) { o.metaOnly = true } }

// WithReadOnly opens an existing file for reading only, under a shared
// lock: nothing on disk changes, not even on damage (which is reported, not
// moved aside), and it works on a read-only filesystem. It implies
// WithMetadataOnly. `kioskd queue stats` and `list` use it.
func WithReadOnly() Option {
	return func(o *options) { o.readOnly, o.existing, o.metaOnly = true, true, true }
}

// WithExisting opens the file only if it exists and never creates a file
// or directory the service user could not use: damage is reported instead
// of moved aside, and a compacted file keeps the old file's owner. The
// `kioskd queue` commands, often run as root, use it.
func WithExisting() Option { return func(o *options) { o.existing = true } }

// WithWipeInterval sets how long deleted images may stay in the file's free
// pages while the queue still holds items (default 5m): after that the
// file is rewritten. An empty queue is rewritten at once.
func WithWipeInterval(d time.Duration) Option { return func(o *options) { o.wipeEvery = d } }

type realTimer struct{ t *time.Timer }

func newRealTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }
func (r realTimer) C() <-chan time.Time  { return r.t.C }
func (r realTimer) Stop() bool           { return r.t.Stop() }
