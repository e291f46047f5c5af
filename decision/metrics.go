package decision

import (
	"strings"
	"unicode"

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

// alertedFailureReasons are the reasons systemd/kioskd-alerts.yml alerts on.
var alertedFailureReasons = []string{"unauthorized", "forbidden"}

// boundedReason is the failures label value of a reason: one of
// failureReasons, or "unknown".
func boundedReason(r string) string {
	for _, known := range failureReasons() {
		if r == known {
			return labelValue(r)
		}
	}
	return "unknown"
}

// labelValue writes a result or reason in the one style every kioskd label
// value uses, lower snake_case: PASS is "pass", the API's hasFaceMask is
// "has_face_mask". Log lines keep the API's spelling; only labels change, so
// that a dashboard or an alert never has to guess the case.
func labelValue(v string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range v {
		if unicode.IsUpper(r) {
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			prevLower = false
			continue
		}
		b.WriteRune(r)
		prevLower = unicode.IsLower(r) || unicode.IsDigit(r)
	}
	return b.String()
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
			Help: "Live authentication attempts by result (pass, fail, error, offline).",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_decision_failures_total",
			Help: "Live attempts that did not open the door, by reason (the API's failureReason or the client's error kind, in snake_case).",
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
		m.attempts.WithLabelValues(labelValue(string(r)))
	}
	for _, r := range []Result{Pass, Fail, Error} {
		m.deferred.WithLabelValues(labelValue(string(r)))
	}
	// Of the reasons only those an alert reads from the first scrape are
	// created up front (increase() misses the first count of a series that
	// appears with it); the others appear when they happen. A door's series
	// budget is 150 at idle.
	for _, r := range alertedFailureReasons {
		m.failures.WithLabelValues(labelValue(r))
	}
	reg.MustRegister(m.attempts, m.failures, m.deferred, m.latency, m.sinkErrors, m.deferredWait)
	return m
}
