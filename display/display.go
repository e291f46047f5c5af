// Package display serves the kiosk screen: one self-contained page that
// follows the agent's state over Server-Sent Events and tells the person
// in front of the camera what is happening and what to do next, over a
// mirrored live self-view (MJPEG) with an oval guide, in the language of a
// message catalog.
package display

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/httpserve"
)

// Update is one change of what the screen shows. Reason is a capture
// rejection reason (guidance) or an API failureReason (fail); Name is the
// person's name for the greeting (only its first word is shown, and only
// with display.greet_by_name); Until is the end of a lockout, or of the
// live attempt while checking (the page shows the progress).
type Update struct {
	State  State
	Reason string
	Name   string
	Until  time.Time
	Since  time.Time // checking: when the live attempt began
	// Text, when set, is shown instead of the state's message: what an
	// access-control panel sent the reader to show (osdp_TEXT).
	Text string
}

// view is what the page receives: already-resolved text and nothing else,
// so that no score, ID or token can reach the screen.
type view struct {
	State State  `json:"state"`
	Lang  string `json:"lang"`
	Tone  string `json:"tone"`
	// Hint is a guidance key (move_left, closer, ...) for the page's arrow;
	// never anything else, so no API text reaches the page this way.
	Hint        string  `json:"hint,omitempty"`
	Text        string  `json:"text"`
	RemainingMS *int64  `json:"remaining_ms,omitempty"` // lockout: the page counts down; checking: progress
	TotalMS     *int64  `json:"total_ms,omitempty"`     // checking: the whole live attempt
	Guide       float64 `json:"guide"`                  // the oval's height, as a share of the camera frame's
}

// Option changes how New builds a Server (tests).
type Option func(*Server)

// WithClock sets the time source used for lockout countdowns.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// Server is the display. Its methods are safe for concurrent use.
type Server struct {
	cfg config.Display
	log *slog.Logger
	now func() time.Time
	csp string // the same for every language: it pins the script and style
	css string // the page's stylesheet with the integrator's colours

	custom custom

	clients  *prometheus.GaugeVec
	updates  *prometheus.CounterVec
	rejected *prometheus.CounterVec
	http     *httpserve.Server

	streamMu   sync.Mutex
	streams    map[uint64]context.CancelFunc // open streams by start order
	streamNext uint64

	mu      sync.Mutex
	msgs    messages
	page    *page
	seq     uint64
	cur     Update
	changed chan struct{} // closed and replaced on every Publish

	guide float64 // the oval's height as a share of the frame's (under mu)

	frameMu      sync.Mutex
	frame        []byte
	frameSeq     uint64
	frameChanged chan struct{}
	watchers     atomic.Int32 // open self-view streams
}

// New builds the display from its config section.
func New(cfg config.Display, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Server, error) {
	cats, err := loadCatalogs(cfg.CustomDir)
	if err != nil {
		return nil, fmt.Errorf("display: %w", err)
	}
	msgs, err := newMessages(cats, cfg.Language, cfg.Messages, cfg.BadgeReader)
	if err != nil {
		return nil, fmt.Errorf("display: %w", err)
	}
	cust, err := loadCustom(cfg.CustomDir)
	if err != nil {
		return nil, fmt.Errorf("display: %w", err)
	}
	if cfg.PreviewFPS <= 0 {
		cfg.PreviewFPS = 10
	}
	cfg.PreviewFPS = min(cfg.PreviewFPS, MaxPreviewFPS)
	css := pageCSS + cust.colorCSS()
	s := &Server{
		cfg:    cfg,
		log:    log,
		msgs:   msgs,
		now:    time.Now,
		csp:    pageCSP(css),
		css:    css,
		custom: cust,
		guide:  defaultGuide,
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kioskd_display_clients",
			Help: "Open display streams by kind.",
		}, []string{"stream"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_display_updates_total",
			Help: "State updates published to the display, by state.",
		}, []string{"state"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_display_rejected_requests_total",
			Help: "Display requests refused, by reason.",
		}, []string{"reason"}),
		streams:      map[uint64]context.CancelFunc{},
		cur:          Update{State: StateReady},
		changed:      make(chan struct{}),
		frameChanged: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	for _, k := range []string{"events", "preview"} {
		s.clients.WithLabelValues(k)
	}
	for _, st := range States() {
		s.updates.WithLabelValues(st.String())
	}
	for _, r := range []string{"host", "busy", "evicted", "face_data"} {
		s.rejected.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{s.clients, s.updates, s.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("display: register metrics: %w", err)
		}
	}
	s.http, err = httpserve.New(httpserve.Options{Name: "display", MaxConns: cfg.MaxConnections, Streaming: true}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("display: %w", err)
	}
	rc, _ := msgs.get("reconnecting")
	s.page, err = newPage(cfg.Language, rc, cfg.Preview, cust.logo != nil)
	if err != nil {
		return nil, fmt.Errorf("display: %w", err)
	}
	return s, nil
}

// SetMessages switches language and message overrides on a running
// display (configuration reload); open pages show the current state in the
// new texts at once, and the page's own texts on their next load.
func (s *Server) SetMessages(language string, overrides map[string]string) error {
	cats, err := loadCatalogs(s.cfg.CustomDir)
	if err != nil {
		return fmt.Errorf("display: %w", err)
	}
	msgs, err := newMessages(cats, language, overrides, s.cfg.BadgeReader)
	if err != nil {
		return fmt.Errorf("display: %w", err)
	}
	rc, _ := msgs.get("reconnecting")
	pg, err := newPage(language, rc, s.cfg.Preview, s.custom.logo != nil)
	if err != nil {
		return fmt.Errorf("display: %w", err)
	}
	s.mu.Lock()
	s.msgs, s.page = msgs, pg
	s.seq++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// Publish shows u on every open page and on pages that open later.
func (s *Server) Publish(u Update) {
	if !u.State.Valid() {
		s.log.Warn("display: unknown state, showing ready", "state", int(u.State))
		u = Update{State: StateReady}
	}
	s.mu.Lock()
	if same(s.cur, u) && s.seq > 0 {
		// The agent may repeat itself every frame; the pages need changes.
		s.mu.Unlock()
		return
	}
	s.updates.WithLabelValues(u.State.String()).Inc()
	s.cur = u
	s.seq++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func same(a, b Update) bool {
	return a.State == b.State && a.Reason == b.Reason && a.Name == b.Name && a.Until.Equal(b.Until) && a.Since.Equal(b.Since) && a.Text == b.Text
}

// maxPreviewBytes keeps a bad caller from pinning large buffers.
const maxPreviewBytes = 4 << 20

// The self-view's limits: it is for the person to see themselves, so it is
// small and slow enough to cost little on the box and to be useless as a
// recording.
const (
	MaxPreviewFPS  = 15
	MaxPreviewSide = 640
)

// Frame is one picture of the self-view and what sizes the guide.
type Frame struct {
	// JPEG is the camera frame, at most MaxPreviewSide on its long side,
	// not mirrored (the page mirrors it).
	JPEG []byte
	// MinFace and MaxFace are the face heights capture accepts, as shares
	// of the frame height (0: unknown).
	MinFace, MaxFace float64
}

// defaultGuide is the oval before any frame says how big a face should be.
const defaultGuide = 0.45

// GuideShare is the oval's height, as a share of the frame height, for the
// face sizes capture accepts: a little above the smallest so that a person
// who fills it is comfortably accepted, and a head is about 1.4 times the
// height of the box the face detector finds.
func GuideShare(minFace, maxFace float64) float64 {
	if !(minFace > 0 && minFace < 1) {
		return defaultGuide
	}
	face := minFace * 1.4
	if maxFace > 0 && face > maxFace*0.8 {
		face = maxFace * 0.8
	}
	return min(max(face*1.4, 0.15), 0.95)
}

// Watching reports whether a screen has the self-view open: the agent
// encodes frames only then.
func (s *Server) Watching() bool { return s.cfg.Preview && s.watchers.Load() > 0 }

// PublishPreview sets the latest self-view frame. It copies the JPEG, so
// the caller may reuse its buffer. It does nothing unless display.preview
// is on. Frames are kept in memory only, and only the newest.
func (s *Server) PublishPreview(f Frame) {
	if !s.cfg.Preview {
		return
	}
	jpeg := f.JPEG
	if len(jpeg) < 4 || len(jpeg) > maxPreviewBytes || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
		s.log.Debug("display: preview frame dropped: not a JPEG or too large", "bytes", len(jpeg))
		return
	}
	if g := GuideShare(f.MinFace, f.MaxFace); f.MinFace > 0 {
		s.mu.Lock()
		if d := g - s.guide; d > 0.01 || d < -0.01 {
			s.guide = g
			s.seq++
			close(s.changed)
			s.changed = make(chan struct{})
		}
		s.mu.Unlock()
	}
	buf := append([]byte(nil), jpeg...)
	s.frameMu.Lock()
	s.frame = buf
	s.frameSeq++
	close(s.frameChanged)
	s.frameChanged = make(chan struct{})
	s.frameMu.Unlock()
}

// snapshot is the display's state at one moment.
type snapshot struct {
	u       Update
	seq     uint64
	changed <-chan struct{} // closed at the next change
	msgs    messages
	page    *page
	guide   float64
}

func (s *Server) current() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return snapshot{s.cur, s.seq, s.changed, s.msgs, s.page, s.guide}
}

// render turns an update into what the page shows.
func (s *Server) render(snap snapshot) view {
	u, msgs := snap.u, snap.msgs
	v := view{State: u.State, Lang: snap.page.lang, Tone: toneOf(u.State, u.Reason), Text: msgs.text(u.State, u.Reason), Guide: snap.guide}
	switch u.State {
	case StateGuidance:
		v.Hint = guidanceKey(u.Reason)
	case StatePass:
		if name := firstName(u.Name); name != "" && s.cfg.GreetByName {
			t, _ := msgs.get("pass.name")
			v.Text = strings.ReplaceAll(t, "{name}", name)
		}
	case StateLockout:
		ms := max(u.Until.Sub(s.now()).Milliseconds(), 0)
		v.RemainingMS = &ms
	case StateChecking:
		if !u.Until.IsZero() && !u.Since.IsZero() {
			rem := max(u.Until.Sub(s.now()).Milliseconds(), 0)
			total := max(u.Until.Sub(u.Since).Milliseconds(), 1)
			v.RemainingMS, v.TotalMS = &rem, &total
		}
	}
	if u.Text != "" {
		v.Text = u.Text
	}
	return v
}

// firstName keeps the first word of a name, letters and joiners only, so
// that the greeting can never carry anything but a first name.
func firstName(name string) string {
	fields := strings.Fields(name)
	if len(fields) == 0 {
		return ""
	}
	var b strings.Builder
	n := 0
	for _, r := range fields[0] {
		if !(unicode.IsLetter(r) || unicode.IsMark(r) || r == '-' || r == '\'' || r == '’') {
			continue
		}
		if n == 32 {
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// formatRemaining is the server-side twin of the page's countdown.
func formatRemaining(ms int64) string {
	sec := (ms + 999) / 1000
	return fmt.Sprintf("%d:%02d", sec/60, sec%60)
}

// Handler serves the page, the event stream, the self-view, the logo and /healthz,
// behind the Host check and the security headers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("GET /events", s.serveEvents)
	if s.custom.logo != nil {
		mux.HandleFunc("GET /logo", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", s.custom.logoType)
			_, _ = w.Write(s.custom.logo)
		})
	}
	if s.cfg.Preview {
		mux.HandleFunc("GET /preview.mjpeg", s.servePreview)
	}
	// Browsers ask for it on their own; a 404 would be noise in the console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return s.guard(mux)
}

// guard refuses foreign Host headers and sets the headers every answer
// carries.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Content-Security-Policy", s.csp)
		if !httpserve.HostAllowed(s.cfg.Listen, s.cfg.AllowedHosts, r.Host) {
			s.rejected.WithLabelValues("host").Inc()
			http.Error(w, "misdirected request", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// faceData reports whether r may see face data: the preview and the
// greeting name. The kiosk's own browser (loopback) may; others only
// with display.remote_face_data.
func (s *Server) faceData(r *http.Request) bool {
	return s.cfg.RemoteFaceData || httpserve.IsLoopbackRequest(r)
}

// forClient is the update as r may see it.
func (s *Server) forClient(r *http.Request, u Update) Update {
	if !s.faceData(r) {
		u.Name = ""
	}
	return u
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	snap := s.current()
	snap.u = s.forClient(r, snap.u)
	v := s.render(snap)
	text := v.Text
	if v.RemainingMS != nil {
		text = strings.ReplaceAll(text, "{time}", formatRemaining(*v.RemainingMS))
	}
	// A client that may not see the camera gets no self-view element, so
	// it does not keep asking for a stream it is refused.
	body, err := snap.page.render(v, text, s.css, s.faceData(r))
	if err != nil {
		s.log.Error("display: render page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(body)
}

// acquire takes a stream slot and returns the stream's context (ended
// when the client goes or the stream is evicted) and its release. When
// every slot is taken, a loopback client (the kiosk's own browser, which
// must always get its screen) ends the oldest stream and takes its slot;
// anyone else gets 503.
func (s *Server) acquire(w http.ResponseWriter, r *http.Request, kind string) (context.Context, func(), bool) {
	ctx, cancel := context.WithCancel(r.Context())
	s.streamMu.Lock()
	if len(s.streams) >= s.cfg.MaxClients {
		if !httpserve.IsLoopbackRequest(r) || len(s.streams) == 0 {
			s.streamMu.Unlock()
			cancel()
			s.rejected.WithLabelValues("busy").Inc()
			w.Header().Set("Retry-After", "5")
			http.Error(w, "too many display clients", http.StatusServiceUnavailable)
			return nil, nil, false
		}
		oldest := uint64(math.MaxUint64)
		for id := range s.streams {
			oldest = min(oldest, id)
		}
		s.streams[oldest]()
		delete(s.streams, oldest)
		s.rejected.WithLabelValues("evicted").Inc()
	}
	id := s.streamNext
	s.streamNext++
	s.streams[id] = cancel
	s.streamMu.Unlock()
	s.clients.WithLabelValues(kind).Inc()
	release := func() {
		cancel()
		s.streamMu.Lock()
		delete(s.streams, id)
		s.streamMu.Unlock()
		s.clients.WithLabelValues(kind).Dec()
	}
	return ctx, release, true
}

// retryMS is how soon a page reconnects after the stream drops, e.g.
// while the agent restarts.
const retryMS = 2000

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	ctx, release, ok := s.acquire(w, r, "events")
	if !ok {
		return
	}
	defer release()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", retryMS); err != nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var sent uint64
	first := true
	for {
		snap := s.current()
		if first || snap.seq != sent {
			snap.u = s.forClient(r, snap.u)
			data, err := json.Marshal(s.render(snap))
			if err != nil {
				s.log.Error("display: encode state", "err", err)
				return
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: state\ndata: %s\n\n", snap.seq, data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			sent, first = snap.seq, false
		}
		select {
		case <-ctx.Done():
			return
		case <-snap.changed:
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

const mjpegBoundary = "kioskdframe"

func (s *Server) servePreview(w http.ResponseWriter, r *http.Request) {
	if !s.faceData(r) {
		s.rejected.WithLabelValues("face_data").Inc()
		http.Error(w, "the preview is for the kiosk's own screen (display.remote_face_data)", http.StatusForbidden)
		return
	}
	rc := http.NewResponseController(w)
	ctx, release, ok := s.acquire(w, r, "preview")
	if !ok {
		return
	}
	defer release()
	s.watchers.Add(1)
	defer s.watchers.Add(-1)
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	w.WriteHeader(http.StatusOK)
	// Send the headers now: the first frame may be a while coming.
	if err := rc.Flush(); err != nil {
		return
	}
	interval := time.Duration(float64(time.Second) / s.cfg.PreviewFPS)
	var sent uint64
	for {
		s.frameMu.Lock()
		frame, seq, changed := s.frame, s.frameSeq, s.frameChanged
		s.frameMu.Unlock()
		if seq == sent || frame == nil {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				continue
			}
		}
		if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", mjpegBoundary, len(frame)); err != nil {
			return
		}
		if _, err := w.Write(frame); err != nil {
			return
		}
		if _, err := w.Write([]byte("\r\n")); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		sent = seq
		// The cap: whatever the camera does, a client gets at most
		// preview_fps frames a second, always the newest one.
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Run listens on cfg.Listen and serves until ctx is done. With an empty
// listen address the display is off and Run just waits for ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.cfg.Listen == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := httpserve.Listen(ctx, "display", s.cfg.Listen)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then ends every open stream and
// closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.http.Serve(ctx, ln, s.Handler())
}
