// Package events keeps what happened at the door: a durable, bounded log of
// access events (decisions, lockouts, door inputs, panel answers) on bbolt,
// its reader, and the forwarders that deliver it at least once to MQTT and
// HTTP sinks.
package events

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what an event is about. The set is closed so that metrics
// labelled by kind stay bounded.
type Kind string

// The kinds of event.
const (
	KindDecision         Kind = "decision"          // a live or deferred answer (Deferred says which)
	KindLockout          Kind = "lockout"           // the attempt cap locked this door for a while
	KindPanel            Kind = "panel"             // the access panel's answer to a credential
	KindDoorOpened       Kind = "door.opened"       // the position switch opened while unlocked
	KindDoorClosed       Kind = "door.closed"       // the position switch closed
	KindDoorForcedOpen   Kind = "door.forced_open"  // opened while locked, without an exit request
	KindDoorHeldOpen     Kind = "door.held_open"    // open longer than the configured time
	KindDoorExitRequest  Kind = "door.exit_request" // the request-to-exit button
	KindDoorAlarmCleared Kind = "door.alarm_cleared"
)

// Kinds lists every kind, for metrics and validation.
var kinds = []Kind{KindDecision, KindLockout, KindPanel, KindDoorOpened, KindDoorClosed,
	KindDoorForcedOpen, KindDoorHeldOpen, KindDoorExitRequest, KindDoorAlarmCleared}

// Kinds returns every kind an event may have.
func Kinds() []Kind { return append([]Kind(nil), kinds...) }

func (k Kind) valid() bool {
	for _, x := range kinds {
		if k == x {
			return true
		}
	}
	return false
}

// Credential is what was sent to the access panel for the person, with the
// number masked: the log proves which card was used without being a list
// of card numbers.
type Credential struct {
	Format string `json:"format"`
	Number string `json:"number"`
}

// Event is one thing that happened at a door. It never carries image
// bytes. Field names follow the Incode API documentation where they are
// Incode's ids.
type Event struct {
	ID               string      `json:"id"`  // stable and unique across doors; for deduplication
	Seq              uint64      `json:"seq"` // order in this door's log
	Time             time.Time   `json:"time"`
	Door             string      `json:"door"` // device.source_id
	Kind             Kind        `json:"kind"`
	Result           string      `json:"result,omitempty"` // PASS, FAIL, ERROR, OFFLINE for decisions
	Reason           string      `json:"reason,omitempty"`
	Deferred         bool        `json:"deferred,omitempty"`
	AuthenticationID string      `json:"authenticationId,omitempty"`
	CorrelationID    string      `json:"correlationId,omitempty"`
	VerificationID   string      `json:"verificationId,omitempty"`
	IdentityID       string      `json:"identityId,omitempty"`
	Name             string      `json:"name,omitempty"`
	Credential       *Credential `json:"credential,omitempty"`
	PanelAnswer      string      `json:"panelAnswer,omitempty"`
	LatencyMS        int64       `json:"latencyMs,omitempty"`
	CaptureID        string      `json:"captureId,omitempty"` // ties a deferred answer to its live attempt
}

// maxField bounds every text field: an event is a record, not a payload.
const maxField = 256

// check reports what is wrong with an event about to be appended.
func (e *Event) check() error {
	if !e.Kind.valid() {
		return fmt.Errorf("unknown event kind %q", e.Kind)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("event %s has no time", e.Kind)
	}
	fields := map[string]string{"id": e.ID, "door": e.Door, "result": e.Result, "reason": e.Reason,
		"authenticationId": e.AuthenticationID, "correlationId": e.CorrelationID,
		"verificationId": e.VerificationID, "identityId": e.IdentityID, "name": e.Name,
		"panelAnswer": e.PanelAnswer, "captureId": e.CaptureID}
	if e.Credential != nil {
		fields["credential.format"] = e.Credential.Format
		fields["credential.number"] = e.Credential.Number
	}
	for name, v := range fields {
		if len(v) > maxField {
			return fmt.Errorf("event field %s is longer than %d bytes", name, maxField)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("event field %s is not valid UTF-8", name)
		}
	}
	return nil
}

// MaskNumber keeps the last four characters of a card number and stars
// the rest; a number of four or fewer characters is starred entirely. It
// is idempotent.
func MaskNumber(n string) string {
	const keep = 4
	r := []rune(n)
	if len(r) <= keep {
		return strings.Repeat("*", len(r))
	}
	return strings.Repeat("*", len(r)-keep) + string(r[len(r)-keep:])
}

// NewID returns a new event id: the time in milliseconds first, so that ids
// sort roughly by time, then 64 random bits, so that two doors (or a door
// whose state directory was wiped) never reuse one.
func NewID(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%012x-%s", now.UnixMilli(), hex.EncodeToString(b[:]))
}
