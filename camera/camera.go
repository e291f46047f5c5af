// Package camera delivers live frames from a V4L2 device, a network stream,
// a GStreamer pipeline, a video file or an image folder, and keeps doing so
// across faults by reopening the source with capped exponential backoff.
package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
)

// State is what the camera is doing, for the display and /readyz.
type State int

// States of a Source.
const (
	StateConnecting State = iota
	StateUp
	StateDown
	StateEnded
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateUp:
		return "up"
	case StateDown:
		return "down"
	case StateEnded:
		return "ended"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

var (
	// ErrEnded is returned at the end of a file or folder source with loop: false.
	ErrEnded = errors.New("camera: end of input")
	// ErrUnavailable is wrapped while the source is down and being reopened.
	ErrUnavailable = errors.New("camera: unavailable")
)

// Device is one opened frame source. *gocv.VideoCapture satisfies it. Its
// methods are only ever called from the goroutine that opened it.
type Device interface {
	Read(dst *gocv.Mat) bool
	Grab(skip int)
	Set(prop gocv.VideoCaptureProperties, value float64)
	Get(prop gocv.VideoCaptureProperties) float64
	Close() error
}

// Option changes how a Source is built (tests).
type Option func(*options)

type options struct {
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	open  func(source string) (Device, error)
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithAfter replaces time.After for waits (backoff, realtime pacing).
func WithAfter(after func(time.Duration) <-chan time.Time) Option {
	return func(o *options) { o.after = after }
}

// WithDevice replaces the OpenCV opener, so tests can inject faults.
func WithDevice(open func(source string) (Device, error)) Option {
	return func(o *options) { o.open = open }
}

// Source is a self-healing frame source.
type Source struct {
	cfg config.Camera
	log *slog.Logger
	o   options
}

// Open prepares the source. It fails only for a configuration that can never
// work; a camera that is absent now is opened in the background.
func Open(cfg config.Camera, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Source, error) {
	o := options{now: time.Now, after: time.After}
	for _, opt := range opts {
		opt(&o)
	}
	return &Source{cfg: cfg, log: log, o: o}, nil
}

// Read fills dst with the next live frame and returns its capture time.
func (s *Source) Read(ctx context.Context, dst *gocv.Mat) (time.Time, error) {
	return time.Time{}, fmt.Errorf("read: %w", ErrUnavailable)
}

// State reports the current state.
func (s *Source) State() State { return StateConnecting }

// Close releases the device.
func (s *Source) Close() error { return nil }
