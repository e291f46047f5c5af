package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/testmedia"
	"github.com/kioskd/kioskd/queue"
)

// faceJPEG is a 1280x720 frame with person A, encoded as kioskd uploads it
// by default (whole frame, quality 85).
func faceJPEG(root string) ([]byte, error) {
	g, err := testmedia.NewGenerator(filepath.Join(root, "testdata"))
	if err != nil {
		return nil, err
	}
	defer g.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	sc := testmedia.Scenes["a"]
	sc.Noise = clipNoise
	if err := g.Render(sc, 1280, 720, 0, &frame); err != nil {
		return nil, err
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, frame, []int{gocv.IMWriteJpegQuality, config.Default().Capture.JPEGQuality})
	if err != nil {
		return nil, err
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}

// fillQueue enqueues n captures into a new queue file at path, as kioskd
// would have during an outage. It returns the size of one capture.
func fillQueue(root, path string, n int) (int, error) {
	img, err := faceJPEG(root)
	if err != nil {
		return 0, err
	}
	cfg := config.Default().Queue
	cfg.Path = path
	// Encrypted as kioskd's own queue is, with the per-device key that
	// kioskd finds beside the file (device.state_dir).
	key, err := queue.CreateKey(filepath.Join(filepath.Dir(path), config.GeneratedKeyName))
	if err != nil {
		return 0, err
	}
	cfg.UseGeneratedKey(key)
	q, err := queue.Open(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return 0, err
	}
	now := time.Now()
	for i := range n {
		if _, err := q.Enqueue(context.Background(), queue.Item{CapturedAt: now.Add(time.Duration(i-n) * time.Second), Source: "bench-door", JPEG: img}); err != nil {
			q.Close()
			return 0, err
		}
	}
	return len(img), q.Close()
}

// decodeResult is what `benchrun decode` prints.
type decodeResult struct {
	Frames    int     `json:"frames"`
	FullMs    float64 `json:"full_ms"`    // VideoCapture.Read: demux, decode, convert to BGR
	GrabMs    float64 `json:"grab_ms"`    // VideoCapture.Grab: demux and decode only
	ReducedMs float64 `json:"reduced_ms"` // raw packet + 1/8-scale grey JPEG decode
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runDecode measures decoding the frames of a clip (run under taskset to
// get one core's figure).
func runDecode(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: benchrun decode CLIP")
		return 2
	}
	var r decodeResult
	var err error
	if r.Frames, r.FullMs, err = decodeLoop(args[0], func(vc *gocv.VideoCapture, m *gocv.Mat) bool { return vc.Read(m) }, nil); err != nil {
		fmt.Fprintln(stderr, "benchrun decode:", err)
		return 1
	}
	grabbed := 0
	_, r.GrabMs, _ = decodeLoop(args[0], func(vc *gocv.VideoCapture, m *gocv.Mat) bool {
		vc.Grab(1)
		grabbed++
		return grabbed <= r.Frames
	}, nil)
	_, r.ReducedMs, _ = decodeLoop(args[0], func(vc *gocv.VideoCapture, m *gocv.Mat) bool {
		if !vc.Read(m) || m.Empty() {
			return false
		}
		small, err := gocv.IMDecode(m.ToBytes(), gocv.IMReadReducedGrayscale8)
		ok := err == nil && !small.Empty()
		small.Close()
		return ok
	}, func(vc *gocv.VideoCapture) { vc.Set(gocv.VideoCaptureFormat, -1) })
	return printJSON(stdout, r)
}

func printJSON(w io.Writer, v any) int {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return 1
	}
	return 0
}

func decodeLoop(clip string, step func(*gocv.VideoCapture, *gocv.Mat) bool, setup func(*gocv.VideoCapture)) (int, float64, error) {
	vc, err := gocv.VideoCaptureFile(clip)
	if err != nil {
		return 0, 0, err
	}
	defer vc.Close()
	if setup != nil {
		setup(vc)
	}
	m := gocv.NewMat()
	defer m.Close()
	start := cpuTime()
	n := 0
	for n < 1000 && step(vc, &m) {
		n++
	}
	if n == 0 {
		return 0, 0, errors.New("no frame decoded")
	}
	return n, float64(cpuTime()-start) / float64(time.Millisecond) / float64(n), nil
}
