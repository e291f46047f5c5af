// Package capture finds faces in camera frames, scores their quality for a
// face-matching service, and picks the one frame per presence worth uploading.
package capture

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"slices"
	"sync"
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
	// PresentAt is the frame time at which presence_frames was reached, and
	// DecidedAt that of the frame that closed the selection window: with
	// FirstSeen they split a decision's latency into presence and window.
	PresentAt, DecidedAt time.Time
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

// Selector detects, scores and selects frames. Process, Analyze, Encode and
// Close belong to the frame-loop goroutine (they use Mats); SetBusy may be
// called from any goroutine.
type Selector struct {
	cfg   config.Capture
	log   *slog.Logger
	now   func() time.Time
	store AttemptStore
	guard *guard
	m     *metrics

	det  *detector
	sc   *scorer
	enc  *encoder
	eyes *gocv.CascadeClassifier

	// Selection state, owned by the frame loop.
	state        selState
	streak       int       // consecutive frames with a face while idle
	absent       int       // consecutive frames without a face
	firstSeen    time.Time // first frame of the current presence
	presentAt    time.Time // frame at which presence was confirmed
	windowStart  time.Time // first accepted frame after presence
	best         gocv.Mat  // copy of the best accepted frame in the window
	bestA        Analysis
	bestTS       time.Time
	haveBest     bool
	lastGuidance []Reason
	said         bool      // guidance was shown for this presence
	lockUntil    time.Time // while stLocked

	cooldownAt time.Time

	prevTS  time.Time     // frame time of the previous frame analysed
	halfGap time.Duration // half the time since then (window rounding)

	mu           sync.Mutex
	busy         bool
	cooldownFrom time.Time // set by SetBusy(false); zero when none pending
}

// maxFrameGap bounds the frame interval used to round the window: after a
// pause (busy, lockout) the gap says nothing about the frame rate.
const maxFrameGap = 100 * time.Millisecond

type selState int

const (
	stIdle     selState = iota // waiting for presence_frames consecutive faces
	stPresent                  // collecting the best accepted frame of the window
	stCooldown                 // a shot was taken; wait for the face to leave or the cooldown
	stLocked                   // attempt cap reached; no detection until lockUntil
)

// New loads the cascades and registers the metrics.
func New(cfg config.Capture, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Selector, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	p, err := newParts(cfg, log, o.now)
	if err != nil {
		return nil, err
	}
	s := &Selector{cfg: cfg, log: log, now: o.now, store: o.store, best: gocv.NewMat()}
	s.setParts(p)

	s.guard = newGuard(cfg, s.store, log, o.now())
	m, err := newMetrics(reg)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.m = m
	log.Info("capture: ready", "cascade", cfg.Cascade, "window_px", p.win.X, "min_face_px", cfg.MinFacePx,
		"detect_min_face_px", p.minDetect, "detect_width", cfg.DetectWidth, "eyes", cfg.EyesCascade != "")
	return s, nil
}

// Close releases the cascades and buffers.
func (s *Selector) Close() error {
	s.closeParts()
	s.best.Close()
	return nil
}

// SetBusy is true while a decision is in flight: frames are not analysed.
// False starts the cooldown, so the same presence does not trigger again.
func (s *Selector) SetBusy(busy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy && !busy {
		s.cooldownFrom = s.now()
	}
	s.busy = busy
}

// DetectWidth reports the width of the detection image for frames of the
// given width under this configuration.
func (s *Selector) DetectWidth(frameWidth int) int {
	return DetectWidth(frameWidth, s.det.minFace, s.det.win.X, s.cfg.DetectWidth)
}

// Analyze reports the quality of one frame with a whole-frame search and
// touches no selection state (snapshot, tuning).
func (s *Selector) Analyze(frame gocv.Mat) (Analysis, error) {
	if s.det == nil {
		return Analysis{}, errors.New("capture: selector closed")
	}
	if why := validFrame(frame); why != "" {
		return Analysis{Reasons: []Reason{ReasonInvalidFrame}, Thresholds: s.sc.thresholds(0)}, nil
	}
	saved := *s.det
	res := s.det.detect(frame, false, 0, 1)
	// A whole-frame search must not disturb the live loop's tracking.
	s.det.last, s.det.sinceFull, s.det.haveThumb, s.det.emptyRuns = saved.last, saved.sinceFull, saved.haveThumb, saved.emptyRuns
	return s.sc.analyse(frame, res.faces), nil
}

// Encode makes the upload JPEG of frame around face (whole frame unless
// crop is configured).
func (s *Selector) Encode(frame gocv.Mat, face image.Rectangle) (*Shot, error) {
	if s.enc == nil {
		return nil, errors.New("capture: selector closed")
	}
	return s.enc.encode(frame, face)
}

// Process analyses one frame of the live loop and advances the selection:
// presence in presence_frames consecutive frames, then the best accepted
// frame of the window becomes an EventShot; after it, cooldown until the
// face leaves or the cooldown passes; during a lockout (see Failed) it
// detects nothing.
func (s *Selector) Process(frame gocv.Mat, ts time.Time) (Event, error) {
	if s.det == nil {
		return Event{}, errors.New("capture: selector closed")
	}
	now := s.now()
	s.mu.Lock()
	busy, cooldownFrom := s.busy, s.cooldownFrom
	s.cooldownFrom = time.Time{}
	s.mu.Unlock()
	if busy {
		return Event{Kind: EventNone}, nil
	}
	if !cooldownFrom.IsZero() {
		s.enterCooldown(cooldownFrom)
	}

	if s.state == stLocked {
		if now.Before(s.lockUntil) {
			return Event{Kind: EventNone}, nil
		}
		s.resetPresence()
		s.det.reset()
		return Event{Kind: EventIdle}, nil
	}

	if why := validFrame(frame); why != "" {
		s.m.rejections[ReasonInvalidFrame].Inc()
		s.log.Debug("capture: invalid frame", "why", why)
		return Event{Kind: EventNone, Analysis: Analysis{Reasons: []Reason{ReasonInvalidFrame}}}, nil
	}

	s.halfGap = 0
	if gap := ts.Sub(s.prevTS); !s.prevTS.IsZero() && gap > 0 {
		s.halfGap = min(gap, maxFrameGap) / 2
	}
	s.prevTS = ts
	if s.state == stPresent && s.haveBest && ts.Sub(s.windowStart)+s.halfGap >= s.cfg.Window {
		// This frame ends the window: the best frame is chosen, and
		// analysing this one too would only delay the answer.
		return s.shoot(now, ts, Analysis{})
	}

	start := time.Now()
	s.det.hold = s.state == stCooldown
	res := s.det.detect(frame, true, s.cfg.ChangeThreshold, s.cfg.FullSearchEvery)
	if res.ran {
		s.m.detect.Observe(time.Since(start).Seconds())
	}
	a := s.sc.analyse(frame, res.faces)
	if res.ran {
		for _, r := range a.Reasons {
			s.m.rejections[r].Inc()
		}
	}
	return s.advance(frame, ts, now, a)
}

func (s *Selector) advance(frame gocv.Mat, ts, now time.Time, a Analysis) (Event, error) {
	face := len(a.Faces) > 0
	if face {
		s.absent = 0
	} else {
		s.absent++
	}
	switch s.state {
	case stCooldown:
		left := s.absent >= s.cfg.AbsentFrames
		if left || now.Sub(s.cooldownAt) >= s.cfg.Cooldown {
			s.resetPresence()
			if left {
				return Event{Kind: EventIdle, Analysis: a}, nil
			}
			return s.advance(frame, ts, now, a)
		}
		return Event{Kind: EventNone, Analysis: a}, nil

	case stIdle:
		if !face {
			s.streak = 0
			if s.said && s.absent >= s.cfg.AbsentFrames {
				s.said, s.lastGuidance = false, nil
				return Event{Kind: EventIdle, Analysis: a}, nil
			}
			return Event{Kind: EventNone, Analysis: a}, nil
		}
		if s.streak == 0 {
			s.firstSeen = ts
		}
		s.streak++
		if s.streak == s.cfg.PresenceFrames {
			s.presentAt = ts
		}
		if s.streak < s.cfg.PresenceFrames {
			return s.guidance(a), nil
		}
		if until, locked := s.guard.lockedUntil(now); locked {
			// The lockout shows when someone tries during it.
			s.resetPresence()
			s.state, s.lockUntil = stLocked, until
			return Event{Kind: EventLockout, Until: until, Analysis: a}, nil
		}
		s.state = stPresent
		fallthrough

	case stPresent:
		if face && a.Accepted {
			if s.windowStart.IsZero() {
				s.windowStart = ts
			}
			if !s.haveBest || a.Score > s.bestA.Score {
				frame.CopyTo(&s.best)
				s.bestA, s.bestTS, s.haveBest = a, ts, true
			}
		}
		// The window closes on the frame nearest its end, not the first one
		// after it: frame times jitter, and a frame that arrives a hair
		// before the end must not cost the person at the door a whole frame.
		elapsed := s.haveBest && ts.Sub(s.windowStart)+s.halfGap >= s.cfg.Window
		left := !face && s.absent >= s.cfg.AbsentFrames
		if elapsed || (left && s.haveBest) {
			return s.shoot(now, ts, a)
		}
		if left {
			s.resetPresence()
			return Event{Kind: EventIdle, Analysis: a}, nil
		}
		if face {
			return s.guidance(a), nil
		}
		return Event{Kind: EventNone, Analysis: a}, nil
	}
	return Event{Kind: EventNone, Analysis: a}, nil
}

// guidance reports a rejected face when what to say changes; an empty
// Reasons list means the face is fine now and a shot is coming.
func (s *Selector) guidance(a Analysis) Event {
	var reasons []Reason
	if !a.Accepted {
		reasons = a.Reasons
	}
	if s.said && slices.Equal(reasons, s.lastGuidance) || !s.said && reasons == nil {
		return Event{Kind: EventNone, Analysis: a}
	}
	s.said, s.lastGuidance = true, reasons
	return Event{Kind: EventGuidance, Reasons: reasons, Analysis: a}
}

func (s *Selector) shoot(now, ts time.Time, a Analysis) (Event, error) {
	shot, err := s.enc.encode(s.best, s.bestA.Faces[0])
	firstSeen, presentAt, best, bestTS := s.firstSeen, s.presentAt, s.bestA, s.bestTS
	s.enterCooldown(now)
	if err != nil {
		return Event{Kind: EventNone, Analysis: a}, fmt.Errorf("capture: %w", err)
	}
	shot.CapturedAt, shot.FirstSeen, shot.Score = bestTS, firstSeen, best.Score
	shot.PresentAt, shot.DecidedAt = presentAt, ts
	s.m.shots.Inc()
	return Event{Kind: EventShot, Shot: shot, Analysis: best}, nil
}

func (s *Selector) enterCooldown(from time.Time) {
	s.state = stCooldown
	s.cooldownAt = from
	s.streak = 0
	s.windowStart = time.Time{}
	s.haveBest = false
	s.lastGuidance, s.said = nil, false
}

func (s *Selector) resetPresence() {
	s.state = stIdle
	s.streak = 0
	s.absent = 0
	s.windowStart = time.Time{}
	s.haveBest = false
	s.lastGuidance, s.said = nil, false
}

// Failed counts an answer that said "not a match" or "not live" towards
// the brute-force guard. When it locks the device it returns the end of
// the lockout, and the selector detects nothing until then. Like Process
// it belongs to the frame-loop goroutine.
func (s *Selector) Failed(now time.Time) (time.Time, bool) {
	until, locked := s.guard.fail(now)
	if locked {
		s.resetPresence()
		s.state, s.lockUntil = stLocked, until
		s.m.lockouts.Inc()
		s.log.Warn("capture: too many failed attempts, locked out", "until", until,
			"max_failures", s.cfg.MaxFailures, "failure_window", s.cfg.FailureWindow, "lockout", s.cfg.Lockout)
	}
	return until, locked
}
