// Package incodesim emulates the Incode ID API for demos, tests and
// integrators: the four endpoints with the API document's header and error
// rules, a deterministic matcher over a folder of enrolled faces, scripted
// faults that drive every failure path, and webhooks.
package incodesim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Sim. Zero values take the defaults noted.
type Options struct {
	APIKey      string // required: expected x-api-key
	DeviceToken string // required: expected X-Incode-Hardware-Id on authenticate
	EnrollDir   string // folder of JPEG/PNG faces that PASS; empty: everyone FAILs
	Script      []string
	WebhookURLs []string
	// Latency is added service time before every API answer.
	Latency time.Duration
	// BandwidthBps limits how fast request bodies are read, in bits per
	// second (see ParseBandwidth); 0 is unlimited.
	BandwidthBps int64
	Now          func() time.Time // default time.Now

	WebhookAttempts int           // deliveries tried per event and URL; default 5
	WebhookBackoff  time.Duration // wait after the first failed delivery, doubling; default 500ms
	WebhookClient   *http.Client  // default: a client with a 10s timeout
	MaxBase64Bytes  int           // largest accepted base64Image; default 20 MiB
	MaxImageSide    int           // largest accepted width or height; default 10000
	MaxRecords      int           // requests kept for /_sim/requests; default 1000

	// FaceCascade is the Haar frontal-face cascade of the face
	// recogniser; default DefaultFaceCascade (Debian's opencv-data).
	FaceCascade string
	// FaceThreshold is the largest LBPH distance that is the same person;
	// default DefaultFaceThreshold.
	FaceThreshold float64
}

type limits struct {
	maxBase64     int
	maxImageBytes int
	maxSide       int
	maxPixels     int64
}

// Sim is the emulator. Its handler is safe for concurrent use.
type Sim struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	lim  limits
	hc   *http.Client

	// ctx ends webhook delivery and hanging requests on Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
	// hanging counts requests held by a scripted hang, so that tests can
	// tell when one is being held.
	hanging atomic.Int32
	// inFlight counts API requests being served (GET /_sim/status).
	inFlight atomic.Int32

	faces *faceModel

	mu        sync.Mutex
	closed    bool
	ids       []*identity
	tokens    map[string]*identity // user tokens issued with a PASS
	script    script
	records   []Record
	seq       uint64
	auths     map[string]authRecord
	authOrder []string
	idem      map[string]cachedAnswer
	idemOrder []string
	hooks     []WebhookDelivery
}

type cachedAnswer struct {
	body    []byte
	outcome string
}

// maxStored bounds the authentications and idempotency keys kept in memory.
const maxStored = 10000

// New builds an emulator: it loads the enrollment folder and parses the
// script, reporting every problem found.
func New(opts Options, log *slog.Logger) (*Sim, error) {
	var errs []error
	if opts.APIKey == "" {
		errs = append(errs, errors.New("incodesim: an API key is required"))
	}
	if opts.DeviceToken == "" {
		errs = append(errs, errors.New("incodesim: a device token is required"))
	}
	if opts.Latency < 0 || opts.BandwidthBps < 0 {
		errs = append(errs, errors.New("incodesim: latency and bandwidth must not be negative"))
	}
	for _, u := range opts.WebhookURLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			errs = append(errs, fmt.Errorf("incodesim: webhook URL %q is not an http(s) URL", u))
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WebhookAttempts <= 0 {
		opts.WebhookAttempts = 5
	}
	if opts.WebhookBackoff <= 0 {
		opts.WebhookBackoff = 500 * time.Millisecond
	}
	if opts.MaxBase64Bytes <= 0 {
		opts.MaxBase64Bytes = 20 << 20
	}
	if opts.MaxImageSide <= 0 {
		opts.MaxImageSide = 10000
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 1000
	}
	if opts.FaceCascade == "" {
		opts.FaceCascade = DefaultFaceCascade
	}
	if opts.FaceThreshold <= 0 {
		opts.FaceThreshold = DefaultFaceThreshold
	}
	hc := opts.WebhookClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	sc, err := parseScript(opts.Script)
	if err != nil {
		errs = append(errs, fmt.Errorf("incodesim: %w", err))
	}
	lim := limits{
		maxBase64:     opts.MaxBase64Bytes,
		maxImageBytes: opts.MaxBase64Bytes/4*3 + 3,
		maxSide:       opts.MaxImageSide,
		maxPixels:     50_000_000,
	}
	faces, err := newFaceModel(opts.FaceCascade, opts.FaceThreshold)
	if err != nil {
		errs = append(errs, fmt.Errorf("incodesim: %w", err))
	}
	var ids []*identity
	if opts.EnrollDir != "" && faces != nil {
		ids, err = loadEnrollment(opts.EnrollDir, opts.Now(), lim)
		if err != nil {
			errs = append(errs, fmt.Errorf("incodesim: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		if faces != nil {
			faces.Close()
		}
		return nil, err
	}
	for i, id := range ids {
		if err := id.enrollFace(faces, i); err != nil {
			faces.Close()
			return nil, fmt.Errorf("incodesim: enroll %s: %w", id.File, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{
		opts:   opts,
		log:    log,
		now:    opts.Now,
		lim:    lim,
		hc:     hc,
		ctx:    ctx,
		cancel: cancel,
		sem:    make(chan struct{}, 64),
		ids:    ids,
		faces:  faces,
		tokens: map[string]*identity{},
		script: sc,
		auths:  map[string]authRecord{},
		idem:   map[string]cachedAnswer{},
	}
	for _, id := range ids {
		log.Info("enrolled", "name", id.FullName, "file", id.File, "verification_id", id.VerificationID, "face", id.person != nil)
		if id.person == nil {
			log.Warn("no face found in the enrolled picture: only the picture itself will PASS", "file", id.File)
		}
		s.notify(eventVerificationCompleted, "verification", id.VerificationID, id.Token)
	}
	if len(ids) == 0 {
		log.Warn("nobody is enrolled: every authentication FAILs unless scripted")
	}
	return s, nil
}

// Handler serves the API and the /_sim control endpoints.
func (s *Sim) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close stops webhook delivery and releases hanging requests; it waits for
// deliveries in flight to stop.
func (s *Sim) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.faces.Close()
}

// Done is closed when Close begins, so that a server can stop waiting for
// handlers that hang on purpose.
func (s *Sim) Done() <-chan struct{} { return s.ctx.Done() }

func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Path) >= 6 && r.URL.Path[:6] == "/_sim/" {
		s.control(w, r)
		return
	}
	s.api(w, r)
}

// errorBody is the API document's error object.
type errorBody struct {
	Timestamp int64  `json:"timestamp"`
	Status    int    `json:"status"`
	Error     string `json:"error"`
	Message   string `json:"message"`
	Path      string `json:"path"`
}

func (s *Sim) writeError(w http.ResponseWriter, r *http.Request, rec *Record, status int, msg string) {
	if rec != nil && rec.Outcome == "" {
		rec.Outcome = fmt.Sprintf("error:%d", status)
		rec.Message = msg
	}
	s.writeJSON(w, rec, status, errorBody{
		Timestamp: s.now().UnixMilli(),
		Status:    status,
		Error:     http.StatusText(status),
		Message:   msg,
		Path:      r.URL.Path,
	})
}

func (s *Sim) writeJSON(w http.ResponseWriter, rec *Record, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode answer", "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"status":500,"error":"Internal Server Error"}`)
	}
	s.writeRaw(w, rec, status, "application/json", b)
}

func (s *Sim) writeRaw(w http.ResponseWriter, rec *Record, status int, contentType string, b []byte) {
	if rec != nil {
		rec.Status = status
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func equalSecret(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func randomToken() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return "simtok." + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// sleep waits d unless the request or the emulator ends first.
func (s *Sim) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.ctx.Done():
		return false
	}
}
