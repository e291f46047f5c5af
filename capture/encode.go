package capture

import (
	"errors"
	"fmt"
	"image"
	"math"
	"time"

	"gocv.io/x/gocv"
)

// encoder turns the chosen frame into the JPEG that is uploaded. The service
// runs its own liveness and quality checks, which need context around the
// face, so the whole frame goes by default; Incode asks for at least 1000 px
// on one side, so the frame is only ever shrunk down to max_side.
type encoder struct {
	quality int
	maxSide int
	crop    bool
	margin  float64
	now     func() time.Time

	resized gocv.Mat
}

func (e *encoder) Close() { e.resized.Close() }

// uploadRect is the part of a w x h frame that is uploaded.
func (e *encoder) uploadRect(w, h int, face image.Rectangle) image.Rectangle {
	all := image.Rect(0, 0, w, h)
	if !e.crop || face.Empty() {
		return all
	}
	pad := int(math.Round(e.margin * float64(max(face.Dx(), face.Dy()))))
	r := face.Inset(-pad).Intersect(all)
	if r.Empty() {
		return all
	}
	return r
}

// encode writes frame (validated) as the upload JPEG.
func (e *encoder) encode(frame gocv.Mat, face image.Rectangle) (*Shot, error) {
	if why := validFrame(frame); why != "" {
		return nil, fmt.Errorf("encode: %s", why)
	}
	start := e.now()
	r := e.uploadRect(frame.Cols(), frame.Rows(), face)
	src := frame.Region(r)
	defer src.Close()
	out := src
	w, h := r.Dx(), r.Dy()
	if long := max(w, h); e.maxSide > 0 && long > e.maxSide {
		f := float64(e.maxSide) / float64(long)
		w, h = max(int(math.Round(float64(w)*f)), 1), max(int(math.Round(float64(h)*f)), 1)
		gocv.Resize(src, &e.resized, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
		out = e.resized
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, out, []int{gocv.IMWriteJpegQuality, e.quality})
	if err != nil {
		return nil, fmt.Errorf("encode jpeg: %w", err)
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return nil, errors.New("encode jpeg: encoder produced no bytes")
	}
	// GetBytes aliases the native buffer, which Close frees.
	jpeg := append([]byte(nil), buf.GetBytes()...)
	// Face in the JPEG's coordinates.
	sx, sy := float64(w)/float64(r.Dx()), float64(h)/float64(r.Dy())
	fr := face.Sub(r.Min)
	fr = image.Rect(int(float64(fr.Min.X)*sx), int(float64(fr.Min.Y)*sy), int(float64(fr.Max.X)*sx), int(float64(fr.Max.Y)*sy)).Intersect(image.Rect(0, 0, w, h))
	return &Shot{JPEG: jpeg, Width: w, Height: h, Face: fr, EncodeDuration: e.now().Sub(start)}, nil
}
