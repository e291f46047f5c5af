package display_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	_ "image/png" // screenshots, for loadImage
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/display/browsertest"
)

// The self-view frames the tests send: 640×360 like a 720p camera after
// the agent's downscale, the astronaut from testdata in the middle, a green
// marker on the frame's left and a block whose grey level changes with
// every frame.
const (
	frameW, frameH = 640, 360
)

var (
	markerRect = image.Rect(230, 20, 290, 80)  // green, on the camera frame's left of centre
	blockRect  = image.Rect(370, 20, 410, 60)  // grey, changes every frame
	faceRect   = image.Rect(109, 66, 559, 516) // the astronaut, her face at the frame's centre
)

// loadImage decodes a JPEG or PNG file.
func loadImage(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// selfViewFrame renders frame n; the block's grey differs for n = 0..4.
func selfViewFrame(t *testing.T, face image.Image, n int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, frameW, frameH))
	for y := range frameH {
		for x := range frameW {
			img.Set(x, y, color.RGBA{R: 40, G: uint8(60 + y/6), B: uint8(90 + x/8), A: 255})
		}
	}
	// Nearest-neighbour scale of the portrait into faceRect.
	fb := face.Bounds()
	for y := faceRect.Min.Y; y < min(faceRect.Max.Y, frameH); y++ {
		for x := faceRect.Min.X; x < min(faceRect.Max.X, frameW); x++ {
			sx := fb.Min.X + (x-faceRect.Min.X)*fb.Dx()/faceRect.Dx()
			sy := fb.Min.Y + (y-faceRect.Min.Y)*fb.Dy()/faceRect.Dy()
			img.Set(x, y, face.At(sx, sy))
		}
	}
	draw.Draw(img, markerRect, image.NewUniform(color.RGBA{G: 255, A: 255}), image.Point{}, draw.Src)
	g := uint8((n * 53) % 256)
	draw.Draw(img, blockRect, image.NewUniform(color.RGBA{R: g, G: g, B: g, A: 255}), image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// onScreen maps a point of the camera frame to the screen: the page scales
// the frame to cover the screen, centred, and mirrors it.
func onScreen(p image.Point, w, h int, mirrored bool) image.Point {
	scale := max(float64(w)/frameW, float64(h)/frameH)
	ox := (float64(w) - frameW*scale) / 2
	oy := (float64(h) - frameH*scale) / 2
	x := ox + float64(p.X)*scale
	if mirrored {
		x = float64(w) - x
	}
	return image.Pt(int(x), int(oy+float64(p.Y)*scale))
}

func center(r image.Rectangle) image.Point { return r.Min.Add(r.Max).Div(2) }

func rgb(img image.Image, p image.Point) [3]int {
	r, g, b, _ := img.At(p.X, p.Y).RGBA()
	return [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
}

func closeTo(a, b [3]int, tol int) bool {
	for i := range a {
		if a[i] > b[i]+tol || b[i] > a[i]+tol {
			return false
		}
	}
	return true
}

func hexRGB(s string) [3]int {
	var c [3]int
	fmt.Sscanf(s, "#%02x%02x%02x", &c[0], &c[1], &c[2])
	return c
}

// toneColours are the page's default colours (pageCSS).
var toneColours = map[string]string{
	"idle": "#ffffff", "guide": "#ffd400", "hold": "#00d4ff", "busy": "#1f4fd1",
	"pass": "#007a3d", "ok": "#00628f", "fail": "#c4001d", "warn": "#ffb000",
}

// layout is what the page reports about itself.
type layout struct {
	FontPx, InnerW, InnerH     float64
	Overflow                   bool
	BandTop                    float64
	OvalL, OvalT, OvalW, OvalH float64
	OvalBorder                 float64
	ViewL, ViewT, ViewW, ViewH float64
	Natural                    int
	Tone, State, Hint          string
}

const layoutJS = `JSON.stringify((function () {
  var m = document.getElementById("msg"), b = document.getElementById("band");
  var o = document.getElementById("oval"), v = document.getElementById("view");
  var or = o.getBoundingClientRect(), vr = v ? v.getBoundingClientRect() : {left: 0, top: 0, width: 0, height: 0};
  return {
    FontPx: parseFloat(getComputedStyle(m).fontSize), InnerW: innerWidth, InnerH: innerHeight,
    Overflow: b.scrollHeight > b.clientHeight + 1 || m.scrollWidth > m.clientWidth + 1 || b.getBoundingClientRect().top < 0,
    BandTop: b.getBoundingClientRect().top,
    OvalL: or.left, OvalT: or.top, OvalW: or.width, OvalH: or.height,
    OvalBorder: parseFloat(getComputedStyle(o).borderLeftWidth),
    ViewL: vr.left, ViewT: vr.top, ViewW: vr.width, ViewH: vr.height,
    Natural: v ? v.naturalWidth : 0,
    Tone: document.body.className.replace("tone-", ""), State: document.body.getAttribute("data-state"),
    Hint: document.body.getAttribute("data-hint") || ""
  };
})())`

// overflowJS puts each text in the message band and lists those that do
// not fit, then puts the shown text back.
const overflowJS = `JSON.stringify((function (texts) {
  var m = document.getElementById("msg"), b = document.getElementById("band"), keep = m.textContent, bad = [];
  texts.forEach(function (t) {
    m.textContent = t;
    if (b.scrollHeight > b.clientHeight + 1 || m.scrollWidth > m.clientWidth + 1) { bad.push(t); }
  });
  m.textContent = keep;
  return bad;
})(%s))`

func (p layoutPage) layout() layout {
	p.t.Helper()
	var l layout
	if err := json.Unmarshal([]byte(p.Eval(layoutJS)), &l); err != nil {
		p.t.Fatalf("layout: %v", err)
	}
	return l
}

type layoutPage struct {
	*browsertest.Page
	t *testing.T
}

func catalogTexts(t *testing.T, lang string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("catalog", lang+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type screenSize struct {
	name string
	w, h int
}

var screenSizes = []screenSize{{"portrait", 1080, 1920}, {"landscape", 1920, 1080}, {"small", 800, 480}}

// shot is one screenshot for docs/screens.md.
type shot struct {
	size, name, caption, path string
}

// TestScreens shows every state at the three screen sizes in real
// Chromium, with the self-view running, and checks the pixels: the
// self-view fills the screen, is mirrored and moves; the oval and the band
// have the state's colour; the text is at least 5% of the screen height and
// fits its band, in every language.
func TestScreens(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium three times")
	}
	face := loadImage(t, filepath.Join("..", "testdata", "astronaut.jpg"))
	now := time.Now()
	steps := []struct {
		name string
		u    display.Update
		key  string // catalog key of the expected text
		tone string
	}{
		{"ready", display.Update{State: display.StateReady}, "ready", "idle"},
		{"guidance-move-left", display.Update{State: display.StateGuidance, Reason: display.GuideMoveLeft}, "guidance.move_left", "guide"},
		{"guidance-closer", display.Update{State: display.StateGuidance, Reason: "too_small"}, "guidance.closer", "guide"},
		{"guidance-face-screen", display.Update{State: display.StateGuidance, Reason: "too_dark"}, "guidance.face_screen", "guide"},
		{"guidance-one-person", display.Update{State: display.StateGuidance, Reason: "multiple_faces"}, "guidance.one_person", "guide"},
		{"hold-still", display.Update{State: display.StateGuidance, Reason: display.GuideHoldStill}, "guidance.hold_still", "hold"},
		{"checking", display.Update{State: display.StateChecking, Since: now, Until: now.Add(time.Hour)}, "checking", "busy"},
		{"welcome", display.Update{State: display.StatePass, Name: "Ana Pérez"}, "pass.name", "pass"},
		{"not-recognised", display.Update{State: display.StateFail, Reason: "faceMatchFailed"}, "fail.faceMatchFailed", "fail"},
		{"mask", display.Update{State: display.StateFail, Reason: "hasFaceMask"}, "fail.hasFaceMask", "fail"},
		{"lenses", display.Update{State: display.StateFail, Reason: "hasLenses"}, "fail.hasLenses", "fail"},
		{"spoof", display.Update{State: display.StateFail, Reason: "spoofAttempt"}, "fail.spoofAttempt", "fail"},
		{"see-reception-revoked", display.Update{State: display.StateSeeReception, Reason: display.ReasonRevoked}, "see_reception.revoked", "fail"},
		{"see-reception-no-credential", display.Update{State: display.StateSeeReception, Reason: display.ReasonNoCredential}, "see_reception.no_credential", "fail"},
		{"see-reception-panel", display.Update{State: display.StateSeeReception, Reason: display.ReasonPanelRefused}, "see_reception.panel_refused", "fail"},
		{"offline", display.Update{State: display.StateOffline}, "offline", "warn"},
		{"recorded", display.Update{State: display.StateRecorded}, "recorded", "ok"},
		{"lockout", display.Update{State: display.StateLockout, Until: now.Add(time.Hour)}, "lockout", "fail"},
		{"camera-down", display.Update{State: display.StateCameraDown}, "camera_down", "warn"},
		{"service-unavailable", display.Update{State: display.StateServiceUnavailable}, "service_unavailable", "warn"},
	}
	en := catalogTexts(t, "en")
	frames := make([][]byte, 5)
	for n := range frames {
		frames[n] = selfViewFrame(t, face, n)
	}
	out := filepath.Join(browsertest.OutDir(t), "screens")
	var shots []shot
	for _, size := range screenSizes {
		t.Run(size.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.GreetByName = true
			cfg.PreviewFPS = 15
			s := newServer(t, cfg)
			url := serve(t, s)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			t.Cleanup(func() { cancel(); wg.Wait() })
			// The camera: a new frame every 100 ms until the test ends.
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for n := 0; ; n++ {
					s.PublishPreview(display.Frame{JPEG: frames[n%len(frames)], MinFace: 120.0 / 720, MaxFace: 0.9})
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
			}()
			page := layoutPage{browsertest.Open(t, url, browsertest.Size(size.w, size.h)), t}
			dir := filepath.Join(out, size.name)
			for i, st := range steps {
				s.Publish(st.u)
				want := strings.ReplaceAll(en[st.key], "{name}", "Ana")
				want, _, _ = strings.Cut(want, "{time}")
				page.WaitText(want, 10*time.Second)
				// The image must have arrived before the pixels mean anything.
				var l layout
				for l = page.layout(); l.Natural == 0 || l.State != st.u.State.String(); l = page.layout() {
				}
				path := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", i+1, st.name))
				img := page.ScreenshotImage(path)
				shots = append(shots, shot{size.name, st.name, want, path})
				if b := img.Bounds(); b.Dx() != size.w || b.Dy() != size.h {
					t.Fatalf("%s: screenshot is %v, want %dx%d", st.name, b, size.w, size.h)
				}
				if l.Tone != st.tone {
					t.Errorf("%s: tone %q, want %q", st.name, l.Tone, st.tone)
				}
				if l.FontPx < 0.05*l.InnerH-0.5 {
					t.Errorf("%s: text is %.0f px, less than 5%% of %.0f", st.name, l.FontPx, l.InnerH)
				}
				if l.Overflow {
					t.Errorf("%s: the text does not fit its band", st.name)
				}
				if l.ViewL != 0 || l.ViewT != 0 || int(l.ViewW) != size.w || int(l.ViewH) != size.h || l.Natural != frameW {
					t.Errorf("%s: the self-view is %+v, not the whole screen", st.name, l)
				}
				tone := hexRGB(toneColours[st.tone])
				ovalEdge := image.Pt(int(l.OvalL+l.OvalBorder/2), int(l.OvalT+l.OvalH/2))
				if got := rgb(img, ovalEdge); !closeTo(got, tone, 16) {
					t.Errorf("%s: oval at %v is %v, want %v", st.name, ovalEdge, got, tone)
				}
				if l.OvalH < 0.1*float64(size.h) || l.OvalW < 0.1*float64(size.w) {
					t.Errorf("%s: oval is only %.0fx%.0f", st.name, l.OvalW, l.OvalH)
				}
				if l.OvalT+l.OvalH > l.BandTop {
					t.Errorf("%s: the band (top %.0f) hides the oval's bottom (%.0f)", st.name, l.BandTop, l.OvalT+l.OvalH)
				}
				bandPx := image.Pt(3, int(l.BandTop)+3)
				if got := rgb(img, bandPx); !closeTo(got, tone, 16) {
					t.Errorf("%s: band at %v is %v, want %v", st.name, bandPx, got, tone)
				}
				if i == 0 {
					checkMirroredAndLive(t, page, img, size, dir)
				}
			}
			// Every text of every language fits the band at this size, and
			// each language renders (one screenshot each).
			for _, lang := range display.Languages() {
				texts := catalogTexts(t, lang)
				var list []string
				for _, k := range sortedKeys(texts) {
					list = append(list, strings.NewReplacer("{name}", "Maximiliane", "{time}", "12:59").Replace(texts[k]))
				}
				arg, _ := json.Marshal(list)
				var bad []string
				if err := json.Unmarshal([]byte(page.Eval(fmt.Sprintf(overflowJS, arg))), &bad); err != nil {
					t.Fatal(err)
				}
				for _, b := range bad {
					t.Errorf("%s: %q does not fit the band", lang, b)
				}
				if err := s.SetMessages(lang, nil); err != nil {
					t.Fatal(err)
				}
				s.Publish(display.Update{State: display.StateGuidance, Reason: display.GuideMoveRight})
				page.WaitText(texts["guidance.move_right"], 10*time.Second)
				path := filepath.Join(dir, "lang-"+lang+".png")
				page.Screenshot(path)
				shots = append(shots, shot{size.name, "lang-" + lang, texts["guidance.move_right"], path})
				if got := page.Eval(`document.documentElement.lang`); got != lang {
					t.Errorf("page lang = %q after SetMessages(%q)", got, lang)
				}
			}
			if p := page.Problems(); len(p) > 0 {
				t.Errorf("console errors (CSP violations?): %q", p)
			}
		})
	}
	if !t.Failed() {
		writeScreensDoc(t, out, shots)
	}
}

// checkMirroredAndLive: the green marker on the camera frame's left shows
// on the right of the screen, and the picture changes from frame to frame.
func checkMirroredAndLive(t *testing.T, page layoutPage, img image.Image, size screenSize, dir string) {
	t.Helper()
	green := func(c [3]int) bool { return c[1] > 100 && c[0] < c[1]/2 && c[2] < c[1]/2 }
	mirrored := onScreen(center(markerRect), size.w, size.h, true)
	plain := onScreen(center(markerRect), size.w, size.h, false)
	if got := rgb(img, mirrored); !green(got) {
		t.Errorf("%s: no green marker at %v where the mirrored frame puts it (got %v)", size.name, mirrored, got)
	}
	if got := rgb(img, plain); green(got) {
		t.Errorf("%s: the marker is at %v: the self-view is not mirrored", size.name, plain)
	}
	block := onScreen(center(blockRect), size.w, size.h, true)
	first := rgb(img, block)
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; ; n++ {
		if got := rgb(page.ScreenshotImage(filepath.Join(dir, "live.png")), block); !closeTo(got, first, 6) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the self-view did not change in 10 s (%d screenshots)", size.name, n+1)
			return
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeScreensDoc writes screens.md next to the screenshots; with
// $KIOSKD_SCREENS_DOCS (make screens) it also writes that directory's
// screens.md with small JPEG copies in screens/, which is how
// docs/screens.md is made.
func writeScreensDoc(t *testing.T, out string, shots []shot) {
	t.Helper()
	var md strings.Builder
	docs := os.Getenv("KIOSKD_SCREENS_DOCS")
	md.WriteString("# The kiosk screen\n\n")
	md.WriteString("Generated by `make screens` (`go test ./display -run TestScreens` with `KIOSKD_SCREENS_DOCS`):\n")
	md.WriteString("every state in real headless Chromium with the self-view running (a test picture: the astronaut\n")
	md.WriteString("from testdata, a green marker on the camera frame's left that shows on the right because the view\n")
	md.WriteString("is mirrored, a grey block that changes with every frame). The test checks the pixels: the view\n")
	md.WriteString("fills the screen, is mirrored and moves; the oval and the band have the state's colour; the text\n")
	md.WriteString("is at least 5% of the screen height and fits its band in every language. Screenshots are scaled\n")
	md.WriteString("down here; the full-size ones are in `out/test/screens/` after `make test`. What each state\n")
	md.WriteString("means, the kiosk unit and the customisation are in [kiosk-screen.md](kiosk-screen.md).\n")
	current := ""
	for _, s := range shots {
		if s.size != current {
			current = s.size
			fmt.Fprintf(&md, "\n## %s\n\n", current)
		}
		rel := filepath.Join(s.size, filepath.Base(s.path))
		if docs != "" {
			rel = filepath.Join("screens", s.size+"-"+strings.TrimSuffix(filepath.Base(s.path), ".png")+".jpg")
			factor := 4
			if s.size == "small" {
				factor = 2
			}
			if err := thumbnail(loadImage(t, s.path), factor, filepath.Join(docs, rel)); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Fprintf(&md, "<img src=\"%s\" alt=\"%s\" title=\"%s: %s\">\n", rel, s.name, s.name, s.caption)
	}
	dest := filepath.Join(out, "screens.md")
	if docs != "" {
		dest = filepath.Join(docs, "screens.md")
	}
	if err := os.WriteFile(dest, []byte(md.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s, index %s", out, dest)
}

// thumbnail writes img scaled down by factor (box filter) as a JPEG.
func thumbnail(img image.Image, factor int, path string) error {
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx()/factor, b.Dy()/factor))
	for y := range dst.Bounds().Dy() {
		for x := range dst.Bounds().Dx() {
			var r, g, bl uint32
			for dy := range factor {
				for dx := range factor {
					cr, cg, cb, _ := img.At(b.Min.X+x*factor+dx, b.Min.Y+y*factor+dy).RGBA()
					r, g, bl = r+cr>>8, g+cg>>8, bl+cb>>8
				}
			}
			n := uint32(factor * factor)
			dst.Set(x, y, color.RGBA{uint8(r / n), uint8(g / n), uint8(bl / n), 255})
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
