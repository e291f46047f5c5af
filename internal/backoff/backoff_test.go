package backoff

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Min: time.Second, Max: 8 * time.Second, Jitter: 0.5}
	r := rand.New(rand.NewPCG(1, 2))
	for n, ceil := range []time.Duration{1, 1, 2, 4, 8, 8, 8} {
		if n == 0 {
			n = 1 // attempt 0 is treated as the first
		}
		for range 50 {
			d := p.Delay(n, r.Float64)
			if d > ceil*time.Second || d < ceil*time.Second/2 {
				t.Fatalf("attempt %d: %s outside [%s, %s]", n, d, ceil*time.Second/2, ceil*time.Second)
			}
		}
	}
	if d := (Policy{Min: 100 * time.Millisecond, Max: time.Second}).Delay(3, nil); d != 400*time.Millisecond {
		t.Fatalf("no jitter: %s", d)
	}
	// Large attempt counts neither overflow nor pass Max.
	if d := (Policy{Min: time.Second, Max: time.Hour}).Delay(1<<30, nil); d != time.Hour {
		t.Fatalf("attempt 2^30: %s", d)
	}
}
