package actuator_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/clock"
)

type doorRig struct {
	t      *testing.T
	bank   *actuator.Bank
	in     *actuator.Inputs
	clock  *clock.Fake
	reg    *prometheus.Registry
	door   *testPin
	buzz   *testPin
	pos    *gpiotest.Pin
	rex    *gpiotest.Pin
	events chan actuator.DoorEvent
}

// newDoorRig is a door with a strike, a buzzer, a position switch (active
// high: high is open) and an exit button (active low, as a button to
// ground is wired), all on test pins and a fake clock.
func newDoorRig(t *testing.T) *doorRig {
	t.Helper()
	r := &doorRig{t: t, clock: newClock(), reg: prometheus.NewRegistry(),
		door: newPin("door", gpio.Low), buzz: newPin("buzz", gpio.Low),
		pos:    &gpiotest.Pin{N: "pos", L: gpio.Low, EdgesChan: make(chan gpio.Level)},
		rex:    &gpiotest.Pin{N: "rex", EdgesChan: make(chan gpio.Level)},
		events: make(chan actuator.DoorEvent, 32)}
	cfg := config.Actuator{
		Outputs: []config.Output{gpioOut("door", "unlock", 3*time.Second),
			config.Output{Name: "buzz", Role: "buzzer", Driver: "gpio", Chip: "gpiochip0", Line: line(27)}.WithDefaults()},
		Inputs: []config.Input{
			{Name: "pos", Role: config.InputDoorPosition, Driver: "gpio", Chip: "gpiochip0", Line: line(22)},
			{Name: "rex", Role: config.InputExitRequest, Driver: "gpio", Chip: "gpiochip0", Line: line(23), ActiveLow: true},
		},
		HeldOpen: 30 * time.Second,
	}
	opts := []actuator.Option{actuator.WithClock(r.clock), actuator.WithPin("door", r.door), actuator.WithPin("buzz", r.buzz),
		actuator.WithPin("pos", r.pos), actuator.WithPin("rex", r.rex)}
	var err error
	if r.bank, err = actuator.New(cfg, discard(), r.reg, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.bank.Close() })
	r.in, err = actuator.NewInputs(cfg, r.bank, discard(), r.reg, func(ev actuator.DoorEvent) { r.events <- ev }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return r
}

// edge injects a level change and waits until the input has started its
// debounce timer.
func (r *doorRig) edge(p *gpiotest.Pin, l gpio.Level) {
	r.t.Helper()
	// Forget the timers the test goroutine itself has set.
	for len(r.clock.Armed()) > 0 {
		<-r.clock.Armed()
	}
	p.EdgesChan <- l
	select {
	case <-r.clock.Armed():
	case <-time.After(5 * time.Second):
		r.t.Fatal("the input did not take the edge")
	}
}

func (r *doorRig) expect(kinds ...actuator.DoorEventKind) {
	r.t.Helper()
	for _, k := range kinds {
		select {
		case ev := <-r.events:
			if ev.Kind != k {
				r.t.Fatalf("door event %s, want %s", ev.Kind, k)
			}
			if ev.Time.IsZero() || ev.Input == "" {
				r.t.Fatalf("door event without time or input: %+v", ev)
			}
		case <-time.After(5 * time.Second):
			r.t.Fatalf("no door event, want %s", k)
		}
	}
}

func (r *doorRig) metric(name string, labels ...string) float64 {
	return metric(r.t, r.reg, name, labels...)
}

func TestDoorForcedOpen(t *testing.T) {
	r := newDoorRig(t)
	r.edge(r.pos, gpio.High)
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorForcedOpen)
	if r.buzz.Read() != gpio.High || r.metric("kioskd_door_alarm", "alarm", "forced_open") != 1 || r.metric("kioskd_door_forced_open_total") != 1 || r.metric("kioskd_door_open") != 1 {
		t.Fatalf("forced open: buzzer %v, alarm %v, forced %v, open %v", r.buzz.Read(), r.metric("kioskd_door_alarm", "alarm", "forced_open"),
			r.metric("kioskd_door_forced_open_total"), r.metric("kioskd_door_open"))
	}
	if r.door.Read() != gpio.Low {
		t.Fatal("a forced door was unlocked")
	}
	r.edge(r.pos, gpio.Low)
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorClosed, actuator.DoorAlarmCleared)
	if r.buzz.Read() != gpio.Low || r.metric("kioskd_door_alarm", "alarm", "forced_open") != 0 || r.metric("kioskd_door_open") != 0 {
		t.Fatal("alarm still on after the door closed")
	}
}

// A bounce shorter than the debounce time is no event at all.
func TestDoorBounceIgnored(t *testing.T) {
	r := newDoorRig(t)
	r.edge(r.pos, gpio.High)
	r.clock.Advance(20 * time.Millisecond)
	r.edge(r.pos, gpio.Low)
	r.clock.Advance(time.Second)
	if r.metric("kioskd_door_forced_open_total") != 0 || r.metric("kioskd_door_open") != 0 {
		t.Fatal("a 20 ms bounce counted as an opening")
	}
	select {
	case ev := <-r.events:
		t.Fatalf("event %s from a bounce", ev.Kind)
	default:
	}
}

// The exit button releases the strike; the opening that follows is no
// alarm, but standing open past held_open is.
func TestExitRequestThenHeldOpen(t *testing.T) {
	r := newDoorRig(t)
	r.edge(r.rex, gpio.Low) // pressed
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorExitRequest)
	if r.door.Read() != gpio.High || r.metric("kioskd_door_exit_requests_total") != 1 {
		t.Fatal("the exit request did not release the strike")
	}
	r.edge(r.rex, gpio.High) // released
	r.clock.Advance(50 * time.Millisecond)
	r.edge(r.pos, gpio.High)
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorOpened)
	r.clock.Advance(3 * time.Second)
	if r.door.Read() != gpio.Low {
		t.Fatal("the strike did not relock after its pulse")
	}
	if r.buzz.Read() != gpio.Low {
		t.Fatal("buzzer on before held_open")
	}
	r.clock.Advance(27 * time.Second)
	r.expect(actuator.DoorHeldOpen)
	if r.buzz.Read() != gpio.High || r.metric("kioskd_door_alarm", "alarm", "held_open") != 1 || r.metric("kioskd_door_held_open_total") != 1 || r.metric("kioskd_door_forced_open_total") != 0 {
		t.Fatal("held open: no alarm")
	}
	r.edge(r.pos, gpio.Low)
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorClosed, actuator.DoorAlarmCleared)
	if r.buzz.Read() != gpio.Low {
		t.Fatal("buzzer still on")
	}
}

// A door opened during a PASS pulse, or just as it ends, is not forced;
// one opened well after the relock is.
func TestDoorOpenedAfterPass(t *testing.T) {
	r := newDoorRig(t)
	if err := r.bank.Pass(context.Background(), pass); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(3*time.Second + 200*time.Millisecond) // relocked 200 ms ago
	r.edge(r.pos, gpio.High)
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorOpened)
	r.edge(r.pos, gpio.Low)
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorClosed)
	r.clock.Advance(5 * time.Second)
	r.edge(r.pos, gpio.High)
	r.clock.Advance(50 * time.Millisecond)
	r.expect(actuator.DoorForcedOpen)
}

func TestDoorUnlockedSeconds(t *testing.T) {
	r := newDoorRig(t)
	if r.metric("kioskd_actuator_unlock_pulse_seconds") != 3 {
		t.Fatal("unlock pulse gauge")
	}
	_ = r.bank.Pass(context.Background(), pass)
	r.clock.Advance(2 * time.Second)
	if v := r.metric("kioskd_actuator_door_unlocked_seconds"); v != 2 {
		t.Fatalf("unlocked for %v s, want 2", v)
	}
	r.clock.Advance(2 * time.Second)
	if v := r.metric("kioskd_actuator_door_unlocked_seconds"); v != 0 {
		t.Fatalf("unlocked for %v s after the relock, want 0", v)
	}
}
