// Package wiegand sends card credentials to an access-control panel the way
// a Wiegand reader does: a low pulse on D0 for each 0 bit and on D1 for each
// 1 bit, and reads back the panel's LED and beeper lines.
package wiegand

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
)

// Signal is a change on one of the panel's indicator lines.
type Signal struct {
	Line   string // "led" or "beeper"
	Active bool   // LED: green (line pulled low); beeper: sounding (low)
}

// Option adjusts a Sender.
type Option func(*Sender)

// WithPins uses these pins (periph's gpiotest pins in tests) for D0 and D1.
func WithPins(d0, d1 gpio.PinIO) Option { return func(s *Sender) { s.d0, s.d1 = d0, d1 } }

// WithInputs uses these pins for the panel's LED and beeper lines; nil for
// one that is not wired.
func WithInputs(led, beeper gpio.PinIO) Option {
	return func(s *Sender) { s.led, s.beeper, s.inputsSet = led, beeper, true }
}

// WithWait replaces the timing of pulses and gaps.
func WithWait(wait func(time.Duration)) Option { return func(s *Sender) { s.wait = wait } }

// WithSignals is called on every change of an input line; it must not block.
func WithSignals(f func(Signal)) Option { return func(s *Sender) { s.signal = f } }

// Opener opens a gpiochip line; actuator.OpenLine in kioskd.
type Opener func(chip string, line int) (gpio.PinIO, error)

// Sender drives the D0 and D1 lines.
type Sender struct {
	cfg       config.Wiegand
	log       *slog.Logger
	d0, d1    gpio.PinIO
	led       gpio.PinIO
	beeper    gpio.PinIO
	inputsSet bool
	wait      func(time.Duration)
	signal    func(Signal)

	mu   sync.Mutex // one card at a time on the wires
	sent *prometheus.CounterVec
	errs prometheus.Counter
}

// New opens the lines through open (unless given by options) and drives
// both data lines high, the idle state.
func New(cfg config.Wiegand, open Opener, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Sender, error) {
	s := &Sender{cfg: cfg, log: log, wait: precise, signal: func(Signal) {},
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_panel_wiegand_frames_total", Help: "Wiegand frames sent, by bit count.",
		}, []string{"bits"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_panel_wiegand_errors_total", Help: "Wiegand frames that could not be sent (GPIO errors).",
		}),
	}
	for _, o := range opts {
		o(s)
	}
	var err error
	if open == nil && (s.d0 == nil || (!s.inputsSet && (cfg.LEDLine >= 0 || cfg.BeeperLine >= 0))) {
		return nil, errors.New("wiegand: no way to open the GPIO lines")
	}
	if s.d0 == nil {
		if s.d0, err = open(cfg.Chip, cfg.D0); err != nil {
			return nil, fmt.Errorf("wiegand: d0: %w", err)
		}
		if s.d1, err = open(cfg.Chip, cfg.D1); err != nil {
			return nil, fmt.Errorf("wiegand: d1: %w", err)
		}
	}
	if !s.inputsSet {
		if cfg.LEDLine >= 0 {
			if s.led, err = open(cfg.Chip, cfg.LEDLine); err != nil {
				return nil, fmt.Errorf("wiegand: led_line: %w", err)
			}
		}
		if cfg.BeeperLine >= 0 {
			if s.beeper, err = open(cfg.Chip, cfg.BeeperLine); err != nil {
				return nil, fmt.Errorf("wiegand: beeper_line: %w", err)
			}
		}
	}
	for name, pin := range map[string]gpio.PinIO{"led": s.led, "beeper": s.beeper} {
		if pin == nil {
			continue
		}
		if err := pin.In(gpio.PullUp, gpio.BothEdges); err != nil {
			return nil, fmt.Errorf("wiegand: %s input: %w", name, err)
		}
	}
	for _, c := range []prometheus.Collector{s.sent, s.errs} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("wiegand: register metrics: %w", err)
		}
	}
	if err := errors.Join(s.d0.Out(gpio.High), s.d1.Out(gpio.High)); err != nil {
		return nil, fmt.Errorf("wiegand: idle the data lines: %w", err)
	}
	return s, nil
}

// precise waits d: by spinning below a millisecond, where sleeping would
// overshoot a 50 µs pulse many times over, and by sleeping above.
func precise(d time.Duration) {
	if d >= time.Millisecond {
		time.Sleep(d)
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// Send clocks out one frame, first bit first.
func (s *Sender) Send(ctx context.Context, b credentials.Bits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Keep the goroutine on one thread so that a pulse is not stretched by
	// a thread switch.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < b.Count; i++ {
		pin := s.d0
		if b.Bit(i) {
			pin = s.d1
		}
		if err := pin.Out(gpio.Low); err != nil {
			s.errs.Inc()
			_ = errors.Join(s.d0.Out(gpio.High), s.d1.Out(gpio.High))
			return fmt.Errorf("wiegand: bit %d: %w", i, err)
		}
		s.wait(s.cfg.Pulse)
		if err := pin.Out(gpio.High); err != nil {
			s.errs.Inc()
			return fmt.Errorf("wiegand: bit %d: %w", i, err)
		}
		if i < b.Count-1 {
			s.wait(s.cfg.Interval - s.cfg.Pulse)
		}
	}
	s.sent.WithLabelValues(fmt.Sprint(b.Count)).Inc()
	return nil
}

// Run reports the panel's LED and beeper lines until ctx is done.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for name, pin := range map[string]gpio.PinIO{"led": s.led, "beeper": s.beeper} {
		if pin == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watch(ctx, name, pin)
		}()
	}
	wg.Wait()
	return nil
}

func (s *Sender) watch(ctx context.Context, name string, pin gpio.PinIO) {
	last := pin.Read()
	for ctx.Err() == nil {
		if !pin.WaitForEdge(100 * time.Millisecond) {
			continue
		}
		if l := pin.Read(); l != last {
			last = l
			// Panels pull the line low to turn the reader's LED green or
			// to sound its beeper.
			s.signal(Signal{Line: name, Active: l == gpio.Low})
		}
	}
}
