package display

import "strconv"

// State is what the screen shows. It is a closed set: a state the page
// does not know cannot be published by mistake, and its name on the wire
// (String) stays the one the page has always received.
type State int

// The states the agent publishes. StateReady is the zero value, so an
// Update that names no state shows the idle screen.
const (
	StateReady State = iota
	StateGuidance
	StateChecking
	StatePass
	StateFail
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
	StateOffline:            "offline",
	StateRecorded:           "recorded",
	StateLockout:            "lockout",
	StateCameraDown:         "camera_down",
	StateServiceUnavailable: "service_unavailable",
}

// String is the state's name as the page and the metrics see it.
func (s State) String() string {
	if s >= 0 && s < stateCount {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// states lists every State, for metrics.
func states() []State {
	out := make([]State, 0, stateCount)
	for s := StateReady; s < stateCount; s++ {
		out = append(out, s)
	}
	return out
}
