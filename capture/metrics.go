package capture

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	detect     prometheus.Histogram
	shots      prometheus.Counter
	rejections map[Reason]prometheus.Counter
	lockouts   prometheus.Counter
	// unconfirmed counts faces the second detector did not confirm.
	unconfirmed prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		detect: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kioskd_capture_detect_duration_seconds",
			Help:    "Time spent finding faces in one frame (downscale, cascade, tracking).",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5},
		}),
		shots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_capture_shots_total",
			Help: "Frames chosen for upload.",
		}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_capture_lockouts_total",
			Help: "Times the per-device attempt cap locked capture.",
		}),
		unconfirmed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_capture_unconfirmed_faces_total",
			Help: "Faces the main cascade found that the second, independent detector (verify_cascade) did not confirm; they are ignored.",
		}),
		rejections: map[Reason]prometheus.Counter{},
	}
	rej := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kioskd_capture_rejections_total",
		Help: "Analysed frames rejected, by reason (a frame can have several).",
	}, []string{"reason"})
	for _, r := range AllReasons() {
		m.rejections[r] = rej.WithLabelValues(string(r))
	}
	for _, c := range []prometheus.Collector{m.detect, m.shots, m.lockouts, m.unconfirmed, rej} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("capture: register metrics: %w", err)
		}
	}
	return m, nil
}
