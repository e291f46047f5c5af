package capture

import (
	"errors"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/internal/testmedia"
)

func TestAnalyzeRealImages(t *testing.T) {
	testmedia.CheckMats(t)
	dir, err := testmedia.Dir()
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultCapture()
	s, _ := newSelector(t, cfg)
	small := cfg
	small.MinFacePx = 80
	sSmall, _ := newSelector(t, small)

	cases := []struct {
		file string
		sel  *Selector
		want []Reason // nil: accepted
	}{
		// The portrait is 512 px high with a ~100 px face: below the default
		// 120 px, fine once an installer lowers min_face_px.
		{"astronaut.jpg", s, []Reason{ReasonTooSmall}},
		{"astronaut.jpg", sSmall, nil},
		{"enroll/astronaut.jpg", sSmall, nil},
		{"coffee.jpg", s, []Reason{ReasonNoFace}},
		{"brick.jpg", s, []Reason{ReasonNoFace}},
		{"chelsea.jpg", s, []Reason{ReasonNoFace}},
	}
	for _, c := range cases {
		m := gocv.IMRead(filepath.Join(dir, c.file), gocv.IMReadColor)
		if m.Empty() {
			m.Close()
			t.Fatalf("%s: cannot read", c.file)
		}
		a, err := c.sel.Analyze(m)
		m.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !slices.Equal(a.Reasons, c.want) || a.Accepted != (c.want == nil) {
			t.Errorf("%s (min_face_px %d): reasons %v accepted %v, want %v; quality %+v", c.file, c.sel.cfg.MinFacePx, a.Reasons, a.Accepted, c.want, a.Quality)
		}
		if c.want == nil && (a.Quality.FacePx < 80 || a.Quality.FacePx > 130) {
			t.Errorf("%s: face %d px, want about 100", c.file, a.Quality.FacePx)
		}
	}
}

func TestAnalyzeVariants(t *testing.T) {
	testmedia.CheckMats(t)
	f := newFrames(t, 1280, 720)
	cfg := defaultCapture()
	cfg.EyesCascade = "/usr/share/opencv4/haarcascades/haarcascade_eye.xml"
	s, _ := newSelector(t, cfg)
	largest := cfg
	largest.LargestFace = true
	sLargest, _ := newSelector(t, largest)

	cases := []struct {
		scene string
		sel   *Selector
		want  Reason // "": accepted
	}{
		{"a", s, ""},
		{"b", s, ""},
		{"empty", s, ReasonNoFace},
		{"coffee", s, ReasonNoFace},
		{"cat", s, ReasonNoFace},
		{"a-offcenter", s, ReasonOffCenter},
		{"a-blur", s, ReasonBlurry},
		{"a-dark", s, ReasonTooDark},
		{"a-bright", s, ReasonTooBright},
		{"two", s, ReasonMultipleFaces},
		{"two", sLargest, ""},
	}
	for _, c := range cases {
		a, err := c.sel.Analyze(f.get(c.scene))
		if err != nil {
			t.Fatalf("%s: %v", c.scene, err)
		}
		if c.want == "" {
			if !a.Accepted || len(a.Reasons) != 0 {
				t.Errorf("%s: rejected %v, want accepted; quality %+v", c.scene, a.Reasons, a.Quality)
			}
			continue
		}
		if a.Accepted || len(a.Reasons) == 0 || a.Reasons[0] != c.want {
			t.Errorf("%s: reasons %v, want %s first; quality %+v", c.scene, a.Reasons, c.want, a.Quality)
		}
	}

	// Each measure has its threshold, and the report says which one.
	a, _ := s.Analyze(f.get("a"))
	for _, k := range []string{ThMinFacePx, ThMaxFaceFraction, ThMaxCenterOffset, ThMinSharpness, ThMinBrightness, ThMaxBrightness, ThMinContrast, ThMinEyes, ThMaxFaces} {
		if _, ok := a.Thresholds[k]; !ok {
			t.Errorf("threshold %s missing from %v", k, a.Thresholds)
		}
	}
	if a.Quality.Eyes < 1 || a.Quality.FacePx < 200 || a.Quality.FacePx > 280 || a.Score <= 0 || a.Score > 1 {
		t.Errorf("person A at 1280x720: %+v score %v, want a ~240 px face with eyes", a.Quality, a.Score)
	}
	// The dark face has no visible eyes either.
	d, _ := s.Analyze(f.get("a-dark"))
	if !slices.Contains(d.Reasons, ReasonNoEyes) || !slices.Contains(d.Reasons, ReasonLowContrast) {
		t.Errorf("a-dark: reasons %v, want no_eyes and low_contrast too", d.Reasons)
	}
}

// Scaling person A down over a brick wall: at full size accepted, then
// "come closer" while the detector still sees the face, then nothing.
func TestAnalyzeScaledDownUntilTooSmall(t *testing.T) {
	testmedia.CheckMats(t)
	f := newFrames(t, 1280, 720)
	s, _ := newSelector(t, defaultCapture())
	var seen []Reason
	for _, scale := range []float64{1, 0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.48, 0.47, 0.46, 0.45, 0.44, 0.43, 0.42, 0.41, 0.4, 0.39, 0.38, 0.37, 0.36, 0.35, 0.3, 0.25} {
		m := f.scene("scale", testmedia.Scene{Subject: "a", Scale: scale})
		a, err := s.Analyze(m)
		delete(f.mats, "scale")
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := Reason("accepted")
		if len(a.Reasons) > 0 {
			r = a.Reasons[0]
		}
		t.Logf("scale %.2f: face %d px, %v", scale, a.Quality.FacePx, a.Reasons)
		if scale >= 0.6 && r != "accepted" {
			t.Errorf("scale %.2f: %v, want accepted (face %d px)", scale, a.Reasons, a.Quality.FacePx)
		}
		if r == ReasonTooSmall && a.Quality.FacePx >= 120 {
			t.Errorf("scale %.2f: too_small with a %d px face", scale, a.Quality.FacePx)
		}
		seen = append(seen, r)
	}
	i := slices.Index(seen, ReasonTooSmall)
	if i < 0 {
		t.Fatalf("never too_small: %v", seen)
	}
	if seen[len(seen)-1] != ReasonNoFace {
		t.Errorf("smallest: %v, want no_face", seen[len(seen)-1])
	}
}

func TestInvalidFramesNeverCrash(t *testing.T) {
	testmedia.CheckMats(t)
	s, reg := newSelector(t, defaultCapture())
	clk := newClock()
	mk := []func() gocv.Mat{
		func() gocv.Mat { return gocv.NewMat() },
		func() gocv.Mat { return gocv.NewMatWithSize(1, 1, gocv.MatTypeCV8UC3) },
		func() gocv.Mat { return gocv.NewMatWithSize(10000, 10000, gocv.MatTypeCV8UC3) },
		func() gocv.Mat { return gocv.NewMatWithSize(20, 640, gocv.MatTypeCV8UC3) },
		func() gocv.Mat { return gocv.NewMatWithSize(480, 640, gocv.MatTypeCV32FC1) },
		func() gocv.Mat { return gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC2) },
	}
	for i, f := range mk {
		m := f()
		a, err := s.Analyze(m)
		if err != nil || !slices.Equal(a.Reasons, []Reason{ReasonInvalidFrame}) {
			t.Errorf("frame %d (%dx%d type %v): Analyze %v %v, want invalid_frame", i, m.Cols(), m.Rows(), m.Type(), a.Reasons, err)
		}
		ev, err := s.Process(m, clk.Add(66e6))
		if err != nil || ev.Kind != EventNone || !slices.Equal(ev.Analysis.Reasons, []Reason{ReasonInvalidFrame}) {
			t.Errorf("frame %d: Process %+v %v, want EventNone with invalid_frame", i, ev, err)
		}
		if _, err := s.Encode(m, image.Rect(0, 0, 10, 10)); err == nil {
			t.Errorf("frame %d: Encode accepted an invalid frame", i)
		}
		m.Close()
	}
	if got := counterValue(t, reg, "kioskd_capture_rejections_total", "invalid_frame"); got != float64(len(mk)) {
		t.Errorf("invalid_frame rejections = %v, want %d", got, len(mk))
	}
}

func TestGreyAndBGRAFrames(t *testing.T) {
	testmedia.CheckMats(t)
	f := newFrames(t, 1280, 720)
	s, _ := newSelector(t, defaultCapture())
	for _, code := range []gocv.ColorConversionCode{gocv.ColorBGRToGray, gocv.ColorBGRToBGRA} {
		m := gocv.NewMat()
		gocv.CvtColor(f.get("a"), &m, code)
		a, err := s.Analyze(m)
		if err != nil || !a.Accepted {
			t.Errorf("conversion %v: %v %v %+v, want accepted", code, a.Reasons, err, a.Quality)
		}
		shot, err := s.Encode(m, a.Faces[0])
		if err != nil || len(shot.JPEG) == 0 {
			t.Errorf("conversion %v: encode %v", code, err)
		}
		m.Close()
	}
}

func TestCascades(t *testing.T) {
	testmedia.CheckMats(t)
	f := newFrames(t, 1280, 720)
	cfg := defaultCapture()
	cfg.Cascade = "/usr/share/opencv4/lbpcascades/lbpcascade_frontalface_improved.xml"
	s, _ := newSelector(t, cfg)
	if a, _ := s.Analyze(f.get("a")); len(a.Faces) != 1 {
		t.Errorf("LBP cascade: faces %v, want 1", a.Faces)
	}
	if a, _ := s.Analyze(f.get("empty")); len(a.Faces) != 0 {
		t.Errorf("LBP cascade on the wall: faces %v", a.Faces)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.xml")
	if err := os.WriteFile(bad, []byte("<opencv_storage><width>24</width><height>24</height></opencv_storage>"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A cascade cut off in the middle, as after a full disk: OpenCV's parser
	// would throw, which aborts the process under gocv v0.31.
	whole, err := os.ReadFile(defaultCapture().Cascade)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.xml")
	if err := os.WriteFile(truncated, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "missing.xml"), bad, truncated, "/usr/share/opencv4/haarcascades"} {
		cfg.Cascade = p
		if _, err := New(cfg, discard(), newReg()); err == nil || !strings.Contains(err.Error(), "cascade") {
			t.Errorf("cascade %s: err %v, want a cascade error", p, err)
		}
	}
	cfg.Cascade = defaultCapture().Cascade
	cfg.EyesCascade = bad
	if _, err := New(cfg, discard(), newReg()); err == nil {
		t.Error("bad eyes cascade accepted")
	}
}

func TestDetectWidthKeepsMinimumFaceAboveWindow(t *testing.T) {
	for _, c := range []struct{ frame, minFace, want int }{
		{1280, 90, 426}, // default min_face_px 120 with the 0.75 margin: 410, rounded to 1280/3
		{640, 60, 320},  // the demo: min_face_px 80
		{1920, 90, 640},
		{320, 90, 160}, // never below 128 px unless the frame is
		{4000, 3000, 129},
		{100, 90, 100},
	} {
		got := DetectWidth(c.frame, c.minFace, 24, 0)
		if got != c.want {
			t.Errorf("DetectWidth(%d, %d) = %d, want %d", c.frame, c.minFace, got, c.want)
		}
		if scaled := float64(c.minFace) * float64(got) / float64(c.frame); got < c.frame && scaled < 24*windowMargin {
			t.Errorf("frame %d: min face %d scales to %.1f px, below the 24 px window with its margin", c.frame, c.minFace, scaled)
		}
	}
	if got := DetectWidth(1280, 90, 24, 320); got != 320 {
		t.Errorf("configured width ignored: %d", got)
	}
	if _, err := cascadeWindow("/usr/share/opencv4/haarcascades/haarcascade_frontalface_alt.xml"); err != nil {
		t.Error(err)
	}
	if w, _ := cascadeWindow("/usr/share/opencv4/haarcascades/haarcascade_eye.xml"); w != image.Pt(20, 20) {
		t.Errorf("eye window %v, want 20x20", w)
	}
	if _, err := cascadeWindow("/nonexistent"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing cascade: %v", err)
	}
}

func TestEncodeWholeFrameOrCrop(t *testing.T) {
	testmedia.CheckMats(t)
	f := newFrames(t, 1920, 1080)
	cfg := defaultCapture()
	s, _ := newSelector(t, cfg)
	frame := f.get("a")
	a, err := s.Analyze(frame)
	if err != nil || !a.Accepted {
		t.Fatalf("fixture: %v %v", a.Reasons, err)
	}
	decode := func(sh *Shot) (int, int) {
		t.Helper()
		m, err := gocv.IMDecode(sh.JPEG, gocv.IMReadColor)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		return m.Cols(), m.Rows()
	}
	// Whole frame, shrunk to max_side 1280 on the long side.
	sh, err := s.Encode(frame, a.Faces[0])
	if err != nil {
		t.Fatal(err)
	}
	if w, h := decode(sh); w != 1280 || h != 720 || sh.Width != 1280 || sh.Height != 720 {
		t.Errorf("whole frame: %dx%d (shot %dx%d), want 1280x720", w, h, sh.Width, sh.Height)
	}
	if want := a.Faces[0].Dx() * 2 / 3; sh.Face.Dx() < want-2 || sh.Face.Dx() > want+2 {
		t.Errorf("face in the JPEG %v, want %d px wide (scaled with the frame)", sh.Face, want)
	}

	// max_side 0 keeps the camera size; lower quality, fewer bytes.
	cfg.MaxSide, cfg.JPEGQuality = 0, 50
	s2, _ := newSelector(t, cfg)
	sh2, err := s2.Encode(frame, a.Faces[0])
	if err != nil {
		t.Fatal(err)
	}
	if w, h := decode(sh2); w != 1920 || h != 1080 {
		t.Errorf("max_side 0: %dx%d", w, h)
	}
	if len(sh2.JPEG) >= len(sh.JPEG)*9/4 {
		t.Errorf("quality 50 at 1920x1080: %d bytes vs %d at quality 85 and 1280x720", len(sh2.JPEG), len(sh.JPEG))
	}

	// Crop with one face size of margin on each side: three faces wide,
	// clamped to the frame, face inside.
	cfg = defaultCapture()
	cfg.Crop, cfg.CropMargin = true, 1
	s3, _ := newSelector(t, cfg)
	sh3, err := s3.Encode(frame, a.Faces[0])
	if err != nil {
		t.Fatal(err)
	}
	w, h := decode(sh3)
	fw := a.Faces[0].Dx()
	if w > 3*fw+2 || w < 2*fw || h > 3*fw+2 || !sh3.Face.In(imageRect(w, h)) || sh3.Face.Dx() < fw-2 {
		t.Errorf("crop: %dx%d with face %v, want about %d px around a %d px face", w, h, sh3.Face, 3*fw, fw)
	}
}
