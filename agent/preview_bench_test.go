package agent

import (
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/internal/testmedia"
)

// BenchmarkSelfView is the self-view's cost on the frame loop while a
// screen watches: a 1280x720 camera frame scaled to 640x360 and encoded as
// a JPEG, at the 15 fps cap. make bench runs it on one core and reports
// the CPU time per frame and the share of a core it takes at 15 fps. Without the matprofile tag:
//
//	taskset -c 0 go test -run '^$' -bench SelfView -benchtime 300x ./agent/
func BenchmarkSelfView(b *testing.B) {
	dir, err := testmedia.Dir()
	if err != nil {
		b.Fatal(err)
	}
	g, err := testmedia.NewGenerator(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	if err := g.Frame("a", 1280, 720, &frame); err != nil {
		b.Fatal(err)
	}
	const fps = 15
	p := newPreview(fps)
	defer p.close()
	now := time.Unix(0, 0)
	var bytes int
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range b.N {
		now = now.Add(time.Second / fps)
		f, ok := p.frame(now, frame, capture.Analysis{})
		if !ok {
			b.Fatal("no frame at the frame rate")
		}
		bytes += len(f.JPEG)
	}
	// CPU time, not wall time: on a shared machine the wall clock also
	// counts other processes' turns on the core.
	perFrame := (cpuTime(b) - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(perFrame*1000, "ms/frame")
	b.ReportMetric(perFrame*fps*100, "core_%_at_15fps")
	b.ReportMetric(float64(bytes)/float64(b.N)/1024, "KB/frame")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestSelfViewFrame(t *testing.T) {
	testmedia.CheckMats(t)
	frame := gocv.NewMatWithSize(720, 1280, gocv.MatTypeCV8UC3)
	defer frame.Close()
	p := newPreview(30) // above the cap
	defer p.close()
	start := time.Unix(0, 0)
	f, ok := p.frame(start, frame, capture.Analysis{Thresholds: map[string]float64{capture.ThMinFaceFraction: 0.2, capture.ThMaxFaceFraction: 0.9}})
	if !ok || len(f.JPEG) < 100 || f.MinFace != 0.2 || f.MaxFace != 0.9 {
		t.Fatalf("first frame: ok %v, %d bytes, min %v max %v", ok, len(f.JPEG), f.MinFace, f.MaxFace)
	}
	img, err := gocv.IMDecode(f.JPEG, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Cols() != 640 || img.Rows() != 360 || img.Channels() != 3 {
		t.Errorf("self-view frame is %dx%dx%d, want 640x360 in colour", img.Cols(), img.Rows(), img.Channels())
	}
	// 15 fps at most, whatever was asked for.
	if _, ok := p.frame(start.Add(time.Second/30), frame, capture.Analysis{}); ok {
		t.Errorf("a second frame 33 ms later: the 15 fps cap is not applied")
	}
	if _, ok := p.frame(start.Add(time.Second/15), frame, capture.Analysis{}); !ok {
		t.Errorf("no frame 66 ms later")
	}
}
