// Package actuator drives the door strike, the indicator lights and the
// buzzer from kioskd's decisions, and keeps the door locked whenever it is
// not explicitly, briefly and successfully told otherwise (fail-secure).
package actuator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/clock"
)

// ErrClosed is returned by Pass and Fail after Close.
var ErrClosed = errors.New("actuator: closed")

// Event is what a decision tells the outputs; exec and http drivers pass it on.
type Event struct {
	Result           string // PASS, FAIL
	Reason           string // failureReason on FAIL
	Source           string
	AuthenticationID string
}

// Option changes how New builds a Bank (tests).
type Option func(*options)

type options struct {
	clock clock.Clock
	pins  map[string]gpio.PinIO
}

// WithPin makes the gpio output called name use p instead of opening a
// line on a gpiochip (periph's gpiotest pins in tests).
func WithPin(name string, p gpio.PinIO) Option {
	return func(o *options) { o.pins[name] = p }
}

// WithClock replaces the real clock (tests advance a clock.Fake). The
// Bank's and the inputs' timers belong to them, not to the caller, so a
// pulse ends on time even when the caller is stuck.
func WithClock(c clock.Clock) Option {
	return func(o *options) { o.clock = c }
}

// levelDriver holds an output on or off; the Bank times the pulses.
type levelDriver interface {
	set(on bool, ev Event) error
	close() error
}

// eventDriver is told about each activation and leaves timing to whatever
// it talks to (a door controller knows its own strike), so it gets no "off"
// at the end of a pulse; busy outputs get both edges.
type eventDriver interface {
	fire(ctx context.Context, n notice) error
}

// notice is one activation as exec and http drivers report it.
type notice struct {
	Event
	Output string
	Role   string
	State  string // "on" or "off"
	Pulse  time.Duration
	Time   time.Time
}

type output struct {
	cfg   config.Output
	level levelDriver // exactly one of level and event is set
	event eventDriver

	on    bool   // as last commanded
	gen   uint64 // bumped on every change so that stale timers do nothing
	timer clock.Stopper

	busyWant chan bool // busy event outputs: latest wanted state for the worker
}

// Bank is every configured output. Its methods are safe for concurrent use.
type Bank struct {
	log   *slog.Logger
	clock clock.Clock

	unlocks  prometheus.Counter
	errs     *prometheus.CounterVec
	unlocked prometheus.Gauge

	ctx    context.Context // ends on Close; owns the busy workers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	outputs []*output // unlock outputs first, so they relock first
	closed  bool
	// unlockedAt is when the strike last went from locked to unlocked
	// (zero while locked), relockedAt when it last went back.
	unlockedAt, relockedAt time.Time
}

// New opens every output, drives them all off (the door locked) and
// returns the Bank. An output that cannot start is an error naming it.
func New(cfg config.Actuator, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Bank, error) {
	o := options{clock: clock.Real(), pins: map[string]gpio.PinIO{}}
	for _, opt := range opts {
		opt(&o)
	}
	b := &Bank{
		log:   log,
		clock: o.clock,
		unlocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_actuator_unlocks_total",
			Help: "PASS decisions that opened (or held open) the door.",
		}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_actuator_errors_total",
			Help: "Output driver errors by driver.",
		}, []string{"driver"}),
		unlocked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_actuator_door_unlocked",
			Help: "1 while an unlock output is on (or could not be driven off).",
		}),
	}
	for _, d := range []string{"gpio", "exec", "http", "log"} {
		b.errs.WithLabelValues(d)
	}
	used := map[string]bool{}
	var unlock, other []*output
	for _, oc := range cfg.Outputs {
		oc = oc.WithDefaults()
		out, err := b.open(oc, o.pins)
		if err != nil {
			b.closeOutputs(append(unlock, other...))
			return nil, fmt.Errorf("actuator: output %q: %w", oc.Name, err)
		}
		used[oc.Name] = true
		if oc.Role == "unlock" {
			unlock = append(unlock, out)
		} else {
			other = append(other, out)
		}
	}
	for _, in := range cfg.Inputs {
		used[in.Name] = true // NewInputs takes these pins
	}
	for name := range o.pins {
		if !used[name] {
			b.closeOutputs(append(unlock, other...))
			return nil, fmt.Errorf("actuator: WithPin(%q): no gpio output of that name", name)
		}
	}
	b.outputs = append(unlock, other...)

	// Fail-secure start: whatever state the lines were left in, drive every
	// output off before anything else can happen.
	var errs []error
	for _, out := range b.outputs {
		if out.level == nil {
			continue
		}
		if err := out.level.set(false, Event{}); err != nil {
			b.errs.WithLabelValues(out.cfg.Driver).Inc()
			errs = append(errs, fmt.Errorf("actuator: output %q: drive off at start: %w", out.cfg.Name, err))
		}
	}
	if len(errs) > 0 {
		b.closeOutputs(b.outputs)
		return nil, errors.Join(errs...)
	}

	var longest time.Duration
	for _, out := range b.outputs {
		if out.cfg.Role == "unlock" {
			longest = max(longest, out.cfg.Pulse)
		}
	}
	unlockedFor := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kioskd_actuator_door_unlocked_seconds",
		Help: "How long the strike has been unlocked without a break; 0 while locked.",
	}, b.unlockedFor)
	pulse := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kioskd_actuator_unlock_pulse_seconds",
		Help: "The longest configured unlock pulse (alerts compare the time unlocked with it).",
	})
	pulse.Set(longest.Seconds())
	for _, c := range []prometheus.Collector{b.unlocks, b.errs, b.unlocked, unlockedFor, pulse} {
		if err := reg.Register(c); err != nil {
			b.closeOutputs(b.outputs)
			return nil, fmt.Errorf("actuator: register metrics: %w", err)
		}
	}

	for _, out := range b.outputs {
		b.log.Info("actuator output ready", "output", out.cfg.Name, "role", out.cfg.Role,
			"driver", out.cfg.Driver, "state", "off")
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for _, out := range b.outputs {
		if (out.cfg.Role == "busy" || out.cfg.Role == "light") && out.event != nil {
			out.busyWant = make(chan bool, 1)
			b.wg.Add(1)
			go b.busyWorker(out)
		}
	}
	return b, nil
}

func (b *Bank) open(oc config.Output, pins map[string]gpio.PinIO) (*output, error) {
	if err := oc.Validate(); err != nil {
		return nil, err
	}
	out := &output{cfg: oc}
	switch oc.Driver {
	case "gpio":
		d, err := openGPIO(oc, pins[oc.Name])
		if err != nil {
			return nil, err
		}
		out.level = d
	case "log":
		out.level = &logDriver{log: b.log, name: oc.Name, role: oc.Role}
	case "exec":
		out.event = newExecDriver(oc)
	case "http":
		out.event = newHTTPDriver(oc, b.clock)
	default:
		return nil, fmt.Errorf("unknown driver %q", oc.Driver)
	}
	if _, injected := pins[oc.Name]; injected && oc.Driver != "gpio" {
		return nil, fmt.Errorf("WithPin given for a %s output", oc.Driver)
	}
	return out, nil
}

// Pass opens the door for each unlock output's pulse (extending a pulse
// already running rather than stacking another), lights the pass
// indicators, clears the fail ones and plays the buzzer's PASS pattern.
// Level outputs (gpio, log) switch before Pass starts exec and http
// outputs, which it waits for within their timeouts and ctx. A failing
// unlock output relocks every unlock output. A ctx already done unlocks
// nothing: a late answer must not open the door.
func (b *Bank) Pass(ctx context.Context, ev Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("actuator: pass: %w", err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	var errs []error
	unlockFailed := false
	hasUnlock := false
	var fire []*output
	now := b.clock.Now()
	for _, out := range b.outputs {
		var err error
		switch out.cfg.Role {
		case "unlock":
			hasUnlock = true
			err = b.pulseLocked(out, out.cfg.Pulse, ev)
			if err != nil {
				unlockFailed = true
			}
		case "pass":
			err = b.pulseLocked(out, out.cfg.Pulse, ev)
		case "fail":
			err = b.offLocked(out)
		case "buzzer":
			err = b.playLocked(out, out.cfg.Pattern, ev)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
		if out.event != nil && out.cfg.Role != "fail" {
			fire = append(fire, out)
		}
	}
	if unlockFailed {
		b.relockLocked("unlock output failed")
	}
	b.updateGaugeLocked()
	b.mu.Unlock()
	if unlockFailed {
		return errors.Join(errs...)
	}

	for _, f := range b.fireAll(ctx, fire, ev, now) {
		errs = append(errs, f.err)
		if f.out.cfg.Role == "unlock" {
			unlockFailed = true
		}
	}
	if unlockFailed {
		b.mu.Lock()
		b.relockLocked("unlock output failed")
		b.updateGaugeLocked()
		b.mu.Unlock()
	} else if hasUnlock {
		b.unlocks.Inc()
	}
	return errors.Join(errs...)
}

// Fail lights the fail indicators, clears the pass ones and plays the
// buzzer's FAIL pattern. It never touches an unlock output: a pulse already
// running for the previous person ends on its own schedule.
func (b *Bank) Fail(ctx context.Context, ev Event) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	var errs []error
	var fire []*output
	now := b.clock.Now()
	for _, out := range b.outputs {
		var err error
		switch out.cfg.Role {
		case "fail":
			err = b.pulseLocked(out, out.cfg.Pulse, ev)
		case "pass":
			err = b.offLocked(out)
		case "buzzer":
			err = b.playLocked(out, out.cfg.FailPattern, ev)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
		if out.event != nil && out.cfg.Role != "pass" {
			fire = append(fire, out)
		}
	}
	b.mu.Unlock()
	for _, f := range b.fireAll(ctx, fire, ev, now) {
		errs = append(errs, f.err)
	}
	return errors.Join(errs...)
}

// Busy switches the busy (amber) outputs. It never blocks on exec or http
// outputs: a worker delivers the latest state to them.
func (b *Bank) Busy(on bool) { b.switchRole("busy", on) }

// Light switches the light outputs: a lamp that lights the face while
// someone is in front of the camera and the scene is too dark.
func (b *Bank) Light(on bool) { b.switchRole("light", on) }

// switchRole sets every output of a level role (busy, light) on or off.
func (b *Bank) switchRole(role string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for _, out := range b.outputs {
		if out.cfg.Role != role {
			continue
		}
		if out.level != nil {
			if out.on == on {
				continue
			}
			out.on = on
			if err := out.level.set(on, Event{}); err != nil {
				b.driverError(out, err)
			}
			continue
		}
		// Keep only the latest wish: the worker may still be on the last one.
		select {
		case <-out.busyWant:
		default:
		}
		out.busyWant <- on
	}
}

// Close relocks the door, switches everything off, stops the timers and
// releases the lines. It is safe to call more than once.
func (b *Bank) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var errs []error
	for _, out := range b.outputs { // unlock outputs come first
		if err := b.offLocked(out); err != nil {
			errs = append(errs, err)
		}
	}
	b.updateGaugeLocked()
	b.mu.Unlock()

	b.cancel()
	b.wg.Wait()
	if err := b.closeOutputs(b.outputs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (b *Bank) closeOutputs(outs []*output) error {
	var errs []error
	for _, out := range outs {
		if out.level != nil {
			if err := out.level.close(); err != nil {
				errs = append(errs, fmt.Errorf("actuator: output %q: close: %w", out.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// pulseLocked turns out on for d from now, replacing any pulse in progress
// so that a second PASS extends the first instead of stacking.
func (b *Bank) pulseLocked(out *output, d time.Duration, ev Event) error {
	b.stopLocked(out)
	var err error
	if out.level != nil {
		if err = out.level.set(true, ev); err != nil {
			b.driverError(out, err)
			err = fmt.Errorf("actuator: output %q: on: %w", out.cfg.Name, err)
		}
	}
	// After a failed write the line may be on or off: treat it as on, so
	// that the caller's relock, the timer or Close drive it off again.
	out.on = true
	gen := out.gen
	out.timer = b.clock.AfterFunc(d, func() { b.expire(out, gen) })
	return err
}

// playLocked plays an on/off pattern on a level buzzer; event buzzers
// are fired by the caller and play their own sound.
func (b *Bank) playLocked(out *output, pattern []time.Duration, ev Event) error {
	b.stopLocked(out)
	if out.level == nil || len(pattern) == 0 {
		return nil
	}
	return b.stepLocked(out, pattern, 0, ev)
}

func (b *Bank) stepLocked(out *output, pattern []time.Duration, i int, ev Event) error {
	if i >= len(pattern) {
		return b.offLocked(out)
	}
	on := i%2 == 0
	if err := out.level.set(on, ev); err != nil {
		b.driverError(out, err)
		out.on = true // unknown: make Close and the next pattern drive it off
		return fmt.Errorf("actuator: output %q: buzzer: %w", out.cfg.Name, err)
	}
	out.on = on
	gen := out.gen
	out.timer = b.clock.AfterFunc(pattern[i], func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.closed || out.gen != gen {
			return
		}
		out.gen++
		_ = b.stepLocked(out, pattern, i+1, ev)
	})
	return nil
}

// expire ends a pulse unless something newer has replaced it.
func (b *Bank) expire(out *output, gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || out.gen != gen {
		return
	}
	if err := b.offLocked(out); err != nil && out.cfg.Role == "unlock" {
		b.log.Error("door may still be unlocked", "output", out.cfg.Name, "err", err)
	}
	b.updateGaugeLocked()
}

// offLocked cancels any pulse or pattern and drives out off.
func (b *Bank) offLocked(out *output) error {
	b.stopLocked(out)
	if !out.on {
		return nil
	}
	if out.level != nil {
		if err := out.level.set(false, Event{}); err != nil {
			b.driverError(out, err)
			return fmt.Errorf("actuator: output %q: off: %w", out.cfg.Name, err)
		}
	}
	out.on = false
	return nil
}

func (b *Bank) stopLocked(out *output) {
	out.gen++
	if out.timer != nil {
		out.timer.Stop()
		out.timer = nil
	}
}

func (b *Bank) relockLocked(why string) {
	for _, out := range b.outputs {
		if out.cfg.Role != "unlock" {
			continue
		}
		if err := b.offLocked(out); err != nil {
			b.log.Error("door may still be unlocked", "output", out.cfg.Name, "why", why, "err", err)
		}
	}
}

func (b *Bank) updateGaugeLocked() {
	v := 0.0
	for _, out := range b.outputs {
		if out.cfg.Role == "unlock" && out.on {
			v = 1
		}
	}
	b.unlocked.Set(v)
	switch {
	case v == 1 && b.unlockedAt.IsZero():
		b.unlockedAt = b.clock.Now()
	case v == 0 && !b.unlockedAt.IsZero():
		b.unlockedAt, b.relockedAt = time.Time{}, b.clock.Now()
	}
}

// unlockedFor is computed when Prometheus scrapes.
func (b *Bank) unlockedFor() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unlockedAt.IsZero() {
		return 0
	}
	return b.clock.Now().Sub(b.unlockedAt).Seconds()
}

func (b *Bank) driverError(out *output, err error) {
	b.errs.WithLabelValues(out.cfg.Driver).Inc()
	b.log.Warn("actuator output failed", "output", out.cfg.Name, "role", out.cfg.Role,
		"driver", out.cfg.Driver, "err", err)
}

type fireResult struct {
	out *output
	err error
}

// fireAll runs the event outputs concurrently and returns their failures.
func (b *Bank) fireAll(ctx context.Context, outs []*output, ev Event, now time.Time) []fireResult {
	if len(outs) == 0 {
		return nil
	}
	res := make([]error, len(outs))
	var wg sync.WaitGroup
	for i, out := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = out.event.fire(ctx, notice{Event: ev, Output: out.cfg.Name, Role: out.cfg.Role,
				State: "on", Pulse: out.cfg.Pulse, Time: now})
		}()
	}
	wg.Wait()
	var failed []fireResult
	for i, err := range res {
		if err != nil {
			b.driverError(outs[i], err)
			failed = append(failed, fireResult{outs[i], fmt.Errorf("actuator: output %q: %w", outs[i].cfg.Name, err)})
		}
	}
	return failed
}

// busyWorker delivers busy edges to one exec or http output, in order and
// collapsed to the latest, so that Busy never waits for a process or a
// network round trip.
func (b *Bank) busyWorker(out *output) {
	defer b.wg.Done()
	last := false
	for {
		select {
		case <-b.ctx.Done():
			return
		case on := <-out.busyWant:
			if on == last {
				continue
			}
			last = on
			state := "off"
			if on {
				state = "on"
			}
			n := notice{Output: out.cfg.Name, Role: out.cfg.Role, State: state, Time: b.clock.Now()}
			if err := out.event.fire(b.ctx, n); err != nil && b.ctx.Err() == nil {
				b.driverError(out, err)
			}
		}
	}
}
