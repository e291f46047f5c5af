package events

import (
	"context"

	"github.com/kioskd/kioskd/decision"
)

// DecisionSink records every decision as an access event. It is a
// decision.Sink: the Recorder calls it before it writes the decision line,
// and Append returns only once the event is on disk.
type DecisionSink struct {
	Log *Log
}

// Record appends the access event of r.
func (s DecisionSink) Record(ctx context.Context, r decision.Record) error {
	_, err := s.Log.Append(ctx, FromDecision(r))
	return err
}

// FromDecision is the access event of a decision record.
func FromDecision(r decision.Record) Event {
	e := Event{
		Time:             r.Time,
		Door:             r.Source,
		Kind:             KindDecision,
		Result:           string(r.Result),
		Reason:           r.Reason,
		Deferred:         r.Deferred(),
		AuthenticationID: r.AuthenticationID,
		CorrelationID:    r.CorrelationID,
		VerificationID:   r.VerificationID,
		IdentityID:       r.IdentityID,
		Name:             r.Name,
		LatencyMS:        r.Latency.Milliseconds(),
		CaptureID:        r.CaptureID,
		PanelAnswer:      r.PanelAnswer,
	}
	if r.Credential != "" {
		// Already masked by the panel path: format, facility, last digits.
		e.Credential = &Credential{Format: r.CredentialFormat, Number: r.Credential}
	}
	return e
}
