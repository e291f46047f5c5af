package config

import (
	"fmt"
	"time"
)

// Actuator lists the door and indicator outputs.
type Actuator struct {
	Outputs []Output `yaml:"outputs"`
}

// Output is one driver instance.
type Output struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`   // unlock | pass | fail | busy | buzzer
	Driver string `yaml:"driver"` // gpio | exec | http | log

	// gpio
	Chip      string `yaml:"chip"`
	Line      *int   `yaml:"line"`
	LineName  string `yaml:"line_name"`
	ActiveLow bool   `yaml:"active_low"`

	Pulse time.Duration `yaml:"pulse"` // unlock/pass/fail: how long the output is on

	// exec
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`

	// http
	URL     string `yaml:"url"`
	Retries int    `yaml:"retries"`

	// buzzer: on/off durations, e.g. [100ms, 100ms, 100ms]
	Pattern []time.Duration `yaml:"pattern"`
}

func (a *Actuator) defaults() {}

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
		switch o.Role {
		case "unlock", "pass", "fail", "busy", "buzzer":
		default:
			p.add("%s.role: %q is not unlock, pass, fail, busy or buzzer", at, o.Role)
		}
		switch o.Driver {
		case "gpio":
			if o.Chip == "" {
				p.add("%s.chip: required for the gpio driver", at)
			}
			if (o.Line == nil) == (o.LineName == "") {
				p.add("%s: give line or line_name for the gpio driver", at)
			}
			if o.Line != nil && *o.Line < 0 {
				p.add("%s.line: must not be negative", at)
			}
		case "exec":
			if len(o.Command) == 0 {
				p.add("%s.command: required for the exec driver", at)
			}
		case "http":
			if o.URL == "" {
				p.add("%s.url: required for the http driver", at)
			}
		case "log":
		default:
			p.add("%s.driver: %q is not gpio, exec, http or log", at, o.Driver)
		}
		nonNegative(p, at+".pulse", o.Pulse)
		nonNegative(p, at+".timeout", o.Timeout)
		if o.Role == "unlock" && (o.Pulse <= 0 || o.Pulse > time.Minute) {
			p.add("%s.pulse: an unlock pulse must be between 0 and 1m, got %s", at, o.Pulse)
		}
		if o.Retries < 0 || o.Retries > 10 {
			p.add("%s.retries: %d is outside 0..10", at, o.Retries)
		}
	}
}

// Display is the kiosk screen.
type Display struct {
	Listen      string            `yaml:"listen"` // empty: no display server
	Language    string            `yaml:"language"`
	GreetByName bool              `yaml:"greet_by_name"`
	Preview     bool              `yaml:"preview"`
	PreviewFPS  float64           `yaml:"preview_fps"`
	Messages    map[string]string `yaml:"messages"` // overrides by message key
	// AllowedHosts are Host header values accepted besides the listen address.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

func (d *Display) defaults() {
	d.Listen = "127.0.0.1:8088"
	d.Language = "en"
	d.PreviewFPS = 5
}

func (d *Display) validate(p *Problems) {
	if d.Language != "en" && d.Language != "es" {
		p.add("display.language: %q is not en or es", d.Language)
	}
	if d.PreviewFPS <= 0 || d.PreviewFPS > 30 {
		p.add("display.preview_fps: %g is outside (0, 30]", d.PreviewFPS)
	}
	checkListen(p, "display.listen", d.Listen)
}
