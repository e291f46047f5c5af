package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/backoff"
)

// Sink takes a batch of events somewhere. Deliver returns nil only when
// every event of the batch has been accepted; the events carry their ids,
// so a receiver that sees a batch twice can drop the repeats.
type Sink interface {
	Deliver(ctx context.Context, batch []Event) error
	Close() error
}

// Forwarder delivers the log to one sink, at least once, oldest first. Its
// position is kept in the log, so delivery resumes where it stopped after
// an outage or a restart. It runs beside the decisions and never holds
// them up: Append only wakes it.
type Forwarder struct {
	log  *Log
	sink Sink
	cfg  config.EventSink
	slog *slog.Logger
	wake <-chan struct{}

	cursor      atomic.Uint64
	lastSuccess atomic.Int64 // unix nanos

	delivered prometheus.Counter
	errs      prometheus.Counter
}

// NewForwarder registers the sink's metrics (labelled with its name) and
// returns its forwarder; Run starts it.
func NewForwarder(l *Log, sink Sink, cfg config.EventSink, log *slog.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	f := &Forwarder{log: l, sink: sink, cfg: cfg, slog: log.With("sink", cfg.Name), wake: l.subscribe()}
	cur, err := l.Cursor(cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("events: sink %s: %w", cfg.Name, err)
	}
	f.cursor.Store(cur)
	labels := prometheus.Labels{"sink": cfg.Name, "type": cfg.Type}
	f.delivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kioskd_events_sink_delivered_total", Help: "Events a sink accepted (repeats after a failure counted again).",
		ConstLabels: labels,
	})
	f.errs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kioskd_events_sink_errors_total", Help: "Failed deliveries to a sink (each is retried).",
		ConstLabels: labels,
	})
	cs := []prometheus.Collector{f.delivered, f.errs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kioskd_events_sink_pending", Help: "Events in the log that the sink has not accepted yet.",
			ConstLabels: labels,
		}, func() float64 { return float64(f.Pending()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kioskd_events_sink_last_success_timestamp_seconds", Help: "When the sink last accepted a batch (0: not since start).",
			ConstLabels: labels,
		}, func() float64 {
			if n := f.lastSuccess.Load(); n != 0 {
				return float64(n) / 1e9
			}
			return 0
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("events: sink %s: register metrics: %w", cfg.Name, err)
		}
	}
	return f, nil
}

// Pending is how many events the sink has yet to accept (an estimate:
// events that retention removed unsent are counted until the next batch).
func (f *Forwarder) Pending() uint64 {
	last, cur := f.log.LastSeq(), f.cursor.Load()
	if last < cur {
		return 0
	}
	return last - cur
}

// Run delivers until ctx ends, then closes the sink.
func (f *Forwarder) Run(ctx context.Context) error {
	defer func() {
		if err := f.sink.Close(); err != nil {
			f.slog.Warn("event sink close", "err", err)
		}
	}()
	fails := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		n, err := f.deliverOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait <-chan time.Time
		switch {
		case err != nil:
			fails++
			f.errs.Inc()
			d := backoff.Policy{Min: f.cfg.BackoffMin, Max: f.cfg.BackoffMax, Jitter: 0.5}.Delay(fails, rand.Float64)
			if fails == 1 || fails%20 == 0 {
				f.slog.Warn("events not delivered; retrying", "err", err, "failures", fails, "retry_in", d.String())
			}
			timer.Reset(d)
			wait = timer.C
		case n > 0:
			if fails > 0 {
				f.slog.Info("events delivered again", "after_failures", fails)
			}
			fails = 0
			continue // more may be waiting
		}
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return nil
			case <-wait:
				waiting = false
			case <-f.wake:
				// An append does not cut a backoff short.
				waiting = wait != nil
			}
		}
	}
}

// deliverOnce sends the next batch after the cursor and moves the cursor.
func (f *Forwarder) deliverOnce(ctx context.Context) (int, error) {
	cur := f.cursor.Load()
	if f.log.LastSeq() < cur {
		// The log was started again (its file removed): so is delivery.
		cur = 0
		f.cursor.Store(0)
	}
	batch, err := f.log.Read(cur, f.cfg.BatchSize)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	dctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	if err := f.sink.Deliver(dctx, batch); err != nil {
		return 0, err
	}
	last := batch[len(batch)-1].Seq
	// A cursor that is not saved only means these events go out again.
	if err := f.log.SetCursor(f.cfg.Name, last); err != nil && !errors.Is(err, context.Canceled) {
		f.slog.Warn("event sink position not saved", "err", err)
	}
	f.cursor.Store(last)
	f.delivered.Add(float64(len(batch)))
	f.lastSuccess.Store(time.Now().UnixNano())
	return len(batch), nil
}

// NewForwarders builds a sink and its forwarder for every configured sink.
func NewForwarders(l *Log, cfg config.Events, sourceID string, log *slog.Logger, reg prometheus.Registerer) ([]*Forwarder, error) {
	var out []*Forwarder
	closeAll := func() {
		for _, f := range out {
			_ = f.sink.Close()
		}
	}
	for i, sc := range cfg.Sinks {
		sc = sc.WithDefaults(i)
		var (
			s   Sink
			err error
		)
		switch sc.Type {
		case "mqtt":
			s, err = NewMQTTSink(sc, sourceID, log)
		case "http":
			s, err = NewHTTPSink(sc)
		default:
			err = fmt.Errorf("unknown sink type %q", sc.Type)
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("events: sink %s: %w", sc.Name, err)
		}
		f, err := NewForwarder(l, s, sc, log, reg)
		if err != nil {
			_ = s.Close()
			closeAll()
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
