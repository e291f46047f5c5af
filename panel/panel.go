// Package panel is kioskd's link to the building's access-control panel:
// it sends the credential of who passed, over OSDP or Wiegand, and reports
// what the panel answered with the reader's LED and beeper.
package panel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/panel/osdp"
	"github.com/kioskd/kioskd/panel/wiegand"
)

// The panel's answers; bounded metric label values.
const (
	AnswerGranted  = "granted"   // green LED
	AnswerDenied   = "denied"    // red LED
	AnswerBeep     = "beep"      // a beep and no LED answer in time
	AnswerNone     = "none"      // nothing within panel.decision_timeout
	AnswerLinkDown = "link_down" // the panel is not polling: nothing was sent
	AnswerSent     = "sent"      // Wiegand without the LED line wired: sent, no answer to read
)

// Result is what the panel made of one credential.
type Result struct {
	Answer string
	Waited time.Duration
}

// ErrLinkDown means the panel is not talking to this reader.
var ErrLinkDown = errors.New("panel: link down")

// Text is a message the panel asked the reader to show.
type Text struct {
	Text     string
	Duration time.Duration // 0: until replaced
}

// Option adjusts a Panel.
type Option func(*options)

type options struct {
	osdp    []osdp.Option
	wiegand []wiegand.Option
	open    wiegand.Opener
	text    func(Text)
	now     func() time.Time
}

// WithOSDP passes options to the OSDP PD (a port, a clock in tests).
func WithOSDP(o ...osdp.Option) Option { return func(x *options) { x.osdp = append(x.osdp, o...) } }

// WithWiegand passes options to the Wiegand sender (test pins).
func WithWiegand(o ...wiegand.Option) Option {
	return func(x *options) { x.wiegand = append(x.wiegand, o...) }
}

// WithGPIO opens the Wiegand lines; actuator.OpenLine in kioskd.
func WithGPIO(open wiegand.Opener) Option { return func(x *options) { x.open = open } }

// WithText is called with each text the panel sends (osdp_TEXT); it must
// not block.
func WithText(f func(Text)) Option { return func(x *options) { x.text = f } }

// signal is one indication, reduced to what decides an answer.
type signal struct {
	answer    string // granted, denied, beep, or "" for a colour that says nothing
	permanent bool
}

// link is what Panel needs of OSDP or Wiegand.
type link interface {
	send(ctx context.Context, b credentials.Bits) error
	up() bool
	cancel()
	run(ctx context.Context) error
	close() error
	canAnswer() bool
}

// Panel is one configured panel link.
type Panel struct {
	cfg  config.Panel
	log  *slog.Logger
	l    link
	now  func() time.Time
	text func(Text)

	mu       sync.Mutex
	waiter   chan signal
	lastPerm string

	sent    *prometheus.CounterVec
	answers *prometheus.CounterVec
	waited  prometheus.Histogram
}

// New opens the configured link. It returns nil, nil when no panel is
// configured.
func New(cfg config.Panel, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Panel, error) {
	if cfg.Protocol == "" || cfg.Protocol == config.PanelNone {
		return nil, nil
	}
	o := options{now: time.Now, text: func(Text) {}}
	for _, f := range opts {
		f(&o)
	}
	p := &Panel{cfg: cfg, log: log, now: o.now, text: o.text,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_panel_credentials_sent_total", Help: "Credentials sent to the panel, by card format.",
		}, []string{"format"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_panel_answers_total", Help: "The panel's answers to credentials sent (granted, denied, beep, none, link_down, sent).",
		}, []string{"answer"}),
		waited: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kioskd_panel_answer_duration_seconds", Help: "From sending a credential to the panel's answer.",
			Buckets: []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5},
		}),
	}
	for _, c := range []prometheus.Collector{p.sent, p.answers, p.waited} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("panel: register metrics: %w", err)
		}
	}
	switch cfg.Protocol {
	case config.PanelOSDP:
		pd, err := osdp.New(cfg.OSDP, log, reg, append([]osdp.Option{osdp.WithIndications(p.osdpIndication)}, o.osdp...)...)
		if err != nil {
			return nil, err
		}
		p.l = osdpLink{pd}
	case config.PanelWiegand:
		s, err := wiegand.New(cfg.Wiegand, o.open, log, reg, append([]wiegand.Option{wiegand.WithSignals(p.wiegandSignal)}, o.wiegand...)...)
		if err != nil {
			return nil, err
		}
		p.l = wiegandLink{s: s, led: cfg.Wiegand.LEDLine >= 0 || cfg.Wiegand.BeeperLine >= 0}
	default:
		return nil, fmt.Errorf("panel: unknown protocol %q", cfg.Protocol)
	}
	return p, nil
}

// Run drives the link until ctx is done.
func (p *Panel) Run(ctx context.Context) error { return p.l.run(ctx) }

// Close releases the serial port or the GPIO lines.
func (p *Panel) Close() error { return p.l.close() }

// Up reports whether the panel is talking to this reader.
func (p *Panel) Up() bool { return p.l.up() }

// Send sends c and waits up to panel.decision_timeout for the panel's
// answer. A card the panel did not collect in that time is withdrawn, so
// that it cannot open the door later.
func (p *Panel) Send(ctx context.Context, c credentials.Credential) (Result, error) {
	start := p.now()
	if !p.l.up() {
		p.answers.WithLabelValues(AnswerLinkDown).Inc()
		return Result{Answer: AnswerLinkDown}, ErrLinkDown
	}
	w := make(chan signal, 8)
	p.mu.Lock()
	p.waiter = w
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiter = nil
		p.mu.Unlock()
	}()
	if err := p.l.send(ctx, c.Encode()); err != nil {
		p.answers.WithLabelValues(AnswerNone).Inc()
		return Result{Answer: AnswerNone}, fmt.Errorf("panel: send: %w", err)
	}
	p.sent.WithLabelValues(string(c.Format)).Inc()
	answer := AnswerNone
	if !p.l.canAnswer() {
		answer = AnswerSent
	} else {
		answer = p.await(ctx, w)
		if answer == AnswerNone || answer == AnswerBeep {
			p.l.cancel()
		}
	}
	waited := p.now().Sub(start)
	p.answers.WithLabelValues(answer).Inc()
	if answer == AnswerGranted || answer == AnswerDenied {
		p.waited.Observe(waited.Seconds())
	}
	return Result{Answer: answer, Waited: waited}, nil
}

func (p *Panel) await(ctx context.Context, w chan signal) string {
	timer := time.NewTimer(p.cfg.DecisionTimeout)
	defer timer.Stop()
	beeped := false
	for {
		select {
		case s := <-w:
			switch s.answer {
			case AnswerGranted, AnswerDenied:
				return s.answer
			case AnswerBeep:
				beeped = true
			}
		case <-timer.C:
			if beeped {
				return AnswerBeep
			}
			return AnswerNone
		case <-ctx.Done():
			return AnswerNone
		}
	}
}

func (p *Panel) deliver(s signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.permanent {
		// Panels set a permanent colour at idle (often red) and some repeat
		// it: only a change of the permanent colour is an answer.
		if s.answer == p.lastPerm {
			return
		}
		p.lastPerm = s.answer
	}
	if p.waiter != nil {
		select {
		case p.waiter <- s:
		default:
		}
	}
}

func (p *Panel) osdpIndication(i osdp.Indication) {
	switch i.Kind {
	case osdp.IndicationLED:
		a := ""
		switch i.Color {
		case osdp.ColorGreen:
			a = AnswerGranted
		case osdp.ColorRed:
			a = AnswerDenied
		}
		p.deliver(signal{answer: a, permanent: !i.Temporary})
	case osdp.IndicationBuzzer:
		if i.Tone {
			p.deliver(signal{answer: AnswerBeep})
		}
	case osdp.IndicationText:
		p.text(Text{Text: i.Text, Duration: i.Duration})
	}
}

func (p *Panel) wiegandSignal(s wiegand.Signal) {
	switch {
	case s.Line == "led" && s.Active:
		p.deliver(signal{answer: AnswerGranted})
	case s.Line == "beeper" && s.Active:
		p.deliver(signal{answer: AnswerBeep})
	}
}

type osdpLink struct{ pd *osdp.PD }

func (l osdpLink) send(_ context.Context, b credentials.Bits) error {
	l.pd.SendCard(b)
	return nil
}
func (l osdpLink) up() bool                      { return l.pd.LinkUp() }
func (l osdpLink) cancel()                       { l.pd.DropCards() }
func (l osdpLink) run(ctx context.Context) error { return l.pd.Run(ctx) }
func (l osdpLink) close() error                  { return l.pd.Close() }
func (l osdpLink) canAnswer() bool               { return true }

type wiegandLink struct {
	s   *wiegand.Sender
	led bool
}

func (l wiegandLink) send(ctx context.Context, b credentials.Bits) error { return l.s.Send(ctx, b) }
func (l wiegandLink) up() bool                                           { return true }
func (l wiegandLink) cancel()                                            {}
func (l wiegandLink) run(ctx context.Context) error                      { return l.s.Run(ctx) }
func (l wiegandLink) close() error                                       { return nil }
func (l wiegandLink) canAnswer() bool                                    { return l.led }
