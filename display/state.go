package display

import "fmt"

// State is what the screen shows. The page receives its name (String), so
// the JSON and the data-state attribute keep the words integrators script
// against.
type State int

// The states the agent, the decision policy and the panel publish. The zero
// value is StateReady, so an empty Update shows the ready screen.
const (
	StateReady State = iota
	StateGuidance
	StateChecking
	StatePass
	StateFail
	// StateSeeReception is a refusal that the person cannot fix by trying
	// again: access revoked, no credential on file, the panel said no.
	StateSeeReception
	StateOffline
	StateRecorded
	StateLockout
	StateCameraDown
	StateServiceUnavailable
	stateCount
)

var stateNames = [stateCount]string{
	StateReady:              "ready",
	StateGuidance:           "guidance",
	StateChecking:           "checking",
	StatePass:               "pass",
	StateFail:               "fail",
	StateSeeReception:       "see_reception",
	StateOffline:            "offline",
	StateRecorded:           "recorded",
	StateLockout:            "lockout",
	StateCameraDown:         "camera_down",
	StateServiceUnavailable: "service_unavailable",
}

// Reasons of StateSeeReception.
const (
	ReasonRevoked      = "revoked"
	ReasonNoCredential = "no_credential"
	ReasonPanelRefused = "panel_refused"
	// ReasonPanelNoAnswer: the panel did not answer in time, or is not
	// talking to the reader.
	ReasonPanelNoAnswer = "panel_no_answer"
)

// Valid reports whether s is one of the states above.
func (s State) Valid() bool { return s >= 0 && s < stateCount }

// String is the state's name as the page and the metrics see it.
func (s State) String() string {
	if !s.Valid() {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText writes the name, so JSON carries "pass", not 3.
func (s State) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("display: unknown state %d", int(s))
	}
	return []byte(stateNames[s]), nil
}

// UnmarshalText reads a name written by MarshalText.
func (s *State) UnmarshalText(b []byte) error {
	st, ok := ParseState(string(b))
	if !ok {
		return fmt.Errorf("display: unknown state %q", b)
	}
	*s = st
	return nil
}

// ParseState is the State named name.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

// States lists every State, in order.
func States() []State {
	out := make([]State, stateCount)
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// toneOf decides the colours of the guide and the message (the page knows
// nothing else about states): searching, hold still, checking, welcome,
// refused, and the amber of "the door cannot check you now".
func toneOf(st State, reason string) string {
	switch st {
	case StateReady:
		return "idle"
	case StateGuidance:
		if guidanceKey(reason) == GuideHoldStill {
			return "hold"
		}
		return "guide"
	case StateChecking:
		return "busy"
	case StatePass:
		return "pass"
	case StateFail, StateSeeReception, StateLockout:
		return "fail"
	case StateRecorded:
		return "ok"
	}
	return "warn"
}

// tones lists every tone, for the colour overrides.
var tones = []string{"idle", "guide", "hold", "busy", "pass", "ok", "fail", "warn"}
