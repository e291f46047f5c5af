package incodesim

import (
	"fmt"
	"image"
	"testing"
)

func TestExploreScores(t *testing.T) {
	astro := loadImage(t, "enroll/astronaut.jpg")
	e := enrolledFace{ras: reduce(astro, workSide)}
	cases := map[string]image.Image{}
	cases["self"] = astro
	for _, f := range []float64{0.5, 0.75, 1.5, 2, 3, 4} {
		cases[fmt.Sprintf("scale%.2f", f)] = decodeBytes(t, encodeJPEG(t, scaleBy(astro, f), 75))
	}
	for _, a := range []float64{0.5, 0.6, 0.8} {
		cases[fmt.Sprintf("crop%.1f", a)] = decodeBytes(t, encodeJPEG(t, cropCenter(astro, a), 70))
		cases[fmt.Sprintf("crop%.1f-scale0.5", a)] = decodeBytes(t, encodeJPEG(t, scaleBy(cropCenter(astro, a), 0.5), 70))
		cases[fmt.Sprintf("crop%.1f-scale3", a)] = decodeBytes(t, encodeJPEG(t, scaleBy(cropCenter(astro, a), 3), 70))
	}
	cases["cover1280"] = decodeBytes(t, encodeJPEG(t, cover(astro, 1280, 720), 80))
	cases["cover640"] = decodeBytes(t, encodeJPEG(t, cover(astro, 640, 360), 60))
	cases["cover640q30"] = decodeBytes(t, encodeJPEG(t, cover(astro, 640, 360), 30))
	cases["swap"] = decodeBytes(t, encodeJPEG(t, swapRB(astro), 90))
	cases["swap1280"] = decodeBytes(t, encodeJPEG(t, cover(swapRB(astro), 1280, 720), 80))
	cases["swap640"] = decodeBytes(t, encodeJPEG(t, cover(swapRB(astro), 640, 360), 80))
	cases["crop0.3"] = decodeBytes(t, encodeJPEG(t, cropCenter(astro, 0.3), 80))
	for _, n := range []string{"coffee.jpg", "brick.jpg", "chelsea.jpg"} {
		img := loadImage(t, n)
		cases[n] = img
		cases[n+"-cover"] = decodeBytes(t, encodeJPEG(t, cover(img, 1280, 720), 80))
	}
	for name, img := range cases {
		q, qs := querySignature(img)
		h, th := e.matchScore(q, qs)
		t.Logf("%-22s hist=%.3f thumb=%.3f match=%v", name, h, th, e.matches(q, qs))
	}
}
