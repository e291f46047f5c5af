package display_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/display"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig() config.Display {
	return config.Default().Display
}

func newServer(t *testing.T, cfg config.Display, opts ...display.Option) *display.Server {
	t.Helper()
	s, err := display.New(cfg, discard(), prometheus.NewRegistry(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// serve runs s on a loopback port until the test ends and returns its URL.
func serve(t *testing.T, s *display.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, h http.Handler, path, host string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = host
	req.RemoteAddr = "127.0.0.1:40000" // the kiosk's own browser
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var inline = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

func TestHeaders(t *testing.T) {
	cfg := testConfig()
	cfg.Preview = false
	s := newServer(t, cfg)
	h := s.Handler()
	for _, path := range []string{"/", "/healthz", "/nope"} {
		rec := get(t, h, path, "127.0.0.1:8088")
		hdr := rec.Header()
		for k, want := range map[string]string{
			"Cache-Control":          "no-store",
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "no-referrer",
		} {
			if got := hdr.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		csp := hdr.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "connect-src 'self'", "img-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP allows unsafe sources: %q", path, csp)
		}
	}

	rec := get(t, h, "/", "localhost:8088")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	csp := rec.Header().Get("Content-Security-Policy")
	blocks := inline.FindAllStringSubmatch(body, -1)
	if len(blocks) != 2 {
		t.Fatalf("page has %d inline blocks, want one style and one script", len(blocks))
	}
	for _, b := range blocks {
		sum := sha256.Sum256([]byte(b[2]))
		want := b[1] + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q does not allow the page's inline %s (want %s)", csp, b[1], want)
		}
	}
	for _, banned := range []string{"http://", "https://", "@import", "url("} {
		if strings.Contains(body, banned) {
			t.Errorf("page references an external resource (%q)", banned)
		}
	}
	if !strings.Contains(body, "fit your face in the oval") || !strings.Contains(body, `lang="en"`) {
		t.Errorf("page does not show the ready state in English")
	}
	if strings.Contains(body, `id="view"`) {
		t.Errorf("page shows a preview although display.preview is off")
	}
	if rec := get(t, h, "/preview.mjpeg", "localhost"); rec.Code != http.StatusNotFound {
		t.Errorf("preview with display.preview off = %d, want 404", rec.Code)
	}
	if rec := get(t, h, "/healthz", "localhost"); rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("healthz = %d %q", rec.Code, rec.Body.String())
	}
}

func TestHostCheck(t *testing.T) {
	cfg := testConfig()
	cfg.Listen = "kiosk-box:8088"
	cfg.AllowedHosts = []string{"door1.example.org", "screen.lan:9000"}
	h := newServer(t, cfg).Handler()
	for host, want := range map[string]int{
		"127.0.0.1:8088":          200,
		"localhost:8088":          200,
		"LOCALHOST.":              200,
		"[::1]:8088":              200,
		"192.168.1.20:8088":       200, // an IP literal cannot be rebound
		"kiosk-box:8088":          200,
		"door1.example.org":       200,
		"door1.example.org:8088":  200,
		"screen.lan:9000":         200,
		"screen.lan:9001":         421,
		"attacker.example":        421,
		"attacker.example:8088":   421,
		"localhost.attacker.com":  421,
		"":                        421,
		"door1.example.org.evil":  421,
		"127.0.0.1.nip.io:8088":   421,
		"kiosk-box.attacker:8088": 421,
	} {
		for _, path := range []string{"/", "/events"} {
			if path == "/events" && want == 200 {
				continue // a stream; checked elsewhere
			}
			if rec := get(t, h, path, host); rec.Code != want {
				t.Errorf("GET %s Host %q = %d, want %d", path, host, rec.Code, want)
			}
		}
	}
}

type sseEvent struct {
	id, event, data string
	comment         bool
}

// sseReader reads one event (or heartbeat comment) at a time.
type sseReader struct {
	t  *testing.T
	br *bufio.Reader
}

func openEvents(t *testing.T, base string) (*sseReader, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /events: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{t: t, br: bufio.NewReader(resp.Body)}, resp
}

func (r *sseReader) next() sseEvent {
	r.t.Helper()
	var ev sseEvent
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("reading the event stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			return ev
		case strings.HasPrefix(line, ":"):
			ev.comment = true
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		case strings.HasPrefix(line, "retry: "):
			ev.event = "retry:" + line[7:]
		}
	}
}

type view struct {
	State       string  `json:"state"`
	Tone        string  `json:"tone"`
	Hint        string  `json:"hint"`
	Text        string  `json:"text"`
	RemainingMS *int64  `json:"remaining_ms"`
	TotalMS     *int64  `json:"total_ms"`
	Guide       float64 `json:"guide"`
}

// state skips heartbeats and returns the next state event.
func (r *sseReader) state() (view, string) {
	r.t.Helper()
	for {
		ev := r.next()
		if ev.event != "state" {
			continue
		}
		var v view
		if err := json.Unmarshal([]byte(ev.data), &v); err != nil {
			r.t.Fatalf("state data %q: %v", ev.data, err)
		}
		return v, ev.data
	}
}

func TestEventStream(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	cfg := testConfig()
	cfg.GreetByName = true
	s := newServer(t, cfg, display.WithClock(func() time.Time { return now }))
	base := serve(t, s)
	r, resp := openEvents(t, base)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q", ct)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("event stream is cacheable")
	}
	if ev := r.next(); ev.event != "retry:2000" {
		t.Fatalf("first frame = %+v, want retry: 2000", ev)
	}
	if v, _ := r.state(); v.State != "ready" || v.Text != "Look at the screen and fit your face in the oval" {
		t.Fatalf("initial state = %+v", v)
	}

	steps := []struct {
		u        display.Update
		state    string
		text     string
		tone     string
		mustNot  []string
		lockout  int64
		wantTime bool
		total    int64
		hint     string
	}{
		{u: display.Update{State: display.StateGuidance, Reason: "too_small"}, state: "guidance", text: "Come closer", tone: "guide", hint: "closer"},
		{u: display.Update{State: display.StateGuidance, Reason: "multiple_faces"}, text: "One person at a time, please", hint: "one_person"},
		{u: display.Update{State: display.StateGuidance, Reason: display.GuideMoveLeft}, text: "Move to your left", tone: "guide", hint: "move_left"},
		{u: display.Update{State: display.StateGuidance, Reason: "too_dark"}, text: "Face the screen and take off any hat or cap", hint: "face_screen"},
		{u: display.Update{State: display.StateGuidance, Reason: display.GuideHoldStill}, text: "Hold still", tone: "hold", hint: "hold_still"},
		{u: display.Update{State: display.StateGuidance, Reason: "something_new"}, text: "Fit your face in the oval", mustNot: []string{"something_new"}},
		{u: display.Update{State: display.StateChecking}, text: "Checking…", tone: "busy"},
		{u: display.Update{State: display.StatePass, Name: "Ana María López 7c1f-token"}, text: "Welcome, Ana", tone: "pass",
			mustNot: []string{"López", "7c1f", "María"}},
		{u: display.Update{State: display.StatePass}, text: "Welcome"},
		{u: display.Update{State: display.StateFail, Reason: "hasFaceMask"}, text: "Please take off your face mask", tone: "fail", mustNot: []string{"hasFaceMask"}},
		{u: display.Update{State: display.StateFail, Reason: "faceMatchFailed"}, text: "No match — please try again"},
		{u: display.Update{State: display.StateFail, Reason: "score=0.42"}, text: "Not recognised — please try again", mustNot: []string{"0.42"}},
		{u: display.Update{State: display.StateSeeReception, Reason: display.ReasonRevoked}, text: "Your access is not active — please see reception", tone: "fail"},
		{u: display.Update{State: display.StateOffline}, text: "Offline — please call reception", tone: "warn"},
		{u: display.Update{State: display.StateRecorded}, text: "Recorded — will sync", tone: "ok"},
		{u: display.Update{State: display.StateLockout, Until: now.Add(90 * time.Second)}, text: "Too many attempts — try again in {time}", lockout: 90000, wantTime: true},
		{u: display.Update{State: display.StateCameraDown}, text: "Camera unavailable — please call reception"},
		{u: display.Update{State: display.StateChecking, Since: now.Add(-time.Second), Until: now.Add(3 * time.Second)}, text: "Checking…",
			lockout: 3000, wantTime: true, total: 4000},
		{u: display.Update{State: display.State(99)}, state: "ready", text: "Look at the screen and fit your face in the oval"},
	}
	for _, st := range steps {
		s.Publish(st.u)
		v, raw := r.state()
		wantState := st.state
		if wantState == "" {
			wantState = st.u.State.String()
		}
		if v.Hint != st.hint {
			t.Errorf("Publish(%+v): hint %q, want %q", st.u, v.Hint, st.hint)
		}
		if (v.TotalMS == nil) != (st.total == 0) || (v.TotalMS != nil && *v.TotalMS != st.total) {
			t.Errorf("Publish(%+v): total_ms = %v, want %d", st.u, v.TotalMS, st.total)
		}
		if v.State != wantState || v.Text != st.text || (st.tone != "" && v.Tone != st.tone) {
			t.Errorf("Publish(%+v) streamed %+v, want state %q text %q tone %q", st.u, v, wantState, st.text, st.tone)
		}
		if st.wantTime != (v.RemainingMS != nil) || (v.RemainingMS != nil && *v.RemainingMS != st.lockout) {
			t.Errorf("Publish(%+v): remaining_ms = %v, want %d", st.u, v.RemainingMS, st.lockout)
		}
		for _, bad := range st.mustNot {
			if strings.Contains(raw, bad) {
				t.Errorf("Publish(%+v) leaked %q to the screen: %s", st.u, bad, raw)
			}
		}
	}

	// Repeating the current state sends nothing; the next change arrives next.
	s.Publish(display.Update{State: display.StateCameraDown})
	s.Publish(display.Update{State: display.StateCameraDown})
	s.Publish(display.Update{State: display.StateCameraDown})
	s.Publish(display.Update{State: display.StateChecking})
	downs := 0
	for v, _ := r.state(); v.State != "checking"; v, _ = r.state() {
		if v.State != "camera_down" {
			t.Fatalf("unexpected state %+v", v)
		}
		downs++
	}
	// Streams send the latest state, so camera_down may be skipped, but a
	// repeat must never be sent again.
	if downs > 1 {
		t.Errorf("a repeated update was streamed %d times", downs)
	}

	// A page that opens later gets the latest state at once.
	s.Publish(display.Update{State: display.StateFail, Reason: "hasLenses"})
	late, _ := openEvents(t, base)
	late.next() // retry
	if v, _ := late.state(); v.Text != "Please take off your glasses" {
		t.Errorf("late client got %+v, want the latest state", v)
	}
}

func TestNameNeedsGreetByName(t *testing.T) {
	s := newServer(t, testConfig()) // greet_by_name off
	base := serve(t, s)
	r, _ := openEvents(t, base)
	r.state()
	s.Publish(display.Update{State: display.StatePass, Name: "Ana"})
	if v, raw := r.state(); v.Text != "Welcome" || strings.Contains(raw, "Ana") {
		t.Errorf("with greet_by_name off, PASS streamed %s", raw)
	}
}

func TestHeartbeatAndShutdown(t *testing.T) {
	cfg := testConfig()
	cfg.Heartbeat = 20 * time.Millisecond
	s := newServer(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	r, _ := openEvents(t, "http://"+ln.Addr().String())
	r.next()
	r.state()
	if ev := r.next(); !ev.comment {
		t.Fatalf("idle stream sent %+v, want a heartbeat comment", ev)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of cancel with a stream open")
	}
	if _, err := io.ReadAll(r.br); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
}

// TestMaxClients: with every stream slot taken, a client from elsewhere
// gets 503, while the kiosk's own browser (loopback) ends the oldest
// stream and gets its screen.
func TestMaxClients(t *testing.T) {
	cfg := testConfig()
	cfg.MaxClients = 1
	s := newServer(t, cfg)
	base := serve(t, s)
	first, _ := openEvents(t, base)
	first.next()

	req := httptest.NewRequest(http.MethodGet, "/events", nil)
	req.Host, req.RemoteAddr = "127.0.0.1", "192.0.2.7:5000"
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("remote stream with max_clients 1 = %d, want 503", rec.Code)
	}

	second, _ := openEvents(t, base)
	if v, _ := second.state(); v.State != "ready" {
		t.Fatalf("the kiosk's new stream got %+v", v)
	}
	// The evicted stream ends (its reader sees the end of the body).
	for {
		if _, err := first.br.ReadString('\n'); err != nil {
			break
		}
	}
}

// TestFaceDataOnlyForTheKiosk: the greeting name and the preview go to
// loopback clients only, unless display.remote_face_data says otherwise.
func TestFaceDataOnlyForTheKiosk(t *testing.T) {
	for _, remoteOK := range []bool{false, true} {
		cfg := testConfig()
		cfg.GreetByName, cfg.Preview, cfg.RemoteFaceData = true, true, remoteOK
		s := newServer(t, cfg)
		s.Publish(display.Update{State: display.StatePass, Name: "Ana"})
		for _, remote := range []string{"127.0.0.1:40000", "192.0.2.7:5000"} {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Host, req.RemoteAddr = "127.0.0.1", remote
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			want := remote == "127.0.0.1:40000" || remoteOK
			if got := strings.Contains(rec.Body.String(), "Ana"); got != want {
				t.Errorf("remote_face_data %v, client %s: name shown %v, want %v", remoteOK, remote, got, want)
			}
			if got := strings.Contains(rec.Body.String(), `id="view"`); got != want {
				t.Errorf("remote_face_data %v, client %s: self-view element %v, want %v", remoteOK, remote, got, want)
			}
			if want {
				continue
			}
			req = httptest.NewRequest(http.MethodGet, "/preview.mjpeg", nil)
			req.Host, req.RemoteAddr = "127.0.0.1", remote
			rec = httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden {
				t.Errorf("preview to %s = %d, want 403", remote, rec.Code)
			}
		}
	}
}

func TestLanguageAndOverrides(t *testing.T) {
	cfg := testConfig()
	cfg.Language = "es"
	cfg.GreetByName = true
	cfg.Messages = map[string]string{"fail.hasFaceMask": "Quítese la mascarilla <ahora>", "pass.name": "¡Hola {name}!"}
	s := newServer(t, cfg)
	rec := get(t, s.Handler(), "/", "localhost")
	if body := rec.Body.String(); !strings.Contains(body, "Mire la pantalla") || !strings.Contains(body, `lang="es"`) ||
		!strings.Contains(body, "Reconectando…") {
		t.Errorf("Spanish page lacks its texts")
	}
	base := serve(t, s)
	r, _ := openEvents(t, base)
	r.state()
	for _, c := range []struct {
		u    display.Update
		want string
	}{
		{display.Update{State: display.StateFail, Reason: "hasFaceMask"}, "Quítese la mascarilla <ahora>"},
		{display.Update{State: display.StateFail, Reason: "hasLenses"}, "Por favor, quítese las gafas"},
		{display.Update{State: display.StateGuidance, Reason: "too_dark"}, "Póngase de frente a la pantalla y quítese la gorra o el sombrero"},
		{display.Update{State: display.StatePass, Name: "José"}, "¡Hola José!"},
		{display.Update{State: display.StatePass}, "Adelante"},
		{display.Update{State: display.StateOffline}, "Sin conexión — llame a recepción"},
	} {
		s.Publish(c.u)
		if v, _ := r.state(); v.Text != c.want {
			t.Errorf("Publish(%+v) = %q, want %q", c.u, v.Text, c.want)
		}
	}

	// Overrides are HTML-escaped on the page.
	s.Publish(display.Update{State: display.StateFail, Reason: "hasFaceMask"})
	if body := get(t, s.Handler(), "/", "localhost").Body.String(); !strings.Contains(body, "&lt;ahora&gt;") {
		t.Errorf("override not escaped in the page")
	}

	bad := testConfig()
	bad.Messages = map[string]string{"fail.hasFaceMsk": "x"}
	if _, err := display.New(bad, discard(), prometheus.NewRegistry()); err == nil ||
		!strings.Contains(err.Error(), `unknown key "fail.hasFaceMsk"`) {
		t.Errorf("unknown message key: err = %v, want it named", err)
	}
	bad.Messages, bad.Language = nil, "it"
	if _, err := display.New(bad, discard(), prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), `"it" has no catalog`) {
		t.Errorf("language it without a catalog: err = %v", err)
	}
}

func TestEveryKeyInEveryLanguage(t *testing.T) {
	keys := display.MessageKeys()
	for _, want := range []string{"ready", "checking", "pass", "pass.name", "fail", "fail.hasFaceMask", "fail.hasLenses",
		"fail.spoofAttempt", "fail.faceMatchFailed", "fail.otherError", "offline", "recorded", "lockout",
		"camera_down", "service_unavailable", "guidance.closer", "guidance.hold_still", "guidance.move_left",
		"see_reception.revoked", "see_reception.no_credential", "see_reception.panel_refused", "offline+badge"} {
		found := false
		for _, k := range keys {
			found = found || k == want
		}
		if !found {
			t.Errorf("message key %q missing", want)
		}
	}
	// Overriding every key is accepted in every language.
	for _, lang := range display.Languages() {
		cfg := testConfig()
		cfg.Language = lang
		cfg.Messages = map[string]string{}
		for _, k := range keys {
			cfg.Messages[k] = "x " + k
		}
		if _, err := display.New(cfg, discard(), prometheus.NewRegistry()); err != nil {
			t.Errorf("%s: overriding every key: %v", lang, err)
		}
	}
}

func TestLockoutOnPage(t *testing.T) {
	now := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	s := newServer(t, testConfig(), display.WithClock(func() time.Time { return now }))
	s.Publish(display.Update{State: display.StateLockout, Until: now.Add(61*time.Second + 200*time.Millisecond)})
	if body := get(t, s.Handler(), "/", "localhost").Body.String(); !strings.Contains(body, "try again in 1:02") {
		t.Errorf("lockout page does not show the time left")
	}
}

func TestPreview(t *testing.T) {
	cfg := testConfig()
	cfg.Preview = true
	cfg.PreviewFPS = 20 // above the cap: 15 is used
	s := newServer(t, cfg)
	if body := get(t, s.Handler(), "/", "localhost").Body.String(); !strings.Contains(body, `id="view"`) {
		t.Errorf("page lacks the preview with display.preview on")
	}
	base := serve(t, s)
	if s.Watching() {
		t.Errorf("Watching with no screen connected: the agent would encode for nobody")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/preview.mjpeg", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "multipart/x-mixed-replace; boundary=kioskdframe" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if !s.Watching() {
		t.Errorf("not Watching while a screen has the stream open")
	}
	s.PublishPreview(display.Frame{JPEG: []byte("not a jpeg")}) // dropped

	// Publish as fast as possible; the client must still get at most 20/s.
	go func() {
		frame := []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9}
		tick := time.NewTicker(time.Millisecond) // a camera far faster than the cap
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				s.PublishPreview(display.Frame{JPEG: frame})
			}
		}
	}()
	br := bufio.NewReader(resp.Body)
	start := time.Now()
	for i := range 4 {
		if line, err := br.ReadString('\n'); err != nil || line != "--kioskdframe\r\n" {
			t.Fatalf("frame %d: boundary %q, %v", i, line, err)
		}
		hdr := map[string]string{}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
			k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
			hdr[k] = v
		}
		if hdr["Content-Type"] != "image/jpeg" || hdr["Content-Length"] != "9" {
			t.Fatalf("frame %d headers = %v", i, hdr)
		}
		buf := make([]byte, 9+2)
		if _, err := io.ReadFull(br, buf); err != nil || buf[0] != 0xFF || buf[1] != 0xD8 {
			t.Fatalf("frame %d body %x, %v", i, buf, err)
		}
	}
	// Four frames at 15 fps need at least three 66 ms gaps.
	if d := time.Since(start); d < 199*time.Millisecond {
		t.Errorf("4 preview frames in %s: the 15 fps cap is not applied", d)
	}
	// The screen goes away: encoding stops.
	cancel()
	resp.Body.Close()
	for deadline := time.Now().Add(5 * time.Second); s.Watching(); {
		if time.Now().After(deadline) {
			t.Fatal("still Watching 5 s after the only screen closed the stream")
		}
		runtime.Gosched()
	}
}

func TestRun(t *testing.T) {
	cfg := testConfig()
	cfg.Listen = ""
	s := newServer(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Errorf("Run with the display off = %v", err)
	}
	cfg.Listen = "127.0.0.1:99999"
	s = newServer(t, cfg)
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "display: listen") {
		t.Errorf("Run on a bad address = %v", err)
	}
}

func TestSetMessages(t *testing.T) {
	s := newServer(t, testConfig())
	base := serve(t, s)
	r, _ := openEvents(t, base)
	r.state()
	s.Publish(display.Update{State: display.StateOffline})
	r.state()
	if err := s.SetMessages("es", map[string]string{"offline": "Sin red — use su tarjeta"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.state(); v.Text != "Sin red — use su tarjeta" {
		t.Errorf("after SetMessages the open page shows %q", v.Text)
	}
	if body := get(t, s.Handler(), "/", "localhost").Body.String(); !strings.Contains(body, `lang="es"`) || !strings.Contains(body, "Reconectando…") {
		t.Errorf("page not in Spanish after SetMessages")
	}
	if err := s.SetMessages("en", map[string]string{"ofline": "x"}); err == nil {
		t.Fatal("SetMessages accepted an unknown key")
	}
	s.Publish(display.Update{State: display.StateReady})
	if v, _ := r.state(); v.Text != "Mire la pantalla y encaje la cara en el óvalo" {
		t.Errorf("a refused SetMessages changed the texts: %q", v.Text)
	}
}

func TestRepeatedUpdatesAreDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := display.New(testConfig(), discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	count := func(state string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "kioskd_display_updates_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == state {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no kioskd_display_updates_total{state=%q}", state)
		return 0
	}
	if count("service_unavailable") != 0 {
		t.Fatal("series not initialised to 0")
	}
	until := time.Now().Add(time.Minute)
	for range 3 {
		s.Publish(display.Update{State: display.StateGuidance, Reason: "blurry"})
		s.Publish(display.Update{State: display.StateLockout, Until: until})
	}
	if g, l := count("guidance"), count("lockout"); g != 3 || l != 3 {
		t.Errorf("alternating updates counted guidance %v, lockout %v; want 3 and 3", g, l)
	}
	for range 3 {
		s.Publish(display.Update{State: display.StateGuidance, Reason: "too_dark"})
	}
	if g := count("guidance"); g != 4 {
		t.Errorf("a repeated update was counted: guidance %v, want 4", g)
	}
}
