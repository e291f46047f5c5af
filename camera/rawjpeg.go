package camera

import (
	"errors"
	"fmt"
	"image"
	"math"
	"strings"

	"gocv.io/x/gocv"
)

// Decoding is most of what a camera costs on a static scene: a 1280x720
// MJPEG frame takes about 2.3 ms to decode to BGR on one core of the bench
// machine, 7% of that core at 30 fps, before anyone looks at the pixels.
// When the source delivers JPEG frames, the worker therefore hands them on
// compressed and the frame loop decodes them itself, straight into the Mat
// it reads into (no frame-sized buffer on the worker's side or between the
// two: 12 MB at 1920x1080). While the scene is still, it decodes each frame
// at 1/8 scale in grey (entropy decoding only, about 0.9 ms), and when that
// thumbnail matches the last fully decoded frame, which the Mat still
// holds, the frame counts as a repeat and is not decoded. The first frame
// that differs is decoded in full, so nothing that moves is ever late by
// more than the frame it happened in; while things move, frames are
// decoded in full straight away and the thumbnail comes from the decoded
// frame.
const (
	// rawThumbWidth is the width of the change-test thumbnail.
	rawThumbWidth = 32
	// rawChangeThreshold is the mean absolute difference of the thumbnails,
	// in grey levels, below which a frame counts as a repeat. Half of
	// capture's default change threshold, so that the camera never hides
	// a change the detector would have woken for.
	rawChangeThreshold = 1.0
	// rawQuietAfter is how many still frames in a row switch to the
	// cheap test; rawMaxRepeats bounds how long pixels are reused (5 s at
	// 30 fps) whatever the thumbnail says, so that capture's periodic
	// safety search of an unchanged scene (every 10 s) sees fresh pixels.
	rawQuietAfter = 3
	rawMaxRepeats = 150
)

// rawDecoder decodes the compressed frames of a source into the frame
// loop's Mat. It lives on the frame loop with that Mat.
type rawDecoder struct {
	small, grey, thumb, ref, diff gocv.Mat
	haveRef                       bool
	quiet                         bool
	still                         int // consecutive still frames while decoding fully
	repeats                       int // frames handed on again since the last full decode
}

func newRawDecoder() *rawDecoder {
	return &rawDecoder{small: gocv.NewMat(), grey: gocv.NewMat(), thumb: gocv.NewMat(), ref: gocv.NewMat(), diff: gocv.NewMat()}
}

func (d *rawDecoder) Close() {
	for _, m := range []*gocv.Mat{&d.small, &d.grey, &d.thumb, &d.ref, &d.diff} {
		m.Close()
	}
}

// reset forgets the last frame: the next one is decoded in full.
func (d *rawDecoder) reset() { d.haveRef, d.quiet, d.still, d.repeats = false, false, 0, 0 }

// enableRaw asks dev for compressed frames when it delivers JPEG: the
// FFmpeg backend (files, streams) in its raw-packet mode for an MJPG
// stream, a V4L2 camera configured for MJPG without conversion.
func (s *Source) enableRaw(dev Device) bool {
	switch s.kind {
	case kindFile, kindURL:
		if fourcc(dev.Get(gocv.VideoCaptureFOURCC)) != "MJPG" {
			return false
		}
		dev.Set(gocv.VideoCaptureFormat, -1)
		return dev.Get(gocv.VideoCaptureFormat) == -1
	case kindDevice:
		if !strings.EqualFold(s.cfg.FourCC, "MJPG") {
			return false
		}
		dev.Set(gocv.VideoCaptureConvertRGB, 0)
		return dev.Get(gocv.VideoCaptureConvertRGB) == 0
	}
	return false
}

// disableRaw goes back to frames decoded by the backend.
func (s *Source) disableRaw(dev Device) {
	switch s.kind {
	case kindFile, kindURL:
		dev.Set(gocv.VideoCaptureFormat, 0)
	case kindDevice:
		dev.Set(gocv.VideoCaptureConvertRGB, 1)
	}
}

func fourcc(v float64) string {
	c := uint32(v)
	b := []byte{byte(c), byte(c >> 8), byte(c >> 16), byte(c >> 24)}
	return strings.ToUpper(string(b))
}

// errNotJPEG says the device's raw frames are not JPEG after all.
var errNotJPEG = errors.New("raw frame is not a JPEG image")

// packet returns the JPEG bytes of a raw frame, or errNotJPEG.
func packet(m gocv.Mat) ([]byte, error) {
	if m.Empty() || m.Type() != gocv.MatTypeCV8UC1 || (m.Rows() != 1 && m.Cols() != 1) || m.Total() < 4 {
		return nil, errNotJPEG
	}
	p, err := m.DataPtrUint8()
	if err != nil {
		return nil, fmt.Errorf("raw frame: %w", err)
	}
	if p[0] != 0xFF || p[1] != 0xD8 {
		return nil, errNotJPEG
	}
	return p, nil
}

// decode turns one JPEG frame into pixels in dst. holds says dst still
// holds the last frame decoded; repeat is true when it was left as it is
// because the scene has not changed.
func (d *rawDecoder) decode(pkt []byte, dst *gocv.Mat, holds bool) (repeat bool, err error) {
	if d.quiet && holds && d.repeats < rawMaxRepeats {
		if err := d.thumbReduced(pkt); err != nil {
			return false, err
		}
		if d.haveRef && d.diffRef() < rawChangeThreshold {
			d.repeats++
			return true, nil
		}
		// Something moved: decode it and stay on full decodes while it does.
		d.quiet = false
	}
	if err := decodeInto(pkt, gocv.IMReadColor, dst); err != nil {
		d.reset()
		return false, fmt.Errorf("decode jpeg: %w", err)
	}
	if dst.Rows() > maxFrameSide || dst.Cols() > maxFrameSide {
		d.reset()
		return false, fmt.Errorf("frame %dx%d is larger than %d px", dst.Cols(), dst.Rows(), maxFrameSide)
	}
	// While decoding fully, the thumbnail comes from the decoded frame and
	// is compared with the previous frame's: motion, not drift.
	d.thumbFull(*dst)
	moving := !d.haveRef || d.diffRef() >= rawChangeThreshold
	d.thumb.CopyTo(&d.ref)
	d.haveRef = true
	if moving {
		d.still = 0
	} else {
		d.still++
	}
	if d.still >= rawQuietAfter {
		// The cheap test compares thumbnails of its own kind: take this
		// frame's reference from a reduced decode too.
		if err := d.thumbReduced(pkt); err == nil {
			d.thumb.CopyTo(&d.ref)
			d.quiet, d.still = true, 0
		}
	}
	d.repeats = 0
	return false, nil
}

// thumbReduced makes the thumbnail from a 1/8-scale grey decode.
func (d *rawDecoder) thumbReduced(pkt []byte) error {
	if err := decodeInto(pkt, gocv.IMReadReducedGrayscale8, &d.grey); err != nil {
		return fmt.Errorf("decode jpeg: %w", err)
	}
	d.toThumb(d.grey)
	return nil
}

// thumbFull makes the thumbnail from the decoded frame: a point-sampled
// 1/8-scale grey image (cheap), then averaged down like the reduced one.
func (d *rawDecoder) thumbFull(full gocv.Mat) {
	w, h := max(full.Cols()/8, 1), max(full.Rows()/8, 1)
	gocv.Resize(full, &d.small, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
	gocv.CvtColor(d.small, &d.grey, gocv.ColorBGRToGray)
	d.toThumb(d.grey)
}

func (d *rawDecoder) toThumb(grey gocv.Mat) {
	tw := min(rawThumbWidth, grey.Cols())
	th := max(int(math.Round(float64(grey.Rows())*float64(tw)/float64(grey.Cols()))), 1)
	gocv.Resize(grey, &d.thumb, image.Pt(tw, th), 0, 0, gocv.InterpolationArea)
}

func (d *rawDecoder) diffRef() float64 {
	if d.ref.Cols() != d.thumb.Cols() || d.ref.Rows() != d.thumb.Rows() {
		return math.Inf(1)
	}
	gocv.AbsDiff(d.thumb, d.ref, &d.diff)
	return d.diff.Mean().Val1
}
