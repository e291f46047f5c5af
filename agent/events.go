package agent

import (
	"context"
	"time"

	"github.com/kioskd/kioskd/events"
)

// recordLockout writes the event of the attempt cap locking the door.
func (a *Agent) recordLockout(until time.Time) {
	if a.d.Events == nil {
		return
	}
	// The record must be kept even while the agent is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev := events.Event{Time: a.now(), Door: a.cfg.Device.SourceID, Kind: events.KindLockout,
		Reason: "until " + until.UTC().Format(time.RFC3339)}
	if _, err := a.d.Events.Append(ctx, ev); err != nil {
		a.log.Error("access event not recorded", "kind", string(ev.Kind), "err", err)
	}
}
