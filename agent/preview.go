package agent

import (
	"image"
	"image/color"
	"time"

	"gocv.io/x/gocv"
)

// previewWidth keeps the preview stream small: it is for an installer
// aiming the camera, not for recording anyone.
const previewWidth = 480

// preview encodes a small JPEG of the frame with the face boxes drawn, at
// most fps times a second. It runs on the frame loop and reuses its Mat.
type preview struct {
	every time.Duration
	last  time.Time
	small gocv.Mat
}

func newPreview(fps float64) *preview {
	if fps <= 0 {
		return nil
	}
	return &preview{every: time.Duration(float64(time.Second) / fps), small: gocv.NewMat()}
}

func (p *preview) close() {
	if p != nil {
		p.small.Close()
	}
}

// frame returns the JPEG to publish, or nil when it is not time yet.
func (p *preview) frame(now time.Time, frame gocv.Mat, faces []image.Rectangle) []byte {
	if p == nil || now.Sub(p.last) < p.every || frame.Empty() || frame.Cols() < 2 || frame.Rows() < 2 {
		return nil
	}
	p.last = now
	scale := float64(previewWidth) / float64(frame.Cols())
	if scale > 1 {
		scale = 1
	}
	h := int(float64(frame.Rows()) * scale)
	if h < 1 {
		h = 1
	}
	gocv.Resize(frame, &p.small, image.Pt(int(float64(frame.Cols())*scale), h), 0, 0, gocv.InterpolationArea)
	green := color.RGBA{G: 255, A: 255}
	for _, f := range faces {
		r := image.Rect(int(float64(f.Min.X)*scale), int(float64(f.Min.Y)*scale), int(float64(f.Max.X)*scale), int(float64(f.Max.Y)*scale))
		gocv.Rectangle(&p.small, r, green, 2)
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, p.small, []int{gocv.IMWriteJpegQuality, 70})
	if err != nil {
		return nil
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...)
}
