package camera

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	up, lastFrame                         prometheus.Gauge
	frames, reconnects, readErrors, stale prometheus.Counter
	repeats                               prometheus.Counter
	rejected                              *prometheus.CounterVec
	failures                              *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_camera_up", Help: "1 while the camera delivers frames.",
		}),
		lastFrame: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_camera_last_frame_timestamp_seconds", Help: "Capture time of the last frame delivered (Unix seconds).",
		}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_camera_frames_total", Help: "Frames delivered to the frame loop.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_camera_reconnects_total", Help: "Times the camera was opened again after a fault.",
		}),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_camera_read_errors_total", Help: "Reads that gave no usable frame (including skipped images).",
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_camera_stale_frames_dropped_total", Help: "Frames discarded because they were older than max_frame_age, or passed over by a paced clip whose reader was late.",
		}),
		repeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_camera_decodes_skipped_total", Help: "JPEG frames not decoded because the scene had not changed (the last frame's pixels were delivered).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_camera_images_rejected_total", Help: "Pictures refused before they reached the frame loop, by reason (too_large, truncated, undecodable).",
		}, []string{"reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_camera_failures_total", Help: "Times the camera was found down, by what failed (open, read, stall); each is followed by a reopen.",
		}, []string{"what"}),
	}
	for _, c := range []prometheus.Collector{m.up, m.lastFrame, m.frames, m.reconnects, m.readErrors, m.stale, m.repeats, m.rejected, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("camera: register metrics: %w", err)
		}
	}
	return m, nil
}
