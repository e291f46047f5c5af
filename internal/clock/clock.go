// Package clock is kioskd's one time seam: a Clock tells the time, makes
// timers and schedules calls, so that tests drive waits with a Fake clock
// instead of sleeping.
//
// A package that only reads the time takes a func() time.Time instead of a
// Clock: that is a Clock's Now method value (clock.Real().Now, time.Now, or
// a Fake's Now), the one shape for read-only time.
package clock

import "time"

// Clock tells the time, makes timers and schedules calls.
type Clock interface {
	Now() time.Time
	// NewTimer is a timer a goroutine waits on, as time.NewTimer.
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine after d, as time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Stopper
}

// Stopper cancels a pending timer or call; *time.Timer is one. Stop reports
// whether it stopped it (false once it has fired or was stopped).
type Stopper interface {
	Stop() bool
}

// Timer is a stoppable one-shot timer, as time.Timer: C delivers the time
// once when it fires.
type Timer interface {
	Stopper
	C() <-chan time.Time
}

// Real is the system clock.
func Real() Clock { return real{} }

type real struct{}

func (real) Now() time.Time                 { return time.Now() }
func (real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }
func (real) AfterFunc(d time.Duration, f func()) Stopper {
	return time.AfterFunc(d, f)
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
