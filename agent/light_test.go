package agent

import (
	"image"
	"slices"
	"testing"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/display"
)

// lampLog records the lamp's switching.
type lampLog struct {
	idleDoor
	got []bool
}

func (l *lampLog) Light(on bool) { l.got = append(l.got, on) }

func TestLightFollowsADarkFaceUntilThePersonLeaves(t *testing.T) {
	door := &lampLog{}
	a, err := New(config.Default(), Deps{Camera: idleCamera{}, Selector: idleSelector{}, API: idleAPI{}, Door: door})
	if err != nil {
		t.Fatal(err)
	}
	face := []image.Rectangle{image.Rect(100, 100, 300, 300)}
	frames := []capture.Event{
		{Kind: capture.EventNone}, // nobody
		{Kind: capture.EventNone, Analysis: capture.Analysis{Reasons: []capture.Reason{capture.ReasonTooDark}}}, // dark, nobody
		{Kind: capture.EventGuidance, Analysis: capture.Analysis{Faces: face, Reasons: []capture.Reason{capture.ReasonOffCenter, capture.ReasonTooDark}}},
		{Kind: capture.EventNone, Analysis: capture.Analysis{Faces: face}}, // lit now: stays on
		{Kind: capture.EventShot, Analysis: capture.Analysis{Faces: face, Accepted: true}},
		{Kind: capture.EventNone}, // a frame without the face
		{Kind: capture.EventIdle}, // gone
		{Kind: capture.EventIdle},
		{Kind: capture.EventNone, Analysis: capture.Analysis{Faces: face, Reasons: []capture.Reason{capture.ReasonLowContrast}}},
	}
	lit := false
	for _, ev := range frames {
		lit = a.light(lit, ev)
	}
	if want := []bool{true, false, true}; !slices.Equal(door.got, want) {
		t.Errorf("lamp switched %v, want %v", door.got, want)
	}
}

func TestGuidanceFromTheFrame(t *testing.T) {
	frame := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer frame.Close()
	left := []image.Rectangle{image.Rect(50, 300, 250, 500)}
	for _, c := range []struct {
		ev   capture.Event
		want string
	}{
		{capture.Event{Kind: capture.EventGuidance}, display.GuideHoldStill},
		{capture.Event{Kind: capture.EventGuidance, Reasons: []capture.Reason{capture.ReasonOffCenter},
			Analysis: capture.Analysis{Faces: left}}, display.GuideMoveLeft},
		{capture.Event{Kind: capture.EventGuidance, Reasons: []capture.Reason{capture.ReasonTooSmall}}, display.GuideCloser},
	} {
		if got := guidanceUpdate(c.ev, frame); got.State != display.StateGuidance || got.Reason != c.want {
			t.Errorf("guidanceUpdate(%v) = %+v, want guidance %q", c.ev.Reasons, got, c.want)
		}
	}

	// While guidance is shown, a face that moves across keeps being told
	// which way to go, though capture's reasons stay "off_center".
	scr := &screen{}
	a, err := New(config.Default(), Deps{Camera: idleCamera{}, Selector: idleSelector{}, API: idleAPI{}, Door: idleDoor{}, Display: scr})
	if err != nil {
		t.Fatal(err)
	}
	a.publish(guidanceUpdate(capture.Event{Reasons: []capture.Reason{capture.ReasonOffCenter}, Analysis: capture.Analysis{Faces: left}}, frame), false)
	right := []image.Rectangle{image.Rect(1030, 300, 1230, 500)}
	a.steer(capture.Event{Analysis: capture.Analysis{Faces: right, Reasons: []capture.Reason{capture.ReasonOffCenter}}}, frame)
	if got := scr.last(); got.Reason != display.GuideMoveRight {
		t.Errorf("after the face crossed over the screen says %+v, want move_right", got)
	}
}
