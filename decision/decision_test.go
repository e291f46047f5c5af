package decision_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/uploader"
)

type answerCase struct {
	name  string
	a     *uploader.AuthenticateResponse
	valid bool // a well-formed PASS or FAIL
}

func answers() []answerCase {
	pass := func(f func(*uploader.AuthenticateResponse)) *uploader.AuthenticateResponse {
		r := &uploader.AuthenticateResponse{Status: uploader.StatusPass, AuthenticationID: "auth-1", Token: "tok", CorrelationID: "corr-1"}
		if f != nil {
			f(r)
		}
		return r
	}
	out := []answerCase{
		{"nil", nil, false},
		{"PASS", pass(nil), true},
		{"PASS without authenticationId", pass(func(r *uploader.AuthenticateResponse) { r.AuthenticationID = "" }), false},
		{"PASS with failureReason", pass(func(r *uploader.AuthenticateResponse) { r.FailureReason = uploader.ReasonFaceMatchFailed }), false},
		{"PASS with error", pass(func(r *uploader.AuthenticateResponse) { r.Error = &uploader.ErrorBody{Status: 500} }), false},
		{"lowercase pass", pass(func(r *uploader.AuthenticateResponse) { r.Status = "pass" }), false},
		{"unknown status", pass(func(r *uploader.AuthenticateResponse) { r.Status = "MAYBE" }), false},
		{"empty status", pass(func(r *uploader.AuthenticateResponse) { r.Status = "" }), false},
		{"FAIL without reason", &uploader.AuthenticateResponse{Status: uploader.StatusFail}, true},
		{"FAIL unknown reason", &uploader.AuthenticateResponse{Status: uploader.StatusFail, FailureReason: "newReason"}, true},
	}
	for _, r := range uploader.FailureReasons() {
		out = append(out, answerCase{"FAIL " + string(r), &uploader.AuthenticateResponse{Status: uploader.StatusFail, FailureReason: r, AuthenticationID: "auth-2"}, true})
	}
	return out
}

type errCase struct {
	name      string
	err       error
	retryable bool // the service could not be reached or was busy
	auth      bool // 401/403
}

func errs() []errCase {
	api := func(code int) error { return &uploader.APIError{StatusCode: code, Method: "POST", Path: "/x"} }
	return []errCase{
		{"none", nil, false, false},
		{"429", api(429), true, false},
		{"500", api(500), true, false},
		{"503", api(503), true, false},
		{"401", api(401), false, true},
		{"403", api(403), false, true},
		{"400", api(400), false, false},
		{"404", api(404), false, false},
		{"malformed", fmt.Errorf("x: %w: dup", uploader.ErrMalformed), false, false},
		{"invalid request", fmt.Errorf("x: %w", uploader.ErrInvalidRequest), false, false},
		{"transport", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true, false},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false, false},
	}
}

// TestDecideWholeInputSpace walks every combination of answer, error, in
// time, stopping, mode, queued and live/deferred, and checks the rules
// that must hold for each; TestDecideRows pins the expected outcome of the
// cases people ask about.
func TestDecideWholeInputSpace(t *testing.T) {
	n := 0
	for _, ac := range answers() {
		for _, ec := range errs() {
			for _, inTime := range []bool{true, false} {
				for _, stopping := range []bool{false, true} {
					for _, mode := range []string{config.ModeDoor, config.ModeAttendance} {
						for _, deferred := range []bool{false, true} {
							for _, queued := range []bool{false, true} {
								n++
								in := decision.Input{Answer: ac.a, Err: ec.err, InTime: inTime, Stopping: stopping, Mode: mode, Deferred: deferred, Queued: queued}
								checkInvariants(t, in, ac, ec, decision.Decide(in))
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d inputs", n)
}

func checkInvariants(t *testing.T, in decision.Input, ac answerCase, ec errCase, out decision.Outcome) {
	t.Helper()
	name := fmt.Sprintf("answer %s, err %s, in time %v, stopping %v, mode %s, deferred %v, queued %v",
		ac.name, ec.name, in.InTime, in.Stopping, in.Mode, in.Deferred, in.Queued)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: %+v: %s", name, out, fmt.Sprintf(format, args...))
	}
	clean := ec.err == nil && ac.valid
	answered := ec.name == "malformed" || ec.name == "invalid request" || strings.HasPrefix(ec.name, "4") || strings.HasPrefix(ec.name, "5")
	cut := in.Stopping && ec.err != nil && !answered
	livePass := clean && ac.a.Status == uploader.StatusPass && !in.Deferred && in.InTime
	if out.Unlock != livePass {
		fail("unlock %v, want %v", out.Unlock, livePass)
	}
	if out.Unlock && (out.Result != decision.Pass || out.Screen != display.StatePass) {
		fail("an unlock must be a PASS shown as pass")
	}
	if out.Result == decision.Pass && out.Reason != "" {
		fail("a PASS has no reason")
	}
	if out.Result != decision.Pass && out.Reason == "" && !out.Retry {
		fail("every non-PASS has a reason")
	}
	if !clean && (out.Result == decision.Pass || out.Result == decision.Fail) {
		fail("an error or a malformed answer is not a decision of the service")
	}
	if clean && ac.a.Status == uploader.StatusFail && out.Result != decision.Fail {
		fail("a well-formed FAIL is a FAIL")
	}
	wantCount := clean && !in.Deferred && ac.a.Status == uploader.StatusFail && decision.CountsTowardCap(ac.a.FailureReason)
	if out.CountsTowardCap != wantCount {
		fail("counts toward cap %v, want %v", out.CountsTowardCap, wantCount)
	}
	if out.AuthError != ec.auth {
		fail("auth error %v, want %v", out.AuthError, ec.auth)
	}
	if out.AuthOK != clean {
		fail("auth ok %v, want %v", out.AuthOK, clean)
	}
	if in.Deferred {
		if out.Queue || out.Unlock || out.Screen != display.StateReady || out.WakeDrainer {
			fail("a deferred answer drives nothing")
		}
		wantRetry := ec.err != nil && (ec.retryable || ec.auth || cut)
		if out.Retry != wantRetry {
			fail("retry %v, want %v", out.Retry, wantRetry)
		}
		if out.Permanent != (!clean && !wantRetry) {
			fail("permanent %v, want %v", out.Permanent, !clean && !wantRetry)
		}
		return
	}
	if out.Retry || out.Permanent {
		fail("retry and permanent are for deferred answers")
	}
	wantOffline := ec.err != nil && !ec.auth && (ec.retryable || cut)
	if (out.Result == decision.Offline) != wantOffline || out.Queue != wantOffline {
		fail("offline/queue %v/%v, want %v", out.Result == decision.Offline, out.Queue, wantOffline)
	}
	if wantOffline {
		want := display.StateOffline
		if in.Mode == config.ModeAttendance && in.Queued {
			want = display.StateRecorded
		}
		if out.Screen != want {
			fail("screen %s, want %s", out.Screen, want)
		}
	}
	if out.Result == decision.Error && out.Screen != display.StateServiceUnavailable {
		fail("an ERROR shows service unavailable, not %s", out.Screen)
	}
	if out.Result == decision.Fail && out.Screen != display.StateFail {
		fail("a FAIL shows fail, not %s", out.Screen)
	}
}

func TestDecideRows(t *testing.T) {
	pass := &uploader.AuthenticateResponse{Status: uploader.StatusPass, AuthenticationID: "a"}
	fail := func(r uploader.FailureReason) *uploader.AuthenticateResponse {
		return &uploader.AuthenticateResponse{Status: uploader.StatusFail, FailureReason: r}
	}
	rows := []struct {
		name string
		in   decision.Input
		want decision.Outcome
	}{
		{"live PASS in time", decision.Input{Answer: pass, InTime: true},
			decision.Outcome{Result: decision.Pass, Screen: display.StatePass, Unlock: true, AuthOK: true, WakeDrainer: true}},
		{"late PASS", decision.Input{Answer: pass},
			decision.Outcome{Result: decision.Error, Reason: "late", Screen: display.StateServiceUnavailable, AuthOK: true}},
		{"faceMatchFailed counts", decision.Input{Answer: fail(uploader.ReasonFaceMatchFailed), InTime: true},
			decision.Outcome{Result: decision.Fail, Reason: "faceMatchFailed", Screen: display.StateFail, CountsTowardCap: true, AuthOK: true, WakeDrainer: true}},
		{"spoofAttempt counts", decision.Input{Answer: fail(uploader.ReasonSpoofAttempt), InTime: true},
			decision.Outcome{Result: decision.Fail, Reason: "spoofAttempt", Screen: display.StateFail, CountsTowardCap: true, AuthOK: true, WakeDrainer: true}},
		{"mask is guidance", decision.Input{Answer: fail(uploader.ReasonHasFaceMask), InTime: true},
			decision.Outcome{Result: decision.Fail, Reason: "hasFaceMask", Screen: display.StateFail, AuthOK: true, WakeDrainer: true}},
		{"FAIL without reason", decision.Input{Answer: fail(""), InTime: true},
			decision.Outcome{Result: decision.Fail, Reason: "otherError", Screen: display.StateFail, AuthOK: true, WakeDrainer: true}},
		{"PASS with failureReason", decision.Input{Answer: &uploader.AuthenticateResponse{Status: uploader.StatusPass, AuthenticationID: "a", FailureReason: "spoofAttempt"}, InTime: true},
			decision.Outcome{Result: decision.Error, Reason: "malformed", Screen: display.StateServiceUnavailable}},
		{"503 live", decision.Input{Err: &uploader.APIError{StatusCode: 503}, InTime: true},
			decision.Outcome{Result: decision.Offline, Reason: "server_error", Screen: display.StateOffline, Queue: true}},
		{"503 attendance queued", decision.Input{Err: &uploader.APIError{StatusCode: 503}, Mode: config.ModeAttendance, Queued: true},
			decision.Outcome{Result: decision.Offline, Reason: "server_error", Screen: display.StateRecorded, Queue: true}},
		{"stopping", decision.Input{Err: context.Canceled, Stopping: true},
			decision.Outcome{Result: decision.Offline, Reason: "canceled", Screen: display.StateOffline, Queue: true}},
		{"403 live", decision.Input{Err: &uploader.APIError{StatusCode: 403}, InTime: true},
			decision.Outcome{Result: decision.Error, Reason: "forbidden", Screen: display.StateServiceUnavailable, AuthError: true}},
		{"deferred PASS", decision.Input{Answer: pass, Deferred: true, InTime: true},
			decision.Outcome{Result: decision.Pass, AuthOK: true}},
		{"deferred FAIL does not count", decision.Input{Answer: fail(uploader.ReasonFaceMatchFailed), Deferred: true},
			decision.Outcome{Result: decision.Fail, Reason: "faceMatchFailed", AuthOK: true}},
		{"deferred 401 stays queued", decision.Input{Err: &uploader.APIError{StatusCode: 401}, Deferred: true},
			decision.Outcome{Result: decision.Offline, Reason: "unauthorized", Retry: true, AuthError: true}},
		{"deferred 400 is dead-lettered", decision.Input{Err: &uploader.APIError{StatusCode: 400}, Deferred: true},
			decision.Outcome{Result: decision.Error, Reason: "bad_request", Permanent: true}},
		{"deferred malformed is dead-lettered", decision.Input{Answer: &uploader.AuthenticateResponse{Status: "OK"}, Deferred: true},
			decision.Outcome{Result: decision.Error, Reason: "malformed", Permanent: true}},
	}
	for _, r := range rows {
		if got := decision.Decide(r.in); got != r.want {
			t.Errorf("%s:\n got %+v\nwant %+v", r.name, got, r.want)
		}
	}
}
