package camera

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/internal/testmedia"
)

func (r *rig) read(t *testing.T) (time.Time, error) {
	t.Helper()
	start := time.Now()
	ts, err := r.src.Read(context.Background(), &r.mat)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Read blocked for %v", d)
	}
	return ts, err
}

func TestLiveFramesMetricsAndReadBack(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cam.get[gocv.VideoCaptureFrameWidth] = 640 // the camera ignores the request
	cfg := liveCfg()
	cfg.FourCC = "MJPG"
	r := newRig(t, cfg, cam)
	if r.src.State() != StateConnecting {
		t.Errorf("state before the first read: %v", r.src.State())
	}
	for i := 1; i <= 3; i++ {
		r.clk.Add(100 * time.Millisecond)
		ts, err := r.read(t)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !ts.Equal(r.clk.Now()) || pixel(r.mat) != i || r.mat.Cols() != 64 || r.mat.Rows() != 48 {
			t.Fatalf("read %d: ts %v pixel %d size %dx%d", i, ts, pixel(r.mat), r.mat.Cols(), r.mat.Rows())
		}
	}
	if r.src.State() != StateUp || metricValue(t, r.reg, "kioskd_camera_up") != 1 || metricValue(t, r.reg, "kioskd_camera_frames_total") != 3 {
		t.Errorf("state %v, up %v, frames %v", r.src.State(), metricValue(t, r.reg, "kioskd_camera_up"), metricValue(t, r.reg, "kioskd_camera_frames_total"))
	}
	if got, want := metricValue(t, r.reg, "kioskd_camera_last_frame_timestamp_seconds"), float64(r.clk.Now().UnixNano())/1e9; got != want {
		t.Errorf("last frame timestamp %v, want %v", got, want)
	}
	cam.mu.Lock()
	sets := cam.sets
	cam.mu.Unlock()
	if sets[gocv.VideoCaptureFrameWidth] != 1280 || sets[gocv.VideoCaptureFrameHeight] != 720 || sets[gocv.VideoCaptureFPS] != 10 || sets[gocv.VideoCaptureBufferSize] != 1 || sets[gocv.VideoCaptureFOURCC] != float64('M'|'J'<<8|'P'<<16|'G'<<24) {
		t.Errorf("requested %v", sets)
	}
	if logs := r.logs.String(); !strings.Contains(logs, "another size") || !strings.Contains(logs, "got=640x720") {
		t.Errorf("no warning about the size the camera gave:\n%s", logs)
	}
	for _, n := range []string{"kioskd_camera_reconnects_total", "kioskd_camera_read_errors_total", "kioskd_camera_stale_frames_dropped_total"} {
		if v := metricValue(t, r.reg, n); v != 0 {
			t.Errorf("%s = %v", n, v)
		}
	}
}

func TestOpenFailuresBackOffAndRecover(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cam.openErrs = 4
	r := newRig(t, liveCfg(), cam)
	for i := range 4 {
		_, err := r.read(t)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("read %d: %v, want ErrUnavailable", i, err)
		}
		if r.src.State() != StateDown {
			t.Fatalf("read %d: state %v", i, r.src.State())
		}
	}
	if _, err := r.read(t); err != nil {
		t.Fatalf("after the camera came back: %v", err)
	}
	// Capped exponential backoff with up to 20% jitter below each step.
	waits := r.aft.Waits()
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %d", waits, len(want))
	}
	for i, w := range want {
		if waits[i] > w || waits[i] < w*8/10 {
			t.Errorf("wait %d = %v, want within 80-100%% of %v", i, waits[i], w)
		}
	}
	if r.src.State() != StateUp {
		t.Errorf("state %v", r.src.State())
	}
}

func TestFaultyReadsReopenWithoutLeaking(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cam.scripts = [][]step{{stepFrame, stepFalse}, {stepEmpty}, {stepFloat}, {stepTiny, stepFrame}}
	r := newRig(t, liveCfg(), cam)
	expect := []struct {
		ok    bool
		state State
	}{
		{true, StateUp}, {false, StateDown}, // read returns false
		{false, StateDown}, // empty Mat
		{false, StateDown}, // a float frame from a confused driver
		{true, StateUp},    // a 1x1 frame is a frame: capture rejects it
		{true, StateUp},
	}
	for i, e := range expect {
		_, err := r.read(t)
		if (err == nil) != e.ok || (err != nil && !errors.Is(err, ErrUnavailable)) || r.src.State() != e.state {
			t.Fatalf("read %d: %v, state %v; want ok=%v %v", i, err, r.src.State(), e.ok, e.state)
		}
	}
	if r.mat.Cols() != 64 {
		t.Errorf("last frame %dx%d", r.mat.Cols(), r.mat.Rows())
	}
	if v := metricValue(t, r.reg, "kioskd_camera_read_errors_total"); v != 3 {
		t.Errorf("read errors %v, want 3", v)
	}
	if v := metricValue(t, r.reg, "kioskd_camera_reconnects_total"); v != 3 {
		t.Errorf("reconnects %v, want 3", v)
	}
	if err := r.src.Close(); err != nil {
		t.Fatal(err)
	}
	if opens, closed, _ := cam.counts(); opens != 4 || closed != 4 {
		t.Errorf("opened %d devices, closed %d", opens, closed)
	}
}

func TestHungReadStallsThenReopens(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cam.scripts = [][]step{{stepFrame, stepHang}}
	cfg := liveCfg()
	r := newRig(t, cfg, cam)
	if _, err := r.read(t); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := r.read(t)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no frame within") {
		t.Fatalf("hung read: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("hung read returned after %v", d)
	}
	if r.src.State() != StateUp {
		t.Errorf("state %v before the stall timeout", r.src.State())
	}
	r.clk.Add(cfg.StallTimeout)
	if d := r.src.Stuck(); d < cfg.StallTimeout {
		t.Errorf("Stuck() = %v while the read has hung for %v", d, cfg.StallTimeout)
	}
	_, err = r.read(t)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "reopening") || r.src.State() != StateDown {
		t.Fatalf("after stall_timeout: %v, state %v", err, r.src.State())
	}
	if _, err := r.read(t); err != nil {
		t.Fatalf("reopened: %v", err)
	}
	// The abandoned driver is still stuck: the watchdog must still see it.
	if d := r.src.Stuck(); d < cfg.StallTimeout {
		t.Errorf("Stuck() = %v after the reopen, want the abandoned read's %v", d, cfg.StallTimeout)
	}
	if opens, closed, _ := cam.counts(); opens != 2 || closed != 0 {
		t.Errorf("opens %d closed %d: the hung device cannot close until its read returns", opens, closed)
	}
	close(cam.release) // the driver finally returns
	if err := r.src.Close(); err != nil {
		t.Fatal(err)
	}
	if opens, closed, _ := cam.counts(); closed != opens {
		t.Errorf("opens %d closed %d after Close", opens, closed)
	}
	if d := r.src.Stuck(); d != 0 {
		t.Errorf("Stuck() = %v after the driver returned and the source closed", d)
	}
}

func TestStaleFramesAreNeverReturned(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cfg := liveCfg() // fps 10, max_frame_age 500ms
	r := newRig(t, cfg, cam)
	if _, err := r.read(t); err != nil {
		t.Fatal(err)
	}
	// The loop was busy for a second: the driver's buffer is drained before
	// the next frame is returned. Grabs return at once here, so the drain
	// stops at one second's worth of frames.
	r.clk.Add(time.Second)
	if _, err := r.read(t); err != nil {
		t.Fatal(err)
	}
	if _, _, grabs := cam.counts(); grabs != 10 {
		t.Errorf("grabs %d, want 10", grabs)
	}
	if v := metricValue(t, r.reg, "kioskd_camera_stale_frames_dropped_total"); v != 10 {
		t.Errorf("stale dropped %v, want 10", v)
	}
	// A frame that arrives late (slow read) and then waits: dropped, and a
	// fresh one returned instead.
	gate := make(chan struct{})
	cam.mu.Lock()
	cam.onRead = func() { <-gate }
	cam.mu.Unlock()
	if _, err := r.read(t); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("slow read: %v", err)
	}
	close(gate)
	// Wait for the late frame to be handed over, stamped with the old time.
	deadline := time.Now().Add(5 * time.Second)
	for len(r.src.w.res) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the released read never delivered")
		}
		time.Sleep(time.Millisecond)
	}
	before := metricValue(t, r.reg, "kioskd_camera_stale_frames_dropped_total")
	r.clk.Add(600 * time.Millisecond) // past max_frame_age
	ts, err := r.read(t)
	if err != nil {
		t.Fatal(err)
	}
	if age := r.clk.Now().Sub(ts); age > cfg.MaxFrameAge {
		t.Errorf("returned a frame %v old", age)
	}
	// The late frame, then a second's worth drained from the driver.
	if v := metricValue(t, r.reg, "kioskd_camera_stale_frames_dropped_total"); v != before+11 {
		t.Errorf("stale dropped %v, want %v", v, before+11)
	}
}

func TestContextCancelled(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cam.scripts = [][]step{{stepHang}}
	r := newRig(t, liveCfg(), cam, WithReadWait(10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.src.Read(ctx, &r.mat); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
}

func writeClip(t *testing.T, frames int) string {
	t.Helper()
	dir, err := testmedia.Dir()
	if err != nil {
		t.Fatal(err)
	}
	g, err := testmedia.NewGenerator(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	p := filepath.Join(t.TempDir(), "clip.avi")
	segs := []testmedia.Segment{{Scene: "empty", Frames: frames / 2}, {Scene: "a", Frames: frames - frames/2}}
	if err := g.WriteClip(p, 160, 120, 15, segs, testmedia.ClipOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVideoFileEndsOrLoops(t *testing.T) {
	testmedia.CheckMats(t)
	clip := writeClip(t, 6)
	cfg := liveCfg()
	cfg.Source = clip
	r := newRig(t, cfg, nil, WithClock(time.Now))
	for i := range 6 {
		if _, err := r.read(t); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if r.mat.Cols() != 160 || r.mat.Rows() != 120 || r.mat.Channels() != 3 {
			t.Fatalf("frame %d: %dx%d", i, r.mat.Cols(), r.mat.Rows())
		}
	}
	for range 2 {
		if _, err := r.read(t); !errors.Is(err, ErrEnded) || r.src.State() != StateEnded {
			t.Fatalf("at the end: %v, state %v", err, r.src.State())
		}
	}

	cfg.Loop = true
	r2 := newRig(t, cfg, nil, WithClock(time.Now))
	for i := range 15 {
		if _, err := r2.read(t); err != nil {
			t.Fatalf("looping frame %d: %v", i, err)
		}
	}
	if v := metricValue(t, r2.reg, "kioskd_camera_reconnects_total"); v != 0 {
		t.Errorf("looping counted %v reconnects", v)
	}
	if v := metricValue(t, r2.reg, "kioskd_camera_frames_total"); v != 15 {
		t.Errorf("frames %v", v)
	}
}

func TestRealtimePacesAtFPS(t *testing.T) {
	testmedia.CheckMats(t)
	cfg := liveCfg()
	cfg.Source = writeClip(t, 6)
	cfg.Realtime = true
	cfg.FPS = 15
	r := newRig(t, cfg, nil)
	var stamps []time.Time
	for range 5 {
		ts, err := r.read(t)
		if err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, ts)
	}
	interval := time.Second / 15
	for i := 1; i < len(stamps); i++ {
		if d := stamps[i].Sub(stamps[i-1]); d < interval-time.Millisecond || d > interval+time.Millisecond {
			t.Errorf("frame %d came %v after the previous, want %v", i, d, interval)
		}
	}
}

// TestPacedFileSkipsWhatALateLoopMissed: a paced clip stands in for a
// camera, which hands a late reader its newest frame. A loop that falls
// 3.5 frame intervals behind gets the frame due now, dated on the clip's
// clock, and the frames it missed count as dropped; then pacing resumes.
func TestPacedFileSkipsWhatALateLoopMissed(t *testing.T) {
	testmedia.CheckMats(t)
	clip := writeClip(t, 6) // frames 0-2 an empty hall, 3-5 a person
	want := clipFrames(t, clip)
	cfg := liveCfg()
	cfg.Source = clip
	cfg.Realtime = true
	r := newRig(t, cfg, nil)
	interval := time.Second / time.Duration(cfg.FPS)
	start, err := r.read(t)
	if err != nil {
		t.Fatal(err)
	}
	r.clk.Add(interval * 7 / 2)
	ts, err := r.read(t)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Sub(start) != 3*interval {
		t.Errorf("the frame after the stall is dated %v after the first, want %v (frame 3)", ts.Sub(start), 3*interval)
	}
	if d := meanAbsDiff(t, r.mat, want[3]); d > 2 {
		t.Errorf("the frame after the stall differs from the clip's frame 3 by %.1f grey levels", d)
	}
	if v := metricValue(t, r.reg, "kioskd_camera_stale_frames_dropped_total"); v != 2 {
		t.Errorf("dropped frames %v, want 2", v)
	}
	ts, err = r.read(t)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Sub(start) != 4*interval || !r.clk.Now().Equal(ts) {
		t.Errorf("the next frame is dated %v after the first and read at %v, want both %v", ts.Sub(start), r.clk.Now().Sub(start), 4*interval)
	}
	if d := meanAbsDiff(t, r.mat, want[4]); d > 2 {
		t.Errorf("the next frame differs from the clip's frame 4 by %.1f grey levels", d)
	}
}

// TestUnpacedFramesKeepTheClipsClock: read as fast as possible, a clip's
// frames are still dated one frame interval apart, across a loop too, so
// that capture's presence, window and cooldown see the clip's own timing.
func TestUnpacedFramesKeepTheClipsClock(t *testing.T) {
	testmedia.CheckMats(t)
	cfg := liveCfg()
	cfg.Source = writeClip(t, 4)
	cfg.Realtime = false
	cfg.Loop = true
	cfg.FPS = 15
	r := newRig(t, cfg, nil)
	if !r.src.Unpaced() {
		t.Fatal("an unpaced clip says it is paced")
	}
	start := r.clk.Now()
	var stamps []time.Time
	for len(stamps) < 10 { // two and a half passes of the clip
		ts, err := r.read(t)
		if err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, ts)
	}
	if !r.clk.Now().Equal(start) {
		t.Fatalf("the test clock moved: the reads were paced")
	}
	for i, ts := range stamps {
		want := start.Add(time.Duration(float64(i) * float64(time.Second) / 15))
		if d := ts.Sub(want); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("frame %d dated %v, want %v (frame %d of the clip's clock)", i, ts.Sub(start), want.Sub(start), i)
		}
	}
	live := newRig(t, liveCfg(), newFakeCamera())
	if live.src.Unpaced() {
		t.Error("a live camera says it is unpaced")
	}
}

func TestImageFolder(t *testing.T) {
	testmedia.CheckMats(t)
	dir := t.TempDir()
	for i, w := range []int{100, 200, 300} {
		m := gocv.NewMatWithSize(50, w, gocv.MatTypeCV8UC3)
		ok := gocv.IMWrite(filepath.Join(dir, []string{"a.jpg", "c.png", "e.JPG"}[i]), m)
		m.Close()
		if !ok {
			t.Fatal("write image")
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "b.jpg"), []byte("\xff\xd8\xff\xe0 this is not a JPEG"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "d.png"), nil, 0o644))
	must(os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not an image"), 0o644))
	cfg := liveCfg()
	cfg.Source = dir
	r := newRig(t, cfg, nil, WithClock(time.Now))
	var widths []int
	for {
		_, err := r.read(t)
		if errors.Is(err, ErrEnded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		widths = append(widths, r.mat.Cols())
	}
	if len(widths) != 3 || widths[0] != 100 || widths[1] != 200 || widths[2] != 300 {
		t.Errorf("frames %v, want the three images in name order", widths)
	}
	if v := metricValue(t, r.reg, "kioskd_camera_read_errors_total"); v != 2 {
		t.Errorf("read errors %v, want 2 (the corrupt and the empty image)", v)
	}
	if !strings.Contains(r.logs.String(), "b.jpg") {
		t.Errorf("skipped file not logged")
	}
}

func TestOpenRejectsImpossibleSources(t *testing.T) {
	empty := t.TempDir()
	cfg := liveCfg()
	for _, src := range []string{"", "gst:", filepath.Join(empty, "missing.avi"), empty, "rtsp://"} {
		cfg.Source = src
		if _, err := Open(cfg, discard(), newReg()); err == nil {
			t.Errorf("source %q accepted", src)
		}
	}
}

func TestClassifyAndRedact(t *testing.T) {
	dir := t.TempDir()
	for src, want := range map[string]kind{
		"0": kindDevice, "/dev/video2": kindDevice, "rtsp://cam/stream": kindURL, "http://cam/mjpg": kindURL,
		"gst:videotestsrc ! appsink": kindGst, dir: kindFolder, "clip.avi": kindFile,
	} {
		k, _, err := classify(src)
		if err != nil || k != want {
			t.Errorf("classify(%q) = %v %v, want %v", src, k, err, want)
		}
	}
	if got := redact("rtsp://admin:hunter2@10.0.0.5/ch1"); strings.Contains(got, "hunter2") {
		t.Errorf("redact kept the password: %s", got)
	}
	cfg := liveCfg()
	cfg.Source = "rtsp://admin:hunter2@127.0.0.1:1/ch1"
	cfg.NetworkTimeout = 2 * time.Second
	s, err := Open(cfg, discard(), newReg())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.ffmpegOptions(); got != "rtsp_transport;tcp|timeout;2000000|rw_timeout;2000000" {
		t.Errorf("ffmpeg options %q", got)
	}
}

// Real OpenCV backends on sources that are not there: the V4L2 device and
// an RTSP server on a closed port fail fast, and Read says so.
func TestRealBackendsWithoutACamera(t *testing.T) {
	testmedia.CheckMats(t)
	for _, src := range []string{"/dev/video63", "rtsp://user:secret@127.0.0.1:1/stream"} {
		cfg := liveCfg()
		cfg.Source = src
		logs := &syncBuf{}
		s, err := Open(cfg, slogTo(logs), newReg())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		m := gocv.NewMat()
		start := time.Now()
		_, err = s.Read(context.Background(), &m)
		if !errors.Is(err, ErrUnavailable) || time.Since(start) > 3*time.Second {
			t.Errorf("%s: %v after %v, want ErrUnavailable within about a second", src, err, time.Since(start))
		}
		if strings.Contains(err.Error()+logs.String(), "secret") {
			t.Errorf("%s: password in an error or log", src)
		}
		m.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
}

// A GStreamer pipeline through OpenCV's GStreamer backend. videotestsrc
// comes with gstreamer1.0-plugins-base; without it the test is skipped.
func TestGStreamerPipeline(t *testing.T) {
	testmedia.CheckMats(t)
	cfg := liveCfg()
	cfg.Source = "gst:videotestsrc num-buffers=100 ! video/x-raw,width=320,height=240 ! videoconvert ! video/x-raw,format=BGR ! appsink"
	s, err := Open(cfg, discard(), newReg(), WithReadWait(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := gocv.NewMat()
	defer m.Close()
	if _, err := s.Read(context.Background(), &m); err != nil {
		if errors.Is(err, ErrUnavailable) && strings.Contains(err.Error(), "open") {
			t.Skipf("OpenCV cannot build the pipeline here (GStreamer plugins missing?): %v", err)
		}
		t.Fatal(err)
	}
	for i := range 3 {
		if i > 0 {
			if _, err := s.Read(context.Background(), &m); err != nil {
				t.Fatal(err)
			}
		}
		if m.Cols() != 320 || m.Rows() != 240 || m.Channels() != 3 {
			t.Fatalf("frame %d: %dx%d x%d", i, m.Cols(), m.Rows(), m.Channels())
		}
	}
	if s.State() != StateUp {
		t.Errorf("state %v", s.State())
	}
}

// meanAbsDiff is the mean absolute difference of two images of one size.
func meanAbsDiff(t *testing.T, a, b gocv.Mat) float64 {
	t.Helper()
	if a.Cols() != b.Cols() || a.Rows() != b.Rows() || a.Type() != b.Type() {
		t.Fatalf("sizes differ: %dx%d %v and %dx%d %v", a.Cols(), a.Rows(), a.Type(), b.Cols(), b.Rows(), b.Type())
	}
	d := gocv.NewMat()
	defer d.Close()
	gocv.AbsDiff(a, b, &d)
	m := d.Mean()
	return (m.Val1 + m.Val2 + m.Val3) / 3
}

func TestJPEGFramesSkipDecodingUnchangedScenes(t *testing.T) {
	testmedia.CheckMats(t)
	// Ten identical frames of an empty hall, then a person (swaying).
	clip := writeClip(t, 20)
	want := clipFrames(t, clip)
	if len(want) != 20 {
		t.Fatalf("reference decode gave %d frames", len(want))
	}
	cfg := liveCfg()
	cfg.Source = clip
	r := newRig(t, cfg, nil, WithClock(time.Now))
	for i := range want {
		if _, err := r.read(t); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		// Two JPEG decoders may differ by a grey level here and there; a
		// stale frame of the empty hall instead of the person differs by tens.
		if d := meanAbsDiff(t, r.mat, want[i]); d > 2 {
			t.Errorf("frame %d differs from the clip's frame by %.1f grey levels on average", i, d)
		}
	}
	// Frames 0-3 decode in full until the scene has been still for three
	// frames; 4-9 repeat frame 3; the person is decoded at once.
	if v := metricValue(t, r.reg, "kioskd_camera_decodes_skipped_total"); v != 6 {
		t.Errorf("decodes skipped: %v, want 6", v)
	}
	if strings.Contains(r.logs.String(), "not JPEG") || strings.Contains(r.logs.String(), "cannot decode") {
		t.Errorf("the clip's JPEG frames were not decoded by the camera:\n%s", r.logs.String())
	}
}

func TestRawFramesThatAreNotJPEGFallBack(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cfg := liveCfg()
	cfg.FourCC = "MJPG" // the camera is asked for MJPG but delivers pixels
	r := newRig(t, cfg, cam)
	for i := 1; i <= 3; i++ {
		r.clk.Add(100 * time.Millisecond)
		if _, err := r.read(t); err != nil || pixel(r.mat) != i {
			t.Fatalf("read %d: pixel %d, %v", i, pixel(r.mat), err)
		}
	}
	cam.mu.Lock()
	convert := cam.sets[gocv.VideoCaptureConvertRGB]
	cam.mu.Unlock()
	if convert != 1 {
		t.Errorf("CONVERT_RGB left at %v after the raw frames turned out not to be JPEG", convert)
	}
	if v := metricValue(t, r.reg, "kioskd_camera_decodes_skipped_total"); v != 0 {
		t.Errorf("decodes skipped: %v", v)
	}
}

// TestUndecodableJPEGFramesFallBackToTheBackend: a camera's JPEG frame that
// kioskd cannot decode is an unusable frame, and from then on the backend
// decodes the device's frames: the reopened camera delivers pixels again.
func TestUndecodableJPEGFramesFallBackToTheBackend(t *testing.T) {
	testmedia.CheckMats(t)
	cam := newFakeCamera()
	cam.scripts = [][]step{{stepBadJPEG}}
	cfg := liveCfg()
	cfg.FourCC = "MJPG"
	r := newRig(t, cfg, cam)
	r.clk.Add(100 * time.Millisecond)
	if _, err := r.read(t); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("read of the undecodable frame: %v, want ErrUnavailable", err)
	}
	if !strings.Contains(r.logs.String(), "cannot decode the camera's JPEG frames") {
		t.Errorf("no warning that the JPEG frames cannot be decoded:\n%s", r.logs.String())
	}
	if v := metricValue(t, r.reg, "kioskd_camera_read_errors_total"); v != 1 {
		t.Errorf("read errors: %v, want 1", v)
	}
	cam.mu.Lock()
	delete(cam.sets, gocv.VideoCaptureConvertRGB)
	cam.mu.Unlock()
	for i := 0; ; i++ {
		r.clk.Add(100 * time.Millisecond)
		_, err := r.read(t)
		if err == nil {
			break
		}
		if i == 5 || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("the camera did not come back: %v", err)
		}
	}
	cam.mu.Lock()
	reads := cam.reads
	_, asked := cam.sets[gocv.VideoCaptureConvertRGB]
	cam.mu.Unlock()
	if pixel(r.mat) != reads {
		t.Errorf("pixel %d after %d device reads: the backend's frame was not handed on", pixel(r.mat), reads)
	}
	if asked {
		t.Errorf("the reopened camera was asked for raw frames again")
	}
}

// clipFrames decodes every frame of clip with OpenCV's own reader, as the
// reference a test compares the camera's frames with; they are closed when
// the test ends.
func clipFrames(t *testing.T, clip string) []gocv.Mat {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(clip)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	var frames []gocv.Mat
	t.Cleanup(func() {
		for _, f := range frames {
			f.Close()
		}
	})
	m := gocv.NewMat()
	defer m.Close()
	for vc.Read(&m) {
		frames = append(frames, m.Clone())
	}
	return frames
}
