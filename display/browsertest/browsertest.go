// Package browsertest opens the kiosk page in a real headless Chromium so
// that tests can assert what a person in front of the door would read: the
// display package's own tests and the end-to-end tests against a running
// kioskd use it alike.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Page is one tab showing a URL.
type Page struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	problems []string
	output   lockedBuffer // Chromium's own stderr, shown when something fails
}

// ChromiumPath finds the browser: $KIOSKD_CHROMIUM, then Debian's
// chromium, then the other usual names on PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv("KIOSKD_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("KIOSKD_CHROMIUM: %w", err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on PATH")
}

// InCI reports whether $CI asks for a strict run, in which a missing
// browser is a failure rather than a skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// OutDir is where tests put screenshots: $KIOSKD_TEST_OUT (created if
// needed), or a temporary directory of the test.
func OutDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KIOSKD_TEST_OUT")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: KIOSKD_TEST_OUT: %v", err)
	}
	return dir
}

// Option changes how Open starts the browser.
type Option func(*openOptions)

type openOptions struct{ width, height int }

// Size sets the window (and so the screenshot) to w×h CSS pixels, e.g.
// 1080×1920 for a portrait kiosk screen; the default is 1280×800.
func Size(w, h int) Option { return func(o *openOptions) { o.width, o.height = w, h } }

// Open starts a fresh headless Chromium (its own profile, no network
// services of its own) and loads url. Without a browser the test is
// skipped, unless $CI is set, where it fails. Everything stops when the
// test ends.
func Open(t testing.TB, url string, options ...Option) *Page {
	t.Helper()
	path, err := ChromiumPath()
	if err != nil {
		if InCI() {
			t.Fatalf("browsertest: %v; CI needs it: apt-get install -y chromium (scripts/install-deps.sh)", err)
		}
		t.Skipf("browsertest: %v; install it with apt-get install -y chromium (set CI=true to make this a failure)", err)
	}
	oo := openOptions{width: 1280, height: 800}
	for _, o := range options {
		o(&oo)
	}
	p := &Page{t: t}
	// The flags keep Chromium from reaching for the network on its own
	// (this machine has none, and waiting for it makes starts slow) and let
	// it run as root in a container.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(oo.width, oo.height),
		chromedp.CombinedOutput(&p.output),
	}
	base, cancelBase := context.WithTimeout(context.Background(), 5*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelBase()
	})
	p.ctx = ctx

	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				p.mu.Lock()
				p.problems = append(p.problems, m.String())
				p.mu.Unlock()
			}
		}
	}()
	// The window size includes no browser chrome in headless mode, but
	// the viewport is set too so that the page sees exactly w×h.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(oo.width), int64(oo.height)), chromedp.Navigate(url)); err != nil {
		t.Fatalf("browsertest: open %s: %v\nchromium said:\n%s", url, err, p.output.String())
	}
	return p
}

// Text is what the page shows: document.body.innerText (hidden elements
// excluded).
func (p *Page) Text() string {
	p.t.Helper()
	s, err := p.text()
	if err != nil {
		p.t.Fatalf("browsertest: read page text: %v", err)
	}
	return s
}

func (p *Page) text() (string, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

// WaitText waits until the visible text contains substr and returns it;
// after timeout the test fails with the text last seen.
func (p *Page) WaitText(substr string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		s, err := p.text()
		if err == nil && strings.Contains(s, substr) {
			return s
		}
		if err == nil {
			last = s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("browsertest: page did not show %q within %s; it shows %q (last error: %v)", substr, timeout, last, err)
		}
		// Poll: the page changes on its own, there is no event to wait on.
		select {
		case <-p.ctx.Done():
			p.t.Fatalf("browsertest: browser gone while waiting for %q: %v", substr, p.ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// State is the kiosk page's current state (its body's data-state).
func (p *Page) State() string {
	p.t.Helper()
	return p.Eval(`document.body ? (document.body.getAttribute("data-state") || "") : ""`)
}

// Eval evaluates a JavaScript expression that yields a string.
func (p *Page) Eval(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("browsertest: evaluate %q: %v", expr, err)
	}
	return s
}

// Screenshot saves the viewport as a PNG at path, creating its directory.
func (p *Page) Screenshot(path string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatalf("browsertest: screenshot: %v", err)
	}
}

// ScreenshotImage saves the viewport as a PNG at path, like Screenshot, and
// returns it decoded, for checks on its pixels.
func (p *Page) ScreenshotImage(path string) image.Image {
	p.t.Helper()
	p.Screenshot(path)
	data, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatalf("browsertest: screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		p.t.Fatalf("browsertest: screenshot %s: %v", path, err)
	}
	return img
}

// Problems are the console errors and uncaught exceptions seen so far,
// Content-Security-Policy violations included.
func (p *Page) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// lockedBuffer collects Chromium's output from its own goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
