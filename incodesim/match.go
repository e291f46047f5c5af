package incodesim

import (
	"image"
	"image/color"
	"math"
)

// The matcher is deliberately simple and deterministic: it is not face
// recognition but a way for a demo and tests to tell "the enrolled picture
// as a camera would see it" from anything else. It compares colour
// distributions (a joint RGB histogram) and coarse structure (a small grey
// thumbnail), trying crops of the enrolled picture with the query's aspect
// ratio, so it survives re-encoding, scaling and cropping to half the
// picture but not a change of colours such as swapped red and blue channels.

const (
	workSide  = 128 // images are reduced to this size before anything else
	histBins  = 8   // per channel; 512 joint bins
	thumbSide = 16
	// minCropArea is the smallest central crop, as a fraction of the
	// enrolled picture's area, that still matches.
	minCropArea = 0.5
)

// Thresholds a query must reach against one enrolled picture to PASS.
const (
	histThreshold  = 0.70
	thumbThreshold = 0.80
)

// raster is a small RGB image in float32, 0..255 per channel.
type raster struct {
	w, h int
	pix  []float32 // r, g, b for each pixel, row by row
}

// reduce shrinks img by area averaging so that its longer side is at most
// side pixels. Only the reduced copy is kept, which bounds the cost of all
// later work whatever the upload's size.
func reduce(img image.Image, side int) raster {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	scale := 1.0
	if m := max(sw, sh); m > side {
		scale = float64(side) / float64(m)
	}
	dw := max(1, int(math.Round(float64(sw)*scale)))
	dh := max(1, int(math.Round(float64(sh)*scale)))
	sum := make([]float64, dw*dh*3)
	cnt := make([]float64, dw*dh)
	xmap := make([]int, sw)
	for x := range sw {
		xmap[x] = min(dw-1, x*dw/sw)
	}
	for y := range sh {
		ty := min(dh-1, y*dh/sh)
		row := ty * dw
		for x := range sw {
			r, g, bl := rgbAt(img, b.Min.X+x, b.Min.Y+y)
			i := row + xmap[x]
			sum[i*3] += float64(r)
			sum[i*3+1] += float64(g)
			sum[i*3+2] += float64(bl)
			cnt[i]++
		}
	}
	out := raster{w: dw, h: dh, pix: make([]float32, dw*dh*3)}
	for i := range cnt {
		if cnt[i] > 0 {
			for c := range 3 {
				out.pix[i*3+c] = float32(sum[i*3+c] / cnt[i])
			}
		}
	}
	return out
}

// rgbAt reads one pixel as 8-bit RGB, with fast paths for what image/jpeg
// and image/png return.
func rgbAt(img image.Image, x, y int) (uint8, uint8, uint8) {
	switch m := img.(type) {
	case *image.YCbCr:
		yi := m.YOffset(x, y)
		ci := m.COffset(x, y)
		return color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
	case *image.Gray:
		v := m.Pix[m.PixOffset(x, y)]
		return v, v, v
	case *image.RGBA:
		i := m.PixOffset(x, y)
		return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
	case *image.NRGBA:
		i := m.PixOffset(x, y)
		a := uint32(m.Pix[i+3])
		return uint8(uint32(m.Pix[i]) * a / 255), uint8(uint32(m.Pix[i+1]) * a / 255), uint8(uint32(m.Pix[i+2]) * a / 255)
	}
	r, g, b, _ := img.At(x, y).RGBA()
	return uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)
}

// rect is a region of a raster in pixel coordinates.
type rect struct{ x0, y0, x1, y1 float64 }

// signature is what is compared: a normalised joint RGB histogram and a
// zero-mean, unit-norm grey thumbnail.
type signature struct {
	hist  []float32
	thumb []float32
}

func (r raster) signature(reg rect) signature {
	hist := make([]float32, histBins*histBins*histBins)
	thumb := make([]float32, thumbSide*thumbSide)
	tcnt := make([]float32, thumbSide*thumbSide)
	var n float32
	x0, y0 := max(0, int(math.Ceil(reg.x0-0.5))), max(0, int(math.Ceil(reg.y0-0.5)))
	x1, y1 := min(r.w, int(math.Ceil(reg.x1-0.5))), min(r.h, int(math.Ceil(reg.y1-0.5)))
	rw, rh := reg.x1-reg.x0, reg.y1-reg.y0
	for y := y0; y < y1; y++ {
		ty := min(thumbSide-1, int((float64(y)+0.5-reg.y0)/rh*thumbSide))
		for x := x0; x < x1; x++ {
			tx := min(thumbSide-1, int((float64(x)+0.5-reg.x0)/rw*thumbSide))
			p := r.pix[(y*r.w+x)*3:]
			red, grn, blu := p[0], p[1], p[2]
			hist[bin(red)*histBins*histBins+bin(grn)*histBins+bin(blu)]++
			thumb[ty*thumbSide+tx] += 0.299*red + 0.587*grn + 0.114*blu
			tcnt[ty*thumbSide+tx]++
			n++
		}
	}
	if n > 0 {
		for i := range hist {
			hist[i] /= n
		}
	}
	var mean float32
	for i := range thumb {
		if tcnt[i] > 0 {
			thumb[i] /= tcnt[i]
		}
		mean += thumb[i]
	}
	mean /= float32(len(thumb))
	var norm float64
	for i := range thumb {
		thumb[i] -= mean
		norm += float64(thumb[i]) * float64(thumb[i])
	}
	if norm > 0 {
		inv := float32(1 / math.Sqrt(norm))
		for i := range thumb {
			thumb[i] *= inv
		}
	}
	return signature{hist: hist, thumb: thumb}
}

func bin(v float32) int { return min(histBins-1, max(0, int(v)*histBins/256)) }

// score compares two signatures: histogram intersection in [0, 1] and the
// thumbnails' correlation in [-1, 1].
func score(a, b signature) (hist, thumb float64) {
	for i := range a.hist {
		hist += float64(min(a.hist[i], b.hist[i]))
	}
	for i := range a.thumb {
		thumb += float64(a.thumb[i] * b.thumb[i])
	}
	return hist, thumb
}

// enrolledFace is one enrolled picture, reduced.
type enrolledFace struct {
	ras raster
}

// matchScore returns the best scores of a query against an enrolled
// picture over crops with the query's aspect ratio that cover between the
// largest possible area and minCropArea of the picture, anywhere in it: a
// camera frame made from the picture may be centred on the face rather than
// on the picture. A coarse grid of positions is searched at each size, then
// the best crop is refined.
func (e enrolledFace) matchScore(q raster, qs signature) (hist, thumb float64) {
	W, H := float64(e.ras.w), float64(e.ras.h)
	aq := float64(q.w) / float64(q.h)
	cw, ch := W, W/aq
	if ch > H {
		cw, ch = H*aq, H
	}
	fmax := cw * ch / (W * H)
	if fmax < minCropArea*0.9 {
		return 0, -1 // the query cannot be a large enough crop
	}
	kmin := math.Sqrt(min(1, minCropArea*0.9/fmax))
	best := -1.0
	var bestReg rect
	try := func(x, y, w, h float64) {
		x, y = max(0, min(x, W-w)), max(0, min(y, H-h))
		reg := rect{x, y, x + w, y + h}
		hs, ts := score(e.ras.signature(reg), qs)
		if c := hs + ts; c > best {
			best, hist, thumb, bestReg = c, hs, ts, reg
		}
	}
	const sizes = 8
	step := 0.1 * max(W, H) // coarse position step
	for i := 0; i <= sizes; i++ {
		k := 1 - (1-kmin)*float64(i)/sizes
		w, h := cw*k, ch*k
		nx, ny := positions(W-w, step), positions(H-h, step)
		for ix := range nx {
			for iy := range ny {
				x := (W - w) * frac(ix, nx)
				y := (H - h) * frac(iy, ny)
				try(x, y, w, h)
			}
		}
	}
	// Refine position and size around the best coarse crop.
	for d := step / 2; d >= 2; d /= 2 {
		r := bestReg
		w, h := r.x1-r.x0, r.y1-r.y0
		for _, dk := range []float64{-0.04, 0, 0.04} {
			ww, hh := w*(1+dk), h*(1+dk)
			if ww > cw || hh > ch || ww*hh < minCropArea*0.9*W*H {
				continue
			}
			for _, dx := range []float64{-d, 0, d} {
				for _, dy := range []float64{-d, 0, d} {
					x := r.x0 + (w-ww)/2 + dx
					y := r.y0 + (h-hh)/2 + dy
					try(x, y, ww, hh)
				}
			}
		}
	}
	return hist, thumb
}

// positions is how many crop positions cover a free range with the step.
func positions(free, step float64) int {
	if free < 1 {
		return 1
	}
	return 1 + int(math.Ceil(free/step))
}

func frac(i, n int) float64 {
	if n == 1 {
		return 0.5
	}
	return float64(i) / float64(n-1)
}

func (e enrolledFace) matches(q raster, qs signature) bool {
	h, t := e.matchScore(q, qs)
	return h >= histThreshold && t >= thumbThreshold
}

func querySignature(img image.Image) (raster, signature) {
	q := reduce(img, workSide)
	return q, q.signature(rect{0, 0, float64(q.w), float64(q.h)})
}
