package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Per-output defaults. They are applied by Output.WithDefaults because list
// elements cannot be defaulted before YAML decoding creates them.
const (
	DefaultIndicatorPulse = 2 * time.Second
	DefaultExecTimeout    = 2 * time.Second
	DefaultHTTPTimeout    = time.Second
	DefaultHTTPRetries    = 2
)

// DefaultPassPattern is the buzzer's on/off durations on PASS: one short beep.
func DefaultPassPattern() []time.Duration { return []time.Duration{150 * time.Millisecond} }

// DefaultFailPattern is the buzzer's on/off durations on FAIL: three beeps.
func DefaultFailPattern() []time.Duration {
	b := 100 * time.Millisecond
	return []time.Duration{b, b, b, b, b}
}

// Actuator lists the door and indicator outputs.
type Actuator struct {
	Outputs []Output `yaml:"outputs"`
	// Inputs are the door-position switch and the request-to-exit button
	// of a door kioskd drives itself.
	Inputs []Input `yaml:"inputs"`
	// HeldOpen is how long the door may stand open before it is reported
	// held open.
	HeldOpen time.Duration `yaml:"held_open"`
}

// Output is one driver instance.
type Output struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`   // unlock | pass | fail | busy | buzzer | light
	Driver string `yaml:"driver"` // gpio | exec | http | log

	// gpio
	Chip      string `yaml:"chip"` // gpiochip0, /dev/gpiochip0 or the chip's label
	Line      *int   `yaml:"line"`
	LineName  string `yaml:"line_name"`
	ActiveLow bool   `yaml:"active_low"`

	// Pulse is how long an unlock, pass or fail output stays on (indicators
	// default to DefaultIndicatorPulse).
	Pulse time.Duration `yaml:"pulse"`

	// exec: the program and its arguments, run without a shell.
	Command []string `yaml:"command"`
	// Timeout bounds one exec run or one http attempt.
	Timeout time.Duration `yaml:"timeout"`

	// http
	URL string `yaml:"url"`
	// Retries after the first failed attempt; nil means DefaultHTTPRetries.
	Retries *int `yaml:"retries"`

	// buzzer: on/off durations, e.g. [100ms, 100ms, 100ms]. Pattern plays on
	// PASS, FailPattern on FAIL.
	Pattern     []time.Duration `yaml:"pattern"`
	FailPattern []time.Duration `yaml:"fail_pattern"`
}

// WithDefaults returns o with every unset per-output setting filled in.
func (o Output) WithDefaults() Output {
	if o.Pulse == 0 && (o.Role == "pass" || o.Role == "fail") {
		o.Pulse = DefaultIndicatorPulse
	}
	if o.Timeout == 0 {
		switch o.Driver {
		case "exec":
			o.Timeout = DefaultExecTimeout
		case "http":
			o.Timeout = DefaultHTTPTimeout
		}
	}
	if o.Retries == nil && o.Driver == "http" {
		r := DefaultHTTPRetries
		o.Retries = &r
	}
	if o.Role == "buzzer" {
		if len(o.Pattern) == 0 {
			o.Pattern = DefaultPassPattern()
		}
		if len(o.FailPattern) == 0 {
			o.FailPattern = DefaultFailPattern()
		}
	}
	return o
}

// RetryCount is the number of http retries, with the default applied.
func (o Output) RetryCount() int {
	if o.Retries == nil {
		return DefaultHTTPRetries
	}
	return *o.Retries
}

func (a *Actuator) defaults() { a.HeldOpen = DefaultHeldOpen }

func (a *Actuator) validate(p *Problems) {
	seen := map[string]bool{}
	for i, o := range a.Outputs {
		at := fmt.Sprintf("actuator.outputs[%d]", i)
		if o.Name == "" {
			p.add("%s.name: required", at)
		} else if seen[o.Name] {
			p.add("%s.name: %q is used twice", at, o.Name)
		}
		seen[o.Name] = true
		o.validate(p, at)
	}
	a.validateInputs(p)
}

// validate reports the problems of one output; at names it in messages.
func (o Output) validate(p *Problems, at string) {
	switch o.Role {
	case "unlock", "pass", "fail", "busy", "buzzer", "light":
	default:
		p.add("%s.role: %q is not unlock, pass, fail, busy, buzzer or light", at, o.Role)
	}
	switch o.Driver {
	case "gpio":
		checkGPIOLine(p, at, o.Chip, o.Line, o.LineName)
	case "exec":
		if len(o.Command) == 0 {
			p.add("%s.command: required for the exec driver", at)
		} else if !filepath.IsAbs(o.Command[0]) {
			// No shell and no PATH search: the program is named exactly.
			p.add("%s.command: %q must be an absolute path", at, o.Command[0])
		}
	case "http":
		if o.URL == "" {
			p.add("%s.url: required for the http driver", at)
		} else if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("%s.url: %q is not an http(s) URL", at, o.URL)
		}
	case "log":
	default:
		p.add("%s.driver: %q is not gpio, exec, http or log", at, o.Driver)
	}
	nonNegative(p, at+".pulse", o.Pulse)
	nonNegative(p, at+".timeout", o.Timeout)
	if o.Timeout > time.Minute {
		p.add("%s.timeout: %s is longer than 1m", at, o.Timeout)
	}
	if o.Role == "unlock" && (o.Pulse <= 0 || o.Pulse > time.Minute) {
		p.add("%s.pulse: an unlock pulse must be between 0 and 1m, got %s", at, o.Pulse)
	}
	if (o.Role == "pass" || o.Role == "fail") && o.Pulse > time.Minute {
		p.add("%s.pulse: an indicator pulse must be at most 1m, got %s", at, o.Pulse)
	}
	if o.Retries != nil && (*o.Retries < 0 || *o.Retries > 10) {
		p.add("%s.retries: %d is outside 0..10", at, *o.Retries)
	}
	checkPattern(p, at+".pattern", o.Pattern)
	checkPattern(p, at+".fail_pattern", o.FailPattern)
}

// Validate checks one output outside a whole configuration (the actuator
// package uses it for configs built in code).
func (o Output) Validate() error {
	var p Problems
	o.validate(&p, fmt.Sprintf("output %q", o.Name))
	if len(p) > 0 {
		return p
	}
	return nil
}

func checkPattern(p *Problems, name string, pat []time.Duration) {
	if len(pat) > 32 {
		p.add("%s: %d steps is more than 32", name, len(pat))
	}
	var total time.Duration
	for i, d := range pat {
		if d <= 0 {
			p.add("%s[%d]: must be a positive duration, got %s", name, i, d)
		}
		total += d
	}
	if total > 10*time.Second {
		p.add("%s: lasts %s, more than 10s", name, total)
	}
}

// Display is the kiosk screen.
type Display struct {
	Listen string `yaml:"listen"` // empty: no display server
	// Language picks a message catalog: a built-in one (en, es, fr, de, pt)
	// or messages.<language>.yaml in CustomDir.
	Language string `yaml:"language"`
	// GreetByName adds the first name to the PASS greeting.
	GreetByName bool `yaml:"greet_by_name"`
	// Preview is the full-screen mirrored self-view; PreviewFPS caps it.
	Preview    bool    `yaml:"preview"`
	PreviewFPS float64 `yaml:"preview_fps"`
	// Messages override texts by message key (see display.MessageKeys).
	Messages map[string]string `yaml:"messages"`
	// CustomDir holds an integrator's messages.<lang>.yaml, logo.svg or
	// logo.png and colors.yaml; read at start (messages also on reload).
	CustomDir string `yaml:"custom_dir"`
	// BadgeReader says people have a badge to use instead: messages then
	// say "use your badge". A configured panel implies it.
	BadgeReader bool `yaml:"badge_reader"`
	// AllowedHosts are Host header values accepted besides the listen
	// address and loopback names, e.g. the box's DNS name for a remote screen.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// Heartbeat is how often an idle event stream sends a comment, so that
	// proxies keep it open and the page notices a dead agent.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// MaxClients bounds concurrent event and preview streams.
	MaxClients int `yaml:"max_clients"`
	// MaxConnections caps open connections (streams and page loads);
	// loopback clients have a few more in reserve.
	MaxConnections int `yaml:"max_connections"`
	// RemoteFaceData lets clients other than loopback see the camera
	// preview and the greeting name; off, they are the kiosk's alone.
	RemoteFaceData bool `yaml:"remote_face_data"`
}

func (d *Display) defaults() {
	d.Listen = "127.0.0.1:8088"
	d.Language = "en"
	d.Preview = true
	d.PreviewFPS = 10
	d.Heartbeat = 15 * time.Second
	d.MaxClients = 16
	d.MaxConnections = 64
}

var languageCode = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)

func (d *Display) validate(p *Problems) {
	// Which catalogs exist is the display's business (check-config asks
	// it); here only the shape.
	if !languageCode.MatchString(d.Language) {
		p.add("display.language: %q is not a language code such as en, fr or pt-BR", d.Language)
	}
	if !(d.PreviewFPS > 0 && d.PreviewFPS <= 15) { // also refuses NaN
		p.add("display.preview_fps: %g is outside (0, 15]", d.PreviewFPS)
	}
	if d.Heartbeat < time.Second || d.Heartbeat > 5*time.Minute {
		p.add("display.heartbeat: %s is outside 1s..5m", d.Heartbeat)
	}
	if d.MaxClients < 1 || d.MaxClients > 1024 {
		p.add("display.max_clients: %d is outside 1..1024", d.MaxClients)
	}
	for k, v := range d.Messages {
		if strings.TrimSpace(v) == "" {
			p.add("display.messages.%s: empty message", k)
		}
	}
	checkAllowedHosts(p, "display.allowed_hosts", d.AllowedHosts)
	checkConnections(p, "display.max_connections", d.MaxConnections)
	checkListen(p, "display.listen", d.Listen)
}

// checkGPIOLine reports the problems of a gpio line's address, for outputs
// and inputs alike.
func checkGPIOLine(p *Problems, at, chip string, line *int, lineName string) {
	if chip == "" {
		p.add("%s.chip: required for the gpio driver", at)
	}
	if (line == nil) == (lineName == "") {
		p.add("%s: give line or line_name for the gpio driver", at)
	}
	if line != nil && (*line < 0 || *line > 1023) {
		p.add("%s.line: %d is outside 0..1023", at, *line)
	}
}
