// Package backoff is kioskd's one retry delay policy: capped exponential
// backoff with jitter below each step. The queue's redelivery, the camera's
// reconnect and the actuator's http driver use it.
package backoff

import "time"

// Policy doubles the delay from Min with every attempt up to Max, then
// takes a random part of up to Jitter (0..1) of it off, so that many doors
// coming back after one outage do not retry in step.
type Policy struct {
	Min, Max time.Duration
	Jitter   float64
}

// Delay is the wait before attempt n (1 for the first retry). rnd returns
// a number in [0, 1): math/rand/v2's Float64 or a seeded source in tests;
// nil means no jitter.
func (p Policy) Delay(n int, rnd func() float64) time.Duration {
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if rnd == nil || p.Jitter <= 0 {
		return d
	}
	return d - time.Duration(min(p.Jitter, 1)*rnd()*float64(d))
}
