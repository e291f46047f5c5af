package camera

import "time"

// repeatEvery is how often a warning that keeps repeating is logged again,
// with the count of those left out: a camera that stays down says so about
// once a minute, not at every reconnect attempt.
const repeatEvery = time.Minute

// repeats rate-limits identical warnings.
type repeats struct {
	key        string
	logged     time.Time
	suppressed int
}

// allow reports whether a warning with this key may be logged now, and how
// many identical ones were left out since it was last logged.
func (r *repeats) allow(key string, now time.Time) (left int, ok bool) {
	if key != r.key {
		r.key, r.logged, r.suppressed = key, now, 0
		return 0, true
	}
	if now.Sub(r.logged) < repeatEvery {
		r.suppressed++
		return 0, false
	}
	left, r.logged, r.suppressed = r.suppressed, now, 0
	return left, true
}
