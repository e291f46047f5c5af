package capture

import (
	"image"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/testmedia"
)

// showFrames is how long each picture is shown: presence (3 frames) and
// the window (400 ms at 15 fps) with room to spare.
const showFrames = 15

// lenient accepts any face the detectors agree on: only the second check
// stands between a false detection and an upload.
func lenient() config.Capture {
	cfg := defaultCapture()
	cfg.MinFacePx = 40
	cfg.MaxCenterOffset = 1
	cfg.MinSharpness = 0
	cfg.MinContrast = 0
	cfg.MinBrightness = 0
	cfg.MaxBrightness = 255
	cfg.MaxFailures = 0
	return cfg
}

// shotsOnNegatives shows every image of testdata/negatives (and its mirror
// image) to a selector as a camera would for a second and counts the shots.
func shotsOnNegatives(t *testing.T, cfg config.Capture, stopAtShot bool) (shots int, files int, unconfirmed float64) {
	t.Helper()
	dir, err := testmedia.Dir()
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "negatives", "*.jpg"))
	if err != nil || len(paths) < 15 {
		t.Fatalf("negative set: %d images (%v), want at least 15", len(paths), err)
	}
	mirror := gocv.NewMat()
	defer mirror.Close()
	blank := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 360, 640, gocv.MatTypeCV8UC3)
	defer blank.Close()
	s, reg := newSelector(t, cfg)
	ts := time.Date(2025, 1, 2, 9, 0, 0, 0, time.UTC)
	for _, p := range paths {
		img := gocv.IMRead(p, gocv.IMReadColor)
		if img.Empty() {
			img.Close()
			t.Fatalf("cannot read %s", p)
		}
		gocv.Flip(img, &mirror, 1)
		for _, m := range []gocv.Mat{img, mirror} {
			// Long enough for presence and the window, then an empty view
			// long enough to end any presence and cooldown.
			for i := range showFrames + cfg.AbsentFrames + 1 {
				ts = ts.Add(frameGap)
				frame := m
				if i >= showFrames {
					frame = blank
				}
				ev, err := s.Process(frame, ts)
				if err != nil {
					t.Fatalf("%s: %v", filepath.Base(p), err)
				}
				if ev.Kind == EventShot {
					shots++
					t.Logf("%s: shot of a %v face", filepath.Base(p), ev.Shot.Face)
					if stopAtShot {
						img.Close()
						return shots, len(paths), 0
					}
				}
			}
		}
		img.Close()
	}
	unconfirmed = counterValue(t, reg, "kioskd_capture_unconfirmed_faces_total", "")
	return shots, len(paths), unconfirmed
}

// TestNegativeSetUploadsNothing is issue 18's "no non-face is uploaded":
// food, an animal, objects and textures give no shot, even with every
// quality threshold open, because the second detector confirms none of the
// faces the main cascade finds in them; without it, some would be uploaded.
func TestNegativeSetUploadsNothing(t *testing.T) {
	testmedia.CheckMats(t)
	shots, files, unconfirmed := shotsOnNegatives(t, lenient(), false)
	if shots != 0 {
		t.Errorf("%d shots on the negative set (%d images), want 0", shots, files)
	}
	if unconfirmed == 0 {
		t.Errorf("the second detector rejected no face on the negative set: the set no longer exercises it")
	}
	single := lenient()
	single.VerifyCascade = ""
	if shots, _, _ := shotsOnNegatives(t, single, true); shots == 0 {
		t.Errorf("without the second detector the negative set gave no shot either: the test proves nothing")
	}
}

// TestSecondDetectorKeepsRealFaces: every face of the test people is
// confirmed, and a false detection beside a real face no longer makes one
// person "several people".
func TestSecondDetectorKeepsRealFaces(t *testing.T) {
	testmedia.CheckMats(t)
	cfg := defaultCapture()
	cfg.MinFacePx = 80
	s, _ := newSelector(t, cfg)
	f := newFrames(t, 1280, 720)
	for _, c := range []struct {
		scene string
		faces int
	}{{"a", 1}, {"b", 1}, {"a-small", 1}, {"two", 2}, {"a-dark", 1}, {"a-bright", 1}} {
		a, err := s.Analyze(f.get(c.scene))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Faces) != c.faces || a.Unconfirmed != 0 {
			t.Errorf("%s: faces %v, %d unconfirmed; want %d confirmed", c.scene, a.Faces, a.Unconfirmed, c.faces)
		}
	}
	a, _ := s.Analyze(f.get("a-small"))
	if !a.Accepted {
		t.Errorf("a-small: reasons %v, want accepted (one person, 96 px face)", a.Reasons)
	}
	// Not a face at all: the mirror of a face region is, a flat grey patch
	// is not.
	grey := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 360, 640, gocv.MatTypeCV8UC3)
	defer grey.Close()
	v := s.sc.verify
	if kept, dropped := v.confirmed(grey, []image.Rectangle{image.Rect(200, 100, 320, 220)}); len(kept) != 0 || dropped != 1 {
		t.Errorf("flat grey confirmed as a face: %v", kept)
	}
}
