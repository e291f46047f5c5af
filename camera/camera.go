// Package camera delivers live frames from a V4L2 device, a network stream,
// a GStreamer pipeline, a video file or an image folder, and keeps doing so
// across faults by reopening the source with capped exponential backoff.
package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/backoff"
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
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	open     func(source string) (Device, error)
	readWait time.Duration
}

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithAfter replaces time.After for the waits that are behaviour rather
// than a safety bound: reconnect backoff and realtime pacing.
func WithAfter(after func(time.Duration) <-chan time.Time) Option {
	return func(o *options) { o.after = after }
}

// WithDevice replaces the OpenCV opener, so tests can inject faults.
func WithDevice(open func(source string) (Device, error)) Option {
	return func(o *options) { o.open = open }
}

// WithReadWait changes how long one Read waits for a frame before it
// returns ErrUnavailable (default 1 s).
func WithReadWait(d time.Duration) Option { return func(o *options) { o.readWait = d } }

// maxFrameSide rejects absurd frames at the source: copying a corrupt
// 10000x10000 header's worth of pixels twice per frame helps no one.
const maxFrameSide = 8192

// maxBadFileFrames is how many undecodable frames in a row end a file.
const maxBadFileFrames = 25

// Source is a self-healing frame source. Read, Close and the Mats they
// touch belong to one goroutine (the frame loop); the device itself lives on
// a worker goroutine of its own, so that a driver stuck in a read cannot
// stall the loop, and only bytes cross between the two: a compressed JPEG
// frame, decoded by the frame loop straight into the caller's Mat, or the
// pixels a backend decoded.
type Source struct {
	cfg  config.Camera
	log  *slog.Logger
	o    options
	m    *metrics
	kind kind
	spec string // what is opened: path, URL, device, pipeline

	mu    sync.Mutex
	state State

	workersMu sync.Mutex
	workers   map[*worker]struct{} // running workers, for Stuck

	w         *worker
	pending   bool // a read request is outstanding on w
	abandoned []*worker
	failures  int     // reopens since the last good frame
	downWarn  repeats // "down, reopening" warnings, rate-limited
	frameWarn repeats // "skipping a frame" warnings of a live camera
	nextOpen  time.Time
	opened    bool // a device has been opened at least once
	rewinding bool // reopening a looping file: not a reconnect
	lastGood  time.Time
	// fileStart and fileN date a file or folder source's frames on the
	// clip's own clock: frame fileN of a pass is at fileStart + fileN/fps;
	// newPass is set when a pass (re)starts (fileTime).
	fileStart time.Time
	fileN     int64
	newPass   bool
	badFile   int
	ended     bool
	ffmpegEnv string // set before each open of a URL; empty when the operator set it
	// noRaw is set (by a worker) when the device's JPEG frames cannot be
	// decoded by kioskd, so later opens leave decoding to the backend.
	noRaw atomic.Bool
	// filled is the pixel buffer of the Mat the last frame was decoded or
	// copied into: a repeated frame needs no decode while it is still there.
	filled *byte
	// rd decodes a device's compressed frames into the caller's Mat; it
	// belongs to the frame loop, like the Mats Read fills.
	rd *rawDecoder
}

// Open prepares the source. It fails only for a configuration that can never
// work (a missing file or an empty folder); a camera that is absent now is
// opened on the first Read and reopened for as long as it takes.
func Open(cfg config.Camera, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Source, error) {
	o := options{now: time.Now, after: time.After, readWait: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.FPS <= 0 || cfg.ReconnectMin <= 0 || cfg.ReconnectMax <= 0 || cfg.StallTimeout <= 0 || cfg.MaxFrameAge <= 0 {
		return nil, errors.New("camera: configuration without defaults (use config.Default or config.Load)")
	}
	k, spec, err := classify(cfg.Source)
	if err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, log: log.With("camera", redact(cfg.Source)), o: o, kind: k, spec: spec, workers: map[*worker]struct{}{}, newPass: true}
	if o.open == nil {
		if err := precheck(k, spec); err != nil {
			return nil, err
		}
		s.o.open = s.openOpenCV
	}
	if k == kindURL {
		if v, set := os.LookupEnv(ffmpegEnv); set {
			s.log.Info("camera: using the operator's FFmpeg options", ffmpegEnv, v)
		} else {
			s.ffmpegEnv = s.ffmpegOptions()
		}
	}
	if s.m, err = newMetrics(reg); err != nil {
		return nil, err
	}
	return s, nil
}

// State reports the current state.
func (s *Source) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Source) setState(st State) {
	s.mu.Lock()
	prev := s.state
	s.state = st
	s.mu.Unlock()
	if st == StateUp {
		s.m.up.Set(1)
	} else {
		s.m.up.Set(0)
	}
	if prev != st {
		s.log.Info("camera: state", "state", st.String(), "previous", prev.String())
	}
}

// Unpaced reports whether this is a file or folder source read as fast as
// the consumer reads (camera.realtime false): its frames wait for the
// consumer, so the consumer may wait for its own work too, and the frame
// times come from the clip's frame rate alone.
func (s *Source) Unpaced() bool { return s.kind.file() && !s.cfg.Realtime }

// fileTime is the capture time of a file or folder source's next frame on
// the clip's own clock, skipped frames (see late) passed over: frame n of a
// pass is dated n/fps after the pass's first frame. A clip replayed as fast
// as possible therefore carries the same frame times, and so gets the same
// presence, window and cooldown decisions, as the same clip paced like a
// camera. Each pass (a loop starts a new one) begins at the wall clock or
// one interval after the last frame, whichever is later, so that a paced
// replay's frame times do not drift from the wall clock over many passes
// and an unpaced one's never go back.
func (s *Source) fileTime(now time.Time, skipped int) time.Time {
	if s.newPass {
		start := now
		if !s.fileStart.IsZero() {
			if next := s.clipAt(s.fileN + 1); next.After(start) {
				start = next
			}
		}
		s.fileStart, s.fileN, s.newPass = start, 0, false
		return start
	}
	s.fileN += 1 + int64(skipped)
	return s.clipAt(s.fileN)
}

// clipAt is the time of frame n of the current pass on the clip's clock.
func (s *Source) clipAt(n int64) time.Time {
	return s.fileStart.Add(time.Duration(float64(n) * float64(time.Second) / s.cfg.FPS))
}

// due is when a paced file's next frame is due on the clip's clock, which
// a paced replay keeps to the wall clock; zero when the source is not a
// paced file or a pass is starting (its first frame is due at once).
func (s *Source) due() time.Time {
	if !s.cfg.Realtime || !s.kind.file() || s.newPass || s.fileStart.IsZero() {
		return time.Time{}
	}
	return s.clipAt(s.fileN + 1)
}

// interval is the time between two frames at the configured rate.
func (s *Source) interval() time.Duration {
	return time.Duration(float64(time.Second) / s.cfg.FPS)
}

// maxPassOver bounds the frames passed over before one read (a second's):
// the late frames of a paced file, the stale ones a live camera buffered.
func (s *Source) maxPassOver() int { return max(int(s.cfg.FPS), 1) }

// late is how many frames of a paced file to pass over because the frame
// loop is behind: a camera with one buffer hands a late reader its newest
// frame, not the one that was due, and a paced clip stands in for a
// camera. The clip's clock so stays with the wall clock, and latencies
// measured on a replay are those a camera would give.
func (s *Source) late(due time.Time) int {
	behind := s.o.now().Sub(due)
	if behind < s.interval() {
		return 0
	}
	return min(int(behind/s.interval()), s.maxPassOver())
}

// Read fills dst with the next live frame and returns its capture time.
// For a file or folder source that is the frame's time on the clip's own
// clock (see fileTime), not the moment it was read.
// It never blocks much longer than a second: while the camera is down it
// returns an error wrapping ErrUnavailable and keeps reconnecting with
// capped backoff on later calls. At the end of a non-looping file or folder
// it returns ErrEnded.
//
// When the scene has not changed since the frame dst already holds (see
// rawjpeg.go), dst is left as it is rather than copied over with the same
// pixels, so callers must not write into dst between reads.
func (s *Source) Read(ctx context.Context, dst *gocv.Mat) (time.Time, error) {
	if dst == nil || dst.Ptr() == nil {
		return time.Time{}, errors.New("camera: read into a nil Mat")
	}
	if s.ended {
		return time.Time{}, ErrEnded
	}
	limit := time.NewTimer(s.o.readWait)
	defer limit.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if s.w == nil {
			if err := s.reopen(ctx, limit.C); err != nil {
				return time.Time{}, err
			}
		}
		w := s.w
		if !w.ready {
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case <-limit.C:
				return time.Time{}, fmt.Errorf("camera: still opening: %w", ErrUnavailable)
			case or := <-w.opened:
				if or.err != nil {
					s.fail("open", or.err)
					return time.Time{}, fmt.Errorf("camera: open: %v: %w", or.err, ErrUnavailable)
				}
				w.ready = true
				s.lastGood = s.o.now()
				s.describe(or.props)
				if s.opened && !s.rewinding {
					s.m.reconnects.Inc()
				}
				s.opened, s.rewinding = true, false
			}
		}
		skip := 0
		if due := s.due(); !due.IsZero() && !s.pending {
			if wait := due.Sub(s.o.now()); wait > 0 {
				select {
				case <-ctx.Done():
					return time.Time{}, ctx.Err()
				case <-s.o.after(wait):
				}
			}
			skip = s.late(due)
		}
		if !s.pending {
			w.req <- skip
			s.pending = true
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-limit.C:
			if idle := s.o.now().Sub(s.lastGood); idle >= s.cfg.StallTimeout {
				s.fail("stall", fmt.Errorf("no frame for %v", idle.Round(time.Millisecond)))
				return time.Time{}, fmt.Errorf("camera: no frame for %v, reopening: %w", idle.Round(time.Millisecond), ErrUnavailable)
			}
			return time.Time{}, fmt.Errorf("camera: no frame within %v: %w", s.o.readWait, ErrUnavailable)
		case r := <-w.res:
			s.pending = false
			ts, done, err := s.take(r, dst)
			if done {
				return ts, err
			}
		}
	}
}

// take handles one result from the worker. done is false when Read should
// ask for another frame (stale frame, a skipped bad frame, a file looping).
func (s *Source) take(r result, dst *gocv.Mat) (time.Time, bool, error) {
	if r.dropped > 0 {
		s.m.stale.Add(float64(r.dropped))
	}
	now := s.o.now()
	switch {
	case r.eof && s.kind.file():
		s.retire(s.w)
		s.w = nil
		if s.cfg.Loop {
			s.log.Debug("camera: end of input, looping")
			s.nextOpen = time.Time{}
			s.rewinding, s.newPass = true, true
			return time.Time{}, false, nil
		}
		s.ended = true
		s.setState(StateEnded)
		return time.Time{}, true, ErrEnded
	case r.eof:
		s.m.readErrors.Inc()
		s.fail("read", errors.New("the device returned no frame"))
		return time.Time{}, true, fmt.Errorf("camera: read: no frame: %w", ErrUnavailable)
	case r.err != nil && isImageError(r.err) && s.kind.live():
		// One bad frame from a live camera (a USB transfer cut short) is
		// skipped and counted; the camera is not down for it.
		s.m.readErrors.Inc()
		s.m.rejected.WithLabelValues(r.err.(*ImageError).Reason).Inc()
		if left, ok := s.frameWarn.allow(r.err.Error(), s.o.now()); ok {
			s.log.Warn("camera: skipping a frame", "err", r.err, "repeated", left)
		}
		return time.Time{}, false, nil
	case r.err != nil:
		s.m.readErrors.Inc()
		if s.kind.file() {
			s.badFile++
			if s.badFile < maxBadFileFrames {
				// Warn: a file source is an installer's test input, and a frame
				// dropped without a word (a 10000x10000 picture) looks like a
				// face that was never seen.
				s.log.Warn("camera: skipping an unusable frame", "err", r.err)
				return time.Time{}, false, nil
			}
			s.badFile = 0
		}
		s.fail("read", r.err)
		return time.Time{}, true, fmt.Errorf("camera: read: %v: %w", r.err, ErrUnavailable)
	}
	s.badFile = 0
	if age := now.Sub(r.ts); age > s.cfg.MaxFrameAge {
		// The loop, or a hung read, made this frame old: never hand it on.
		s.m.stale.Inc()
		return time.Time{}, false, nil
	}
	repeat := false
	if r.pkt != nil {
		if s.rd == nil {
			s.rd = newRawDecoder()
		}
		var err error
		repeat, err = s.rd.decode(r.pkt, dst, s.filled != nil && s.filled == matData(*dst))
		if err != nil {
			// A stream this decoder cannot read (e.g. MJPEG without
			// Huffman tables) is left to the backend from now on; this
			// frame counts as an unusable one.
			s.filled = nil
			s.noRaw.Store(true)
			s.log.Warn("camera: cannot decode the camera's JPEG frames; the backend decodes them from the next frame on", "err", err)
			return s.take(result{ts: r.ts, err: err}, dst)
		}
	} else if err := fill(dst, r); err != nil {
		s.filled = nil
		return time.Time{}, true, fmt.Errorf("camera: %w", err)
	}
	s.filled = matData(*dst)
	s.lastGood = now
	s.failures = 0
	s.m.frames.Inc()
	if repeat {
		s.m.repeats.Inc()
	}
	s.m.lastFrame.Set(float64(r.ts.UnixNano()) / 1e9)
	if s.downWarn.key != "" {
		s.downWarn = repeats{} // the next outage is news again
	}
	s.setState(StateUp)
	if s.kind.file() {
		return s.fileTime(now, r.dropped), true, nil
	}
	return r.ts, true, nil
}

// reopen starts a new worker once the backoff has passed. It waits for the
// backoff within this Read's time limit.
func (s *Source) reopen(ctx context.Context, limit <-chan time.Time) error {
	if wait := s.nextOpen.Sub(s.o.now()); wait > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-limit:
			return fmt.Errorf("camera: reconnecting in %v: %w", wait.Round(time.Millisecond), ErrUnavailable)
		case <-s.o.after(wait):
		}
	}
	if !s.opened {
		s.setState(StateConnecting)
	}
	s.w = s.startWorker()
	s.pending = false
	if s.rd != nil {
		// Another device, or the file from its start: compare afresh.
		s.rd.reset()
	}
	return nil
}

// fail closes the current device and schedules a reopen with capped
// exponential backoff.
func (s *Source) fail(what string, err error) {
	if s.w != nil {
		s.retire(s.w)
		s.w = nil
	}
	s.pending = false
	// A file that fails to reopen at its loop point is an outage, and the
	// open that ends it a reconnect like any other.
	s.rewinding = false
	// Jitter spreads reconnects of many doors behind one recorder.
	s.failures++
	d := backoff.Policy{Min: s.cfg.ReconnectMin, Max: s.cfg.ReconnectMax, Jitter: 0.2}.Delay(s.failures, rand.Float64)
	s.nextOpen = s.o.now().Add(d)
	s.setState(StateDown)
	s.m.failures.WithLabelValues(what).Inc()
	if left, ok := s.downWarn.allow(what+": "+err.Error(), s.o.now()); ok {
		attrs := []any{"what", what, "err", err, "retry_in_ms", d.Milliseconds()}
		if left > 0 {
			attrs = append(attrs, "repeated", left)
		}
		s.log.Warn("camera: down, reopening", attrs...)
	}
}

// retire stops a worker without waiting: a driver stuck in a read returns
// when it returns, and the worker then closes the device.
func (s *Source) retire(w *worker) {
	w.stop()
	s.abandoned = append(s.live(), w)
}

// live drops retired workers that have finished.
func (s *Source) live() []*worker {
	var out []*worker
	for _, w := range s.abandoned {
		select {
		case <-w.done:
		default:
			out = append(out, w)
		}
	}
	return out
}

// Close stops the device. It waits up to two seconds for a driver stuck in
// a read; after that the device is left to close itself when it returns.
func (s *Source) Close() error {
	if s.rd != nil {
		s.rd.Close()
		s.rd = nil
	}
	if s.w != nil {
		s.retire(s.w)
		s.w = nil
	}
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	for _, w := range s.abandoned {
		select {
		case <-w.done:
		case <-deadline.C:
			s.m.up.Set(0)
			return errors.New("camera: a device did not close within 2s")
		}
	}
	s.abandoned = nil
	s.m.up.Set(0)
	return nil
}

func (s *Source) describe(p props) {
	if !s.kind.live() {
		s.log.Info("camera: opened", "kind", s.kind.String(), "width", p.width, "height", p.height, "fps", p.fps, "frames", p.frames)
		return
	}
	s.log.Info("camera: opened", "kind", s.kind.String(), "backend", s.kind.backend(),
		"width", p.width, "height", p.height, "fps", p.fps, "buffer_size", p.buffer,
		"requested_width", s.cfg.Width, "requested_height", s.cfg.Height, "requested_fps", s.cfg.FPS, "requested_buffer_size", s.cfg.BufferSize)
	if (s.cfg.Width > 0 && p.width != s.cfg.Width) || (s.cfg.Height > 0 && p.height != s.cfg.Height) {
		s.log.Warn("camera: the camera gave another size than configured", "requested", fmt.Sprintf("%dx%d", s.cfg.Width, s.cfg.Height), "got", fmt.Sprintf("%dx%d", p.width, p.height))
	}
	if p.fps > 0 && (p.fps < s.cfg.FPS-0.5 || p.fps > s.cfg.FPS+0.5) {
		s.log.Warn("camera: the camera gave another frame rate than configured", "requested", s.cfg.FPS, "got", p.fps)
	}
	if s.cfg.BufferSize > 0 && p.buffer > 0 && p.buffer != s.cfg.BufferSize {
		s.log.Warn("camera: the driver kept another buffer size than configured", "requested", s.cfg.BufferSize, "got", p.buffer)
	}
}

// fill copies a frame's bytes into dst, reusing dst's memory when it has
// the right shape.
func fill(dst *gocv.Mat, r result) error {
	if dst.Rows() == r.rows && dst.Cols() == r.cols && dst.Type() == r.typ && dst.IsContinuous() {
		p, err := dst.DataPtrUint8()
		if err == nil && len(p) == len(r.data) {
			copy(p, r.data)
			return nil
		}
	}
	tmp, err := gocv.NewMatFromBytes(r.rows, r.cols, r.typ, r.data)
	if err != nil {
		return fmt.Errorf("frame: %w", err)
	}
	tmp.CopyTo(dst)
	tmp.Close()
	return nil
}

// matData is the address of m's pixels, or nil.
func matData(m gocv.Mat) *byte {
	if m.Empty() || !m.IsContinuous() {
		return nil
	}
	p, err := m.DataPtrUint8()
	if err != nil || len(p) == 0 {
		return nil
	}
	return unsafe.SliceData(p)
}
