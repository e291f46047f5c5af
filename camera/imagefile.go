package camera

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // header decoders for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"strconv"

	"gocv.io/x/gocv"
	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"
)

// Reasons an image is refused before or instead of being decoded; they are
// the values of the reason label of kioskd_camera_images_rejected_total.
const (
	RejectTooLarge    = "too_large"
	RejectTruncated   = "truncated"
	RejectUndecodable = "undecodable"
)

// ImageError is an image refused before it reached the frame loop.
type ImageError struct {
	Reason string // one of the Reject constants
	Err    error
}

func (e *ImageError) Error() string { return e.Err.Error() }
func (e *ImageError) Unwrap() error { return e.Err }

func imageErr(reason, format string, args ...any) error {
	return &ImageError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// maxImageBytes skips files no camera frame would ever be.
const maxImageBytes = 64 << 20

// ReadImageFile reads the picture at path and decodes it in colour, after
// reading its size from the header: a picture of more than maxPixels is
// refused without being decoded, and a truncated JPEG is refused rather
// than decoded into a half-grey frame. The caller closes the Mat.
func ReadImageFile(path string, maxPixels int) (gocv.Mat, error) {
	b, err := readBounded(path)
	if err != nil {
		return gocv.Mat{}, err
	}
	if err := CheckImage(b, maxPixels); err != nil {
		return gocv.Mat{}, err
	}
	m, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil || m.Empty() {
		m.Close()
		return gocv.Mat{}, imageErr(RejectUndecodable, "not a decodable image")
	}
	if m.Cols()*m.Rows() > maxPixels {
		// A format whose header Go cannot read (pgm with odd comments, say)
		// is caught here, after the decode.
		m.Close()
		return gocv.Mat{}, imageErr(RejectTooLarge, "%dx%d is more than %d pixels", m.Cols(), m.Rows(), maxPixels)
	}
	return m, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, imageErr(RejectUndecodable, "not a regular file")
	}
	if fi.Size() == 0 || fi.Size() > maxImageBytes {
		return nil, imageErr(RejectTooLarge, "size %d bytes is outside 1..%d", fi.Size(), maxImageBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxImageBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxImageBytes {
		return nil, imageErr(RejectTooLarge, "larger than %d bytes", maxImageBytes)
	}
	return b, nil
}

// CheckImage reads the width and height of an encoded picture from its
// header, refuses one of more than maxPixels, and refuses a JPEG that is
// cut short. It decodes no pixels.
func CheckImage(b []byte, maxPixels int) error {
	w, h, format, err := imageSize(b)
	if err != nil {
		return imageErr(RejectUndecodable, "not a decodable image: %v", err)
	}
	if w <= 0 || h <= 0 {
		return imageErr(RejectUndecodable, "image header gives %dx%d", w, h)
	}
	if int64(w)*int64(h) > int64(maxPixels) {
		return imageErr(RejectTooLarge, "%dx%d is more than %d pixels (camera.max_pixels)", w, h, maxPixels)
	}
	if format == "jpeg" {
		return checkJPEGComplete(b)
	}
	return nil
}

func imageSize(b []byte) (w, h int, format string, err error) {
	if len(b) >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' {
		w, h, err = netpbmSize(b)
		return w, h, "netpbm", err
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return 0, 0, "", err
	}
	return cfg.Width, cfg.Height, format, nil
}

// netpbmSize reads the width and height of a PBM/PGM/PPM header, which no
// Go decoder in the standard library reads.
func netpbmSize(b []byte) (int, int, error) {
	r := bufio.NewReader(bytes.NewReader(b[2:]))
	var nums [2]int
	for i := range nums {
		tok, err := netpbmToken(r)
		if err != nil {
			return 0, 0, fmt.Errorf("netpbm header: %w", err)
		}
		n, err := strconv.Atoi(tok)
		if err != nil || n <= 0 {
			return 0, 0, fmt.Errorf("netpbm header: bad size %q", tok)
		}
		nums[i] = n
	}
	return nums[0], nums[1], nil
}

func netpbmToken(r *bufio.Reader) (string, error) {
	var tok []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			if len(tok) > 0 {
				return string(tok), nil
			}
			return "", err
		}
		switch {
		case c == '#':
			if _, err := r.ReadString('\n'); err != nil {
				return "", err
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if len(tok) > 0 {
				return string(tok), nil
			}
		default:
			if len(tok) > 10 {
				return "", errors.New("number too long")
			}
			tok = append(tok, c)
		}
	}
}

// checkJPEGComplete refuses a JPEG without its end-of-image marker or with
// no scan: libjpeg decodes such a file with a warning ("Premature end of
// JPEG file") and fills the missing rows with grey, and that picture must
// not be uploaded as somebody's face. Padding after the marker (some
// cameras send zeros) is allowed.
func checkJPEGComplete(b []byte) error {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return imageErr(RejectUndecodable, "not a JPEG image")
	}
	end := len(b)
	for end > 2 && b[end-1] == 0 {
		end--
	}
	if end < 4 || b[end-2] != 0xFF || b[end-1] != 0xD9 {
		return imageErr(RejectTruncated, "JPEG image is truncated (no end-of-image marker)")
	}
	if !bytes.Contains(b[2:end], []byte{0xFF, 0xDA}) {
		return imageErr(RejectTruncated, "JPEG image has no scan")
	}
	return nil
}
