package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kioskd/kioskd/internal/testmedia"
)

// replayScript keeps person A in front of the camera longer than the
// cooldown (two decisions), then person B once: the cooldown, not only the
// window, decides how many decisions there are.
const replayScript = "empty:8,a:80,empty:10,b:30,empty:10"

// TestReplayPacedAndUnpacedDecideAlike is issue 18's replay check: the same
// MJPEG clip read paced like a 15 fps camera and read as fast as possible
// gives the same decision lines, and two unpaced replays upload the very
// same frames.
func TestReplayPacedAndUnpacedDecideAlike(t *testing.T) {
	t.Parallel()
	segs, err := testmedia.ParseScript(replayScript)
	if err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(t.TempDir(), "replay.avi")
	g, err := testmedia.NewGenerator(filepath.Join(repoRoot, "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	err = g.WriteClip(clip, 640, 360, 15, segs, testmedia.ClipOptions{Noise: 3})
	g.Close()
	if err != nil {
		t.Fatal(err)
	}

	type outcome struct {
		lines  []string // result/reason of each decision, in order
		images []string // sha256 of each uploaded JPEG, in order
		took   time.Duration
	}
	replay := func(realtime bool) outcome {
		s := startSim(t)
		cfg := writeConfig(t, runOpts{BaseURL: s.URL, Clip: clip, Realtime: realtime, Capture: "  max_failures: 0"})
		t0 := time.Now()
		k := startKioskd(t, cfg)
		if code := k.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("realtime %v: kioskd exited %d", realtime, code)
		}
		var o outcome
		o.took = time.Since(t0)
		for _, d := range decisions(k.Output()) {
			o.lines = append(o.lines, fmt.Sprintf("%v/%v deferred=%v", d["result"], d["reason"], d["deferred"]))
		}
		for _, r := range s.requests(t) {
			if r["path"] != "/omni/incode-id/authenticate" {
				continue
			}
			img, _ := r["image"].(map[string]any)
			o.images = append(o.images, fmt.Sprint(img["sha256"]))
		}
		return o
	}
	paced := replay(true)
	fast := replay(false)
	again := replay(false)

	want := []string{"PASS/ deferred=false", "PASS/ deferred=false", "FAIL/faceMatchFailed deferred=false"}
	if !slices.Equal(paced.lines, want) {
		t.Errorf("paced replay decided %q, want %q", paced.lines, want)
	}
	if !slices.Equal(fast.lines, paced.lines) {
		t.Errorf("unpaced replay decided %q, paced %q", fast.lines, paced.lines)
	}
	if !slices.Equal(again.lines, fast.lines) || !slices.Equal(again.images, fast.images) || len(fast.images) != len(want) {
		t.Errorf("two unpaced replays differ: %q %q, images %q %q", fast.lines, again.lines, fast.images, again.images)
	}
	// The clip lasts 9.2 s at 15 fps: a replay that took as long was paced.
	if fast.took >= paced.took {
		t.Errorf("unpaced replay took %v, paced %v: the unpaced one was not faster", fast.took, paced.took)
	}
}
