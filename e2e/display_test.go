package e2e

import (
	"fmt"
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
	return sceneFolder(t,
		sceneRun{sceneEmpty, 6},
		sceneRun{far, 24},
		sceneRun{sceneA, 18},
		sceneRun{sceneEmpty, 45})
}

// TestKioskScreenInBrowser is issue 6's browser test: a real headless
// Chromium shows kioskd's page while kioskd runs against the emulator, and
// the page says what a person at the door must read — "Look at the camera"
// with nobody there, "Come closer" for a face too far away, "Welcome" after
// a PASS, the face-mask message after a scripted fail:hasFaceMask, and the
// offline message once the emulator is down — with a screenshot of each.
func TestKioskScreenInBrowser(t *testing.T) {
	t.Parallel()
	s := startSim(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Clip: kioskLoop(t), Realtime: true, Loop: true,
		Capture: "  max_failures: 100"})
	k := startKioskd(t, cfg)
	page := browsertest.Open(t, "http://"+displayAddr(t, k)+"/")
	out := outDir(t)
	step := func(text, state, name string) {
		t.Helper()
		page.WaitText(text, 40*time.Second)
		if got := page.State(); got != state {
			t.Errorf("page shows %q in state %q, want %q", text, got, state)
		}
		page.Screenshot(filepath.Join(out, name+".png"))
	}
	step("Look at the camera", "ready", "1-ready")
	step("Come closer", "guidance", "2-guidance-come-closer")
	step("Welcome", "pass", "3-pass-welcome")
	s.script(t, strings.TrimSuffix(strings.Repeat("fail:hasFaceMask,", 10), ","))
	step("Please remove your face mask", "fail", "4-fail-face-mask")
	s.signal(t, syscall.SIGTERM)
	if code := s.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("emulator exited %d", code)
	}
	step("Offline — please use your badge", "offline", "5-offline")

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
