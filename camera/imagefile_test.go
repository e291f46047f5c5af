package camera

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"
)

// TestCheckImage: the size comes from the header (the same as Go's own
// decoder reads), a picture over the limit and a JPEG cut short are refused
// with their reason, and a whole picture passes.
func TestCheckImage(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("..", "testdata", "astronaut.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if w, h, err := jpegSize(good); err != nil || w != cfg.Width || h != cfg.Height {
		t.Fatalf("jpegSize = %dx%d, %v; Go's decoder reads %dx%d", w, h, err, cfg.Width, cfg.Height)
	}
	big := image.NewGray(image.Rect(0, 0, 4000, 2200))
	var bigJPEG bytes.Buffer
	if err := jpeg.Encode(&bigJPEG, big, &jpeg.Options{Quality: 10}); err != nil {
		t.Fatal(err)
	}
	padded := append(append([]byte(nil), good...), 0, 0, 0)
	for _, c := range []struct {
		name   string
		b      []byte
		reason string // "" accepted
	}{
		{"whole JPEG", good, ""},
		{"JPEG with zero padding after its end", padded, ""},
		{"JPEG without its last 2 KB", good[:len(good)-2048], RejectTruncated},
		{"JPEG cut after its headers", good[:300], RejectTruncated},
		{"JPEG cut before its frame header", good[:20], RejectUndecodable},
		{"4000x2200 over 8294400 pixels", bigJPEG.Bytes(), RejectTooLarge},
		{"random bytes", bytes.Repeat([]byte{0x13, 0x37}, 500), RejectUndecodable},
		{"empty", nil, RejectUndecodable},
	} {
		err := CheckImage(c.b, 3840*2160)
		var ie *ImageError
		switch {
		case c.reason == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.reason != "" && !errors.As(err, &ie):
			t.Errorf("%s: err = %v, want an ImageError %s", c.name, err, c.reason)
		case c.reason != "" && ie.Reason != c.reason:
			t.Errorf("%s: reason %s (%v), want %s", c.name, ie.Reason, err, c.reason)
		}
	}
}

// TestJPEGSizeNeverPanics walks every prefix of a real JPEG.
func TestJPEGSizeNeverPanics(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("..", "testdata", "astronaut.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 2048 && n < len(good); n++ {
		_ = CheckImage(good[:n], 3840*2160)
	}
}
