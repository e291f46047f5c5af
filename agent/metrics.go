package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Decision results, as logged and as metric labels.
const (
	ResultPass    = "PASS"
	ResultFail    = "FAIL"
	ResultError   = "ERROR"
	ResultOffline = "OFFLINE"
)

// failureReasons are the bounded values of kioskd_decision_failures_total's
// reason label: the service's failureReasons and the client's error kinds.
var failureReasons = []string{
	"hasFaceMask", "hasLenses", "spoofAttempt", "faceMatchFailed", "otherError", "unknown",
	"timeout", "transport", "rate_limited", "server_error", "unauthorized", "forbidden",
	"bad_request", "malformed", "client_error", "canceled", "late",
}

type metrics struct {
	attempts  *prometheus.CounterVec
	failures  *prometheus.CounterVec
	deferred  *prometheus.CounterVec
	latency   prometheus.Histogram
	queueErrs prometheus.Counter
	authErr   prometheus.Gauge
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
		queueErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_decision_enqueue_errors_total",
			Help: "Captures that should have been queued but could not be.",
		}),
		authErr: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_uploader_auth_error",
			Help: "1 while the last API answer was 401 or 403 (bad device token or API key).",
		}),
	}
	for _, r := range []string{ResultPass, ResultFail, ResultError, ResultOffline} {
		m.attempts.WithLabelValues(r)
	}
	for _, r := range []string{ResultPass, ResultFail, ResultError} {
		m.deferred.WithLabelValues(r)
	}
	for _, r := range failureReasons {
		m.failures.WithLabelValues(r)
	}
	reg.MustRegister(m.attempts, m.failures, m.deferred, m.latency, m.queueErrs, m.authErr)
	return m
}

func boundedReason(r string) string {
	for _, known := range failureReasons {
		if r == known {
			return r
		}
	}
	return "unknown"
}
