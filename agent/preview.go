package agent

import (
	"image"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/display"
)

// preview encodes the self-view: the colour frame scaled to at most
// display.MaxPreviewSide on its long side, at most fps times a second. It
// runs on the frame loop, only while a screen watches, and reuses its Mat.
// Nothing is drawn on it: the page draws the guide and mirrors the picture.
type preview struct {
	every time.Duration
	last  time.Time
	small gocv.Mat
}

func newPreview(fps float64) *preview {
	if fps <= 0 {
		return nil
	}
	fps = min(fps, display.MaxPreviewFPS)
	return &preview{every: time.Duration(float64(time.Second) / fps), small: gocv.NewMat()}
}

func (p *preview) close() {
	if p != nil {
		p.small.Close()
	}
}

// frame returns the frame to publish, or false when it is not time yet.
func (p *preview) frame(now time.Time, frame gocv.Mat, a capture.Analysis) (display.Frame, bool) {
	if p == nil || now.Sub(p.last) < p.every || frame.Empty() || frame.Cols() < 2 || frame.Rows() < 2 {
		return display.Frame{}, false
	}
	p.last = now
	w, h := frame.Cols(), frame.Rows()
	scale := min(float64(display.MaxPreviewSide)/float64(max(w, h)), 1)
	size := image.Pt(max(int(float64(w)*scale), 1), max(int(float64(h)*scale), 1))
	src := frame
	if size.X != w || size.Y != h {
		gocv.Resize(frame, &p.small, size, 0, 0, gocv.InterpolationArea)
		src = p.small
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, 70})
	if err != nil {
		return display.Frame{}, false
	}
	defer buf.Close()
	return display.Frame{
		JPEG:    append([]byte(nil), buf.GetBytes()...),
		MinFace: a.Thresholds[capture.ThMinFaceFraction],
		MaxFace: a.Thresholds[capture.ThMaxFaceFraction],
	}, true
}

// guidanceUpdate is what the screen says for a guidance event: what to do
// about the first reason, or "hold still" when the face is fine and a shot
// is coming.
func guidanceUpdate(ev capture.Event, frame gocv.Mat) display.Update {
	if len(ev.Reasons) == 0 {
		return display.Update{State: display.StateGuidance, Reason: display.GuideHoldStill}
	}
	return display.Update{State: display.StateGuidance, Reason: display.Guidance(scene(ev.Reasons, ev.Analysis.Faces, frame))}
}

// steer follows a face that is still off centre: capture reports guidance
// only when its reasons change, but which way to move changes as the person
// moves.
func (a *Agent) steer(ev capture.Event, frame gocv.Mat) {
	r := ev.Analysis.Reasons
	if len(r) == 0 || r[0] != capture.ReasonOffCenter {
		return
	}
	a.mu.Lock()
	guiding := a.shown.State == display.StateGuidance
	a.mu.Unlock()
	if guiding {
		a.publish(display.Update{State: display.StateGuidance, Reason: display.Guidance(scene(r, ev.Analysis.Faces, frame))}, false)
	}
}

func scene(reasons []capture.Reason, faces []image.Rectangle, frame gocv.Mat) display.Scene {
	rs := make([]string, len(reasons))
	for i, r := range reasons {
		rs[i] = string(r)
	}
	return display.Scene{Size: image.Pt(frame.Cols(), frame.Rows()), Faces: faces, Reasons: rs}
}

// light decides the lamp (role: light) from one frame: on once a face is
// in front and capture finds it too dark or flat, off when the person has
// gone. In between it stays as it is: the lamp that lights the face must
// not switch itself off by doing so.
func (a *Agent) light(on bool, ev capture.Event) bool {
	want := on
	switch {
	case ev.Kind == capture.EventIdle:
		want = false
	case len(ev.Analysis.Faces) > 0:
		for _, r := range ev.Analysis.Reasons {
			if r == capture.ReasonTooDark || r == capture.ReasonLowContrast {
				want = true
			}
		}
	}
	if want != on {
		a.d.Door.Light(want)
	}
	return want
}
