package actuator_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/clock"
)

func line(n int) *int { return &n }

func gpioOut(name, role string, pulse time.Duration) config.Output {
	return config.Output{Name: name, Role: role, Driver: "gpio", Chip: "gpiochip0", Line: line(17), Pulse: pulse}
}

var pass = actuator.Event{Result: "PASS", Source: "lobby-door-1", AuthenticationID: "auth-1"}

type rig struct {
	bank  *actuator.Bank
	clock *clock.Fake
	reg   *prometheus.Registry
	pins  map[string]*testPin
}

// newRig builds a Bank on a fake clock with a gpiotest pin for every
// gpio output; pins start at initial, as if a crash had left them there.
func newRig(t *testing.T, outputs []config.Output, initial gpio.Level) *rig {
	t.Helper()
	r := &rig{clock: newClock(), reg: prometheus.NewRegistry(), pins: map[string]*testPin{}}
	opts := []actuator.Option{actuator.WithClock(r.clock)}
	for _, o := range outputs {
		if o.Driver == "gpio" {
			p := newPin(o.Name, initial)
			r.pins[o.Name] = p
			opts = append(opts, actuator.WithPin(o.Name, p))
		}
	}
	b, err := actuator.New(config.Actuator{Outputs: outputs}, discard(), r.reg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	r.bank = b
	return r
}

func (r *rig) level(name string) gpio.Level { return r.pins[name].Read() }

func TestLockedAtStart(t *testing.T) {
	low := gpioOut("strike-low", "unlock", 3*time.Second)
	low.ActiveLow = true
	outs := []config.Output{
		gpioOut("door", "unlock", 3*time.Second),
		low,
		gpioOut("green", "pass", 0),
		gpioOut("red", "fail", 0),
		gpioOut("amber", "busy", 0),
	}
	// Every line is left "on" as a crashed previous run could leave it.
	r := &rig{clock: newClock(), reg: prometheus.NewRegistry(), pins: map[string]*testPin{}}
	opts := []actuator.Option{actuator.WithClock(r.clock)}
	for _, o := range outs {
		on := gpio.High
		if o.ActiveLow {
			on = gpio.Low
		}
		p := newPin(o.Name, on)
		r.pins[o.Name] = p
		opts = append(opts, actuator.WithPin(o.Name, p))
	}
	b, err := actuator.New(config.Actuator{Outputs: outs}, discard(), r.reg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	for _, name := range []string{"door", "green", "red", "amber"} {
		if got := r.level(name); got != gpio.Low {
			t.Errorf("%s = %v after New, want Low (off)", name, got)
		}
	}
	if got := r.level("strike-low"); got != gpio.High {
		t.Errorf("active-low strike = %v after New, want High (locked)", got)
	}
	if v := metric(t, r.reg, "kioskd_actuator_door_unlocked"); v != 0 {
		t.Errorf("door_unlocked = %v, want 0", v)
	}
	for _, d := range []string{"gpio", "exec", "http", "log"} {
		if v := metric(t, r.reg, "kioskd_actuator_errors_total", "driver", d); v != 0 {
			t.Errorf("errors_total{driver=%q} = %v, want 0", d, v)
		}
	}
	if v := metric(t, r.reg, "kioskd_actuator_unlocks_total"); v != 0 {
		t.Errorf("unlocks_total = %v, want 0", v)
	}
}

func TestPulseLength(t *testing.T) {
	r := newRig(t, []config.Output{gpioOut("door", "unlock", 3*time.Second), gpioOut("green", "pass", 0)}, gpio.Low)
	if err := r.bank.Pass(context.Background(), pass); err != nil {
		t.Fatalf("Pass: %v", err)
	}
	if r.level("door") != gpio.High || r.level("green") != gpio.High {
		t.Fatalf("after Pass: door=%v green=%v, want both High", r.level("door"), r.level("green"))
	}
	if v := metric(t, r.reg, "kioskd_actuator_door_unlocked"); v != 1 {
		t.Errorf("door_unlocked = %v during the pulse, want 1", v)
	}
	r.clock.Advance(2*time.Second - time.Millisecond)
	if r.level("green") != gpio.High {
		t.Errorf("green went off before its default 2s pulse")
	}
	r.clock.Advance(time.Millisecond)
	if r.level("green") != gpio.Low {
		t.Errorf("green still on after its 2s pulse")
	}
	r.clock.Advance(time.Second - time.Millisecond)
	if r.level("door") != gpio.High {
		t.Fatalf("door relocked before 3s")
	}
	r.clock.Advance(time.Millisecond)
	if r.level("door") != gpio.Low {
		t.Fatalf("door still unlocked after 3s")
	}
	if v := metric(t, r.reg, "kioskd_actuator_door_unlocked"); v != 0 {
		t.Errorf("door_unlocked = %v after the pulse, want 0", v)
	}
	if v := metric(t, r.reg, "kioskd_actuator_unlocks_total"); v != 1 {
		t.Errorf("unlocks_total = %v, want 1", v)
	}
	if want := []gpio.Level{gpio.Low, gpio.High, gpio.Low}; !slices.Equal(r.pins["door"].history(), want) {
		t.Errorf("door writes = %v, want %v", r.pins["door"].history(), want)
	}
	if n := r.clock.Pending(); n != 0 {
		t.Errorf("%d timers still pending after the pulse", n)
	}
}

func TestActiveLowPulse(t *testing.T) {
	o := gpioOut("door", "unlock", time.Second)
	o.ActiveLow = true
	r := newRig(t, []config.Output{o}, gpio.Low)
	if r.level("door") != gpio.High {
		t.Fatalf("active-low door not High (locked) at start")
	}
	if err := r.bank.Pass(context.Background(), pass); err != nil {
		t.Fatal(err)
	}
	if r.level("door") != gpio.Low {
		t.Fatalf("active-low door not Low (unlocked) during the pulse")
	}
	r.clock.Advance(time.Second)
	if r.level("door") != gpio.High {
		t.Fatalf("active-low door not High (locked) after the pulse")
	}
}

func TestSecondPassExtendsPulse(t *testing.T) {
	r := newRig(t, []config.Output{gpioOut("door", "unlock", 3*time.Second)}, gpio.Low)
	ctx := context.Background()
	if err := r.bank.Pass(ctx, pass); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(2 * time.Second)
	if err := r.bank.Pass(ctx, pass); err != nil {
		t.Fatal(err)
	}
	// The first pulse would have ended at 3s; the second holds it to 5s.
	r.clock.Advance(2*time.Second + 999*time.Millisecond)
	if r.level("door") != gpio.High {
		t.Fatalf("door relocked at 4.999s although the second PASS at 2s extends to 5s")
	}
	r.clock.Advance(time.Millisecond)
	if r.level("door") != gpio.Low {
		t.Fatalf("door still unlocked at 5s")
	}
	// One continuous opening: never relocked in between, one final relock.
	h := r.pins["door"].history()
	if want := []gpio.Level{gpio.Low, gpio.High, gpio.High, gpio.Low}; !slices.Equal(h, want) {
		t.Errorf("door writes = %v, want %v", h, want)
	}
	if n := r.clock.Pending(); n != 0 {
		t.Errorf("%d timers pending: pulses stacked", n)
	}
	if v := metric(t, r.reg, "kioskd_actuator_unlocks_total"); v != 2 {
		t.Errorf("unlocks_total = %v, want 2", v)
	}
}

func TestFailNeverUnlocks(t *testing.T) {
	r := newRig(t, []config.Output{
		gpioOut("door", "unlock", 3*time.Second),
		gpioOut("green", "pass", 0),
		gpioOut("red", "fail", time.Second),
	}, gpio.Low)
	ctx := context.Background()
	fail := actuator.Event{Result: "FAIL", Reason: "hasFaceMask"}
	if err := r.bank.Fail(ctx, fail); err != nil {
		t.Fatal(err)
	}
	if r.level("red") != gpio.High {
		t.Errorf("red not on after Fail")
	}
	if h := r.pins["door"].history(); !slices.Equal(h, []gpio.Level{gpio.Low}) {
		t.Fatalf("Fail wrote to the door: %v", h)
	}
	r.clock.Advance(time.Second)
	if r.level("red") != gpio.Low {
		t.Errorf("red still on after its 1s pulse")
	}

	// A FAIL for the next person neither opens nor cuts short the
	// previous person's pulse, and switches the green light off.
	if err := r.bank.Pass(ctx, pass); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Second)
	if err := r.bank.Fail(ctx, fail); err != nil {
		t.Fatal(err)
	}
	if r.level("green") != gpio.Low || r.level("red") != gpio.High {
		t.Errorf("after Fail: green=%v red=%v, want Low and High", r.level("green"), r.level("red"))
	}
	if r.level("door") != gpio.High {
		t.Errorf("Fail cut the running pulse short")
	}
	r.clock.Advance(2 * time.Second)
	if r.level("door") != gpio.Low {
		t.Errorf("door not relocked on the pulse's schedule")
	}
	if v := metric(t, r.reg, "kioskd_actuator_unlocks_total"); v != 1 {
		t.Errorf("unlocks_total = %v, want 1", v)
	}
}

func TestRelockOnDriverError(t *testing.T) {
	r := newRig(t, []config.Output{
		gpioOut("door", "unlock", 3*time.Second),
		gpioOut("bolt", "unlock", 3*time.Second),
	}, gpio.Low)
	r.pins["bolt"].fail(gpio.High, true)
	err := r.bank.Pass(context.Background(), pass)
	if err == nil || !strings.Contains(err.Error(), `output "bolt"`) || !errors.Is(err, errInjected) {
		t.Fatalf("Pass error = %v, want the bolt's write failure", err)
	}
	if r.level("door") != gpio.Low {
		t.Errorf("door left unlocked after another unlock output failed")
	}
	if h := r.pins["bolt"].history(); h[len(h)-1] != gpio.Low {
		t.Errorf("bolt not driven locked after its failure: %v", h)
	}
	if v := metric(t, r.reg, "kioskd_actuator_door_unlocked"); v != 0 {
		t.Errorf("door_unlocked = %v, want 0", v)
	}
	if v := metric(t, r.reg, "kioskd_actuator_errors_total", "driver", "gpio"); v != 1 {
		t.Errorf("errors_total{gpio} = %v, want 1", v)
	}
	if v := metric(t, r.reg, "kioskd_actuator_unlocks_total"); v != 0 {
		t.Errorf("unlocks_total = %v after a failed unlock, want 0", v)
	}
	if n := r.clock.Pending(); n != 0 {
		t.Errorf("%d pulse timers left after the relock", n)
	}
}

func TestIndicatorErrorKeepsDoorWorking(t *testing.T) {
	r := newRig(t, []config.Output{gpioOut("door", "unlock", 3*time.Second), gpioOut("green", "pass", 0)}, gpio.Low)
	r.pins["green"].fail(gpio.High, true)
	err := r.bank.Pass(context.Background(), pass)
	if err == nil || !strings.Contains(err.Error(), `output "green"`) {
		t.Fatalf("Pass error = %v, want the green light's failure", err)
	}
	// A broken lamp cannot open a door, so it must not keep one shut.
	if r.level("door") != gpio.High {
		t.Errorf("a failing indicator relocked the door")
	}
	r.clock.Advance(3 * time.Second)
	if r.level("door") != gpio.Low {
		t.Errorf("door not relocked after the pulse")
	}
}

func TestRelockFailureKeepsGaugeUp(t *testing.T) {
	r := newRig(t, []config.Output{gpioOut("door", "unlock", time.Second)}, gpio.Low)
	if err := r.bank.Pass(context.Background(), pass); err != nil {
		t.Fatal(err)
	}
	r.pins["door"].fail(gpio.Low, true)
	r.clock.Advance(time.Second)
	if v := metric(t, r.reg, "kioskd_actuator_door_unlocked"); v != 1 {
		t.Errorf("door_unlocked = %v after a failed relock, want 1 (door may be open)", v)
	}
	if v := metric(t, r.reg, "kioskd_actuator_errors_total", "driver", "gpio"); v != 1 {
		t.Errorf("errors_total{gpio} = %v, want 1", v)
	}
	// Close tries again.
	r.pins["door"].fail(gpio.Low, false)
	if err := r.bank.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r.level("door") != gpio.Low {
		t.Errorf("Close did not relock")
	}
	if v := metric(t, r.reg, "kioskd_actuator_door_unlocked"); v != 0 {
		t.Errorf("door_unlocked = %v after Close, want 0", v)
	}
}

func TestCloseMidPulseRelocks(t *testing.T) {
	r := newRig(t, []config.Output{
		gpioOut("door", "unlock", 3*time.Second),
		gpioOut("green", "pass", 0),
		gpioOut("amber", "busy", 0),
	}, gpio.Low)
	ctx := context.Background()
	r.bank.Busy(true)
	if err := r.bank.Pass(ctx, pass); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Second)
	if err := r.bank.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, name := range []string{"door", "green", "amber"} {
		if r.level(name) != gpio.Low {
			t.Errorf("%s still on after Close", name)
		}
	}
	if n := r.clock.Pending(); n != 0 {
		t.Errorf("%d timers pending after Close", n)
	}
	if err := r.bank.Pass(ctx, pass); !errors.Is(err, actuator.ErrClosed) {
		t.Errorf("Pass after Close = %v, want ErrClosed", err)
	}
	if err := r.bank.Fail(ctx, pass); !errors.Is(err, actuator.ErrClosed) {
		t.Errorf("Fail after Close = %v, want ErrClosed", err)
	}
	r.bank.Busy(true)
	r.clock.Advance(10 * time.Second)
	if r.level("door") != gpio.Low || r.level("amber") != gpio.Low {
		t.Errorf("an output changed after Close")
	}
	if err := r.bank.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLateAnswerDoesNotUnlock(t *testing.T) {
	r := newRig(t, []config.Output{gpioOut("door", "unlock", 3*time.Second)}, gpio.Low)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.bank.Pass(ctx, pass); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pass with a done context = %v, want context.Canceled", err)
	}
	if r.level("door") != gpio.Low || len(r.pins["door"].history()) != 1 {
		t.Fatalf("door touched by a late PASS: %v", r.pins["door"].history())
	}
}

// TestPulseEndsOnItsOwn uses the real clock: nobody calls the Bank after
// Pass, and the door still relocks on time.
func TestPulseEndsOnItsOwn(t *testing.T) {
	p := newPin("door", gpio.Low)
	p.changed = make(chan gpio.Level, 8)
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{gpioOut("door", "unlock", 50*time.Millisecond)}},
		discard(), prometheus.NewRegistry(), actuator.WithPin("door", p))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if l := <-p.changed; l != gpio.Low {
		t.Fatalf("first write %v, want Low", l)
	}
	start := time.Now()
	if err := b.Pass(context.Background(), pass); err != nil {
		t.Fatal(err)
	}
	if l := <-p.changed; l != gpio.High {
		t.Fatalf("Pass wrote %v, want High", l)
	}
	select {
	case l := <-p.changed:
		if l != gpio.Low {
			t.Fatalf("pulse end wrote %v, want Low", l)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("pulse ended after %s, before its 50ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pulse did not end within 5s with nobody calling the Bank")
	}
}

func TestBuzzerPatterns(t *testing.T) {
	bz := config.Output{Name: "buzzer", Role: "buzzer", Driver: "gpio", Chip: "gpiochip0", Line: line(5),
		Pattern:     []time.Duration{100 * time.Millisecond},
		FailPattern: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}}
	r := newRig(t, []config.Output{bz}, gpio.Low)
	ctx := context.Background()
	if err := r.bank.Pass(ctx, pass); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(100 * time.Millisecond)
	if want := []gpio.Level{gpio.Low, gpio.High, gpio.Low}; !slices.Equal(r.pins["buzzer"].history(), want) {
		t.Fatalf("PASS pattern writes = %v, want %v", r.pins["buzzer"].history(), want)
	}
	if err := r.bank.Fail(ctx, actuator.Event{Result: "FAIL"}); err != nil {
		t.Fatal(err)
	}
	var levels []gpio.Level
	for range 3 {
		levels = append(levels, r.level("buzzer"))
		r.clock.Advance(50 * time.Millisecond)
	}
	levels = append(levels, r.level("buzzer"))
	if want := []gpio.Level{gpio.High, gpio.Low, gpio.High, gpio.Low}; !slices.Equal(levels, want) {
		t.Fatalf("FAIL pattern levels = %v, want %v", levels, want)
	}
	if n := r.clock.Pending(); n != 0 {
		t.Errorf("%d buzzer timers left", n)
	}
}

func TestBusy(t *testing.T) {
	r := newRig(t, []config.Output{gpioOut("amber", "busy", 0)}, gpio.Low)
	r.bank.Busy(true)
	if r.level("amber") != gpio.High {
		t.Fatalf("amber off after Busy(true)")
	}
	r.bank.Busy(true)
	r.bank.Busy(false)
	if r.level("amber") != gpio.Low {
		t.Fatalf("amber on after Busy(false)")
	}
	if want := []gpio.Level{gpio.Low, gpio.High, gpio.Low}; !slices.Equal(r.pins["amber"].history(), want) {
		t.Errorf("amber writes = %v, want %v", r.pins["amber"].history(), want)
	}
}

// TestLight: the light role is a level output like busy, switched on its own.
func TestLight(t *testing.T) {
	r := newRig(t, []config.Output{gpioOut("lamp", "light", 0), gpioOut("amber", "busy", 0)}, gpio.Low)
	r.bank.Light(true)
	if r.level("lamp") != gpio.High || r.level("amber") != gpio.Low {
		t.Fatalf("Light(true): lamp %v, amber %v", r.level("lamp"), r.level("amber"))
	}
	r.bank.Busy(true)
	r.bank.Light(false)
	if r.level("lamp") != gpio.Low || r.level("amber") != gpio.High {
		t.Fatalf("Light(false) after Busy(true): lamp %v, amber %v", r.level("lamp"), r.level("amber"))
	}
	r.bank.Light(true)
	if err := r.bank.Close(); err != nil {
		t.Fatal(err)
	}
	if r.level("lamp") != gpio.Low {
		t.Errorf("the lamp stays on after Close")
	}
}

func TestLogDriver(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := actuator.New(config.Actuator{Outputs: []config.Output{
		{Name: "dry", Role: "unlock", Driver: "log", Pulse: time.Second},
	}}, discard(), reg, actuator.WithClock(newClock()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Pass(context.Background(), pass); err != nil {
		t.Fatal(err)
	}
	if v := metric(t, reg, "kioskd_actuator_door_unlocked"); v != 1 {
		t.Errorf("door_unlocked = %v with a log unlock output, want 1", v)
	}
}

func TestMissingChipIsAClearError(t *testing.T) {
	o := gpioOut("door", "unlock", 3*time.Second)
	o.Chip = "gpiochip99"
	_, err := actuator.New(config.Actuator{Outputs: []config.Output{o}}, discard(), prometheus.NewRegistry())
	if err == nil {
		t.Fatal("New with a missing gpiochip succeeded")
	}
	for _, want := range []string{`actuator: output "door"`, "gpio gpiochip99 line 17", "no such chip"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	o.Line, o.LineName = nil, "DOOR_RELAY"
	_, err = actuator.New(config.Actuator{Outputs: []config.Output{o}}, discard(), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), `gpio gpiochip99 line "DOOR_RELAY"`) {
		t.Errorf("line-name error = %v, want it to name the chip and line", err)
	}
}

func TestBadConfig(t *testing.T) {
	cases := map[string]struct {
		outs []config.Output
		opts []actuator.Option
		want string
	}{
		"unlock without pulse": {
			outs: []config.Output{{Name: "door", Role: "unlock", Driver: "log"}},
			want: "pulse",
		},
		"unknown driver": {
			outs: []config.Output{{Name: "x", Role: "pass", Driver: "relay"}},
			want: `"relay"`,
		},
		"relative exec path": {
			outs: []config.Output{{Name: "hook", Role: "pass", Driver: "exec", Command: []string{"door-hook"}}},
			want: "absolute path",
		},
		"pin for a missing output": {
			outs: []config.Output{{Name: "door", Role: "unlock", Driver: "log", Pulse: time.Second}},
			opts: []actuator.Option{actuator.WithPin("dor", newPin("dor", gpio.Low))},
			want: `WithPin("dor")`,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := actuator.New(config.Actuator{Outputs: c.outs}, discard(), prometheus.NewRegistry(), c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error containing %q", err, c.want)
			}
		})
	}
}
