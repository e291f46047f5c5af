package display_test

import (
	"context"
	"net"
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

	// TestScreens checks every state's pixels at three sizes; this one
	// checks the texts and the restart on the default window.
	steps := []struct {
		name   string
		u      display.Update
		text   string
		absent string
	}{
		{name: "01-ready", u: display.Update{State: display.StateReady}, text: "fit your face in the oval"},
		{name: "02-guidance", u: display.Update{State: display.StateGuidance, Reason: "too_small"}, text: "Come closer"},
		{name: "03-checking", u: display.Update{State: display.StateChecking}, text: "Checking…"},
		{name: "04-pass", u: display.Update{State: display.StatePass, Name: "Ana Pérez"}, text: "Welcome, Ana", absent: "Pérez"},
		{name: "05-fail-mask", u: display.Update{State: display.StateFail, Reason: "hasFaceMask"}, text: "Please take off your face mask"},
		{name: "06-offline", u: display.Update{State: display.StateOffline}, text: "Offline — please call reception"},
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
		page.Screenshot(filepath.Join(out, st.name+".png"))
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
