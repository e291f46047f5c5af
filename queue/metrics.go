package queue

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons: every value is initialised to 0.
const (
	DropOverflow    = "overflow"     // past max_items or max_bytes, oldest first
	DropTTL         = "ttl"          // older than the TTL
	DropPermanent   = "permanent"    // dead-lettered: the service refused it for good
	DropMaxAttempts = "max_attempts" // dead-lettered: queue.max_attempts reached
)

var dropReasons = []string{DropOverflow, DropTTL, DropPermanent, DropMaxAttempts}

// alertedErrorOps are the operations whose error series exist from the
// start, so that increase() sees their first error: losing a capture
// (enqueue) and failing to hand one over (deliver). The other operations'
// series appear with their first error; pre-creating all thirteen cost a
// tenth of a door's series budget.
var alertedErrorOps = []string{"enqueue", "deliver"}

type metrics struct {
	gauges                           *gaugeCollector
	drops, errors                    *prometheus.CounterVec
	enqueued, recovered, compactions prometheus.Counter
}

// gaugeSnapshot is what the gauges show, stored after every change under
// the queue's lock and read at scrape time without it.
type gaugeSnapshot struct {
	pending, dead           int
	pendingBytes, deadBytes int64
	oldest                  time.Time // capture time of the oldest pending item; zero: none
}

// gaugeCollector computes the queue's gauges when Prometheus scrapes: the
// age from the clock, the file size from a stat, the rest from the last
// snapshot. A scrape never waits for the queue, and a change never pays
// for a stat.
type gaugeCollector struct {
	snap                                                atomic.Pointer[gaugeSnapshot]
	now                                                 func() time.Time
	path                                                string
	depth, bytes, oldestAge, dead, deadBytes, fileBytes *prometheus.Desc
}

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.bytes, c.oldestAge, c.dead, c.deadBytes, c.fileBytes} {
		ch <- d
	}
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap.Load()
	if s == nil {
		s = &gaugeSnapshot{}
	}
	var age float64
	if !s.oldest.IsZero() {
		age = max(c.now().Sub(s.oldest), 0).Seconds()
	}
	var size float64
	if fi, err := os.Stat(c.path); err == nil {
		size = float64(fi.Size())
	}
	for _, m := range []struct {
		d *prometheus.Desc
		v float64
	}{
		{c.depth, float64(s.pending)}, {c.bytes, float64(s.pendingBytes)}, {c.oldestAge, age},
		{c.dead, float64(s.dead)}, {c.deadBytes, float64(s.deadBytes)}, {c.fileBytes, size},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, m.v)
	}
}

func newMetrics(path string, now func() time.Time) *metrics {
	g := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		gauges: &gaugeCollector{
			now: now, path: path,
			depth:     g("kioskd_queue_depth", "Pending items in the retry queue."),
			bytes:     g("kioskd_queue_bytes", "Bytes held by pending items (headers and images as stored)."),
			oldestAge: g("kioskd_queue_oldest_age_seconds", "Age of the oldest pending capture."),
			dead:      g("kioskd_queue_dead_letters", "Items in the dead-letter bucket."),
			deadBytes: g("kioskd_queue_dead_letter_bytes", "Bytes held by dead letters."),
			fileBytes: g("kioskd_queue_file_size_bytes", "Size of the queue file on disk."),
		},
		enqueued:    c("kioskd_queue_enqueued_total", "Items made durable in the queue."),
		recovered:   c("kioskd_queue_recovered_files_total", "Unreadable queue files moved aside and replaced by an empty one."),
		compactions: c("kioskd_queue_compactions_total", "Times the queue file was rewritten to give space back."),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_queue_drops_total", Help: "Items removed or dead-lettered without delivery, by reason.",
		}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_queue_errors_total", Help: "Failed queue operations, by operation.",
		}, []string{"op"}),
	}
	for _, r := range dropReasons {
		m.drops.WithLabelValues(r)
	}
	for _, op := range alertedErrorOps {
		m.errors.WithLabelValues(op)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.gauges, m.enqueued, m.recovered, m.compactions, m.drops, m.errors} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register queue metrics: %w", err)
		}
	}
	return nil
}

// unregister undoes register after a failed Open, so that a retry with the
// same registry works.
func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range []prometheus.Collector{m.gauges, m.enqueued, m.recovered, m.compactions, m.drops, m.errors} {
		reg.Unregister(c)
	}
}

type drainerMetrics struct {
	delivered prometheus.Counter
	failures  *prometheus.CounterVec
}

var failureKinds = []string{"retryable", "permanent"}

func newDrainerMetrics(reg prometheus.Registerer) *drainerMetrics {
	m := &drainerMetrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_queue_delivered_total", Help: "Queued items delivered and acknowledged.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_queue_delivery_failures_total", Help: "Failed deliveries of queued items, by kind.",
		}, []string{"kind"}),
	}
	for _, k := range failureKinds {
		m.failures.WithLabelValues(k)
	}
	for _, c := range []prometheus.Collector{m.delivered, m.failures} {
		if err := reg.Register(c); err != nil {
			// NewDrainer has no error return: a second drainer on one
			// registry shares the first one's counters.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				continue
			}
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok && c == prometheus.Collector(m.delivered) {
				m.delivered = existing
			}
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok && c == prometheus.Collector(m.failures) {
				m.failures = existing
			}
		}
	}
	return m
}
