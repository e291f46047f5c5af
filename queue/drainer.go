package queue

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks a delivery error as not worth retrying: the drainer
// dead-letters the item instead of trying it again.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// DeliverFunc delivers one item. nil means the service answered it (the
// item is acknowledged), an error marked Permanent dead-letters it, and any
// other error retries it later. It must return when ctx is done.
type DeliverFunc func(ctx context.Context, it Item) error

// Drainer delivers the queue oldest first, one item at a time. After a
// retryable failure it waits (for the failed item's next attempt, and at
// least its own backoff across items) instead of trying the items behind
// it, so an unreachable service is not hammered; Wake ends the wait.
type Drainer struct {
	q        *Queue
	deliver  DeliverFunc
	log      *slog.Logger
	m        *drainerMetrics
	now      func() time.Time
	newTimer func(time.Duration) Timer
	beat     time.Duration
	rand     *rand.Rand

	wake     chan struct{}
	progress atomic.Int64
}

// NewDrainer returns a drainer for q. Without WithClock and WithTimer it
// uses q's clock and real timers.
func NewDrainer(q *Queue, deliver DeliverFunc, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Drainer {
	o := q.drainerOptions()
	o.rand = nil
	for _, opt := range opts {
		opt(&o)
	}
	if o.rand == nil {
		o.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	d := &Drainer{
		q: q, deliver: deliver, log: log.With("component", "drainer"), m: newDrainerMetrics(reg),
		now: o.now, newTimer: o.newTimer, beat: o.heartbeat, rand: o.rand,
		wake: make(chan struct{}, 1),
	}
	d.progress.Store(d.now().UnixNano())
	return d
}

// Wake makes the drainer try the oldest item at once, whatever its due
// time: a live attempt just succeeded, so the service is back.
func (d *Drainer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Progress is when the drainer's loop last ran; it runs at least every
// heartbeat (5s by default) while idle.
func (d *Drainer) Progress() time.Time { return time.Unix(0, d.progress.Load()) }

// Run delivers until ctx is done, then returns nil. It returns an error
// only when the queue is closed under it.
func (d *Drainer) Run(ctx context.Context) error {
	var (
		force     bool      // woken: deliver the oldest item now
		fails     int       // retryable failures in a row
		holdUntil time.Time // no delivery before this after a failure
	)
	for {
		now := d.now()
		d.progress.Store(now.UnixNano())
		if ctx.Err() != nil {
			return nil
		}
		// The state is looked at afresh below: a notification of an
		// enqueue that already happened would only cause a second look.
		select {
		case <-d.q.enqueued():
		default:
		}
		if _, err := d.q.Expire(); errors.Is(err, ErrClosed) {
			return err
		}
		d.q.Maintain()
		due, ok, expiry, err := d.q.head()
		if errors.Is(err, ErrClosed) {
			return err
		}
		var until time.Time
		switch {
		case err != nil:
			until = now.Add(d.q.retryPolicy().Min)
		case !ok:
			force = false
		case force || (!due.After(now) && !holdUntil.After(now)):
			res := d.deliverOne(ctx, force)
			force = false
			switch res.kind {
			case outcomeRetry:
				fails++
				wait := d.q.retryPolicy().Delay(fails, d.rand.Float64)
				// The service said how long to wait (Retry-After): nothing
				// is sent before then, unless Wake says it is back.
				var ra interface{ RetryAfter() time.Duration }
				if errors.As(res.err, &ra) {
					wait = max(wait, ra.RetryAfter())
				}
				holdUntil = d.now().Add(wait)
			case outcomeDone:
				fails, holdUntil = 0, time.Time{}
			case outcomeStop:
				return nil
			case outcomeNone:
				// The head moved under us (a bound or the TTL took it):
				// look again, but never spin.
				holdUntil = d.now().Add(10 * time.Millisecond)
			}
			continue
		default:
			until = due
			if holdUntil.After(until) {
				until = holdUntil
			}
		}
		if !expiry.IsZero() && (until.IsZero() || expiry.Before(until)) {
			until = expiry
		}
		if d.wait(ctx, until) {
			force, fails, holdUntil = true, 0, time.Time{}
		}
	}
}

type outcome int

const (
	outcomeNone  outcome = iota // nothing was leased
	outcomeDone                 // acked or dead-lettered: the service answered
	outcomeRetry                // retryable failure
	outcomeStop                 // ctx done mid-delivery
)

type result struct {
	kind outcome
	item Item
	err  error
}

func (d *Drainer) deliverOne(ctx context.Context, oldest bool) result {
	var it *Item
	var err error
	if oldest {
		it, err = d.q.LeaseOldest()
	} else {
		it, err = d.q.Lease()
	}
	if err != nil {
		d.log.Error("lease", "err", err)
		return result{kind: outcomeRetry, err: err}
	}
	if it == nil {
		return result{kind: outcomeNone}
	}
	derr := d.deliver(ctx, *it)
	meta := *it
	meta.JPEG = nil
	switch {
	case derr == nil:
		if err := d.q.Ack(it.Seq); err != nil && !errors.Is(err, ErrNotFound) {
			d.log.Error("ack", "seq", it.Seq, "err", err)
		}
		d.m.delivered.Inc()
		return result{kind: outcomeDone, item: meta}
	case ctx.Err() != nil:
		d.q.release(it.Seq)
		d.log.Info("queued item delivery cut short by the stop: kept for the next try", "seq", it.Seq, "id", it.ID)
		return result{kind: outcomeStop, item: meta, err: derr}
	case IsPermanent(derr):
		d.m.failures.WithLabelValues("permanent").Inc()
		d.log.Warn("queued item refused for good: dead-lettered", "seq", it.Seq, "id", it.ID, "err", derr)
		if err := d.q.DeadLetter(it.Seq, derr.Error()); err != nil && !errors.Is(err, ErrNotFound) {
			d.log.Error("dead letter", "seq", it.Seq, "err", err)
		}
		return result{kind: outcomeDone, item: meta, err: derr}
	default:
		d.m.failures.WithLabelValues("retryable").Inc()
		d.log.Info("queued item not delivered: will retry", "seq", it.Seq, "id", it.ID, "attempts", it.Attempts+1, "err", derr)
		if err := d.q.RetryLater(it.Seq, derr.Error()); err != nil && !errors.Is(err, ErrNotFound) {
			d.log.Error("retry later", "seq", it.Seq, "err", err)
		}
		return result{kind: outcomeRetry, item: meta, err: derr}
	}
}

// wait blocks until until (zero: no deadline), the heartbeat, new work, a
// Wake or ctx. It reports whether Wake ended it.
func (d *Drainer) wait(ctx context.Context, until time.Time) bool {
	dur := d.beat
	if !until.IsZero() {
		dur = min(dur, until.Sub(d.now()))
	}
	if dur <= 0 {
		return false
	}
	t := d.newTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C():
	case <-d.q.enqueued():
	case <-d.wake:
		return true
	}
	return false
}

// Summary is the outcome of Drain.
type Summary struct {
	Delivered    int   // acknowledged
	DeadLettered int   // refused for good
	Remaining    int   // still pending
	Stopped      error // the retryable failure that ended the drain, if any
}

// Drain delivers every pending item once, oldest first and whatever its
// due time, as `kioskd queue drain` does. It stops at the first retryable
// failure: the service is not answering, and the remaining items keep
// their place. report, when not nil, is called after each delivery.
func (d *Drainer) Drain(ctx context.Context, report func(it Item, err error)) (Summary, error) {
	var s Summary
	for {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		d.progress.Store(d.now().UnixNano())
		res := d.deliverOne(ctx, true)
		if res.kind != outcomeNone && report != nil {
			report(res.item, res.err)
		}
		switch {
		case res.kind == outcomeNone:
			return d.remaining(s)
		case res.kind == outcomeStop:
			return s, ctx.Err()
		case res.kind == outcomeRetry:
			s.Stopped = res.err
			if res.err == nil {
				s.Stopped = errors.New("lease failed")
			}
			return d.remaining(s)
		case res.err != nil:
			s.DeadLettered++
		default:
			s.Delivered++
		}
	}
}

func (d *Drainer) remaining(s Summary) (Summary, error) {
	st, err := d.q.Stats()
	s.Remaining = st.Depth
	return s, err
}
