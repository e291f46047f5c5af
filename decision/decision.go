// Package decision is kioskd's one decision policy: a pure function from an
// Incode answer (or the error that replaced it) to what happens at the door,
// on the screen and in the queue, and the one recorder that writes the
// decision line, moves the decision metrics and hands the record to sinks.
// The live path, the drainer and `kioskd queue drain` all go through both.
package decision

import (
	"context"
	"errors"
	"fmt"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/uploader"
)

// Result is the outcome of one attempt, as logged and as a metric label.
type Result string

// The four results.
const (
	Pass    Result = "PASS"    // the service recognised a live person
	Fail    Result = "FAIL"    // the service answered, and it was not a PASS
	Error   Result = "ERROR"   // no usable answer: refused, malformed, late
	Offline Result = "OFFLINE" // the service could not be reached in time
)

// Results lists the four results, for metrics.
func Results() []Result { return []Result{Pass, Fail, Error, Offline} }

// ReasonLate is the reason of a PASS that arrived after the live deadline.
const ReasonLate = "late"

// ReasonOtherError stands in for a FAIL that gave no failureReason.
const ReasonOtherError = string(uploader.ReasonOtherError)

// Input is everything the policy looks at for one answer.
type Input struct {
	// Answer is the decoded authenticate answer; it may be set together
	// with Err (a malformed answer is decoded for logging) or be nil.
	Answer *uploader.AuthenticateResponse
	// Err is the client's error, nil when the service answered 2xx.
	Err error
	// InTime is true when the answer arrived before the live deadline
	// (live attempts only).
	InTime bool
	// Stopping is true when kioskd itself is shutting down: the attempt
	// was cut short by us, not by the service.
	Stopping bool
	// Mode is the device mode (config.ModeDoor or config.ModeAttendance).
	Mode string
	// Deferred is true for a queued capture delivered by the drainer or
	// `kioskd queue drain`: its answer never opens anything.
	Deferred bool
	// Queued is true once a live capture that could not be decided has
	// been kept in the queue (see Outcome.Queue).
	Queued bool
}

// Outcome is what should happen. Decide computes it; the agent, the
// drainer and the CLI carry it out.
type Outcome struct {
	Result Result
	// Reason is the failureReason for FAIL, uploader.Reason's label for
	// ERROR and OFFLINE, ReasonLate for a late PASS, empty for PASS.
	Reason string
	// Screen is what the person at the door sees (live attempts only).
	Screen display.State
	// Unlock is true only for a well-formed live PASS in time.
	Unlock bool
	// Queue asks the live path to keep the capture for the drainer.
	Queue bool
	// CountsTowardCap is true for a live FAIL that says "not this person"
	// or "not a live person": the attempts that a brute-force guard counts.
	CountsTowardCap bool
	// AuthError is true when the service refused the device's credentials
	// (401/403); AuthOK when it accepted them (any answer at all).
	AuthError, AuthOK bool
	// WakeDrainer is true when the service just answered: queued captures
	// can go now.
	WakeDrainer bool
	// Retry (deferred) keeps the capture queued for a later try and writes
	// no decision line: nothing has been decided yet.
	Retry bool
	// Permanent (deferred) dead-letters the capture: another try cannot
	// change the answer.
	Permanent bool
}

// Decide is the policy. It is pure: the same input gives the same outcome.
func Decide(in Input) Outcome {
	a, err := in.Answer, in.Err
	if err == nil {
		if problem := Malformed(a); problem != nil {
			err = problem
		}
	}
	if err != nil {
		return decideError(in, err)
	}
	out := Outcome{AuthOK: true}
	switch {
	case a.Status == uploader.StatusPass && in.Deferred:
		out.Result = Pass
	case a.Status == uploader.StatusPass && !in.InTime:
		// The service said PASS after the person was told to wait no
		// longer: a stale PASS must not open the door, and "not
		// recognised" would be false.
		out.Result, out.Reason, out.Screen = Error, ReasonLate, display.StateServiceUnavailable
	case a.Status == uploader.StatusPass:
		out.Result, out.Screen, out.Unlock, out.WakeDrainer = Pass, display.StatePass, true, true
	default:
		out.Result, out.Reason = Fail, string(a.FailureReason)
		if out.Reason == "" {
			out.Reason = ReasonOtherError
		}
		if !in.Deferred {
			out.Screen, out.WakeDrainer = display.StateFail, true
			out.CountsTowardCap = CountsTowardCap(a.FailureReason)
		}
	}
	return out
}

func decideError(in Input, err error) Outcome {
	reason := uploader.Reason(err)
	var apiErr *uploader.APIError
	authErr := errors.As(err, &apiErr) && (apiErr.StatusCode == 401 || apiErr.StatusCode == 403)
	retryable := uploader.Retryable(err) || errors.Is(err, context.DeadlineExceeded)
	// Cut short by kioskd stopping, rather than answered by the service.
	cut := in.Stopping && in.Err != nil && !errors.As(err, &apiErr) &&
		!errors.Is(err, uploader.ErrMalformed) && !errors.Is(err, uploader.ErrInvalidRequest)
	if in.Deferred {
		switch {
		case cut || authErr || retryable:
			// A bad key is the operator's to fix and a stop or an outage
			// is nobody's: the capture stays queued.
			return Outcome{Result: Offline, Reason: reason, Retry: true, AuthError: authErr}
		default:
			return Outcome{Result: Error, Reason: reason, Permanent: true}
		}
	}
	if !authErr && (cut || retryable) {
		if cut {
			reason = "canceled"
		}
		out := Outcome{Result: Offline, Reason: reason, Queue: true, Screen: display.StateOffline}
		if in.Mode == config.ModeAttendance && in.Queued {
			out.Screen = display.StateRecorded
		}
		return out
	}
	// The service gave no usable answer (bad credentials, a malformed or
	// refused answer): telling the person "not recognised" would be false,
	// and trying again will not help.
	return Outcome{Result: Error, Reason: reason, Screen: display.StateServiceUnavailable, AuthError: authErr}
}

// CountsTowardCap reports whether a FAIL with this reason is an attempt
// the brute-force guard counts: a face that is not the person's, or not a
// live face. A mask or lenses is guidance, and otherError is the
// service's trouble, not the person's.
func CountsTowardCap(r uploader.FailureReason) bool {
	return r == uploader.ReasonFaceMatchFailed || r == uploader.ReasonSpoofAttempt
}

// Malformed returns an error wrapping uploader.ErrMalformed when an answer
// the client accepted still cannot be trusted as a decision, nil when it
// can. The client checks the same; this keeps the policy safe whatever
// Authenticator it is given.
func Malformed(a *uploader.AuthenticateResponse) error {
	var problem string
	switch {
	case a == nil:
		problem = "no answer"
	case !a.Status.Known():
		problem = fmt.Sprintf("status %.32q is not PASS or FAIL", string(a.Status))
	case a.Status == uploader.StatusPass && a.AuthenticationID == "":
		problem = "PASS without authenticationId"
	case a.Status == uploader.StatusPass && a.FailureReason != "":
		problem = "PASS with a failureReason"
	case a.Status == uploader.StatusPass && a.Error != nil:
		problem = "PASS with an error"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", uploader.ErrMalformed, problem)
}
