// Package capture finds faces in camera frames, scores their quality for a
// face-matching service, and picks the one frame per presence worth uploading.
package capture

import (
	"errors"
	"image"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
)

// Reason is why a frame was not accepted; the display turns it into guidance.
type Reason string

// Rejection reasons.
const (
	ReasonNoFace        Reason = "no_face"
	ReasonTooSmall      Reason = "too_small"
	ReasonTooLarge      Reason = "too_large"
	ReasonOffCenter     Reason = "off_center"
	ReasonTooDark       Reason = "too_dark"
	ReasonTooBright     Reason = "too_bright"
	ReasonLowContrast   Reason = "low_contrast"
	ReasonBlurry        Reason = "blurry"
	ReasonMultipleFaces Reason = "multiple_faces"
	ReasonNoEyes        Reason = "no_eyes"
	ReasonInvalidFrame  Reason = "invalid_frame"
)

// Quality is what was measured on the chosen face.
type Quality struct {
	Faces        int     `json:"faces"`
	FacePx       int     `json:"face_px"`
	FaceFraction float64 `json:"face_fraction"`
	CenterOffset float64 `json:"center_offset"`
	Sharpness    float64 `json:"sharpness"`
	Brightness   float64 `json:"brightness"`
	Contrast     float64 `json:"contrast"`
	Eyes         int     `json:"eyes"`
}

// Analysis is the quality report of one frame.
type Analysis struct {
	Faces      []image.Rectangle
	Quality    Quality
	Thresholds map[string]float64
	Score      float64
	Accepted   bool
	Reasons    []Reason
}

// Shot is the frame chosen for upload.
type Shot struct {
	JPEG           []byte
	Width, Height  int
	CapturedAt     time.Time
	FirstSeen      time.Time
	Score          float64
	Face           image.Rectangle
	EncodeDuration time.Duration
}

// EventKind says what Process decided.
type EventKind int

// Event kinds.
const (
	EventNone EventKind = iota
	EventGuidance
	EventShot
	EventLockout
	EventIdle
)

// Event is the outcome of one processed frame.
type Event struct {
	Kind     EventKind
	Reasons  []Reason
	Shot     *Shot
	Until    time.Time
	Analysis Analysis
}

// AttemptStore persists the times of recent attempts so the per-device cap
// survives restarts.
type AttemptStore interface {
	Load() ([]time.Time, error)
	Save([]time.Time) error
}

// Option changes how a Selector is built.
type Option func(*options)

type options struct {
	now   func() time.Time
	store AttemptStore
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithAttemptStore persists the attempt cap.
func WithAttemptStore(st AttemptStore) Option { return func(o *options) { o.store = st } }

// Selector detects, scores and selects frames. Process and Analyze must be
// called from one goroutine; SetBusy may be called from any.
type Selector struct {
	cfg config.Capture
	log *slog.Logger
}

// New loads the cascades and registers the metrics.
func New(cfg config.Capture, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Selector, error) {
	return &Selector{cfg: cfg, log: log}, nil
}

// Process analyses one frame of the live loop and advances the selection.
func (s *Selector) Process(frame gocv.Mat, ts time.Time) (Event, error) {
	return Event{}, errors.New("capture: not implemented")
}

// Analyze reports the quality of one frame without touching selection state.
func (s *Selector) Analyze(frame gocv.Mat) (Analysis, error) {
	return Analysis{}, errors.New("capture: not implemented")
}

// SetBusy is true while a decision is in flight.
func (s *Selector) SetBusy(busy bool) {}

// Close releases the cascades and buffers.
func (s *Selector) Close() error { return nil }
