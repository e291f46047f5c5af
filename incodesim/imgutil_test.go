package incodesim

import (
	"bytes"
	"image"
	"image/color"
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
	for y := range h {
		for x := range w {
			var acc [3]float64
			if fx > 1 || fy > 1 {
				x0, x1 := float64(x)*fx, float64(x+1)*fx
				y0, y1 := float64(y)*fy, float64(y+1)*fy
				var n float64
				for sy := int(y0); sy < int(math.Ceil(y1)) && sy < sh; sy++ {
					for sx := int(x0); sx < int(math.Ceil(x1)) && sx < sw; sx++ {
						c := src.RGBAAt(sx, sy)
						acc[0] += float64(c.R)
						acc[1] += float64(c.G)
						acc[2] += float64(c.B)
						n++
					}
				}
				for i := range acc {
					acc[i] /= n
				}
			} else {
				sx := (float64(x)+0.5)*fx - 0.5
				sy := (float64(y)+0.5)*fy - 0.5
				x0, y0 := int(math.Floor(sx)), int(math.Floor(sy))
				ax, ay := sx-float64(x0), sy-float64(y0)
				for j, pt := range [4][3]float64{{0, 0, (1 - ax) * (1 - ay)}, {1, 0, ax * (1 - ay)}, {0, 1, (1 - ax) * ay}, {1, 1, ax * ay}} {
					_ = j
					px := min(sw-1, max(0, x0+int(pt[0])))
					py := min(sh-1, max(0, y0+int(pt[1])))
					c := src.RGBAAt(px, py)
					acc[0] += float64(c.R) * pt[2]
					acc[1] += float64(c.G) * pt[2]
					acc[2] += float64(c.B) * pt[2]
				}
			}
			out.SetRGBA(x, y, color.RGBA{uint8(math.Round(acc[0])), uint8(math.Round(acc[1])), uint8(math.Round(acc[2])), 255})
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
