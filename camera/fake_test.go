package camera

import (
	"bytes"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
)

// step is what the fake device does on one Read.
type step int

const (
	stepFrame   step = iota // a 64x48 frame whose first pixel is the read number
	stepFalse               // Read returns false
	stepEmpty               // Read returns true with an empty Mat
	stepHang                // Read blocks until release is closed
	stepTiny                // a 1x1 frame
	stepFloat               // a frame of the wrong type
	stepBadJPEG             // a raw JPEG packet whose header is sound but whose scan cannot be decoded
)

// fakeDevice is a camera that fails on cue. Each opened device takes the
// next script; after the scripts, devices deliver frames forever.
type fakeDevice struct {
	cam    *fakeCamera
	script []step
	n      int
	closed bool
}

type fakeCamera struct {
	mu        sync.Mutex
	openErrs  int      // the next opens that fail
	scripts   [][]step // one per successful open
	opens     int
	grabs     int
	sets      map[gocv.VideoCaptureProperties]float64
	get       map[gocv.VideoCaptureProperties]float64
	release   chan struct{}
	reads     int
	onRead    func() // runs at the start of each Read
	closedDev int
}

func newFakeCamera() *fakeCamera {
	return &fakeCamera{sets: map[gocv.VideoCaptureProperties]float64{}, get: map[gocv.VideoCaptureProperties]float64{}, release: make(chan struct{})}
}

func (c *fakeCamera) open(string) (Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.openErrs > 0 {
		c.openErrs--
		return nil, errors.New("no such device")
	}
	c.opens++
	d := &fakeDevice{cam: c}
	if len(c.scripts) > 0 {
		d.script, c.scripts = c.scripts[0], c.scripts[1:]
	}
	return d, nil
}

func (d *fakeDevice) Read(dst *gocv.Mat) bool {
	d.cam.mu.Lock()
	st := stepFrame
	if d.n < len(d.script) {
		st = d.script[d.n]
	}
	d.n++
	d.cam.reads++
	num := d.cam.reads
	hook := d.cam.onRead
	d.cam.mu.Unlock()
	if hook != nil {
		hook()
	}
	switch st {
	case stepFalse:
		return false
	case stepEmpty:
		dst.Close()
		*dst = gocv.NewMat()
		return true
	case stepHang:
		<-d.cam.release
		fillSolid(dst, 48, 64, gocv.MatTypeCV8UC3, num)
		return true
	case stepTiny:
		fillSolid(dst, 1, 1, gocv.MatTypeCV8UC3, num)
		return true
	case stepFloat:
		fillSolid(dst, 48, 64, gocv.MatTypeCV32FC1, num)
		return true
	case stepBadJPEG:
		m, err := gocv.NewMatFromBytes(1, len(badJPEG), gocv.MatTypeCV8UC1, badJPEG)
		if err != nil {
			panic(err)
		}
		m.CopyTo(dst)
		m.Close()
		return true
	}
	fillSolid(dst, 48, 64, gocv.MatTypeCV8UC3, num)
	return true
}

// badJPEG has a 64x48 frame header, a scan and an end marker, so it passes
// CheckImage, but no Huffman or quantisation tables: no decoder can read it.
var badJPEG = []byte{
	0xFF, 0xD8, // SOI
	0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x30, 0x00, 0x40, 0x03, // SOF0 64x48, 3 components
	0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
	0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00, // SOS
	0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC,
	0xFF, 0xD9, // EOI
}

func fillSolid(dst *gocv.Mat, rows, cols int, t gocv.MatType, v int) {
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(v%256), 1, 2, 0), rows, cols, t)
	m.CopyTo(dst)
	m.Close()
}

func (d *fakeDevice) Grab(n int) {
	d.cam.mu.Lock()
	d.cam.grabs += n
	d.cam.mu.Unlock()
}

func (d *fakeDevice) Set(p gocv.VideoCaptureProperties, v float64) {
	d.cam.mu.Lock()
	d.cam.sets[p] = v
	d.cam.mu.Unlock()
}

func (d *fakeDevice) Get(p gocv.VideoCaptureProperties) float64 {
	d.cam.mu.Lock()
	defer d.cam.mu.Unlock()
	if v, ok := d.cam.get[p]; ok {
		return v
	}
	return d.cam.sets[p]
}

func (d *fakeDevice) Close() error {
	d.cam.mu.Lock()
	defer d.cam.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.cam.closedDev++
	}
	return nil
}

func (c *fakeCamera) counts() (opens, closed, grabs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens, c.closedDev, c.grabs
}

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// afterRec fires at once, advancing the clock by the wait, and remembers
// every wait asked for.
type afterRec struct {
	mu    sync.Mutex
	clk   *clock
	waits []time.Duration
}

func (a *afterRec) After(d time.Duration) <-chan time.Time {
	a.mu.Lock()
	a.waits = append(a.waits, d)
	a.mu.Unlock()
	a.clk.Add(d)
	ch := make(chan time.Time, 1)
	ch <- a.clk.Now()
	return ch
}

func (a *afterRec) Waits() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Duration(nil), a.waits...)
}

func liveCfg() config.Camera {
	c := config.Default().Camera
	c.Source = "0"
	c.FPS = 10
	c.ReconnectMin = 500 * time.Millisecond
	c.ReconnectMax = 2 * time.Second
	return c
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type rig struct {
	src  *Source
	cam  *fakeCamera
	clk  *clock
	aft  *afterRec
	reg  *prometheus.Registry
	logs *syncBuf
	mat  gocv.Mat
}

func newRig(t *testing.T, cfg config.Camera, cam *fakeCamera, opts ...Option) *rig {
	t.Helper()
	clk := newClock()
	r := &rig{cam: cam, clk: clk, aft: &afterRec{clk: clk}, reg: prometheus.NewRegistry(), logs: &syncBuf{}}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	all := append([]Option{WithClock(clk.Now), WithAfter(r.aft.After), WithReadWait(100 * time.Millisecond)}, opts...)
	if cam != nil {
		all = append(all, WithDevice(cam.open))
	}
	src, err := Open(cfg, log, r.reg, all...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	r.src = src
	r.mat = gocv.NewMat()
	t.Cleanup(func() {
		if cam != nil {
			select {
			case <-cam.release:
			default:
				close(cam.release)
			}
		}
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		r.mat.Close()
	})
	return r
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func pixel(m gocv.Mat) int {
	if m.Empty() {
		return -1
	}
	return int(m.GetVecbAt(0, 0)[0])
}

func discard() *slog.Logger        { return slog.New(slog.DiscardHandler) }
func newReg() *prometheus.Registry { return prometheus.NewRegistry() }
func slogTo(w *syncBuf) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
