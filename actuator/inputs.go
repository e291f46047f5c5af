package actuator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/clock"
)

// DoorEventKind is what the door inputs saw.
type DoorEventKind string

// The door events.
const (
	DoorOpened       DoorEventKind = "opened"        // while unlocked or after an exit request
	DoorClosed       DoorEventKind = "closed"        // back in its frame
	DoorForcedOpen   DoorEventKind = "forced_open"   // opened while locked, without an exit request
	DoorHeldOpen     DoorEventKind = "held_open"     // open longer than held_open
	DoorExitRequest  DoorEventKind = "exit_request"  // the exit button
	DoorAlarmCleared DoorEventKind = "alarm_cleared" // closed again after forced or held open
)

// DoorEvent is one thing the door inputs saw.
type DoorEvent struct {
	Kind  DoorEventKind
	Time  time.Time
	Input string        // the input's name
	Open  time.Duration // how long the door had been open (held_open, closed)
}

// relockGrace is how long after the strike relocks an opening still counts
// as authorised: a person pulling the door as the pulse ends is not a
// break-in.
const relockGrace = time.Second

// Inputs watches the door-position switch and the request-to-exit button,
// raises forced-open and held-open alarms (on the buzzer outputs too) and
// reports door events. Edges are debounced: a level counts once it has
// held for the input's debounce time.
type Inputs struct {
	cfg     config.Actuator
	bank    *Bank
	log     *slog.Logger
	clock   clock.Clock
	onEvent func(DoorEvent)
	pins    map[string]gpio.PinIO

	mu        sync.Mutex
	inputs    []*input
	open      bool
	openedAt  time.Time
	exitUntil time.Time
	alarm     bool
	heldTimer clock.Stopper
	heldGen   uint64
	queue     []DoorEvent
	notify    chan struct{}

	openGauge  prometheus.Gauge
	alarmGauge *prometheus.GaugeVec
	forced     prometheus.Counter
	held       prometheus.Counter
	exits      prometheus.Counter
}

type input struct {
	cfg    config.Input
	pin    gpio.PinIO
	active bool // debounced
	gen    uint64
	timer  clock.Stopper
}

// NewInputs opens the configured inputs (WithPin gives test pins, WithClock
// a clock.Fake) and reads their current levels; Run watches them.
// onEvent receives every door event in order, from Run's goroutine.
func NewInputs(cfg config.Actuator, bank *Bank, log *slog.Logger, reg prometheus.Registerer, onEvent func(DoorEvent), opts ...Option) (*Inputs, error) {
	o := options{clock: clock.Real(), pins: map[string]gpio.PinIO{}}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.HeldOpen <= 0 {
		cfg.HeldOpen = config.DefaultHeldOpen
	}
	in := &Inputs{cfg: cfg, bank: bank, log: log, clock: o.clock, onEvent: onEvent, pins: o.pins,
		notify: make(chan struct{}, 1),
		openGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_door_open", Help: "1 while the door-position switch says open.",
		}),
		alarmGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kioskd_door_alarm", Help: "1 while the door stands open after being forced, or longer than held_open (the buzzer sounds).",
		}, []string{"alarm"}),
		forced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_door_forced_open_total", Help: "Openings while locked without an exit request.",
		}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_door_held_open_total", Help: "Openings that lasted longer than actuator.held_open.",
		}),
		exits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_door_exit_requests_total", Help: "Presses of the request-to-exit button.",
		}),
	}
	for _, ic := range cfg.Inputs {
		ic = ic.WithDefaults()
		p, err := openInput(ic, o.pins[ic.Name])
		if err != nil {
			in.close()
			return nil, fmt.Errorf("actuator: input %q: %w", ic.Name, err)
		}
		x := &input{cfg: ic, pin: p}
		x.active = in.level(x)
		in.inputs = append(in.inputs, x)
		if ic.Role == config.InputDoorPosition && x.active {
			// Open at start: no alarm (nobody knows since when), but it
			// must not stay open unnoticed.
			in.open, in.openedAt = true, in.clock.Now()
			in.startHeldLocked()
		}
	}
	if in.open {
		in.openGauge.Set(1)
	}
	for _, k := range []DoorEventKind{DoorForcedOpen, DoorHeldOpen} {
		in.alarmGauge.WithLabelValues(string(k))
	}
	for _, c := range []prometheus.Collector{in.openGauge, in.alarmGauge, in.forced, in.held, in.exits} {
		if err := reg.Register(c); err != nil {
			in.close()
			return nil, fmt.Errorf("actuator: register input metrics: %w", err)
		}
	}
	return in, nil
}

func openInput(ic config.Input, injected gpio.PinIO) (gpio.PinIO, error) {
	pull := gpio.PullNoChange
	if ic.ActiveLow {
		// A contact to ground floats when open unless pulled up.
		pull = gpio.PullUp
	}
	var p gpio.PinIO = injected
	if p == nil {
		line, err := findLine(ic.Chip, ic.Line, ic.LineName)
		if err != nil {
			return nil, err
		}
		p = line
	}
	if err := p.In(pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("%s: watch edges: %w", inputWhere(ic), err)
	}
	return p, nil
}

func inputWhere(ic config.Input) string {
	return gpioWhere(config.Output{Chip: ic.Chip, Line: ic.Line, LineName: ic.LineName})
}

// findLine finds a line like the gpio outputs do.
func findLine(chipName string, num *int, name string) (*gpioioctl.GPIOLine, error) {
	d, err := openGPIO(config.Output{Chip: chipName, Line: num, LineName: name}, nil)
	if err != nil {
		return nil, err
	}
	return d.pin.(*gpioioctl.GPIOLine), nil
}

func (in *Inputs) level(x *input) bool { return (x.pin.Read() == gpio.High) != x.cfg.ActiveLow }

// Run watches every input until ctx ends and delivers door events.
func (in *Inputs) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, x := range in.inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.watch(ctx, x)
		}()
	}
	defer func() {
		wg.Wait()
		in.close()
	}()
	for {
		select {
		case <-ctx.Done():
			in.deliver()
			return nil
		case <-in.notify:
			in.deliver()
		}
	}
}

// watch waits for edges on one input; the wait is bounded so that a stop
// is noticed.
func (in *Inputs) watch(ctx context.Context, x *input) {
	for ctx.Err() == nil {
		if x.pin.WaitForEdge(200 * time.Millisecond) {
			in.edge(x)
		}
	}
}

// edge restarts the input's debounce: the level is read once it has held.
func (in *Inputs) edge(x *input) {
	in.mu.Lock()
	defer in.mu.Unlock()
	x.gen++
	if x.timer != nil {
		x.timer.Stop()
	}
	gen := x.gen
	x.timer = in.clock.AfterFunc(x.cfg.Debounce, func() { in.settle(x, gen) })
}

func (in *Inputs) settle(x *input, gen uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if x.gen != gen {
		return
	}
	active := in.level(x)
	if active == x.active {
		return // a bounce that came back
	}
	x.active = active
	now := in.clock.Now()
	switch x.cfg.Role {
	case config.InputExitRequest:
		if active {
			in.exitLocked(x, now)
		}
	case config.InputDoorPosition:
		if active {
			in.openedLocked(x, now)
		} else {
			in.closedLocked(x, now)
		}
	}
}

func (in *Inputs) exitLocked(x *input, now time.Time) {
	in.exits.Inc()
	// The door may open for as long as the strike is released, plus grace.
	in.exitUntil = now.Add(in.bank.unlockPulse() + relockGrace)
	in.emitLocked(DoorEvent{Kind: DoorExitRequest, Time: now, Input: x.cfg.Name})
	if err := in.bank.release(); err != nil {
		in.log.Error("exit request: door not released", "err", err)
	}
}

func (in *Inputs) openedLocked(x *input, now time.Time) {
	in.open, in.openedAt = true, now
	in.openGauge.Set(1)
	if in.bank.unlockedWithin(relockGrace) || now.Before(in.exitUntil) {
		in.emitLocked(DoorEvent{Kind: DoorOpened, Time: now, Input: x.cfg.Name})
	} else {
		in.forced.Inc()
		in.log.Warn("door forced open", "input", x.cfg.Name)
		in.emitLocked(DoorEvent{Kind: DoorForcedOpen, Time: now, Input: x.cfg.Name})
		in.alarmLocked(string(DoorForcedOpen), true)
	}
	in.startHeldLocked()
}

func (in *Inputs) closedLocked(x *input, now time.Time) {
	open := now.Sub(in.openedAt)
	in.open = false
	in.openGauge.Set(0)
	in.heldGen++
	if in.heldTimer != nil {
		in.heldTimer.Stop()
		in.heldTimer = nil
	}
	in.emitLocked(DoorEvent{Kind: DoorClosed, Time: now, Input: x.cfg.Name, Open: open})
	if in.alarm {
		in.alarmLocked("", false)
		in.emitLocked(DoorEvent{Kind: DoorAlarmCleared, Time: now, Input: x.cfg.Name, Open: open})
	}
}

func (in *Inputs) startHeldLocked() {
	in.heldGen++
	gen := in.heldGen
	if in.heldTimer != nil {
		in.heldTimer.Stop()
	}
	in.heldTimer = in.clock.AfterFunc(in.cfg.HeldOpen, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.heldGen != gen || !in.open {
			return
		}
		now := in.clock.Now()
		in.held.Inc()
		in.log.Warn("door held open", "open_for", now.Sub(in.openedAt).String())
		in.emitLocked(DoorEvent{Kind: DoorHeldOpen, Time: now, Input: in.positionName(), Open: now.Sub(in.openedAt)})
		in.alarmLocked(string(DoorHeldOpen), true)
	})
}

func (in *Inputs) positionName() string {
	for _, x := range in.inputs {
		if x.cfg.Role == config.InputDoorPosition {
			return x.cfg.Name
		}
	}
	return ""
}

// alarmLocked raises the alarm of that kind, or clears every alarm.
func (in *Inputs) alarmLocked(kind string, on bool) {
	in.alarm = on
	if on {
		in.alarmGauge.WithLabelValues(kind).Set(1)
	} else {
		for _, k := range []DoorEventKind{DoorForcedOpen, DoorHeldOpen} {
			in.alarmGauge.WithLabelValues(string(k)).Set(0)
		}
	}
	in.bank.alarm(on)
}

// emitLocked queues ev for Run's goroutine: the callback writes to disk,
// which must not happen under the lock or in a timer.
func (in *Inputs) emitLocked(ev DoorEvent) {
	in.queue = append(in.queue, ev)
	select {
	case in.notify <- struct{}{}:
	default:
	}
}

func (in *Inputs) deliver() {
	in.mu.Lock()
	q := in.queue
	in.queue = nil
	in.mu.Unlock()
	if in.onEvent == nil {
		return
	}
	for _, ev := range q {
		in.onEvent(ev)
	}
}

func (in *Inputs) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.heldGen++
	if in.heldTimer != nil {
		in.heldTimer.Stop()
	}
	for _, x := range in.inputs {
		x.gen++
		if x.timer != nil {
			x.timer.Stop()
		}
		if c, ok := x.pin.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// unlockPulse is the longest unlock pulse configured.
func (b *Bank) unlockPulse() time.Duration {
	var d time.Duration
	for _, out := range b.outputs {
		if out.cfg.Role == "unlock" {
			d = max(d, out.cfg.Pulse)
		}
	}
	return d
}

// unlockedWithin reports whether an unlock output is on, or went off less
// than d ago.
func (b *Bank) unlockedWithin(d time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, out := range b.outputs {
		if out.cfg.Role == "unlock" && out.on {
			return true
		}
	}
	return !b.relockedAt.IsZero() && b.clock.Now().Sub(b.relockedAt) < d
}

// release pulses the unlock outputs for an exit request: no pass
// indicator, no buzzer, and event outputs (exec, http) are told nothing,
// since the panel or hook they talk to sees the button itself.
func (b *Bank) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	var err error
	for _, out := range b.outputs {
		if out.cfg.Role == "unlock" && out.level != nil {
			if e := b.pulseLocked(out, out.cfg.Pulse, Event{Result: "EXIT"}); e != nil {
				err = e
			}
		}
	}
	if err != nil {
		b.relockLocked("exit release failed")
	}
	b.updateGaugeLocked()
	return err
}

// alarm holds the level buzzers on while a door alarm lasts.
func (b *Bank) alarm(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for _, out := range b.outputs {
		if out.cfg.Role != "buzzer" || out.level == nil {
			continue
		}
		if !on {
			if err := b.offLocked(out); err != nil {
				b.log.Error("buzzer did not stop", "output", out.cfg.Name, "err", err)
			}
			continue
		}
		b.stopLocked(out)
		if err := out.level.set(true, Event{}); err != nil {
			b.driverError(out, err)
		}
		out.on = true
	}
}
