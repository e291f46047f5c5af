package clock_test

import (
	"testing"
	"time"

	"github.com/kioskd/kioskd/internal/clock"
)

var start = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func TestFakeRunsDueCallsInDeadlineOrder(t *testing.T) {
	c := clock.NewFake(start)
	var got []string
	at := func(name string) func() {
		return func() { got = append(got, name+"@"+c.Now().Sub(start).String()) }
	}
	c.AfterFunc(3*time.Second, at("c"))
	c.AfterFunc(time.Second, func() {
		at("a")()
		// Armed while advancing and due within the same step: it runs too.
		c.AfterFunc(time.Second, at("b"))
	})
	stopped := c.AfterFunc(2*time.Second, at("never"))
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true once, then false")
	}
	if n := c.Pending(); n != 2 {
		t.Fatalf("Pending = %d, want 2", n)
	}
	c.Advance(3*time.Second - time.Nanosecond)
	want := []string{"a@1s", "b@2s"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ran %v, want %v", got, want)
	}
	if now := c.Now().Sub(start); now != 3*time.Second-time.Nanosecond {
		t.Fatalf("Now = start+%v after Advance", now)
	}
	c.Advance(time.Nanosecond)
	if len(got) != 3 || got[2] != "c@3s" || c.Pending() != 0 {
		t.Fatalf("ran %v with %d pending, want c@3s last and none pending", got, c.Pending())
	}
}

func TestFakeAfterFuncWaitsForAdvance(t *testing.T) {
	c := clock.NewFake(start)
	ran := false
	c.AfterFunc(0, func() { ran = true })
	if ran {
		t.Fatal("AfterFunc(0) ran inside AfterFunc")
	}
	c.Advance(0)
	if !ran {
		t.Fatal("AfterFunc(0) did not run on Advance(0)")
	}
}

func TestFakeTimer(t *testing.T) {
	c := clock.NewFake(start)
	tm := c.NewTimer(time.Minute)
	if d := <-c.Armed(); d != time.Minute {
		t.Fatalf("Armed delivered %v, want 1m", d)
	}
	c.Advance(time.Minute - time.Second)
	select {
	case <-tm.C():
		t.Fatal("timer fired early")
	default:
	}
	c.Advance(time.Second)
	select {
	case at := <-tm.C():
		if !at.Equal(start.Add(time.Minute)) {
			t.Fatalf("timer delivered %v", at)
		}
	default:
		t.Fatal("timer did not fire at its deadline")
	}
	if tm.Stop() {
		t.Fatal("Stop after firing reported true")
	}

	now := c.NewTimer(0)
	select {
	case <-now.C():
	default:
		t.Fatal("NewTimer(0) did not fire at once")
	}

	st := c.NewTimer(time.Second)
	if !st.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	c.Advance(time.Hour)
	select {
	case <-st.C():
		t.Fatal("a stopped timer fired")
	default:
	}
}

func TestRealClock(t *testing.T) {
	c := clock.Real()
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Fatalf("Real().Now is %v away from time.Now", d)
	}
	done := make(chan struct{})
	c.AfterFunc(time.Millisecond, func() { close(done) })
	tm := c.NewTimer(time.Millisecond)
	<-done
	<-tm.C()
	if !c.AfterFunc(time.Hour, func() { t.Error("stopped call ran") }).Stop() {
		t.Fatal("Stop of a pending call reported false")
	}
}
