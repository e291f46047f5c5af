package incodesim

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"

	"gocv.io/x/gocv"
)

// The face recogniser lets the emulator tell people apart rather than
// pictures: a selfie enrolled at a desk PASSes for the same person seen by a
// webcam elsewhere, in other light, and someone else FAILs. It uses what
// Debian 12's OpenCV 4.6 provides without downloading a model: the Haar
// frontal-face cascade (opencv-data) to find the face, a search over a few
// in-plane rotations so that a tilted head is found and levelled, and the
// LBPH recogniser of the contrib face module. Local binary patterns compare
// the texture of small cells of the face, which does not change when the
// whole face gets darker or brighter, so light changes matter less than to
// the picture matcher. Everything here is deterministic.

// DefaultFaceCascade is the frontal-face cascade of Debian's opencv-data.
const DefaultFaceCascade = "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"

const (
	faceSide     = 96  // side of the normalised face given to LBPH
	detectSide   = 400 // uploads are reduced to this before detection
	minFaceSide  = 32  // smallest face searched for, in the reduced image
	faceInset    = 0.1 // of the detected box: keeps hair and background out
	chromaMinSat = 6.0 // below this a face is grey (IR or B/W camera): chroma is not compared
)

// DefaultFaceThreshold is the largest LBPH distance (chi-square over the
// cell histograms) that still counts as the same person. It was chosen on
// the labelled set in testdata/faces (see docs/incode-sim.md, "Recognition
// rates", and TestRecognitionRates), between the largest distance of a
// genuine pair and the smallest of an impostor (96 and 98 there).
const DefaultFaceThreshold = 96.0

// maxChromaDelta is how far a face's mean skin chroma (Cr and Cb in YCrCb,
// summed) may move between enrolment and upload. Camera white balance and
// indoor light move it by well under this; a recoloured photograph (the
// demo's person B has red and blue swapped) moves it by several times more.
// LBPH sees only grey levels and would take such a picture for the person.
const maxChromaDelta = 30.0

// sampleRotations are the in-plane rotations tried, in order, until a face
// is found. The Haar cascade finds frontal faces tilted by up to about 10°.
var sampleRotations = []float64{0, -15, 15, -30, 30}

// faceSample is a normalised face: faceSide² grey pixels, histogram
// equalised, and its mean chroma.
type faceSample struct {
	pix    []byte
	cr, cb float64
}

func (f faceSample) grey() bool {
	return math.Abs(f.cr-128)+math.Abs(f.cb-128) < chromaMinSat
}

// chromaMatches compares two faces' skin chroma unless either is grey.
func chromaMatches(a, b faceSample) bool {
	if a.grey() || b.grey() {
		return true
	}
	return math.Abs(a.cr-b.cr)+math.Abs(a.cb-b.cb) <= maxChromaDelta
}

// faceModel holds the cascade and the trained recogniser. OpenCV objects
// are used by one request at a time (mu); no Mat outlives a call.
type faceModel struct {
	mu        sync.Mutex
	cascade   gocv.CascadeClassifier
	rec       *lbph
	trained   bool
	threshold float64
}

func newFaceModel(cascadePath string, threshold float64) (*faceModel, error) {
	c := gocv.NewCascadeClassifier()
	if !c.Load(cascadePath) {
		c.Close()
		return nil, fmt.Errorf("face cascade %s does not load (Debian: apt-get install opencv-data)", cascadePath)
	}
	rec, err := newLBPH(1, 8, 8)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &faceModel{cascade: c, rec: rec, threshold: threshold}, nil
}

func (m *faceModel) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rec.close()
	return m.cascade.Close()
}

var errNoFace = errors.New("no face found")

// sample finds the largest face in img, levels it and normalises it.
func (m *faceModel) sample(img image.Image) (faceSample, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sampleLocked(img)
}

func (m *faceModel) sampleLocked(img image.Image) (faceSample, error) {
	src, err := gocv.ImageToMatRGB(img)
	if err != nil {
		return faceSample{}, fmt.Errorf("face: %w", err)
	}
	defer src.Close()
	if src.Empty() {
		return faceSample{}, errNoFace
	}
	// A selfie cropped tightly round the face leaves the cascade no
	// margin to see the face in: pad with the edge pixels.
	pad := max(src.Cols(), src.Rows()) / 4
	padded := gocv.NewMat()
	defer padded.Close()
	gocv.CopyMakeBorder(src, &padded, pad, pad, pad, pad, gocv.BorderReplicate, color.RGBA{})
	small := gocv.NewMat()
	defer small.Close()
	k := float64(detectSide) / float64(max(padded.Cols(), padded.Rows()))
	if k < 1 {
		gocv.Resize(padded, &small, image.Point{}, k, k, gocv.InterpolationArea)
	} else {
		padded.CopyTo(&small)
	}

	rot := gocv.NewMat()
	defer rot.Close()
	grey := gocv.NewMat()
	defer grey.Close()
	for _, angle := range sampleRotations {
		rotate(small, &rot, angle)
		gocv.CvtColor(rot, &grey, gocv.ColorBGRToGray)
		faces := m.cascade.DetectMultiScaleWithParams(grey, 1.1, 4, 0,
			image.Pt(minFaceSide, minFaceSide), image.Point{})
		if len(faces) == 0 {
			continue
		}
		best := faces[0]
		for _, f := range faces[1:] {
			if f.Dx()*f.Dy() > best.Dx()*best.Dy() {
				best = f
			}
		}
		return normalise(rot, grey, best), nil
	}
	return faceSample{}, errNoFace
}

// rotate turns src by angle degrees about its centre into dst, filling
// the corners with edge pixels.
func rotate(src gocv.Mat, dst *gocv.Mat, angle float64) {
	if angle == 0 {
		src.CopyTo(dst)
		return
	}
	rm := gocv.GetRotationMatrix2D(image.Pt(src.Cols()/2, src.Rows()/2), angle, 1)
	defer rm.Close()
	gocv.WarpAffineWithParams(src, dst, rm, image.Pt(src.Cols(), src.Rows()),
		gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
}

// normalise crops the face box, inset to the face itself, to faceSide²
// equalised grey pixels, and measures the chroma of its central part.
func normalise(bgr, grey gocv.Mat, box image.Rectangle) faceSample {
	in := int(float64(box.Dx()) * faceInset)
	r := box.Inset(in).Intersect(image.Rect(0, 0, grey.Cols(), grey.Rows()))
	crop := grey.Region(r)
	defer crop.Close()
	sized := gocv.NewMat()
	defer sized.Close()
	gocv.Resize(crop, &sized, image.Pt(faceSide, faceSide), 0, 0, gocv.InterpolationArea)
	eq := gocv.NewMat()
	defer eq.Close()
	gocv.EqualizeHist(sized, &eq)
	pix, _ := eq.DataPtrUint8()
	s := faceSample{pix: append([]byte(nil), pix...)}

	// Cheeks, nose and forehead: the central half of the box.
	c := box.Inset(box.Dx() / 4).Intersect(image.Rect(0, 0, bgr.Cols(), bgr.Rows()))
	skin := bgr.Region(c)
	defer skin.Close()
	ycc := gocv.NewMat()
	defer ycc.Close()
	gocv.CvtColor(skin, &ycc, gocv.ColorBGRToYCrCb)
	mean := ycc.Mean()
	s.cr, s.cb = mean.Val2, mean.Val3
	return s
}

// variants are the enrolment samples made from one face: itself, mirrored,
// slightly turned and slightly scaled, standing in for the few pictures a
// real enrolment would take.
func variants(s faceSample) ([][]byte, error) {
	base, err := gocv.NewMatFromBytes(faceSide, faceSide, gocv.MatTypeCV8U, s.pix)
	if err != nil {
		return nil, fmt.Errorf("face: %w", err)
	}
	defer base.Close()
	out := [][]byte{s.pix}
	w := gocv.NewMat()
	defer w.Close()
	gocv.Flip(base, &w, 1)
	out = append(out, w.ToBytes())
	for _, v := range []struct{ angle, scale float64 }{{-8, 1}, {8, 1}, {0, 0.92}, {0, 1.08}} {
		rm := gocv.GetRotationMatrix2D(image.Pt(faceSide/2, faceSide/2), v.angle, v.scale)
		gocv.WarpAffineWithParams(base, &w, rm, image.Pt(faceSide, faceSide),
			gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
		rm.Close()
		out = append(out, w.ToBytes())
	}
	return out, nil
}

// enroll adds one person's face under label.
func (m *faceModel) enroll(label int, s faceSample) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	faces, err := variants(s)
	if err != nil {
		return err
	}
	if err := m.rec.update(faces, label); err != nil {
		return err
	}
	m.trained = true
	return nil
}

// predict returns the nearest enrolled label and its LBPH distance, or
// ok false when nobody is enrolled.
func (m *faceModel) predict(s faceSample) (label int, dist float64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.trained {
		return 0, 0, false
	}
	label, dist, err := m.rec.predict(s.pix)
	if err != nil {
		return 0, 0, false
	}
	return label, dist, label >= 0
}
