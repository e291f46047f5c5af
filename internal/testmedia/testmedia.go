// Package testmedia makes test frames, image folders and video clips from the
// photos committed under testdata/, deterministically, so that tests and
// benchmarks exercise real OpenCV on known faces without shipping videos.
//
// Person A is testdata/astronaut.jpg scaled to cover the frame, person B the
// same picture with red and blue swapped (a different "person" to the
// emulator, which only has A enrolled), "empty" is the brick wall.
package testmedia

import (
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// astronautFace is the centre of the face in testdata/astronaut.jpg (512x512),
// where the Haar frontal-face cascade finds it at (177,66)-(271,160). A cover
// crop is centred on it so that the face stays in a wide frame.
var astronautFace = image.Pt(224, 113)

// Scene describes one synthetic frame.
type Scene struct {
	// Subject is "a", "b", "two" (A and B side by side) or "" for no person.
	Subject string
	// Background is "brick" (default), "coffee" or "cat".
	Background string
	// Scale is the subject's size relative to covering the frame (0 or 1:
	// cover). Below 1 the picture shrinks onto the background.
	Scale float64
	// ShiftX and ShiftY move the subject by a share of the frame size.
	ShiftX, ShiftY float64
	// Blur is the Gaussian sigma as a share of the frame width.
	Blur float64
	// Gain and Offset change exposure: out = in*Gain + Offset (Gain 0 means 1).
	Gain, Offset float64
	// Noise is the amplitude of deterministic sensor noise, in grey levels.
	Noise int
	// Sway moves the subject a few pixels from frame to frame, as a person
	// standing in front of a camera does.
	Sway bool
	// Pan sweeps the background from side to side (one sweep every 4 s at
	// 30 fps), as a panning camera or people passing behind the person do:
	// no two frames show the same scene.
	Pan bool
}

// HasFace reports whether the scene shows at least one face.
func (s Scene) HasFace() bool { return s.Subject != "" }

// Scenes are the named scenes that scripts and tests use.
var Scenes = map[string]Scene{
	"empty":       {},
	"coffee":      {Background: "coffee"},
	"cat":         {Background: "cat"},
	"a":           {Subject: "a"},
	"b":           {Subject: "b"},
	"two":         {Subject: "two"},
	"a-small":     {Subject: "a", Scale: 0.4},
	"a-offcenter": {Subject: "a", ShiftX: 0.4},
	"a-blur":      {Subject: "a", Blur: 0.006},
	"a-dark":      {Subject: "a", Gain: 0.12},
	"a-bright":    {Subject: "a", Gain: 1.3, Offset: 60},
	"pan":         {Pan: true},
	"a-pan":       {Subject: "a", Scale: 0.6, Pan: true},
}

// SceneNames lists the named scenes, sorted.
func SceneNames() []string {
	names := make([]string, 0, len(Scenes))
	for n := range Scenes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Dir finds testdata/ by walking up from the working directory to the
// module root, falling back to this source file's location.
func Dir() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for {
			if _, err := os.Stat(filepath.Join(d, "testdata", "astronaut.jpg")); err == nil {
				if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
					return filepath.Join(d, "testdata"), nil
				}
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", errors.New("testmedia: testdata/astronaut.jpg not found above the working directory")
}

// Generator renders scenes. It holds the decoded photos; Close releases them.
// Like every holder of Mats it belongs to one goroutine.
type Generator struct {
	photos map[string]*gocv.Mat
	noise  []byte
}

// NewGenerator loads the photos from dir (see Dir).
func NewGenerator(dir string) (*Generator, error) {
	g := &Generator{photos: map[string]*gocv.Mat{}}
	for key, file := range map[string]string{"a": "astronaut.jpg", "brick": "brick.jpg", "coffee": "coffee.jpg", "cat": "chelsea.jpg"} {
		m := gocv.IMRead(filepath.Join(dir, file), gocv.IMReadColor)
		if m.Empty() {
			m.Close()
			g.Close()
			return nil, fmt.Errorf("testmedia: cannot decode %s", filepath.Join(dir, file))
		}
		g.photos[key] = &m
	}
	// Person B: the same face with red and blue exchanged, so that a matcher
	// comparing pixels sees someone else while the detector still sees a face.
	b := gocv.NewMat()
	gocv.CvtColor(*g.photos["a"], &b, gocv.ColorBGRToRGB)
	g.photos["b"] = &b
	return g, nil
}

// Close releases the photos.
func (g *Generator) Close() error {
	for k, m := range g.photos {
		m.Close()
		delete(g.photos, k)
	}
	return nil
}

// Frame renders the named scene into dst (w x h, BGR).
func (g *Generator) Frame(name string, w, h int, dst *gocv.Mat) error {
	sc, ok := Scenes[name]
	if !ok {
		return fmt.Errorf("testmedia: unknown scene %q (known: %s)", name, strings.Join(SceneNames(), ", "))
	}
	return g.Render(sc, w, h, 0, dst)
}

// Render draws sc at w x h into dst. Index varies sway and noise from frame
// to frame, deterministically.
func (g *Generator) Render(sc Scene, w, h, index int, dst *gocv.Mat) error {
	if w < 16 || h < 16 || w > 8192 || h > 8192 {
		return fmt.Errorf("testmedia: frame size %dx%d is outside 16..8192", w, h)
	}
	bg := sc.Background
	if bg == "" {
		bg = "brick"
	}
	bgPhoto, ok := g.photos[bg]
	if !ok {
		return fmt.Errorf("testmedia: unknown background %q", bg)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	c := image.Pt(bgPhoto.Cols()/2, bgPhoto.Rows()/2)
	bgScale, bgShift := 1.0, image.Point{}
	if sc.Pan {
		// Enlarged by a quarter, the background has an eighth of the frame
		// width to spare on each side; a triangle wave sweeps across it.
		const period = 120
		bgScale = 1.25
		slack := w / 8
		p := index % (2 * period)
		if p > period {
			p = 2*period - p
		}
		bgShift = image.Pt(p*2*slack/period-slack, 0)
	}
	cover(*bgPhoto, c, w, h, bgScale, bgShift, true, &frame)

	var sway image.Point
	if sc.Sway {
		sway = image.Pt(int(math.Round(4*math.Sin(float64(index)*0.7))), int(math.Round(2*math.Cos(float64(index)*0.5))))
	}
	shift := image.Pt(int(sc.ShiftX*float64(w)), int(sc.ShiftY*float64(h))).Add(sway)
	scale := sc.Scale
	if scale == 0 {
		scale = 1
	}
	switch sc.Subject {
	case "":
	case "a", "b":
		cover(*g.photos[sc.Subject], astronautFace, w, h, scale, shift, scale >= 1, &frame)
	case "two":
		half := w / 2
		for i, who := range []string{"a", "b"} {
			roi := image.Rect(i*half, 0, (i+1)*half, h)
			part := frame.Region(roi)
			cover(*g.photos[who], astronautFace, half, h, scale, shift, scale >= 1, &part)
			part.Close()
		}
	default:
		return fmt.Errorf("testmedia: unknown subject %q", sc.Subject)
	}

	if sc.Blur > 0 {
		sigma := sc.Blur * float64(w)
		gocv.GaussianBlur(frame, &frame, image.Point{}, sigma, sigma, gocv.BorderReflect101)
	}
	if sc.Gain != 0 || sc.Offset != 0 {
		gain := sc.Gain
		if gain == 0 {
			gain = 1
		}
		frame.ConvertToWithParams(&frame, gocv.MatTypeCV8UC3, float32(gain), float32(sc.Offset))
	}
	if sc.Noise > 0 {
		if err := g.addNoise(&frame, sc.Noise, index); err != nil {
			return err
		}
	}
	frame.CopyTo(dst)
	return nil
}

// cover draws photo into dst (resized to w x h if it is not) scaled so that
// it covers w x h times scale, with focus (photo coordinates) at the centre
// when possible. With clamp the photo is kept covering the frame, so no
// background shows; shift then moves it after clamping.
func cover(photo gocv.Mat, focus image.Point, w, h int, scale float64, shift image.Point, clamp bool, dst *gocv.Mat) {
	if dst.Empty() || dst.Cols() != w || dst.Rows() != h {
		blank := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
		blank.CopyTo(dst)
		blank.Close()
	}
	s := math.Max(float64(w)/float64(photo.Cols()), float64(h)/float64(photo.Rows())) * scale
	sw, sh := int(math.Round(float64(photo.Cols())*s)), int(math.Round(float64(photo.Rows())*s))
	if sw < 1 || sh < 1 {
		return
	}
	scaled := gocv.NewMat()
	defer scaled.Close()
	interp := gocv.InterpolationLinear
	if s < 1 {
		interp = gocv.InterpolationArea
	}
	gocv.Resize(photo, &scaled, image.Pt(sw, sh), 0, 0, interp)

	x0 := w/2 - int(math.Round(float64(focus.X)*s))
	y0 := h/2 - int(math.Round(float64(focus.Y)*s))
	if clamp {
		x0 = min(max(x0, w-sw), 0)
		y0 = min(max(y0, h-sh), 0)
	}
	x0 += shift.X
	y0 += shift.Y
	placed := image.Rect(x0, y0, x0+sw, y0+sh)
	vis := placed.Intersect(image.Rect(0, 0, w, h))
	if vis.Empty() {
		return
	}
	src := scaled.Region(vis.Sub(placed.Min))
	defer src.Close()
	out := dst.Region(vis)
	defer out.Close()
	src.CopyTo(&out)
}

// addNoise adds deterministic noise in [-amp, amp] seeded by index: real
// sensors never deliver two identical frames, and a change detector must not
// mistake that for motion.
func (g *Generator) addNoise(frame *gocv.Mat, amp, index int) error {
	n := frame.Rows() * frame.Cols() * frame.Channels()
	if cap(g.noise) < n {
		g.noise = make([]byte, n)
	}
	buf := g.noise[:n]
	x := uint64(index)*0x9E3779B97F4A7C15 + 1
	span := uint64(2*amp + 1)
	for i := range buf {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		buf[i] = byte(128 - amp + int(x%span))
	}
	nm, err := gocv.NewMatFromBytes(frame.Rows(), frame.Cols(), gocv.MatTypeCV8UC3, buf)
	if err != nil {
		return fmt.Errorf("testmedia: noise: %w", err)
	}
	defer nm.Close()
	gocv.AddWeighted(*frame, 1, nm, 1, -128, frame)
	return nil
}

// Segment is a run of identical scenes in a clip.
type Segment struct {
	Scene  string
	Frames int
}

// ParseScript reads "empty:10,a:30,b:30" into segments.
func ParseScript(script string) ([]Segment, error) {
	var segs []Segment
	for _, part := range strings.Split(script, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("testmedia: script item %q: want scene:frames", part)
		}
		if _, known := Scenes[name]; !known {
			return nil, fmt.Errorf("testmedia: script item %q: unknown scene (known: %s)", part, strings.Join(SceneNames(), ", "))
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 || n > 100000 {
			return nil, fmt.Errorf("testmedia: script item %q: frame count must be 1..100000", part)
		}
		segs = append(segs, Segment{Scene: name, Frames: n})
	}
	if len(segs) == 0 {
		return nil, errors.New("testmedia: empty script")
	}
	return segs, nil
}

// FrameScenes expands segments into one scene name per frame.
func FrameScenes(segments []Segment) []string {
	var out []string
	for _, s := range segments {
		for range s.Frames {
			out = append(out, s.Scene)
		}
	}
	return out
}

// ClipOptions tune generated clips.
type ClipOptions struct {
	// Sway moves people slightly from frame to frame (default on for clips).
	NoSway bool
	// Noise adds sensor noise of this amplitude to every frame.
	Noise int
}

// WriteClip writes segments as an MJPG .avi at path.
func (g *Generator) WriteClip(path string, w, h int, fps float64, segments []Segment, opt ClipOptions) error {
	if fps <= 0 || fps > 240 {
		return fmt.Errorf("testmedia: fps %g is outside (0, 240]", fps)
	}
	vw, err := gocv.VideoWriterFile(path, "MJPG", fps, w, h, true)
	if err != nil {
		return fmt.Errorf("testmedia: open writer %s: %w", path, err)
	}
	defer vw.Close()
	if !vw.IsOpened() {
		return fmt.Errorf("testmedia: cannot write %s", path)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	for i, name := range FrameScenes(segments) {
		sc, ok := Scenes[name]
		if !ok {
			return fmt.Errorf("testmedia: unknown scene %q", name)
		}
		sc.Sway = sc.HasFace() && !opt.NoSway
		sc.Noise = opt.Noise
		if err := g.Render(sc, w, h, i, &frame); err != nil {
			return err
		}
		if err := vw.Write(frame); err != nil {
			return fmt.Errorf("testmedia: write frame %d: %w", i, err)
		}
	}
	return nil
}

// WriteFolder writes segments as numbered JPEG files into dir, the layout an
// image-folder camera source reads.
func (g *Generator) WriteFolder(dir string, w, h int, segments []Segment) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("testmedia: %w", err)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	var files []string
	for i, name := range FrameScenes(segments) {
		sc := Scenes[name]
		if err := g.Render(sc, w, h, i, &frame); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, fmt.Sprintf("frame-%05d.jpg", i))
		if !gocv.IMWriteWithParams(p, frame, []int{gocv.IMWriteJpegQuality, 90}) {
			return nil, fmt.Errorf("testmedia: cannot write %s", p)
		}
		files = append(files, p)
	}
	return files, nil
}

// WriteClip is Generator.WriteClip with photos from Dir().
func WriteClip(path string, w, h int, fps float64, segments []Segment) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	g, err := NewGenerator(dir)
	if err != nil {
		return err
	}
	defer g.Close()
	return g.WriteClip(path, w, h, fps, segments, ClipOptions{})
}
