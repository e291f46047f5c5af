package camera

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// worker owns one opened device and the Mat it reads into. It answers one
// read request at a time with the frame's bytes (compressed, when kioskd
// decodes the device's JPEG frames), so no Mat ever leaves it.
type worker struct {
	req    chan int // frames to pass over first (a paced file behind)
	res    chan result
	opened chan openResult
	quit   chan struct{}
	done   chan struct{}
	ready  bool // the Source saw the open result (frame-loop side only)
	// inCall is when the device call now running began (unix nanos), 0
	// between calls. Other goroutines read it to find a driver stuck in C.
	inCall atomic.Int64
}

// call runs one blocking device call with its start time published.
func (s *Source) call(w *worker, f func()) {
	w.inCall.Store(s.o.now().UnixNano())
	defer w.inCall.Store(0)
	f()
}

type result struct {
	data       []byte // decoded pixels (backend decoding)
	pkt        []byte // or a compressed JPEG frame, decoded by take
	rows, cols int
	typ        gocv.MatType
	ts         time.Time
	eof        bool  // the device returned no frame
	err        error // a frame that cannot be used
	dropped    int   // stale or late frames grabbed and discarded before this one
}

type openResult struct {
	props props
	err   error
}

type props struct {
	width, height int
	fps           float64
	buffer        int
	frames        int
}

func (w *worker) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
}

func (s *Source) startWorker() *worker {
	w := &worker{
		req:    make(chan int, 1),
		res:    make(chan result, 1),
		opened: make(chan openResult, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	s.workersMu.Lock()
	s.workers[w] = struct{}{}
	s.workersMu.Unlock()
	go func() {
		defer func() {
			s.workersMu.Lock()
			delete(s.workers, w)
			s.workersMu.Unlock()
		}()
		s.runWorker(w)
	}()
	return w
}

// Stuck is how long the oldest device call still running (an open, a grab or
// a read, on the current device or an abandoned one) has been blocked; 0 when
// none is running. A driver stuck inside OpenCV cannot be interrupted from Go:
// the agent stops the systemd watchdog when this grows too long, so that the
// process is restarted. Safe to call from any goroutine.
func (s *Source) Stuck() time.Duration {
	s.workersMu.Lock()
	defer s.workersMu.Unlock()
	var oldest int64
	for w := range s.workers {
		if t := w.inCall.Load(); t != 0 && (oldest == 0 || t < oldest) {
			oldest = t
		}
	}
	if oldest == 0 {
		return 0
	}
	return s.o.now().Sub(time.Unix(0, oldest))
}

// runWorker opens the device, then serves read requests until told to quit.
// Everything OpenCV-related of this device happens on this goroutine.
func (s *Source) runWorker(w *worker) {
	defer close(w.done)
	var dev Device
	var err error
	s.call(w, func() { dev, err = s.o.open(s.spec) })
	if err != nil {
		w.opened <- openResult{err: err}
		return
	}
	if dev == nil {
		w.opened <- openResult{err: errors.New("opener returned no device")}
		return
	}
	defer dev.Close()
	p := s.configure(dev)
	w.opened <- openResult{props: p}

	mat := gocv.NewMat()
	defer mat.Close()
	raw := !s.noRaw.Load() && s.enableRaw(dev)
	if raw {
		s.log.Debug("camera: JPEG frames are decoded by kioskd; unchanged frames are not decoded again")
	}
	var buf []byte
	var lastRead time.Time
	for {
		var skip int
		select {
		case <-w.quit:
			return
		case skip = <-w.req:
		}
		if raw && s.noRaw.Load() {
			// The device's raw frames were not JPEG, or the frame loop
			// could not decode one: the backend decodes from now on.
			s.disableRaw(dev)
			raw = false
		}
		var r result
		if skip > 0 {
			s.call(w, func() { dev.Grab(skip) })
			r.dropped = skip
		}
		if s.kind.live() && !lastRead.IsZero() && s.o.now().Sub(lastRead) > s.cfg.MaxFrameAge {
			// The loop was slow: the driver holds frames from the past. A grab
			// that returns at once came from its buffer; one that waits is live.
			for r.dropped < s.maxPassOver() {
				t0 := s.o.now()
				s.call(w, func() { dev.Grab(1) })
				if s.o.now().Sub(t0) >= s.interval()/2 {
					break
				}
				r.dropped++
			}
		}
		var ok bool
		s.call(w, func() { ok = dev.Read(&mat) })
		lastRead = s.o.now()
		r.ts = lastRead
		switch {
		case !ok:
			r.eof = true
		case raw:
			// A frame that is not JPEG sets noRaw: the next request
			// switches this device back (above).
			buf, r = s.rawFrame(mat, buf, r)
		default:
			buf, r.err = frameBytes(mat, buf)
			if r.err == nil {
				r.data, r.rows, r.cols, r.typ = buf, mat.Rows(), mat.Cols(), mat.Type()
			}
		}
		select {
		case w.res <- r:
		case <-w.quit:
			return
		}
	}
}

// frameBytes checks a decoded frame and copies its pixels into buf.
func frameBytes(m gocv.Mat, buf []byte) ([]byte, error) {
	if m.Empty() {
		return buf, errors.New("empty frame")
	}
	if len(m.Size()) != 2 {
		return buf, fmt.Errorf("%d-dimensional frame", len(m.Size()))
	}
	if m.Rows() > maxFrameSide || m.Cols() > maxFrameSide {
		return buf, fmt.Errorf("frame %dx%d is larger than %d px", m.Cols(), m.Rows(), maxFrameSide)
	}
	switch m.Type() {
	case gocv.MatTypeCV8UC1, gocv.MatTypeCV8UC3, gocv.MatTypeCV8UC4:
	default:
		return buf, fmt.Errorf("frame type %v is not 8-bit grey, BGR or BGRA", m.Type())
	}
	src := m
	if !m.IsContinuous() {
		c := m.Clone()
		defer c.Close()
		src = c
	}
	p, err := src.DataPtrUint8()
	if err != nil {
		return buf, fmt.Errorf("frame data: %w", err)
	}
	if cap(buf) < len(p) {
		buf = make([]byte, len(p))
	}
	buf = buf[:len(p)]
	copy(buf, p)
	return buf, nil
}

// configure asks a V4L2 camera for the configured format and reads back
// what any source actually gives. A GStreamer pipeline or a network stream
// defines its own format: OpenCV would force the requested size onto a
// pipeline's caps, which fails to negotiate against a pipeline that fixes
// its own size.
func (s *Source) configure(dev Device) props {
	if s.kind == kindDevice {
		if s.cfg.FourCC != "" {
			c := s.cfg.FourCC
			dev.Set(gocv.VideoCaptureFOURCC, float64(uint32(c[0])|uint32(c[1])<<8|uint32(c[2])<<16|uint32(c[3])<<24))
		}
		if s.cfg.Width > 0 {
			dev.Set(gocv.VideoCaptureFrameWidth, float64(s.cfg.Width))
		}
		if s.cfg.Height > 0 {
			dev.Set(gocv.VideoCaptureFrameHeight, float64(s.cfg.Height))
		}
		dev.Set(gocv.VideoCaptureFPS, s.cfg.FPS)
		if s.cfg.BufferSize > 0 {
			dev.Set(gocv.VideoCaptureBufferSize, float64(s.cfg.BufferSize))
		}
	}
	return props{
		width:  int(dev.Get(gocv.VideoCaptureFrameWidth)),
		height: int(dev.Get(gocv.VideoCaptureFrameHeight)),
		fps:    dev.Get(gocv.VideoCaptureFPS),
		buffer: int(dev.Get(gocv.VideoCaptureBufferSize)),
		frames: int(dev.Get(gocv.VideoCaptureFrameCount)),
	}
}

// rawFrame hands on one compressed frame, to be decoded by the frame loop
// straight into its own Mat (see rawjpeg.go): a decoded frame is never held
// on this side. A frame that is not JPEG at all switches the source back to
// backend decoding; this frame is used as is when it is an ordinary image.
func (s *Source) rawFrame(mat gocv.Mat, buf []byte, r result) ([]byte, result) {
	pkt, err := packet(mat)
	if errors.Is(err, errNotJPEG) {
		s.noRaw.Store(true)
		s.log.Info("camera: the device's raw frames are not JPEG; the backend decodes them")
		buf, r.err = frameBytes(mat, buf)
		if r.err == nil {
			r.data, r.rows, r.cols, r.typ = buf, mat.Rows(), mat.Cols(), mat.Type()
		} else {
			r.err = fmt.Errorf("%w: %v", errNotJPEG, r.err)
		}
		return buf, r
	}
	if err != nil {
		r.err = err
		return buf, r
	}
	// A frame larger than configured or cut short is refused before it is
	// decoded, as a picture from a folder is.
	if r.err = CheckImage(pkt, s.cfg.MaxPixels); r.err != nil {
		return buf, r
	}
	buf = append(buf[:0], pkt...)
	r.pkt = buf
	return buf, r
}
