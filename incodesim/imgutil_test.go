package incodesim

import (
	"bytes"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Test helpers that produce what a camera pipeline would: rescaled,
// cropped and re-encoded versions of the real test pictures.

func testdataPath(name string) string { return filepath.Join("..", "testdata", name) }

func loadImage(t testing.TB, name string) image.Image {
	t.Helper()
	f, err := os.Open(testdataPath(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return img
}

func toRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out
}

// resize scales img to w x h: bilinear when enlarging, area average when
// shrinking, like OpenCV's INTER_LINEAR / INTER_AREA.
func resize(img image.Image, w, h int) *image.RGBA {
	src := toRGBA(img)
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	fx, fy := float64(sw)/float64(w), float64(sh)/float64(h)
	sp, dp := src.Pix, out.Pix
	if fx > 1 || fy > 1 {
		for y := range h {
			y0, y1 := int(float64(y)*fy), min(sh, int(math.Ceil(float64(y+1)*fy)))
			for x := range w {
				x0, x1 := int(float64(x)*fx), min(sw, int(math.Ceil(float64(x+1)*fx)))
				var r, g, b, n int
				for sy := y0; sy < y1; sy++ {
					i := sy*src.Stride + x0*4
					for sx := x0; sx < x1; sx++ {
						r, g, b, n = r+int(sp[i]), g+int(sp[i+1]), b+int(sp[i+2]), n+1
						i += 4
					}
				}
				o := y*out.Stride + x*4
				dp[o], dp[o+1], dp[o+2], dp[o+3] = uint8((r+n/2)/n), uint8((g+n/2)/n), uint8((b+n/2)/n), 255
			}
		}
		return out
	}
	// Bilinear: per-column source positions and weights, computed once.
	xs := make([]int, w)
	xa := make([]float64, w)
	for x := range w {
		sx := (float64(x)+0.5)*fx - 0.5
		x0 := int(math.Floor(sx))
		xa[x] = sx - float64(x0)
		xs[x] = x0
	}
	clampX := func(x int) int { return min(sw-1, max(0, x)) }
	for y := range h {
		sy := (float64(y)+0.5)*fy - 0.5
		y0 := int(math.Floor(sy))
		ay := sy - float64(y0)
		r0 := min(sh-1, max(0, y0)) * src.Stride
		r1 := min(sh-1, max(0, y0+1)) * src.Stride
		for x := range w {
			a, b := clampX(xs[x])*4, clampX(xs[x]+1)*4
			ax := xa[x]
			o := y*out.Stride + x*4
			for c := range 3 {
				top := float64(sp[r0+a+c])*(1-ax) + float64(sp[r0+b+c])*ax
				bot := float64(sp[r1+a+c])*(1-ax) + float64(sp[r1+b+c])*ax
				dp[o+c] = uint8(top*(1-ay) + bot*ay + 0.5)
			}
			dp[o+3] = 255
		}
	}
	return out
}

func scaleBy(img image.Image, f float64) *image.RGBA {
	b := img.Bounds()
	return resize(img, int(math.Round(float64(b.Dx())*f)), int(math.Round(float64(b.Dy())*f)))
}

// cropCenter keeps the central region with the given fraction of the area
// and the image's own aspect ratio.
func cropCenter(img image.Image, area float64) *image.RGBA {
	b := img.Bounds()
	k := math.Sqrt(area)
	w, h := int(float64(b.Dx())*k), int(float64(b.Dy())*k)
	return cropTo(img, w, h)
}

func cropTo(img image.Image, w, h int) *image.RGBA {
	b := img.Bounds()
	x0, y0 := b.Min.X+(b.Dx()-w)/2, b.Min.Y+(b.Dy()-h)/2
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), img, image.Pt(x0, y0), draw.Src)
	return out
}

// cover scales img to cover a w x h frame and crops it centrally, as the
// demo clip's frames are made.
func cover(img image.Image, w, h int) *image.RGBA {
	b := img.Bounds()
	f := max(float64(w)/float64(b.Dx()), float64(h)/float64(b.Dy()))
	s := resize(img, int(math.Ceil(float64(b.Dx())*f)), int(math.Ceil(float64(b.Dy())*f)))
	return cropTo(s, w, h)
}

func swapRB(img image.Image) *image.RGBA {
	out := toRGBA(img)
	for i := 0; i < len(out.Pix); i += 4 {
		out.Pix[i], out.Pix[i+2] = out.Pix[i+2], out.Pix[i]
	}
	return out
}

func encodeJPEG(t testing.TB, img image.Image, q int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeBytes(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// coverFocus scales img to cover a w x h frame centred on focus (picture
// coordinates) and clamps the crop inside the picture, as the demo clip
// generator (internal/testmedia) frames person A: for the astronaut this is
// the top of the picture, not its centre.
func coverFocus(img image.Image, w, h int, focus image.Point) *image.RGBA {
	b := img.Bounds()
	f := max(float64(w)/float64(b.Dx()), float64(h)/float64(b.Dy()))
	sw, sh := int(math.Round(float64(b.Dx())*f)), int(math.Round(float64(b.Dy())*f))
	s := resize(img, sw, sh)
	x0 := min(max(int(math.Round(float64(focus.X)*f))-w/2, 0), sw-w)
	y0 := min(max(int(math.Round(float64(focus.Y)*f))-h/2, 0), sh-h)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), s, image.Pt(x0, y0), draw.Src)
	return out
}
