package e2e

import (
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPreviewStream reads JPEG parts from the self-view's MJPEG stream (on
// by default), each at most 640 px on its long side; with preview off the
// endpoint does not exist.
func TestPreviewStream(t *testing.T) {
	t.Parallel()
	s := startSim(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true, Loop: true, DisplayX: "  preview: true\n  preview_fps: 5"})
	k := startKioskd(t, cfg)
	addr := displayAddr(t, k)
	resp, err := http.Get("http://" + addr + "/preview.mjpeg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/x-mixed-replace") {
		t.Fatalf("preview content type %q", ct)
	}
	mr := multipart.NewReader(io.LimitReader(resp.Body, 4<<20), "kioskdframe")
	for i := range 2 {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("preview frame %d: %v", i, err)
		}
		cfg, err := jpeg.DecodeConfig(part)
		if err != nil {
			t.Fatalf("preview frame %d is not a JPEG: %v", i, err)
		}
		if max(cfg.Width, cfg.Height) > 640 || cfg.Width < 100 {
			t.Errorf("self-view frame is %dx%d, want at most 640 px on the long side", cfg.Width, cfg.Height)
		}
	}
	k.signal(t, syscall.SIGTERM)
	if code := k.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}

	cfg2 := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true, Loop: true, DisplayX: "  preview: false"})
	k2 := startKioskd(t, cfg2)
	resp2, err := http.Get("http://" + displayAddr(t, k2) + "/preview.mjpeg")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotFound {
		t.Fatalf("preview off: got %s, want 404", resp2.Status)
	}
	k2.signal(t, syscall.SIGTERM)
	k2.wait(t, 10*time.Second)
}

var displayRE = regexp.MustCompile(`"msg":"listening".*"server":"display".*"addr":"([^"]+)"`)

// displayAddr is the kiosk page's address from kioskd's log.
func displayAddr(t *testing.T, k *proc) string {
	t.Helper()
	return displayRE.FindStringSubmatch(k.waitLine(t, displayRE, 20*time.Second))[1]
}
