package panel

import (
	"context"
	"errors"
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
	"github.com/kioskd/kioskd/internal/osdptest"
	"github.com/kioskd/kioskd/panel/wiegand"
)

var scbk = []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func osdpPanel(t *testing.T, decide func(credentials.Credential) byte) (*Panel, *prometheus.Registry, chan Text) {
	t.Helper()
	master, slave := osdptest.OpenPTY(t)
	cfg := config.Default().Panel
	cfg.Protocol = config.PanelOSDP
	cfg.OSDP.Device = slave
	cfg.OSDP.SCBK = scbk
	cfg.DecisionTimeout = 500 * time.Millisecond
	reg := prometheus.NewRegistry()
	texts := make(chan Text, 4)
	p, err := New(cfg, slog.New(slog.DiscardHandler), reg, WithText(func(x Text) { texts <- x }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = p.Run(ctx) }()
	cp := osdptest.New(t, master)
	go func() {
		defer wg.Done()
		cp.Serve(ctx, 20*time.Millisecond, scbk, func(count int, data []byte) byte {
			c, err := credentials.Decode(credentials.Bits{Data: data, Count: count})
			if err != nil {
				t.Errorf("card from the PD: %v", err)
				return 0
			}
			return decide(c)
		})
	}()
	t.Cleanup(func() { cancel(); wg.Wait(); p.Close() })
	return p, reg, texts
}

func waitUp(t *testing.T, p *Panel) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !p.Up() || !p.l.(osdpLink).pd.SecureUp() {
		if time.Now().After(deadline) {
			t.Fatal("the panel never polled through a secure channel")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOSDPAnswers(t *testing.T) {
	var mu sync.Mutex
	var seen []uint64
	p, reg, _ := osdpPanel(t, func(c credentials.Credential) byte {
		mu.Lock()
		seen = append(seen, c.Card)
		mu.Unlock()
		switch c.Card {
		case 100:
			return osdptest.Green
		case 200:
			return osdptest.Red
		}
		return 0
	})
	waitUp(t, p)
	for _, tc := range []struct {
		card uint64
		want string
	}{{100, AnswerGranted}, {200, AnswerDenied}, {300, AnswerNone}} {
		c, _ := credentials.New(credentials.H10301, 7, tc.card)
		r, err := p.Send(context.Background(), c)
		if err != nil || r.Answer != tc.want {
			t.Fatalf("card %d: %+v %v", tc.card, r, err)
		}
	}
	if got := testutil.ToFloat64(p.sent.WithLabelValues("h10301")); got != 3 {
		t.Fatalf("sent %v", got)
	}
	if got := testutil.ToFloat64(p.answers.WithLabelValues(AnswerDenied)); got != 1 {
		t.Fatalf("denied %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0] != 100 || seen[1] != 200 || seen[2] != 300 {
		t.Fatalf("the panel saw %v", seen)
	}
	_ = reg
}

func TestOSDPLinkDownSendsNothing(t *testing.T) {
	master, slave := osdptest.OpenPTY(t)
	_ = master
	cfg := config.Default().Panel
	cfg.Protocol, cfg.OSDP.Device, cfg.OSDP.SCBK = config.PanelOSDP, slave, scbk
	p, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, _ := credentials.New(credentials.H10301, 1, 1)
	r, err := p.Send(context.Background(), c)
	if !errors.Is(err, ErrLinkDown) || r.Answer != AnswerLinkDown {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestWiegandAnswers(t *testing.T) {
	d0, d1 := &gpiotest.Pin{N: "D0"}, &gpiotest.Pin{N: "D1"}
	led := &gpiotest.Pin{N: "LED", EdgesChan: make(chan gpio.Level, 1)}
	cfg := config.Default().Panel
	cfg.Protocol = config.PanelWiegand
	cfg.Wiegand.D0, cfg.Wiegand.D1, cfg.Wiegand.LEDLine = 1, 2, 3
	cfg.DecisionTimeout = 300 * time.Millisecond
	// The panel pulls the LED line low once the first card is in: at the
	// last of its 26 pulses and 25 gaps.
	waits := 0
	wait := func(time.Duration) {
		if waits++; waits == 51 {
			led.EdgesChan <- gpio.Low
		}
	}
	p, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		WithWiegand(wiegand.WithPins(d0, d1), wiegand.WithInputs(led, nil), wiegand.WithWait(wait)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c, _ := credentials.New(credentials.H10301, 1, 1)
	r, err := p.Send(context.Background(), c)
	if err != nil || r.Answer != AnswerGranted {
		t.Fatalf("%+v %v", r, err)
	}
	// No answer: the line stays where it is.
	r, err = p.Send(context.Background(), c)
	if err != nil || r.Answer != AnswerNone {
		t.Fatalf("%+v %v", r, err)
	}
}
