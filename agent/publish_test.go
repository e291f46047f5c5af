package agent

import (
	"context"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/camera"
	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/uploader"
)

// The agent's publishing is tested through its own methods; these parts
// are never called.
type idleCamera struct{}

func (idleCamera) Read(context.Context, *gocv.Mat) (time.Time, error) {
	return time.Time{}, camera.ErrEnded
}
func (idleCamera) State() camera.State { return camera.StateEnded }

type idleSelector struct{}

func (idleSelector) Process(gocv.Mat, time.Time) (capture.Event, error) { return capture.Event{}, nil }
func (idleSelector) SetBusy(bool)                                       {}
func (idleSelector) Failed(time.Time) (time.Time, bool)                 { return time.Time{}, false }

type idleAPI struct{}

func (idleAPI) Authenticate(context.Context, uploader.AuthenticateRequest, ...uploader.CallOption) (*uploader.AuthenticateResponse, error) {
	return nil, context.Canceled
}
func (idleAPI) UserInfo(context.Context, string) (*uploader.UserInfo, error) {
	return nil, context.Canceled
}

type idleDoor struct{}

func (idleDoor) Pass(context.Context, actuator.Event) error { return nil }
func (idleDoor) Fail(context.Context, actuator.Event) error { return nil }
func (idleDoor) Busy(bool)                                  {}
func (idleDoor) Light(bool)                                 {}

// screen records what the agent publishes.
type screen struct {
	mu  sync.Mutex
	got []display.Update
}

func (s *screen) Publish(u display.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, u)
}
func (s *screen) PublishPreview(display.Frame) {}
func (s *screen) Watching() bool               { return false }

func (s *screen) last() display.Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[len(s.got)-1]
}

// TestGuidanceHeldBackByAResultIsShownAfterIt: the selector reports "come
// closer" once, while the previous person's result is still on screen;
// when the result's time is up the screen shows that guidance, not
// "ready", because the selector will not say it again.
func TestGuidanceHeldBackByAResultIsShownAfterIt(t *testing.T) {
	now := time.Date(2025, 1, 2, 9, 0, 0, 0, time.UTC)
	scr := &screen{}
	a, err := New(config.Default(), Deps{Camera: idleCamera{}, Selector: idleSelector{}, API: idleAPI{}, Door: idleDoor{},
		Display: scr, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a.publish(display.Update{State: display.StatePass}, true)
	now = now.Add(time.Second)
	a.publish(display.Update{State: display.StateReady}, false) // the person left
	a.publish(display.Update{State: display.StateGuidance, Reason: "too_small"}, false)
	if got := scr.last(); got.State != display.StatePass {
		t.Fatalf("during the hold the screen shows %+v, want the PASS", got)
	}
	a.expireHold(false)
	if got := scr.last(); got.State != display.StatePass {
		t.Fatalf("before the hold ends the screen shows %+v, want the PASS", got)
	}
	now = now.Add(resultHold)
	a.expireHold(false)
	if got := scr.last(); got.State != display.StateGuidance || got.Reason != "too_small" {
		t.Fatalf("after the hold the screen shows %+v, want the held-back guidance", got)
	}

	// Nothing held back: "ready" after the hold. A forced update drops
	// what was held back.
	a.publish(display.Update{State: display.StateFail, Reason: "hasFaceMask"}, true)
	a.publish(display.Update{State: display.StateGuidance, Reason: "blurry"}, false)
	a.publish(display.Update{State: display.StateChecking}, true)
	a.publish(display.Update{State: display.StateOffline}, true)
	now = now.Add(resultHold)
	a.expireHold(false)
	if got := scr.last(); got.State != display.StateReady {
		t.Fatalf("after a hold with nothing held back the screen shows %+v, want ready", got)
	}
}
