package decision

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/uploader"
)

// Kind says where an attempt came from.
type Kind string

// The kinds of record.
const (
	KindLive     Kind = "live"     // a person at the door, now
	KindDeferred Kind = "deferred" // a queued capture, delivered later
)

// Record is one decided attempt: everything an access event needs, and
// never an image or a token.
type Record struct {
	Time     time.Time // when it was decided
	Source   string    // the device's source id
	Kind     Kind
	Mode     string // config.ModeDoor or config.ModeAttendance
	Result   Result
	Reason   string
	Unlocked bool // the door was told to open (live PASS only)

	AuthenticationID string
	CorrelationID    string
	VerificationID   string
	IdentityID       string // from userinfo, when it was fetched
	Name             string // the greeting name, when it was fetched

	// With an access-control panel: what was sent and what it answered.
	// PanelAnswer is empty without a panel; "not_sent" with PanelNotSent
	// saying why when no credential went out.
	PanelAnswer      string
	PanelNotSent     string
	CredentialFormat string
	Credential       string // masked: format, facility, last digits
	PanelWait        time.Duration

	CaptureID  string    // the capture's Idempotency-Key
	CapturedAt time.Time // frame time of the uploaded face
	// Latency is face first seen → door signal for a live attempt, capture
	// → answer for a deferred one.
	Latency time.Duration
}

// withAnswer fills the answer's identifiers into r.
func (r Record) withAnswer(a *uploader.AuthenticateResponse) Record {
	if a == nil {
		return r
	}
	r.AuthenticationID, r.CorrelationID, r.VerificationID = a.AuthenticationID, a.CorrelationID, a.VerificationID
	return r
}

// NewRecord starts the record of an outcome for the answer a (may be nil).
func NewRecord(now time.Time, dev config.Device, kind Kind, out Outcome, a *uploader.AuthenticateResponse) Record {
	return Record{Time: now, Source: dev.SourceID, Mode: dev.Mode, Kind: kind, Result: out.Result, Reason: out.Reason,
		Unlocked: out.Unlock}.withAnswer(a)
}

// Deferred reports whether the record is of a queued capture.
func (r Record) Deferred() bool { return r.Kind == KindDeferred }

// Sink receives every record before its decision line is written; an
// access-event log, a panel link or a message bus plug in here. Record
// must return when ctx is done.
type Sink interface {
	Record(ctx context.Context, r Record) error
}

// Recorder is the one place a decision is recorded: sinks, metrics, then
// the decision line. It is safe for concurrent use once its sinks are set.
type Recorder struct {
	log   *slog.Logger
	m     *metrics
	sinks []Sink
}

// NewRecorder registers the decision metrics on reg.
func NewRecorder(log *slog.Logger, reg prometheus.Registerer, sinks ...Sink) *Recorder {
	return &Recorder{log: log, m: newMetrics(reg), sinks: slices.Clone(sinks)}
}

// AddSink adds a sink; call it before the first Record.
func (r *Recorder) AddSink(s Sink) { r.sinks = append(r.sinks, s) }

// Record hands rec to every sink in order, counts it and writes the
// decision line with extra attributes (timing, capture details) appended.
// A failing sink is logged and counted; the decision stands.
func (r *Recorder) Record(ctx context.Context, rec Record, extra ...any) {
	for _, s := range r.sinks {
		if err := s.Record(ctx, rec); err != nil {
			r.m.sinkErrors.Inc()
			r.log.Error("decision not recorded by a sink", "err", err)
		}
	}
	if rec.Deferred() {
		r.m.deferred.WithLabelValues(labelValue(string(rec.Result))).Inc()
	} else {
		r.m.attempts.WithLabelValues(labelValue(string(rec.Result))).Inc()
		if rec.Result != Pass {
			r.m.failures.WithLabelValues(boundedReason(rec.Reason)).Inc()
		}
		r.m.latency.Observe(rec.Latency.Seconds())
	}
	attrs := []any{
		"result", string(rec.Result),
		"reason", rec.Reason,
		"source", rec.Source,
		"deferred", rec.Deferred(),
		"latency_ms", rec.Latency.Milliseconds(),
	}
	if rec.AuthenticationID != "" {
		attrs = append(attrs, "authentication_id", rec.AuthenticationID)
	}
	if rec.CorrelationID != "" {
		attrs = append(attrs, "correlation_id", rec.CorrelationID)
	}
	if rec.VerificationID != "" {
		attrs = append(attrs, "verification_id", rec.VerificationID)
	}
	if rec.IdentityID != "" {
		attrs = append(attrs, "identity_id", rec.IdentityID)
	}
	if rec.CaptureID != "" {
		attrs = append(attrs, "capture_id", rec.CaptureID)
	}
	if rec.Deferred() && !rec.CapturedAt.IsZero() {
		attrs = append(attrs, "captured_at", rec.CapturedAt.UTC().Format(time.RFC3339Nano))
	}
	if rec.Mode == config.ModeAttendance {
		attrs = append(attrs, "mode", config.ModeAttendance)
	}
	if rec.PanelAnswer != "" {
		attrs = append(attrs, "panel_answer", rec.PanelAnswer)
		if rec.PanelNotSent != "" {
			attrs = append(attrs, "panel_not_sent", rec.PanelNotSent)
		} else {
			attrs = append(attrs, "panel_wait_ms", rec.PanelWait.Milliseconds(),
				"credential_format", rec.CredentialFormat, "credential", rec.Credential)
		}
	}
	attrs = append(attrs, extra...)
	r.log.Info("decision", attrs...)
}
