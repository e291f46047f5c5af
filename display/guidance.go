package display

import "image"

// What a person in front of the camera is asked to do (StateGuidance
// reasons). Directions are the person's own, as seen in the mirrored
// self-view: "move_left" moves their image towards the left of the screen.
const (
	GuideLook       = "look"
	GuideMoveLeft   = "move_left"
	GuideMoveRight  = "move_right"
	GuideMoveUp     = "move_up"
	GuideMoveDown   = "move_down"
	GuideCloser     = "closer"
	GuideBack       = "back"
	GuideOnePerson  = "one_person"
	GuideHoldStill  = "hold_still"
	GuideFaceScreen = "face_screen" // too dark: turn to the screen, take off a hat
	GuideGlare      = "glare"       // too bright: step out of the light
	GuideWait       = "wait"
)

// guideKeys lists every guidance reason (catalog keys "guidance.<key>").
var guideKeys = []string{GuideLook, GuideMoveLeft, GuideMoveRight, GuideMoveUp, GuideMoveDown,
	GuideCloser, GuideBack, GuideOnePerson, GuideHoldStill, GuideFaceScreen, GuideGlare, GuideWait}

// Scene is what guidance needs to know about one analysed camera frame.
type Scene struct {
	Size    image.Point       // the frame, in pixels
	Faces   []image.Rectangle // largest first, in frame pixels
	Reasons []string          // capture's rejection reasons, most actionable first
}

// Guidance turns capture's verdict on a frame into the one thing the person
// should do next. Capture says what is wrong ("off_center"); only the face
// box against the guide, which sits at the centre of the frame, says which
// way to move. It returns "" when there is nothing to ask.
func Guidance(sc Scene) string {
	if len(sc.Reasons) == 0 {
		return ""
	}
	r := sc.Reasons[0]
	if r != "off_center" {
		return guidanceKey(r)
	}
	if len(sc.Faces) == 0 || sc.Size.X < 1 || sc.Size.Y < 1 {
		return GuideLook
	}
	f := sc.Faces[0]
	dx := (float64(f.Min.X+f.Max.X)/2 - float64(sc.Size.X)/2) / float64(sc.Size.X)
	dy := (float64(f.Min.Y+f.Max.Y)/2 - float64(sc.Size.Y)/2) / float64(sc.Size.Y)
	if abs(dx) >= abs(dy) {
		// The camera sees the person's left on the right of its frame;
		// the mirrored view puts it back on the left.
		if dx < 0 {
			return GuideMoveLeft
		}
		return GuideMoveRight
	}
	if dy < 0 {
		return GuideMoveDown
	}
	return GuideMoveUp
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// guidanceKey maps a capture rejection reason to what the person can do
// about it; a guidance key maps to itself, anything else to "" (the
// generic guidance text). "More light" is not something a person can do:
// a dark face usually means a cap's shadow or a window behind them.
func guidanceKey(reason string) string {
	switch reason {
	case "invalid_frame":
		return GuideWait
	case "no_face", "no_eyes":
		return GuideLook
	case "multiple_faces":
		return GuideOnePerson
	case "too_small":
		return GuideCloser
	case "too_large":
		return GuideBack
	case "off_center":
		return "" // which way is only known from the face box (Guidance)
	case "too_dark", "low_contrast":
		return GuideFaceScreen
	case "too_bright":
		return GuideGlare
	case "blurry":
		return GuideHoldStill
	}
	for _, k := range guideKeys {
		if k == reason {
			return k
		}
	}
	return ""
}
