package capture

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/camera"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/testmedia"
)

// DemoCapture is the capture section the bundled demo clip is made for.
func demoCapture() config.Capture {
	c := defaultCapture()
	c.MinFacePx = 80
	c.PresenceFrames = 3
	c.Window = 400 * time.Millisecond
	c.Cooldown = 3 * time.Second
	return c
}

// The bundled clip, played at 15 fps through the real camera and selector,
// with a decision taking 200 ms: one shot of person A, one of person B.
func TestDemoClipGivesOneShotPerPerson(t *testing.T) {
	testmedia.CheckMats(t)
	dir, err := testmedia.Dir()
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	camCfg := config.Default().Camera
	camCfg.Source = filepath.Join(dir, "clips", "demo.avi")
	camCfg.FPS = 15
	src, err := camera.Open(camCfg, discard(), newReg(), camera.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sel, _ := newSelector(t, demoCapture(), WithClock(clk.Now))
	frame := gocv.NewMat()
	defer frame.Close()

	type shotAt struct {
		frame  int
		redder bool // person A wears orange; B is A with red and blue swapped
	}
	var shots []shotAt
	busyUntil := -1
	for i := 0; ; i++ {
		clk.Add(time.Second / 15)
		ts, err := src.Read(context.Background(), &frame)
		if errors.Is(err, camera.ErrEnded) {
			if i != 72 {
				t.Fatalf("clip ended after %d frames, want 72", i)
			}
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i == busyUntil {
			sel.SetBusy(false)
		}
		ev, err := sel.Process(frame, ts)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == EventShot {
			img, err := gocv.IMDecode(ev.Shot.JPEG, gocv.IMReadColor)
			if err != nil {
				t.Fatal(err)
			}
			face := img.Region(ev.Shot.Face)
			mean := face.Mean()
			face.Close()
			img.Close()
			shots = append(shots, shotAt{i, mean.Val3 > mean.Val1})
			t.Logf("shot at frame %d (%.3f s), first seen %.3f s, score %.3f, %dx%d", i,
				ts.Sub(clk.start).Seconds(), ev.Shot.FirstSeen.Sub(clk.start).Seconds(), ev.Shot.Score, ev.Shot.Width, ev.Shot.Height)
			sel.SetBusy(true)
			busyUntil = i + 3
		}
	}
	// A: frames 8-31, B: frames 40-63.
	if len(shots) != 2 || shots[0].frame < 8 || shots[0].frame > 31 || !shots[0].redder ||
		shots[1].frame < 40 || shots[1].frame > 63 || shots[1].redder {
		t.Fatalf("shots %+v, want one of A (frames 8-31) and one of B (frames 40-63)", shots)
	}
}
