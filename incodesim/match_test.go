package incodesim

import (
	"fmt"
	"image"
	"testing"
)

// The matcher must accept the enrolled picture as a camera pipeline would
// deliver it and reject a different face with the same shapes (red and
// blue swapped: "person B" of the demo clip) and unrelated pictures.
func TestMatcherOnRealPictures(t *testing.T) {
	astro := loadImage(t, "enroll/astronaut.jpg")
	enrolled := enrolledFace{ras: reduce(astro, workSide)}
	face := image.Pt(224, 113) // the face's centre in astronaut.jpg
	jpegOf := func(img image.Image, q int) image.Image { return decodeBytes(t, encodeJPEG(t, img, q)) }

	accept := map[string]image.Image{
		"re-encoded q50":           jpegOf(astro, 50),
		"as PNG":                   decodeBytes(t, encodePNG(t, astro)),
		"cover 1280x720 q80":       jpegOf(cover(astro, 1280, 720), 80),
		"cover 640x360 q40":        jpegOf(cover(astro, 640, 360), 40),
		"crop 50% then 0.5x":       jpegOf(scaleBy(cropCenter(astro, 0.5), 0.5), 75),
		"crop 50% then 3x":         jpegOf(scaleBy(cropCenter(astro, 0.5), 3), 75),
		"crop 75%":                 jpegOf(cropCenter(astro, 0.75), 75),
		"16:9 crop of 0.8x":        jpegOf(cropTo(scaleBy(astro, 0.8), 409, 230), 75),
		"portrait 3:4 central 60%": jpegOf(cropTo(astro, 384, 512), 75),
		// The demo clip's person A: framed on the face, so the top of the picture.
		"face-framed 1280x720": jpegOf(coverFocus(astro, 1280, 720, face), 85),
		"face-framed 640x360":  jpegOf(coverFocus(astro, 640, 360, face), 60),
		"face-framed 4:3":      jpegOf(coverFocus(astro, 640, 480, face), 75),
		"corner 60%":           jpegOf(cropTo(scaleBy(astro, 1), 400, 400), 75),
	}
	for _, f := range []float64{0.5, 0.7, 1.5, 2, 4} {
		accept[fmt.Sprintf("scaled %.1fx", f)] = jpegOf(scaleBy(astro, f), 75)
	}
	reject := map[string]image.Image{
		"red/blue swapped":                swapRB(astro),
		"red/blue swapped cover 1280x720": jpegOf(cover(swapRB(astro), 1280, 720), 80),
		"red/blue swapped cover 640x360":  jpegOf(cover(swapRB(astro), 640, 360), 80),
		"red/blue swapped scaled 2x":      jpegOf(scaleBy(swapRB(astro), 2), 80),
		"red/blue swapped face-framed":    jpegOf(coverFocus(swapRB(astro), 1280, 720, face), 85),
	}
	for _, name := range []string{"coffee.jpg", "brick.jpg", "chelsea.jpg"} {
		img := loadImage(t, name)
		reject[name] = img
		reject[name+" cover 1280x720"] = jpegOf(cover(img, 1280, 720), 80)
	}
	for name, img := range accept {
		q, qs := querySignature(img)
		if h, th := enrolled.matchScore(q, qs); !enrolled.matches(q, qs) {
			t.Errorf("%s: rejected (histogram %.3f, thumbnail %.3f), want accepted", name, h, th)
		}
	}
	for name, img := range reject {
		q, qs := querySignature(img)
		if h, th := enrolled.matchScore(q, qs); enrolled.matches(q, qs) {
			t.Errorf("%s: accepted (histogram %.3f, thumbnail %.3f), want rejected", name, h, th)
		}
	}
}

// A query whose aspect ratio cannot be a central crop of at least half the
// enrolled picture (a thin strip) never matches, whatever its colours.
func TestMatcherRejectsImpossibleCrops(t *testing.T) {
	astro := loadImage(t, "enroll/astronaut.jpg")
	enrolled := enrolledFace{ras: reduce(astro, workSide)}
	strip := cropTo(astro, 512, 100)
	q, qs := querySignature(strip)
	if enrolled.matches(q, qs) {
		t.Fatal("a 512x100 strip matched a 512x512 enrollment")
	}
}

func TestNameFromFile(t *testing.T) {
	for in, want := range map[string]string{
		"Eileen_Collins.jpg":  "Eileen Collins",
		"astronaut.jpg":       "astronaut",
		"Jean-Luc_Picard.PNG": "Jean-Luc Picard",
		"__odd__name_.jpeg":   "odd name",
		"___.jpg":             "___",
	} {
		if got := nameFromFile(in); got != want {
			t.Errorf("nameFromFile(%q) = %q, want %q", in, got, want)
		}
	}
}
