package display_test

import (
	"context"
	"image"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/display/browsertest"
)

// serveOn runs s on addr until the returned stop is called.
func serveOn(t *testing.T, s *display.Server, addr string) (url string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// corner reads the colour of the top-left pixel of a PNG: the page's
// background, which tells that the stylesheet was allowed to apply.
func corner(t *testing.T, path string) (r, g, b uint8) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	if img.Bounds().Dx() < 100 || img.Bounds().Dy() < 100 {
		t.Fatalf("%s is only %v", path, img.Bounds())
	}
	pt := img.Bounds().Min.Add(image.Pt(5, 5))
	cr, cg, cb, _ := img.At(pt.X, pt.Y).RGBA()
	return uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8)
}

func near(a, b uint8) bool { return a+8 >= b && b+8 >= a }

func TestBrowserShowsEveryState(t *testing.T) {
	cfg := testConfig()
	cfg.GreetByName = true
	s, err := display.New(cfg, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	url, stop := serveOn(t, s, "127.0.0.1:0")
	page := browsertest.Open(t, url)
	out := filepath.Join(browsertest.OutDir(t), "display")

	steps := []struct {
		name    string
		u       display.Update
		text    string
		absent  string
		bg      [3]uint8 // expected background; zero means not checked
		checkBG bool
	}{
		{name: "01-ready", u: display.Update{State: display.StateReady}, text: "Look at the camera", checkBG: true},
		{name: "02-guidance", u: display.Update{State: display.StateGuidance, Reason: "too_small"}, text: "Come closer"},
		{name: "03-checking", u: display.Update{State: display.StateChecking}, text: "Checking…", bg: [3]uint8{0x0b, 0x2a, 0x66}, checkBG: true},
		{name: "04-pass", u: display.Update{State: display.StatePass, Name: "Ana Pérez"}, text: "Welcome, Ana", absent: "Pérez",
			bg: [3]uint8{0x00, 0x6b, 0x2d}, checkBG: true},
		{name: "05-fail-mask", u: display.Update{State: display.StateFail, Reason: "hasFaceMask"}, text: "Please remove your face mask",
			bg: [3]uint8{0xa4, 0x00, 0x1d}, checkBG: true},
		{name: "06-offline", u: display.Update{State: display.StateOffline}, text: "Offline — please use your badge",
			bg: [3]uint8{0x1a, 0x1a, 0x1a}, checkBG: true},
		{name: "07-lockout", u: display.Update{State: display.StateLockout, Until: time.Now().Add(65 * time.Second)},
			text: "Too many attempts — try again in 1:0"},
	}
	for _, st := range steps {
		s.Publish(st.u)
		got := page.WaitText(st.text, 10*time.Second)
		if st.absent != "" && strings.Contains(got, st.absent) {
			t.Errorf("%s: page shows %q: %q", st.name, st.absent, got)
		}
		if state := page.State(); state != st.u.State.String() {
			t.Errorf("%s: data-state = %q, want %q", st.name, state, st.u.State)
		}
		if strings.Contains(got, "Reconnecting") {
			t.Errorf("%s: page says it is reconnecting while connected", st.name)
		}
		shot := filepath.Join(out, st.name+".png")
		page.Screenshot(shot)
		if st.checkBG {
			r, g, b := corner(t, shot)
			if !near(r, st.bg[0]) || !near(g, st.bg[1]) || !near(b, st.bg[2]) {
				t.Errorf("%s: background #%02x%02x%02x, want #%02x%02x%02x (stylesheet blocked?)", st.name, r, g, b, st.bg[0], st.bg[1], st.bg[2])
			}
		}
	}
	if p := page.Problems(); len(p) > 0 {
		t.Errorf("console errors (CSP violations?): %q", p)
	}

	// The agent restarts: the page says so, then follows the new process
	// on the same address without anyone reloading it.
	addr := strings.TrimPrefix(url, "http://")
	stop()
	page.WaitText("Reconnecting…", 10*time.Second)
	page.Screenshot(filepath.Join(out, "08-reconnecting.png"))
	s2, err := display.New(cfg, discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s2.Publish(display.Update{State: display.StateChecking})
	serveOn(t, s2, addr)
	got := page.WaitText("Checking…", 15*time.Second)
	if strings.Contains(got, "Reconnecting") {
		t.Errorf("page still says Reconnecting after the restart: %q", got)
	}
	page.Screenshot(filepath.Join(out, "09-after-restart.png"))
	t.Logf("screenshots in %s", out)
}
