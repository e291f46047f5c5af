// Package queue is kioskd's durable retry queue: captures whose live upload
// failed for a retryable reason are kept in a bbolt file until a Drainer
// delivers them. Delivery is at-least-once.
package queue

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
)

// Item is one queued capture.
type Item struct {
	Seq         uint64
	ID          string
	CapturedAt  time.Time
	Source      string
	Attempts    int
	NextAttempt time.Time
	LastError   string
	JPEG        []byte
}

// Stats summarises the queue.
type Stats struct {
	Depth       int
	Bytes       int64
	OldestAge   time.Duration
	DeadLetters int
}

// Queue is the durable queue.
type Queue struct{}

// Option configures a Queue or a Drainer.
type Option func(*options)

type options struct{ now func() time.Time }

// WithClock sets the time source.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

var errTODO = errors.New("queue: not implemented yet")

// Open opens the queue file.
func Open(cfg config.Queue, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Queue, error) {
	return nil, errTODO
}

func (q *Queue) Enqueue(ctx context.Context, it Item) (Item, error) { return it, errTODO }
func (q *Queue) Lease() (*Item, error)                               { return nil, errTODO }
func (q *Queue) Ack(seq uint64) error                                { return errTODO }
func (q *Queue) RetryLater(seq uint64, reason string) error          { return errTODO }
func (q *Queue) DeadLetter(seq uint64, reason string) error          { return errTODO }
func (q *Queue) Stats() (Stats, error)                               { return Stats{}, errTODO }
func (q *Queue) List(dead bool) ([]Item, error)                      { return nil, errTODO }
func (q *Queue) RetryDead() (int, error)                             { return 0, errTODO }
func (q *Queue) Purge() (int, error)                                 { return 0, errTODO }
func (q *Queue) Close() error                                        { return nil }

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks a delivery error as not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// DeliverFunc delivers one item.
type DeliverFunc func(ctx context.Context, it Item) error

// Drainer delivers the queue.
type Drainer struct{}

func NewDrainer(q *Queue, deliver DeliverFunc, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Drainer {
	return &Drainer{}
}
func (d *Drainer) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (d *Drainer) Wake()                         {}
func (d *Drainer) Progress() time.Time           { return time.Now() }
