package wiegand

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
)

type edge struct {
	at   time.Duration
	line int // 0 or 1
	l    gpio.Level
}

// recorder is a pair of gpiotest pins that log every level change with the
// time of the clock the sender waits on.
type recorder struct {
	mu    sync.Mutex
	t     time.Duration
	edges []edge
}

type recPin struct {
	*gpiotest.Pin
	r    *recorder
	line int
	now  func() time.Duration
}

func (p *recPin) Out(l gpio.Level) error {
	at := p.now()
	p.r.mu.Lock()
	p.r.edges = append(p.r.edges, edge{at: at, line: p.line, l: l})
	p.r.mu.Unlock()
	return p.Pin.Out(l)
}

// decode turns recorded edges back into bits, checking every pulse width
// and the spacing of the pulses.
func decode(t *testing.T, edges []edge, pulse, interval, slack time.Duration) credentials.Bits {
	t.Helper()
	var bits string
	var lastFall time.Duration = -1
	for i := 0; i < len(edges); i++ {
		e := edges[i]
		if e.l != gpio.Low {
			continue
		}
		if i+1 >= len(edges) || edges[i+1].line != e.line || edges[i+1].l != gpio.High {
			t.Fatalf("a low on D%d without its rise", e.line)
		}
		w := edges[i+1].at - e.at
		if w < pulse || w > pulse+slack {
			t.Fatalf("pulse %d is %s wide, want %s", len(bits), w, pulse)
		}
		if lastFall >= 0 {
			if gap := e.at - lastFall; gap < interval || gap > interval+slack {
				t.Fatalf("bit %d starts %s after the previous one, want %s", len(bits), gap, interval)
			}
		}
		lastFall = e.at
		bits += string(rune('0' + e.line))
	}
	b, err := credentials.BitsFromString(bits)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRig(t *testing.T, cfg config.Wiegand, now func() time.Duration, wait func(time.Duration), opts ...Option) (*Sender, *recorder) {
	t.Helper()
	r := &recorder{}
	if now == nil {
		now = func() time.Duration { r.mu.Lock(); defer r.mu.Unlock(); return r.t }
		wait = func(d time.Duration) { r.mu.Lock(); r.t += d; r.mu.Unlock() }
	}
	d0 := &recPin{Pin: &gpiotest.Pin{N: "D0"}, r: r, line: 0, now: now}
	d1 := &recPin{Pin: &gpiotest.Pin{N: "D1"}, r: r, line: 1, now: now}
	opts = append([]Option{WithPins(d0, d1)}, opts...)
	if wait != nil {
		opts = append(opts, WithWait(wait))
	}
	s, err := New(cfg, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if d0.Read() != gpio.High || d1.Read() != gpio.High {
		t.Fatal("data lines not idle high")
	}
	return s, r
}

func TestFramesDecodeBack(t *testing.T) {
	cfg := config.Wiegand{Pulse: 50 * time.Microsecond, Interval: 2 * time.Millisecond, LEDLine: -1, BeeperLine: -1}
	raw, _ := credentials.BitsFromString("1011001110001")
	for _, c := range []credentials.Credential{
		must(credentials.New(credentials.H10301, 12, 34567)),
		must(credentials.New(credentials.H10306, 65000, 4242)),
		must(credentials.New(credentials.H10304, 777, 400000)),
		{Format: credentials.Raw, Raw: raw},
	} {
		s, r := newRig(t, cfg, nil, nil)
		r.edges = nil
		if err := s.Send(context.Background(), c.Encode()); err != nil {
			t.Fatal(err)
		}
		got := decode(t, r.edges, cfg.Pulse, cfg.Interval, 0)
		if got.String() != c.Encode().String() {
			t.Fatalf("%s: decoded %s, sent %s", c.Format, got, c.Encode())
		}
		back, err := credentials.Decode(got)
		if err != nil || back.Format != c.Format || back.Card != c.Card || back.Facility != c.Facility {
			t.Fatalf("%s: %+v %v", c.Format, back, err)
		}
		if testutil.ToFloat64(s.sent.WithLabelValues(itoa(got.Count))) != 1 {
			t.Fatal("frame not counted")
		}
	}
}

// TestRealTiming sends with the real waits and checks that no pulse is
// shorter than configured (a panel misses a short pulse; a long one is
// harmless within its tolerance).
func TestRealTiming(t *testing.T) {
	start := time.Now()
	cfg := config.Wiegand{Pulse: 50 * time.Microsecond, Interval: 2 * time.Millisecond, LEDLine: -1, BeeperLine: -1}
	s, r := newRig(t, cfg, func() time.Duration { return time.Since(start) }, nil)
	c := must(credentials.New(credentials.H10301, 1, 2))
	r.edges = nil
	if err := s.Send(context.Background(), c.Encode()); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, r.edges, cfg.Pulse, cfg.Interval, time.Second); got.String() != c.Encode().String() {
		t.Fatalf("decoded %s", got)
	}
}

func TestPanelLines(t *testing.T) {
	led := &gpiotest.Pin{N: "LED", EdgesChan: make(chan gpio.Level, 1)}
	beep := &gpiotest.Pin{N: "BEEP", EdgesChan: make(chan gpio.Level, 1)}
	sig := make(chan Signal, 4)
	s, _ := newRig(t, config.Wiegand{Pulse: 50 * time.Microsecond, Interval: 2 * time.Millisecond, LEDLine: -1, BeeperLine: -1}, nil, nil,
		WithInputs(led, beep), WithSignals(func(x Signal) { sig <- x }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	led.EdgesChan <- gpio.Low
	if x := <-sig; x.Line != "led" || !x.Active {
		t.Fatalf("%+v", x)
	}
	beep.EdgesChan <- gpio.Low
	if x := <-sig; x.Line != "beeper" || !x.Active {
		t.Fatalf("%+v", x)
	}
	led.EdgesChan <- gpio.High
	if x := <-sig; x.Line != "led" || x.Active {
		t.Fatalf("%+v", x)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func must(c credentials.Credential, err error) credentials.Credential {
	if err != nil {
		panic(err)
	}
	return c
}
