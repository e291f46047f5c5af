package capture

import (
	"image"
	"math"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
)

// faceSide is the size every face is resampled to before sharpness,
// brightness and contrast are measured, so that the numbers do not depend on
// how far away the person stands.
const faceSide = 128

const laplacianBorder = gocv.BorderReflect101 | gocv.BorderIsolated

// Threshold names, as reported in Analysis.Thresholds and by snapshot.
const (
	ThMinFacePx        = "min_face_px"
	ThMaxFaceFraction  = "max_face_fraction"
	ThMaxCenterOffset  = "max_center_offset"
	ThMinSharpness     = "min_sharpness"
	ThMinBrightness    = "min_brightness"
	ThMaxBrightness    = "max_brightness"
	ThMinContrast      = "min_contrast"
	ThMinEyes          = "min_eyes"
	ThMaxFaces         = "max_faces"
	ThMinFaceFraction  = "min_face_fraction" // informational: min_face_px over frame height
	thresholdsCapacity = 10
)

// guidanceOrder is the order reasons are reported in: the first is what the
// display says first, so the most actionable comes first.
var guidanceOrder = []Reason{
	ReasonInvalidFrame, ReasonNoFace, ReasonMultipleFaces, ReasonTooSmall, ReasonTooLarge,
	ReasonOffCenter, ReasonTooDark, ReasonTooBright, ReasonLowContrast, ReasonBlurry, ReasonNoEyes,
}

// AllReasons lists every rejection reason (metric labels, documentation).
func AllReasons() []Reason { return append([]Reason(nil), guidanceOrder...) }

// scorer measures a face. Its Mats are reused.
type scorer struct {
	cfg    config.Capture
	eyes   *gocv.CascadeClassifier
	eyeW   image.Point
	verify *verifier // nil: no second detector

	face, faceGray, lap, mean, std gocv.Mat
}

func newScorer(cfg config.Capture, eyes *gocv.CascadeClassifier, eyeWin image.Point) *scorer {
	return &scorer{
		cfg: cfg, eyes: eyes, eyeW: eyeWin,
		face: gocv.NewMat(), faceGray: gocv.NewMat(), lap: gocv.NewMat(),
		mean: gocv.NewMat(), std: gocv.NewMat(),
	}
}

func (s *scorer) Close() {
	if s.verify != nil {
		s.verify.Close()
	}
	for _, m := range []*gocv.Mat{&s.face, &s.faceGray, &s.lap, &s.mean, &s.std} {
		m.Close()
	}
}

func (s *scorer) thresholds(frameH int) map[string]float64 {
	t := make(map[string]float64, thresholdsCapacity)
	t[ThMinFacePx] = float64(s.cfg.MinFacePx)
	t[ThMinFaceFraction] = float64(s.cfg.MinFacePx) / float64(max(frameH, 1))
	t[ThMaxFaceFraction] = s.cfg.MaxFaceFraction
	t[ThMaxCenterOffset] = s.cfg.MaxCenterOffset
	t[ThMinSharpness] = s.cfg.MinSharpness
	t[ThMinBrightness] = s.cfg.MinBrightness
	t[ThMaxBrightness] = s.cfg.MaxBrightness
	t[ThMinContrast] = s.cfg.MinContrast
	if s.eyes != nil {
		t[ThMinEyes] = float64(s.cfg.MinEyes)
	}
	if !s.cfg.LargestFace {
		t[ThMaxFaces] = 1
	}
	return t
}

// analyse fills a from the faces found in frame (full resolution, largest
// first). frame has been validated.
func (s *scorer) analyse(frame gocv.Mat, faces []image.Rectangle) Analysis {
	w, h := frame.Cols(), frame.Rows()
	faces, dropped := s.verify.confirmed(frame, faces)
	a := Analysis{Faces: faces, Thresholds: s.thresholds(h), Unconfirmed: dropped}
	q := &a.Quality
	q.Faces = significantFaces(faces)
	if len(faces) == 0 {
		a.Reasons = []Reason{ReasonNoFace}
		return a
	}
	f := faces[0].Intersect(image.Rect(0, 0, w, h))
	if f.Dx() < 2 || f.Dy() < 2 {
		a.Reasons = []Reason{ReasonNoFace}
		return a
	}
	q.FacePx = max(f.Dx(), f.Dy())
	q.FaceFraction = float64(f.Dy()) / float64(h)
	c := image.Pt((f.Min.X+f.Max.X)/2, (f.Min.Y+f.Max.Y)/2)
	q.CenterOffset = math.Max(math.Abs(float64(c.X)-float64(w)/2)/float64(w), math.Abs(float64(c.Y)-float64(h)/2)/float64(h))
	s.measure(frame, f, q)

	reasons := map[Reason]bool{}
	if q.Faces > 1 && !s.cfg.LargestFace {
		reasons[ReasonMultipleFaces] = true
	}
	if q.FacePx < s.cfg.MinFacePx {
		reasons[ReasonTooSmall] = true
	}
	if q.FaceFraction > s.cfg.MaxFaceFraction {
		reasons[ReasonTooLarge] = true
	}
	if q.CenterOffset > s.cfg.MaxCenterOffset {
		reasons[ReasonOffCenter] = true
	}
	if q.Brightness < s.cfg.MinBrightness {
		reasons[ReasonTooDark] = true
	}
	if q.Brightness > s.cfg.MaxBrightness {
		reasons[ReasonTooBright] = true
	}
	if q.Contrast < s.cfg.MinContrast {
		reasons[ReasonLowContrast] = true
	}
	if q.Sharpness < s.cfg.MinSharpness {
		reasons[ReasonBlurry] = true
	}
	if s.eyes != nil && q.Eyes < s.cfg.MinEyes {
		reasons[ReasonNoEyes] = true
	}
	for _, r := range guidanceOrder {
		if reasons[r] {
			a.Reasons = append(a.Reasons, r)
		}
	}
	a.Accepted = len(a.Reasons) == 0
	a.Score = s.score(q)
	return a
}

// significantFaces counts the faces (largest first) at least
// significantShare of the largest: someone far behind the person at the door
// is not "another person at the door", and a small false detection in a
// patterned background must not block everyone.
func significantFaces(faces []image.Rectangle) int {
	if len(faces) == 0 {
		return 0
	}
	n := 1
	for _, f := range faces[1:] {
		if float64(f.Dx()) >= significantShare*float64(faces[0].Dx()) {
			n++
		}
	}
	return n
}

const significantShare = 0.6

// measure resamples the face to faceSide and measures it there. The
// Laplacian's border is reflect-101 plus BorderIsolated: on a region of a
// larger image the border would otherwise be read from the pixels around the
// box, which are not the face. BorderIsolated alone means a constant zero
// border, whose edge dominates the variance; it must be combined.
func (s *scorer) measure(frame gocv.Mat, f image.Rectangle, q *Quality) {
	roi := frame.Region(f)
	interp := gocv.InterpolationArea
	if f.Dx() < faceSide {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(roi, &s.face, image.Pt(faceSide, faceSide), 0, 0, interp)
	roi.Close()
	switch s.face.Channels() {
	case 3:
		gocv.CvtColor(s.face, &s.faceGray, gocv.ColorBGRToGray)
	case 4:
		gocv.CvtColor(s.face, &s.faceGray, gocv.ColorBGRAToGray)
	default:
		s.face.CopyTo(&s.faceGray)
	}
	gocv.MeanStdDev(s.faceGray, &s.mean, &s.std)
	q.Brightness = s.mean.GetDoubleAt(0, 0)
	q.Contrast = s.std.GetDoubleAt(0, 0)

	gocv.Laplacian(s.faceGray, &s.lap, gocv.MatTypeCV64F, 3, 1, 0, laplacianBorder)
	gocv.MeanStdDev(s.lap, &s.mean, &s.std)
	sd := s.std.GetDoubleAt(0, 0)
	q.Sharpness = sd * sd

	if s.eyes != nil {
		upper := s.faceGray.Region(image.Rect(0, 0, faceSide, faceSide/2))
		eyes := s.eyes.DetectMultiScaleWithParams(upper, 1.1, 3, 0, s.eyeW, image.Pt(faceSide/2, faceSide/2))
		upper.Close()
		q.Eyes = min(len(eyes), 2)
	}
}

// score ranks accepted frames within a window: sharper, more central and
// larger faces first. It is in [0, 1].
func (s *scorer) score(q *Quality) float64 {
	sharp := q.Sharpness / (q.Sharpness + math.Max(s.cfg.MinSharpness, 1)*2)
	center := 1 - math.Min(q.CenterOffset/math.Max(s.cfg.MaxCenterOffset, 1e-6), 1)
	size := math.Min(float64(q.FacePx)/float64(2*max(s.cfg.MinFacePx, 1)), 1)
	return math.Round((0.4*sharp+0.3*center+0.3*size)*1e4) / 1e4
}
