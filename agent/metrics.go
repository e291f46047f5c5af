package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queueErrs prometheus.Counter
	authErr   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		queueErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_decision_enqueue_errors_total",
			Help: "Captures that should have been queued but could not be.",
		}),
		authErr: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_uploader_auth_error",
			Help: "1 while the last API answer was 401 or 403 (bad device token or API key).",
		}),
	}
	reg.MustRegister(m.queueErrs, m.authErr)
	return m
}
