package testmedia

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func newGen(t *testing.T) *Generator {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestFramesAreDeterministic(t *testing.T) {
	CheckMats(t)
	g := newGen(t)
	a, b := gocv.NewMat(), gocv.NewMat()
	defer a.Close()
	defer b.Close()
	for _, name := range SceneNames() {
		sc := Scenes[name]
		sc.Sway, sc.Noise = true, 3
		if err := g.Render(sc, 320, 180, 7, &a); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := g.Render(sc, 320, 180, 7, &b); err != nil {
			t.Fatal(err)
		}
		if a.Cols() != 320 || a.Rows() != 180 || a.Type() != gocv.MatTypeCV8UC3 || !bytes.Equal(a.ToBytes(), b.ToBytes()) {
			t.Errorf("%s: %dx%d %v, same inputs gave different frames", name, a.Cols(), a.Rows(), a.Type())
		}
	}
	// Another frame index moves the person and changes the noise.
	sc := Scene{Subject: "a", Sway: true, Noise: 3}
	if err := g.Render(sc, 320, 180, 8, &b); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.ToBytes(), b.ToBytes()) {
		t.Error("frames 7 and 8 are identical")
	}
}

// Person A covers the frame with the face kept in view; B is A with red and
// blue exchanged; the wall has no warm colours.
func TestPeople(t *testing.T) {
	CheckMats(t)
	g := newGen(t)
	a, b, wall := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer a.Close()
	defer b.Close()
	defer wall.Close()
	for _, f := range []struct {
		name string
		m    *gocv.Mat
	}{{"a", &a}, {"b", &b}, {"empty", &wall}} {
		if err := g.Frame(f.name, 1280, 720, f.m); err != nil {
			t.Fatal(err)
		}
	}
	ma, mb := a.Mean(), b.Mean()
	if ma.Val1 != mb.Val3 || ma.Val3 != mb.Val1 || ma.Val2 != mb.Val2 {
		t.Errorf("B is not A with red and blue swapped: A %v, B %v", ma, mb)
	}
	// The face (224,113 in the 512 px photo, scaled 2.5x) is in the frame.
	face := a.Region(imageRect(430, 160, 690, 410))
	fm := face.Mean()
	face.Close()
	if fm.Val3 < fm.Val1 { // skin: more red than blue
		t.Errorf("face region colour %v does not look like skin", fm)
	}
	if mw := wall.Mean(); mw.Val1 != mw.Val3 && (mw.Val3-mw.Val1 > 10 || mw.Val1-mw.Val3 > 10) {
		t.Errorf("wall colour %v", mw)
	}
}

func TestScriptsAndErrors(t *testing.T) {
	segs, err := ParseScript("empty:10, a:30,b:2")
	if err != nil || len(segs) != 3 || segs[1] != (Segment{"a", 30}) || len(FrameScenes(segs)) != 42 {
		t.Fatalf("%v %v", segs, err)
	}
	for _, bad := range []string{"", "a", "a:0", "a:x", "nobody:3", "a:1000001"} {
		if _, err := ParseScript(bad); err == nil {
			t.Errorf("script %q accepted", bad)
		}
	}
	CheckMats(t)
	g := newGen(t)
	m := gocv.NewMat()
	defer m.Close()
	if err := g.Frame("nobody", 64, 64, &m); err == nil || !strings.Contains(err.Error(), "unknown scene") {
		t.Errorf("unknown scene: %v", err)
	}
	for _, sz := range [][2]int{{8, 64}, {64, 9000}} {
		if err := g.Frame("a", sz[0], sz[1], &m); err == nil {
			t.Errorf("size %v accepted", sz)
		}
	}
	if _, err := NewGenerator(t.TempDir()); err == nil {
		t.Error("generator without photos")
	}
}

func TestWriteClipAndFolder(t *testing.T) {
	CheckMats(t)
	g := newGen(t)
	dir := t.TempDir()
	segs := []Segment{{"empty", 2}, {"a", 3}}
	clip := filepath.Join(dir, "c.avi")
	if err := g.WriteClip(clip, 320, 240, 15, segs, ClipOptions{}); err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if fps := vc.Get(gocv.VideoCaptureFPS); fps != 15 {
		t.Errorf("fps %v", fps)
	}
	m := gocv.NewMat()
	defer m.Close()
	n := 0
	for vc.Read(&m) {
		if m.Cols() != 320 || m.Rows() != 240 {
			t.Fatalf("frame %d: %dx%d", n, m.Cols(), m.Rows())
		}
		n++
	}
	if n != 5 {
		t.Errorf("%d frames, want 5", n)
	}
	if err := g.WriteClip(filepath.Join(dir, "x.avi"), 320, 240, 0, segs, ClipOptions{}); err == nil {
		t.Error("fps 0 accepted")
	}

	files, err := g.WriteFolder(filepath.Join(dir, "frames"), 160, 120, segs)
	if err != nil || len(files) != 5 || filepath.Base(files[4]) != "frame-00004.jpg" {
		t.Fatalf("%v %v", files, err)
	}
	if _, err := os.Stat(files[0]); err != nil {
		t.Fatal(err)
	}
}

func imageRect(x0, y0, x1, y1 int) image.Rectangle { return image.Rect(x0, y0, x1, y1) }
