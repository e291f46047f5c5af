package agent

import (
	"context"
	"time"

	"github.com/kioskd/kioskd/events"
	"github.com/kioskd/kioskd/uploader"
)

// recordEvent writes the access event of a decision. It runs before the
// decision line, so that a line in the journal always has its event.
func (a *Agent) recordEvent(result, reason string, resp *uploader.AuthenticateResponse, latency time.Duration, deferred bool, extra []any) {
	if a.d.Events == nil {
		return
	}
	ev := events.Event{Time: a.now(), Door: a.cfg.Device.SourceID, Kind: events.KindDecision, Result: result,
		Reason: reason, Deferred: deferred, LatencyMS: latency.Milliseconds()}
	if resp != nil {
		ev.AuthenticationID, ev.CorrelationID, ev.VerificationID = resp.AuthenticationID, resp.CorrelationID, resp.VerificationID
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if k, _ := extra[i].(string); k == "capture_id" {
			ev.CaptureID, _ = extra[i+1].(string)
		}
	}
	a.appendEvent(ev)
}

// recordLockout writes the event of the attempt cap locking the door.
func (a *Agent) recordLockout(until time.Time) {
	if a.d.Events == nil {
		return
	}
	a.appendEvent(events.Event{Time: a.now(), Door: a.cfg.Device.SourceID, Kind: events.KindLockout,
		Reason: "until " + until.UTC().Format(time.RFC3339)})
}

func (a *Agent) appendEvent(ev events.Event) {
	// The record must be kept even while the agent is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.d.Events.Append(ctx, ev); err != nil {
		a.log.Error("access event not recorded", "kind", string(ev.Kind), "err", err)
	}
}
