package e2e

import (
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/display/browsertest"
	"github.com/kioskd/kioskd/internal/testmedia"
)

// sceneRun is a run of frames of one scene in a generated image folder.
type sceneRun struct {
	scene  testmedia.Scene
	frames int
}

var (
	sceneEmpty = testmedia.Scenes["empty"]
	sceneA     = testmedia.Scenes["a"]
)

// sceneFolder renders runs at 640x360 into numbered JPEGs in a temporary
// folder, which kioskd reads as an image-folder camera.
func sceneFolder(t *testing.T, runs ...sceneRun) string {
	t.Helper()
	dir := t.TempDir()
	g, err := testmedia.NewGenerator(filepath.Join(repoRoot, "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	i := 0
	for _, r := range runs {
		sc := r.scene
		sc.Sway = sc.HasFace()
		for range r.frames {
			if err := g.Render(sc, 640, 360, i, &frame); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, fmt.Sprintf("frame-%05d.jpg", i))
			if !gocv.IMWriteWithParams(p, frame, []int{gocv.IMWriteJpegQuality, 90}) {
				t.Fatalf("cannot write %s", p)
			}
			i++
		}
	}
	return dir
}

// kioskLoop is one pass of a person at the door, 6.2 s at 15 fps: nobody,
// a face too far away to use, person A close enough, nobody again for
// longer than a result stays on screen.
func kioskLoop(t *testing.T) string {
	t.Helper()
	far := testmedia.Scene{Subject: "a", Scale: 0.55} // a 68 px face: detected, below min_face_px 80
	dir := sceneFolder(t,
		sceneRun{sceneEmpty, 6},
		sceneRun{far, 24},
		sceneRun{sceneA, 18},
		sceneRun{sceneEmpty, 45})
	markFolder(t, dir)
	return dir
}

// kioskMarker is a green square drawn on the left of every frame of
// kioskLoop, in 640x360 frame pixels: the mirrored self-view shows it on
// the right.
var kioskMarker = image.Rect(20, 20, 100, 100)

func markFolder(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no frames in %s: %v", dir, err)
	}
	for _, p := range files {
		m := gocv.IMRead(p, gocv.IMReadColor)
		if m.Empty() {
			m.Close()
			t.Fatalf("cannot read %s", p)
		}
		gocv.Rectangle(&m, kioskMarker, color.RGBA{G: 255, A: 255}, -1)
		ok := gocv.IMWriteWithParams(p, m, []int{gocv.IMWriteJpegQuality, 90})
		m.Close()
		if !ok {
			t.Fatalf("cannot write %s", p)
		}
	}
}

// checkSelfView looks at a screenshot of kioskd's page at w×h: kioskLoop's
// marker shows mirrored, on the right of the screen, and the picture
// changes between two screenshots.
func checkSelfView(t *testing.T, page *browsertest.Page, w, h int, dir string) {
	t.Helper()
	// Wait for frames: the stream starts after the page's load event.
	for deadline := time.Now().Add(30 * time.Second); page.Eval(`String(document.getElementById("view").naturalWidth)`) == "0"; {
		if time.Now().After(deadline) {
			t.Fatal("the self-view shows no frame after 30 s")
		}
	}
	scale := max(float64(w)/640, float64(h)/360)
	ox, oy := (float64(w)-640*scale)/2, (float64(h)-360*scale)/2
	c := kioskMarker.Min.Add(kioskMarker.Max).Div(2)
	plain := image.Pt(int(ox+float64(c.X)*scale), int(oy+float64(c.Y)*scale))
	mirrored := image.Pt(w-plain.X, plain.Y)
	green := func(img image.Image, p image.Point) bool {
		r, g, b, _ := img.At(p.X, p.Y).RGBA()
		return g>>8 > 100 && r < g/2 && b < g/2
	}
	shot := func(name string) image.Image { return page.ScreenshotImage(filepath.Join(dir, name)) }
	first := shot("self-view-1.png")
	if !green(first, mirrored) || green(first, plain) {
		t.Errorf("marker: green at the mirrored place %v: %v, at the camera's place %v: %v; want only the mirrored one",
			mirrored, green(first, mirrored), plain, green(first, plain))
	}
	// The clip moves (a person walks up): some screenshot differs.
	for deadline := time.Now().Add(20 * time.Second); ; {
		if !sameImage(first, shot("self-view-2.png")) {
			return
		}
		if time.Now().After(deadline) {
			t.Error("the self-view did not change in 20 s")
			return
		}
	}
}

func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y += 4 {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x += 4 {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				return false
			}
		}
	}
	return true
}

// TestKioskScreenInBrowser is issue 6's browser test: a real headless
// Chromium shows kioskd's page while kioskd runs against the emulator, and
// the page says what a person at the door must read — "fit your face in the oval"
// with nobody there, "Come closer" for a face too far away, "Welcome" after
// a PASS, the face-mask message after a scripted fail:hasFaceMask, and the
// offline message once the emulator is down — with a screenshot of each.
// At 800x480 it also checks kioskd's own self-view: the clip's marker on
// the camera's left shows on the right of the screen, and the picture moves.
func TestKioskScreenInBrowser(t *testing.T) {
	t.Parallel()
	s := startSim(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Clip: kioskLoop(t), Realtime: true, Loop: true,
		Capture: "  max_failures: 100"})
	k := startKioskd(t, cfg)
	page := browsertest.Open(t, "http://"+displayAddr(t, k)+"/", browsertest.Size(800, 480))
	out := outDir(t)
	step := func(text, state, name string) {
		t.Helper()
		page.WaitText(text, 40*time.Second)
		if got := page.State(); got != state {
			t.Errorf("page shows %q in state %q, want %q", text, got, state)
		}
		page.Screenshot(filepath.Join(out, name+".png"))
	}
	step("fit your face in the oval", "ready", "1-ready")
	checkSelfView(t, page, 800, 480, out)
	step("Come closer", "guidance", "2-guidance-come-closer")
	step("Welcome", "pass", "3-pass-welcome")
	s.script(t, strings.TrimSuffix(strings.Repeat("fail:hasFaceMask,", 10), ","))
	step("Please take off your face mask", "fail", "4-fail-face-mask")
	s.signal(t, syscall.SIGTERM)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("emulator exited %d", code)
	}
	step("Offline — please call reception", "offline", "5-offline")

	for _, name := range []string{"1-ready", "2-guidance-come-closer", "3-pass-welcome", "4-fail-face-mask", "5-offline"} {
		data, err := os.ReadFile(filepath.Join(out, name+".png"))
		if err != nil || len(data) < 1000 || string(data[1:4]) != "PNG" {
			t.Errorf("screenshot %s: %d bytes, %v", name, len(data), err)
		}
	}
	if p := page.Problems(); len(p) > 0 {
		t.Errorf("console errors or CSP violations on the page: %q", p)
	}
	// What the screen said matches what kioskd decided.
	var results []string
	for _, d := range decisions(k.Output()) {
		results = append(results, fmt.Sprint(d["result"], ":", d["reason"]))
	}
	for _, want := range []string{"PASS:", "FAIL:hasFaceMask", "OFFLINE:transport"} {
		if !slices.Contains(results, want) {
			t.Errorf("decisions %v: no %s", results, want)
		}
	}
	k.signal(t, syscall.SIGTERM)
	if code := k.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
	t.Logf("screenshots in %s", out)
}
