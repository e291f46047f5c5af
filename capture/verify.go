package capture

import (
	"image"

	"gocv.io/x/gocv"
)

// verifyWidth is the width the region around a face is resampled to before
// the second detector looks at it: a face then spans about 64 px, well
// above the LBP cascade's 24 px window, whatever its size in the frame,
// so the check costs the same (a fraction of a millisecond) for every face.
const verifyWidth = 96

// verifier is the second, independent look at each face the main cascade
// found: a differently trained detector (by default OpenCV's improved LBP
// frontal-face cascade, which works on local binary patterns rather than
// the Haar cascade's rectangle sums) must find a face of about the same
// size in the same place. The main cascade fires now and then on round,
// two-toned things (fruit, an animal, a pattern in the background); a frame
// whose "face" only one of two detectors sees is never uploaded, and a false
// detection no longer hides the real face next to it ("one person at a
// time" for a single person).
type verifier struct {
	cascade    gocv.CascadeClassifier
	win        image.Point
	grey, scan gocv.Mat
}

func newVerifier(c gocv.CascadeClassifier, win image.Point) *verifier {
	return &verifier{cascade: c, win: win, grey: gocv.NewMat(), scan: gocv.NewMat()}
}

func (v *verifier) Close() {
	v.cascade.Close()
	v.grey.Close()
	v.scan.Close()
}

// confirmed keeps the faces (frame coordinates) the second detector also
// finds, in order, and reports how many it dropped. frame has been validated.
func (v *verifier) confirmed(frame gocv.Mat, faces []image.Rectangle) ([]image.Rectangle, int) {
	if v == nil || len(faces) == 0 {
		return faces, 0
	}
	keep := faces[:0:0]
	for _, f := range faces {
		if v.confirm(frame, f) {
			keep = append(keep, f)
		}
	}
	return keep, len(faces) - len(keep)
}

func (v *verifier) confirm(frame gocv.Mat, f image.Rectangle) bool {
	bounds := image.Rect(0, 0, frame.Cols(), frame.Rows())
	roi := f.Inset(-f.Dx() / 4).Intersect(bounds)
	if roi.Dx() < 2 || roi.Dy() < 2 {
		return false
	}
	q := float64(roi.Dx()) / verifyWidth // frame px per scan px
	sw, sh := verifyWidth, max(int(float64(roi.Dy())/q), 1)
	region := frame.Region(roi)
	src := grey(region, &v.grey)
	interp := gocv.InterpolationArea
	if q < 1 {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(src, &v.scan, image.Pt(sw, sh), 0, 0, interp)
	region.Close()

	face := float64(f.Dx()) / q
	minS := max(int(face*0.6), v.win.X)
	maxS := max(int(face*1.5), minS)
	found := v.cascade.DetectMultiScaleWithParams(v.scan, 1.05, 3, 0, image.Pt(minS, minS), image.Pt(maxS, maxS))
	// The second face must be where the first is: its centre inside the
	// first one's middle half.
	inner := image.Rect(f.Min.X-roi.Min.X, f.Min.Y-roi.Min.Y, f.Max.X-roi.Min.X, f.Max.Y-roi.Min.Y)
	inner = inner.Inset(inner.Dx() / 4)
	for _, g := range found {
		c := image.Pt(int(float64(g.Min.X+g.Max.X)/2*q), int(float64(g.Min.Y+g.Max.Y)/2*q))
		if c.In(inner) {
			return true
		}
	}
	return false
}
