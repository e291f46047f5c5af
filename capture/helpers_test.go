package capture

import (
	"image"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/testmedia"
)

// clock is a manual clock for the selection state machine.
type clock struct {
	mu    sync.Mutex
	t     time.Time
	start time.Time
}

func newClock() *clock {
	t0 := time.Date(2025, 1, 2, 9, 0, 0, 0, time.UTC)
	return &clock{t: t0, start: t0}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func defaultCapture() config.Capture { return config.Default().Capture }

func newSelector(t *testing.T, cfg config.Capture, opts ...Option) (*Selector, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(cfg, slog.New(slog.DiscardHandler), reg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, reg
}

// frames renders named scenes once per test; Mats are closed at cleanup.
type frames struct {
	t    *testing.T
	g    *testmedia.Generator
	w, h int
	mats map[string]*gocv.Mat
}

func newFrames(t *testing.T, w, h int) *frames {
	t.Helper()
	dir, err := testmedia.Dir()
	if err != nil {
		t.Fatal(err)
	}
	g, err := testmedia.NewGenerator(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &frames{t: t, g: g, w: w, h: h, mats: map[string]*gocv.Mat{}}
	t.Cleanup(func() {
		for _, m := range f.mats {
			m.Close()
		}
		g.Close()
	})
	return f
}

func (f *frames) get(name string) gocv.Mat {
	f.t.Helper()
	if m, ok := f.mats[name]; ok {
		return *m
	}
	m := gocv.NewMat()
	if err := f.g.Frame(name, f.w, f.h, &m); err != nil {
		m.Close()
		f.t.Fatal(err)
	}
	f.mats[name] = &m
	return m
}

func (f *frames) scene(key string, sc testmedia.Scene) gocv.Mat {
	f.t.Helper()
	if m, ok := f.mats[key]; ok {
		return *m
	}
	m := gocv.NewMat()
	if err := f.g.Render(sc, f.w, f.h, 0, &m); err != nil {
		m.Close()
		f.t.Fatal(err)
	}
	f.mats[key] = &m
	return m
}

func discard() *slog.Logger        { return slog.New(slog.DiscardHandler) }
func newReg() *prometheus.Registry { return prometheus.NewRegistry() }

// counterValue reads one series from reg ("" label value: unlabelled).
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func imageRect(w, h int) image.Rectangle { return image.Rect(0, 0, w, h) }
