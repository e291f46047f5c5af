package clock

import (
	"sync"
	"time"
)

// Fake is a Clock for tests: time stands still until Advance moves it, and
// timers and calls come due only then. Every timer and call armed is
// announced on Armed, which tells a test that the code under test has gone
// to sleep or scheduled its next step.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer // armed, neither fired nor stopped, in arming order
	armed   chan time.Duration
}

// fakeArmedBuffer bounds the announcements nobody has read yet; past it they
// are dropped, so a test that does not listen never blocks the code.
const fakeArmedBuffer = 1024

// NewFake returns a Fake clock reading start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, armed: make(chan time.Duration, fakeArmedBuffer)}
}

type fakeTimer struct {
	clock *Fake
	at    time.Time
	c     chan time.Time // NewTimer timers
	f     func()         // AfterFunc calls
	done  bool           // fired or stopped
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when Advance reaches now+d, or at
// once when d <= 0, as time.NewTimer.
func (c *Fake) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		t.done = true
	} else {
		c.pending = append(c.pending, t)
	}
	c.announce(d)
	return t
}

// AfterFunc schedules f for when Advance reaches now+d. f runs in the
// goroutine that calls Advance, never inside AfterFunc, even for d <= 0:
// code often arms a call while holding a lock that the call takes.
func (c *Fake) AfterFunc(d time.Duration, f func()) Stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now.Add(d), f: f}
	c.pending = append(c.pending, t)
	c.announce(d)
	return t
}

func (c *Fake) announce(d time.Duration) {
	select {
	case c.armed <- d:
	default:
	}
}

// Armed delivers the duration of every timer and call armed, in order.
func (c *Fake) Armed() <-chan time.Duration { return c.armed }

// Pending counts the timers and calls that have neither fired nor been
// stopped.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Advance moves time forward by d. Timers and calls come due in deadline
// order (arming order on ties), the clock reading each one's deadline when
// it fires; calls run in the calling goroutine, and whatever they arm within
// the step comes due in the same Advance.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		next := -1
		for i, t := range c.pending {
			if !t.at.After(target) && (next < 0 || t.at.Before(c.pending[next].at)) {
				next = i
			}
		}
		if next < 0 {
			c.now = target
			c.mu.Unlock()
			return
		}
		t := c.pending[next]
		c.pending = append(c.pending[:next], c.pending[next+1:]...)
		t.done = true
		if t.at.After(c.now) {
			c.now = t.at
		}
		if t.c != nil {
			t.c <- c.now // buffered, and sent once
			continue
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
}

// Stop cancels the timer or call if it has not fired.
func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	for i, p := range c.pending {
		if p == t {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			break
		}
	}
	return true
}

// C is the channel the timer fires on (nil for AfterFunc calls).
func (t *fakeTimer) C() <-chan time.Time { return t.c }
