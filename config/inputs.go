package config

import (
	"fmt"
	"time"
)

// Input is a door input on a GPIO line: the door-position switch or the
// request-to-exit button. Active means open (door_position) or pressed
// (exit_request); active_low inverts the line's level.
type Input struct {
	Name      string        `yaml:"name"`
	Role      string        `yaml:"role"`   // door_position | exit_request
	Driver    string        `yaml:"driver"` // gpio
	Chip      string        `yaml:"chip"`
	Line      *int          `yaml:"line"`
	LineName  string        `yaml:"line_name"`
	ActiveLow bool          `yaml:"active_low"`
	Debounce  time.Duration `yaml:"debounce"` // a level must hold this long to count; default 50ms
}

// Input roles.
const (
	InputDoorPosition = "door_position"
	InputExitRequest  = "exit_request"
)

// DefaultDebounce is how long an input level must hold to count.
const DefaultDebounce = 50 * time.Millisecond

// DefaultHeldOpen is how long the door may stand open before "held open".
const DefaultHeldOpen = 30 * time.Second

// WithDefaults returns in with its debounce set.
func (in Input) WithDefaults() Input {
	if in.Debounce == 0 {
		in.Debounce = DefaultDebounce
	}
	return in
}

func (a *Actuator) validateInputs(p *Problems) {
	seen := map[string]bool{}
	for _, o := range a.Outputs {
		seen[o.Name] = true
	}
	roles := map[string]bool{}
	for i, in := range a.Inputs {
		at := fmt.Sprintf("actuator.inputs[%d]", i)
		if in.Name == "" {
			p.add("%s.name: required", at)
		} else if seen[in.Name] {
			p.add("%s.name: %q is used twice (inputs and outputs share names)", at, in.Name)
		}
		seen[in.Name] = true
		switch in.Role {
		case InputDoorPosition, InputExitRequest:
			if roles[in.Role] {
				p.add("%s.role: a second %s input", at, in.Role)
			}
			roles[in.Role] = true
		default:
			p.add("%s.role: %q is not door_position or exit_request", at, in.Role)
		}
		if in.Driver != "gpio" {
			p.add("%s.driver: %q is not gpio", at, in.Driver)
		}
		checkGPIOLine(p, at, in.Chip, in.Line, in.LineName)
		if in.Debounce < 0 || in.Debounce > time.Second {
			p.add("%s.debounce: %s is outside 0..1s", at, in.Debounce)
		}
	}
	if a.HeldOpen < time.Second || a.HeldOpen > time.Hour {
		p.add("actuator.held_open: %s is outside 1s..1h", a.HeldOpen)
	}
}
