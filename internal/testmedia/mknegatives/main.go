// Command mknegatives writes the negative set of testdata/negatives/: scenes
// without a human face (food, an animal, objects, textures) made from the
// photos in testdata/ and from drawing, deterministically. A face detector
// must find no face in them that passes capture's checks.
//
//	go run ./internal/testmedia/mknegatives -out testdata/negatives
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/internal/testmedia"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// size of every negative image: a 16:9 camera frame, small enough to commit.
const w, h = 640, 360

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mknegatives", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "testdata/negatives", "output directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dir, err := testmedia.Dir()
	if err != nil {
		fmt.Fprintln(stderr, "mknegatives:", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "mknegatives:", err)
		return 1
	}
	photos := map[string]gocv.Mat{}
	for k, f := range map[string]string{"coffee": "coffee.jpg", "cat": "chelsea.jpg", "brick": "brick.jpg", "suit": "astronaut.jpg"} {
		m := gocv.IMRead(filepath.Join(dir, f), gocv.IMReadColor)
		if m.Empty() {
			fmt.Fprintf(stderr, "mknegatives: cannot read %s\n", f)
			return 1
		}
		defer m.Close()
		photos[k] = m
	}
	// The astronaut photo below her face: suit, flag and helmet, no face.
	full := photos["suit"]
	suit := full.Region(image.Rect(0, 200, 512, 512))
	defer suit.Close()
	photos["suit"] = suit

	frame := gocv.NewMat()
	defer frame.Close()
	n := 0
	write := func(name string) error {
		p := filepath.Join(*out, name+".jpg")
		if !gocv.IMWriteWithParams(p, frame, []int{gocv.IMWriteJpegQuality, 85}) {
			return fmt.Errorf("cannot write %s", p)
		}
		n++
		return nil
	}
	// Photos at several zooms and crops: a cascade sees a different set of
	// patterns at each scale.
	for _, c := range []struct {
		photo string
		zoom  float64
		fx    float64
		fy    float64
	}{
		{"coffee", 1, 0.5, 0.5}, {"coffee", 2, 0.5, 0.45}, {"coffee", 3, 0.35, 0.4},
		{"cat", 1, 0.5, 0.5}, {"cat", 1.8, 0.55, 0.35}, {"cat", 3, 0.6, 0.3},
		{"brick", 1, 0.5, 0.5}, {"brick", 2.5, 0.3, 0.6},
		{"suit", 1, 0.5, 0.5}, {"suit", 2, 0.5, 0.3}, {"suit", 2, 0.3, 0.7},
	} {
		zoomed(photos[c.photo], c.zoom, c.fx, c.fy, &frame)
		if err := write(fmt.Sprintf("%s-x%g-%02.0f-%02.0f", c.photo, c.zoom, c.fx*100, c.fy*100)); err != nil {
			fmt.Fprintln(stderr, "mknegatives:", err)
			return 1
		}
	}
	draws := []struct {
		name string
		draw func(*gocv.Mat)
	}{
		{"orange", func(m *gocv.Mat) { fruit(m, 180, color.RGBA{235, 130, 20, 0}) }},
		{"orange-close", func(m *gocv.Mat) { fruit(m, 320, color.RGBA{240, 140, 30, 0}) }},
		{"apple", func(m *gocv.Mat) { fruit(m, 150, color.RGBA{190, 30, 30, 0}) }},
		{"lemon", func(m *gocv.Mat) { fruit(m, 120, color.RGBA{240, 220, 60, 0}) }},
		{"checkerboard", func(m *gocv.Mat) { checker(m, 40) }},
		{"checkerboard-fine", func(m *gocv.Mat) { checker(m, 12) }},
		{"stripes", stripes},
		{"noise", func(m *gocv.Mat) { noise(m, 1) }},
		{"noise-blurred", func(m *gocv.Mat) { noise(m, 7) }},
	}
	for _, d := range draws {
		blank(&frame)
		d.draw(&frame)
		if err := write(d.name); err != nil {
			fmt.Fprintln(stderr, "mknegatives:", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "%d images in %s\n", n, *out)
	return 0
}

func blank(m *gocv.Mat) {
	b := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(180, 190, 200, 0), h, w, gocv.MatTypeCV8UC3)
	b.CopyTo(m)
	b.Close()
}

// zoomed covers the frame with photo enlarged by zoom around (fx, fy).
func zoomed(photo gocv.Mat, zoom, fx, fy float64, dst *gocv.Mat) {
	s := math.Max(float64(w)/float64(photo.Cols()), float64(h)/float64(photo.Rows())) * zoom
	big := gocv.NewMat()
	defer big.Close()
	gocv.Resize(photo, &big, image.Pt(int(float64(photo.Cols())*s), int(float64(photo.Rows())*s)), 0, 0, gocv.InterpolationLinear)
	x := min(max(int(fx*float64(big.Cols()))-w/2, 0), big.Cols()-w)
	y := min(max(int(fy*float64(big.Rows()))-h/2, 0), big.Rows()-h)
	r := big.Region(image.Rect(x, y, x+w, y+h))
	r.CopyTo(dst)
	r.Close()
}

// fruit draws a round fruit of radius r with a highlight, a dimple and a
// dotted peel on a wooden-brown table.
func fruit(m *gocv.Mat, r int, c color.RGBA) {
	table := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(60, 100, 140, 0), h, w, gocv.MatTypeCV8UC3)
	table.CopyTo(m)
	table.Close()
	for y := 0; y < h; y += 9 {
		gocv.Line(m, image.Pt(0, y), image.Pt(w, y+5), color.RGBA{50, 85, 120, 0}, 2)
	}
	ctr := image.Pt(w/2, h/2+10)
	gocv.Circle(m, ctr.Add(image.Pt(r/6, r/8)), r, color.RGBA{30, 50, 70, 0}, -1) // shadow
	gocv.Circle(m, ctr, r, c, -1)
	x := uint32(12345)
	for i := 0; i < r*r/40; i++ {
		x = x*1664525 + 1013904223
		a := float64(x%6283) / 1000
		x = x*1664525 + 1013904223
		d := float64(x%1000) / 1000 * float64(r) * 0.95
		p := ctr.Add(image.Pt(int(d*math.Cos(a)), int(d*math.Sin(a))))
		dark := color.RGBA{uint8(float64(c.R) * 0.8), uint8(float64(c.G) * 0.8), uint8(float64(c.B) * 0.8), 0}
		gocv.Circle(m, p, 1, dark, -1)
	}
	gocv.Circle(m, ctr.Sub(image.Pt(r/3, r/3)), r/5, color.RGBA{min(c.R+20, 255), min(c.G+60, 255), min(c.B+60, 255), 0}, -1)
	gocv.Circle(m, ctr.Sub(image.Pt(0, r*7/10)), r/14, color.RGBA{60, 80, 20, 0}, -1) // stem dimple
	gocv.GaussianBlur(*m, m, image.Pt(5, 5), 0, 0, gocv.BorderReflect101)
}

func checker(m *gocv.Mat, cell int) {
	for y := 0; y < h; y += cell {
		for x := 0; x < w; x += cell {
			if (x/cell+y/cell)%2 == 0 {
				gocv.Rectangle(m, image.Rect(x, y, x+cell, y+cell), color.RGBA{20, 20, 20, 0}, -1)
			}
		}
	}
}

func stripes(m *gocv.Mat) {
	for x := -h; x < w; x += 30 {
		gocv.Line(m, image.Pt(x, 0), image.Pt(x+h, h), color.RGBA{40, 60, 90, 0}, 12)
	}
}

func noise(m *gocv.Mat, blur int) {
	buf := make([]byte, w*h*3)
	x := uint32(99)
	for i := range buf {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		buf[i] = byte(x)
	}
	n, _ := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, buf)
	defer n.Close()
	if blur > 1 {
		gocv.GaussianBlur(n, m, image.Pt(blur*2+1, blur*2+1), 0, 0, gocv.BorderReflect101)
		return
	}
	n.CopyTo(m)
}
