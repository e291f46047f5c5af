package display_test

import (
	"image"
	"testing"

	"github.com/kioskd/kioskd/display"
)

func TestGuidance(t *testing.T) {
	frame := image.Pt(1280, 720)
	box := func(cx, cy int) []image.Rectangle {
		return []image.Rectangle{image.Rect(cx-100, cy-100, cx+100, cy+100)}
	}
	for _, c := range []struct {
		name    string
		reasons []string
		faces   []image.Rectangle
		want    string
	}{
		{"nothing wrong", nil, box(640, 360), ""},
		// The camera sees a person standing to their left on the right of
		// its frame: the mirrored view shows them on the left; they move
		// to their right... and the other way round.
		{"face on the frame's left", []string{"off_center"}, box(150, 360), display.GuideMoveLeft},
		{"face on the frame's right", []string{"off_center"}, box(1130, 360), display.GuideMoveRight},
		{"face high", []string{"off_center"}, box(640, 60), display.GuideMoveDown},
		{"face low", []string{"off_center"}, box(640, 680), display.GuideMoveUp},
		{"mostly left, a bit high", []string{"off_center", "too_dark"}, box(100, 250), display.GuideMoveLeft},
		{"off centre without a box", []string{"off_center"}, nil, display.GuideLook},
		{"too small", []string{"too_small", "off_center"}, box(640, 360), display.GuideCloser},
		{"too large", []string{"too_large"}, box(640, 360), display.GuideBack},
		{"two people", []string{"multiple_faces"}, box(640, 360), display.GuideOnePerson},
		{"dark", []string{"too_dark"}, box(640, 360), display.GuideFaceScreen},
		{"flat", []string{"low_contrast"}, box(640, 360), display.GuideFaceScreen},
		{"glare", []string{"too_bright"}, box(640, 360), display.GuideGlare},
		{"blurry", []string{"blurry"}, box(640, 360), display.GuideHoldStill},
		{"eyes", []string{"no_eyes"}, box(640, 360), display.GuideLook},
		{"nobody", []string{"no_face"}, nil, display.GuideLook},
		{"bad frame", []string{"invalid_frame"}, nil, display.GuideWait},
		{"a reason from a newer capture", []string{"sunglasses"}, box(640, 360), ""},
	} {
		got := display.Guidance(display.Scene{Size: frame, Faces: c.faces, Reasons: c.reasons})
		if got != c.want {
			t.Errorf("%s: Guidance = %q, want %q", c.name, got, c.want)
		}
	}
	// A zero-sized frame never divides by zero.
	if got := display.Guidance(display.Scene{Faces: box(1, 1), Reasons: []string{"off_center"}}); got != display.GuideLook {
		t.Errorf("empty frame: %q", got)
	}
}

func TestGuideShare(t *testing.T) {
	// 120 px faces in a 720-line frame, at most 90% of it.
	g := display.GuideShare(120.0/720, 0.9)
	if g < 0.25 || g > 0.45 {
		t.Errorf("GuideShare(1/6, 0.9) = %.3f, want an oval about a third of the frame", g)
	}
	if a, b := display.GuideShare(0.1, 0.9), display.GuideShare(0.2, 0.9); a >= b {
		t.Errorf("a larger minimum face does not make a larger oval: %.3f, %.3f", a, b)
	}
	if g := display.GuideShare(0.7, 0.75); g > 0.95 {
		t.Errorf("oval larger than the frame: %.3f", g)
	}
	if g := display.GuideShare(0, 0); g <= 0 {
		t.Errorf("unknown sizes give %.3f", g)
	}
}
