package decision

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/uploader"
)

// failureReasons are the bounded values of kioskd_decision_failures_total's
// reason label: the service's failureReasons and the client's error kinds.
func failureReasons() []string {
	out := []string{"unknown", ReasonLate}
	for _, r := range uploader.FailureReasons() {
		out = append(out, string(r))
	}
	return append(out, uploader.Reasons()...)
}

func boundedReason(r string) string {
	for _, known := range failureReasons() {
		if r == known {
			return r
		}
	}
	return "unknown"
}

type metrics struct {
	attempts   *prometheus.CounterVec
	failures   *prometheus.CounterVec
	deferred   *prometheus.CounterVec
	latency    prometheus.Histogram
	sinkErrors prometheus.Counter
	// deferredWait is set by Delivery, which shares the recorder's metrics.
	deferredWait prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_decision_attempts_total",
			Help: "Live authentication attempts by result (PASS, FAIL, ERROR, OFFLINE).",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_decision_failures_total",
			Help: "Live attempts that did not open the door, by reason.",
		}, []string{"reason"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_decision_deferred_total",
			Help: "Answers to queued (deferred) captures by result; they never unlock.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kioskd_decision_latency_seconds",
			Help:    "Time from the first frame of a presence to the door signal.",
			Buckets: []float64{0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8},
		}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_decision_sink_errors_total",
			Help: "Decisions a sink (event log, panel, bus) failed to take.",
		}),
		deferredWait: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_decision_deferred_retry_after_seconds",
			Help: "The wait the service asked for (Retry-After, capped by queue.retry_after_max) on the last try of a queued capture; 0 when it asked for none.",
		}),
	}
	for _, r := range Results() {
		m.attempts.WithLabelValues(string(r))
	}
	for _, r := range []Result{Pass, Fail, Error} {
		m.deferred.WithLabelValues(string(r))
	}
	for _, r := range failureReasons() {
		m.failures.WithLabelValues(r)
	}
	reg.MustRegister(m.attempts, m.failures, m.deferred, m.latency, m.sinkErrors, m.deferredWait)
	return m
}
