package actuator_test

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/kioskd/kioskd/internal/clock"
)

// newClock is the fake clock every actuator test runs on: timers fire only
// when the test advances it.
func newClock() *clock.Fake {
	return clock.NewFake(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
}

// testPin is a gpiotest pin that records every write and fails on cue.
type testPin struct {
	*gpiotest.Pin
	mu      sync.Mutex
	writes  []gpio.Level
	failOn  map[gpio.Level]bool
	changed chan gpio.Level // every write, if non-nil
}

func newPin(name string, initial gpio.Level) *testPin {
	return &testPin{Pin: &gpiotest.Pin{N: name, L: initial}, failOn: map[gpio.Level]bool{}}
}

var errInjected = errors.New("gpiotest: injected write failure")

func (p *testPin) Out(l gpio.Level) error {
	p.mu.Lock()
	p.writes = append(p.writes, l)
	fail := p.failOn[l]
	ch := p.changed
	p.mu.Unlock()
	if fail {
		return errInjected
	}
	if err := p.Pin.Out(l); err != nil {
		return err
	}
	if ch != nil {
		ch <- l
	}
	return nil
}

func (p *testPin) fail(l gpio.Level, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failOn[l] = on
}

func (p *testPin) history() []gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gpio.Level(nil), p.writes...)
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// metric reads one series from reg; labels are name/value pairs.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}
