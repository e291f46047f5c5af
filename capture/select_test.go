package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/testmedia"
)

const frameGap = time.Second / 15

func selectCfg() config.Capture {
	c := defaultCapture()
	c.MinFacePx = 80
	c.PresenceFrames = 3
	c.Window = 400 * time.Millisecond
	c.Cooldown = 3 * time.Second
	c.AbsentFrames = 5
	return c
}

type run struct {
	t   *testing.T
	s   *Selector
	clk *clock
	f   *frames
}

func newRun(t *testing.T, cfg config.Capture, opts ...Option) (*run, *Selector) {
	t.Helper()
	clk := newClock()
	s, _ := newSelector(t, cfg, append([]Option{WithClock(clk.Now)}, opts...)...)
	return &run{t: t, s: s, clk: clk, f: newFrames(t, 640, 360)}, s
}

// feed processes n frames of scene 1/15 s apart and returns the events that
// were not EventNone, with the frame index (0-based) and time of each.
func (r *run) feed(scene string, n int) []got {
	r.t.Helper()
	return r.feedMat(r.f.get(scene), n)
}

func (r *run) feedMat(m gocv.Mat, n int) []got {
	r.t.Helper()
	var out []got
	for i := range n {
		ts := r.clk.Add(frameGap)
		ev, err := r.s.Process(m, ts)
		if err != nil {
			r.t.Fatalf("Process: %v", err)
		}
		if ev.Kind != EventNone {
			out = append(out, got{i, ts, ev})
		}
	}
	return out
}

type got struct {
	i  int
	ts time.Time
	ev Event
}

func kinds(gs []got) []EventKind {
	var k []EventKind
	for _, g := range gs {
		k = append(k, g.ev.Kind)
	}
	return k
}

func TestPresenceThenWindowThenShot(t *testing.T) {
	testmedia.CheckMats(t)
	r, _ := newRun(t, selectCfg())
	if evs := r.feed("empty", 5); len(evs) != 0 {
		t.Fatalf("empty scene: %v", kinds(evs))
	}
	start := r.clk.Now()
	evs := r.feed("a", 20)
	if len(evs) != 1 || evs[0].ev.Kind != EventShot {
		t.Fatalf("person A: events %v, want one shot", kinds(evs))
	}
	first := start.Add(frameGap)
	presence := first.Add(2 * frameGap) // third consecutive frame
	g := evs[0]
	if d := g.ts.Sub(presence) - 400*time.Millisecond; d < -frameGap/2 || d > frameGap/2 {
		t.Errorf("shot at %v after presence, want the frame nearest 400ms after it", g.ts.Sub(presence))
	}
	shot := g.ev.Shot
	if !shot.FirstSeen.Equal(first) {
		t.Errorf("FirstSeen %v, want %v", shot.FirstSeen, first)
	}
	if !shot.PresentAt.Equal(presence) || !shot.DecidedAt.Equal(g.ts) {
		t.Errorf("PresentAt %v, DecidedAt %v, want %v and %v (presence, then the frame that closed the window)", shot.PresentAt, shot.DecidedAt, presence, g.ts)
	}
	if shot.CapturedAt.Before(presence) || shot.CapturedAt.After(g.ts) {
		t.Errorf("CapturedAt %v outside the window [%v, %v]", shot.CapturedAt, presence, g.ts)
	}
	img, err := gocv.IMDecode(shot.JPEG, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Cols() != 640 || img.Rows() != 360 || shot.Width != 640 || shot.Height != 360 {
		t.Errorf("upload %dx%d (shot says %dx%d), want the whole 640x360 frame", img.Cols(), img.Rows(), shot.Width, shot.Height)
	}
	if shot.Face.Dx() < 100 || !shot.Face.In(imageRect(640, 360)) || shot.Score <= 0 || shot.EncodeDuration < 0 {
		t.Errorf("shot face %v score %v", shot.Face, shot.Score)
	}
}

func TestBestOfWindowWins(t *testing.T) {
	testmedia.CheckMats(t)
	r, s := newRun(t, selectCfg())
	soft := r.f.scene("soft", testmedia.Scene{Subject: "a", Blur: 0.002})
	sharp := r.f.get("a")
	as, _ := s.Analyze(soft)
	ah, _ := s.Analyze(sharp)
	if !as.Accepted || !ah.Accepted || as.Score >= ah.Score {
		t.Fatalf("fixture: soft %v %.3f, sharp %v %.3f; want both accepted, sharp better", as.Reasons, as.Score, ah.Reasons, ah.Score)
	}
	if evs := r.feedMat(soft, 4); len(evs) != 0 { // presence + first window frame
		t.Fatalf("events %v", kinds(evs))
	}
	sharpAt := r.clk.Now().Add(frameGap)
	if evs := r.feedMat(sharp, 1); len(evs) != 0 {
		t.Fatalf("events %v", kinds(evs))
	}
	evs := r.feedMat(soft, 10)
	if len(evs) != 1 || evs[0].ev.Kind != EventShot {
		t.Fatalf("events %v, want one shot", kinds(evs))
	}
	// The live loop tracks the face in a region, so its rectangle and score
	// differ slightly from Analyze's whole-frame search.
	if sh := evs[0].ev.Shot; !sh.CapturedAt.Equal(sharpAt) || sh.Score <= as.Score {
		t.Errorf("shot from %v (score %.3f), want the sharp frame at %v (%.3f)", sh.CapturedAt, sh.Score, sharpAt, ah.Score)
	}
}

func TestCooldownUntilFaceLeavesOrTimeout(t *testing.T) {
	testmedia.CheckMats(t)
	r, _ := newRun(t, selectCfg())
	evs := r.feed("a", 15)
	if !slices.Equal(kinds(evs), []EventKind{EventShot}) {
		t.Fatalf("first presence: %v", kinds(evs))
	}
	shotAt := evs[0].ts
	// Still standing there: nothing until the cooldown has passed, then a
	// new presence and window.
	for r.clk.Now().Sub(shotAt) < 3*time.Second-frameGap {
		if evs := r.feed("a", 1); len(evs) != 0 {
			t.Fatalf("%v after the shot: %v", r.clk.Now().Sub(shotAt), kinds(evs))
		}
	}
	evs = r.feed("a", 15)
	if !slices.Equal(kinds(evs), []EventKind{EventShot}) {
		t.Fatalf("after the cooldown: %v, want a new shot", kinds(evs))
	}
	if d := evs[0].ts.Sub(shotAt); d < 3*time.Second+400*time.Millisecond {
		t.Errorf("second shot %v after the first, want cooldown + presence + window", d)
	}
	// Leaving ends the cooldown early: the next person is served at once.
	evs = r.feed("empty", 5)
	if !slices.Equal(kinds(evs), []EventKind{EventIdle}) || evs[0].i != 4 {
		t.Fatalf("leaving: %v, want EventIdle on the fifth empty frame", evs)
	}
	evs = r.feed("b", 12)
	if !slices.Equal(kinds(evs), []EventKind{EventShot}) {
		t.Fatalf("person B right after A left: %v", kinds(evs))
	}
}

func TestBusySkipsDetectionAndStartsCooldown(t *testing.T) {
	testmedia.CheckMats(t)
	clk := newClock()
	s, reg := newSelector(t, selectCfg(), WithClock(clk.Now))
	r := &run{t: t, s: s, clk: clk, f: newFrames(t, 640, 360)}
	if evs := r.feed("a", 15); !slices.Equal(kinds(evs), []EventKind{EventShot}) {
		t.Fatalf("%v", kinds(evs))
	}
	s.SetBusy(true)
	before := counterValue(t, reg, "kioskd_capture_detect_duration_seconds", "")
	if evs := r.feed("a", 100); len(evs) != 0 { // 6.7 s: longer than the cooldown
		t.Fatalf("while busy: %v", kinds(evs))
	}
	if after := counterValue(t, reg, "kioskd_capture_detect_duration_seconds", ""); after != before {
		t.Errorf("detection ran %v times while busy", after-before)
	}
	s.SetBusy(false)
	release := clk.Now()
	for clk.Now().Sub(release) < 3*time.Second-frameGap {
		if evs := r.feed("a", 1); len(evs) != 0 {
			t.Fatalf("%v after the decision: %v, want cooldown", clk.Now().Sub(release), kinds(evs))
		}
	}
	if evs := r.feed("a", 15); !slices.Equal(kinds(evs), []EventKind{EventShot}) {
		t.Fatalf("after cooldown: %v", kinds(evs))
	}
	if got := counterValue(t, reg, "kioskd_capture_shots_total", ""); got != 2 {
		t.Errorf("shots_total %v, want 2", got)
	}
}

func TestGuidance(t *testing.T) {
	testmedia.CheckMats(t)
	r, _ := newRun(t, selectCfg())
	evs := r.feed("a-dark", 10)
	if len(evs) != 1 || evs[0].ev.Kind != EventGuidance || evs[0].ev.Reasons[0] != ReasonTooDark {
		t.Fatalf("dark face: %+v, want one guidance event, too_dark first", evs)
	}
	evs = r.feed("a", 1)
	if len(evs) != 1 || evs[0].ev.Kind != EventGuidance || len(evs[0].ev.Reasons) != 0 {
		t.Fatalf("light fixed: %+v, want guidance with no reasons", evs)
	}
	evs = r.feed("a", 10)
	if !slices.Equal(kinds(evs), []EventKind{EventShot}) {
		t.Fatalf("then: %v, want a shot", kinds(evs))
	}
	evs = r.feed("empty", 5)
	if !slices.Equal(kinds(evs), []EventKind{EventIdle}) {
		t.Fatalf("leaving: %v", kinds(evs))
	}
	// Guidance without ever reaching a shot still ends with EventIdle.
	r.feed("a-offcenter", 4)
	if evs := r.feed("empty", 5); !slices.Equal(kinds(evs), []EventKind{EventIdle}) {
		t.Fatalf("off-centre person leaving: %v", kinds(evs))
	}
}

// A person who leaves before the window closes still gets the best frame
// seen: they were there, and it was good.
func TestLeavingMidWindowShootsBest(t *testing.T) {
	testmedia.CheckMats(t)
	cfg := selectCfg()
	cfg.Window = 5 * time.Second
	r, _ := newRun(t, cfg)
	if evs := r.feed("a", 6); len(evs) != 0 {
		t.Fatalf("%v", kinds(evs))
	}
	evs := r.feed("empty", 5)
	if !slices.Equal(kinds(evs), []EventKind{EventShot}) || evs[0].i != 4 {
		t.Fatalf("leaving: %+v, want a shot when absence is confirmed", evs)
	}
}

// TestBruteForceGuard: shots alone (a lobby of people who pass) never
// lock; max_failures counted failures in the window do, for the fixed
// lockout, and a restart does not lift it.
func TestBruteForceGuardLockoutSurvivesRestart(t *testing.T) {
	testmedia.CheckMats(t)
	cfg := selectCfg()
	cfg.MaxFailures = 2
	cfg.FailureWindow = time.Minute
	cfg.Lockout = 90 * time.Second
	path := filepath.Join(t.TempDir(), "attempts.json")
	clk := newClock()
	f := newFrames(t, 640, 360)
	s1, reg := newSelector(t, cfg, WithClock(clk.Now), WithAttemptStore(NewFileAttemptStore(path)))
	r := &run{t: t, s: s1, clk: clk, f: f}

	shot := func(what string) {
		t.Helper()
		evs := r.feed("a", 12)
		if !slices.Equal(kinds(evs), []EventKind{EventShot}) {
			t.Fatalf("%s: %v, want a shot", what, kinds(evs))
		}
		r.feed("empty", 5)
	}
	for i := range 4 {
		shot(fmt.Sprintf("uncounted attempt %d", i+1))
	}
	if _, locked := s1.Failed(clk.Now()); locked {
		t.Fatal("one counted failure locked the device")
	}
	shot("after one failure")
	until, locked := s1.Failed(clk.Now())
	if !locked || !until.Equal(clk.Now().Add(90*time.Second)) {
		t.Fatalf("second failure: locked %v until %v, want locked for 90 s", locked, until)
	}
	if got := counterValue(t, reg, "kioskd_capture_lockouts_total", ""); got != 1 {
		t.Errorf("lockouts_total %v", got)
	}
	if evs := r.feed("a", 12); len(evs) != 0 {
		t.Fatalf("during lockout: %v, want nothing detected", kinds(evs))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("attempt file: %v %v, want mode 0600", fi, err)
	}

	// A restart does not lift the lockout.
	s2, _ := newSelector(t, cfg, WithClock(clk.Now), WithAttemptStore(NewFileAttemptStore(path)))
	r.s = s2
	evs := r.feed("a", 3)
	if len(evs) != 1 || evs[0].ev.Kind != EventLockout || !evs[0].ev.Until.Equal(until) {
		t.Fatalf("after restart: %+v, want the same lockout", evs)
	}
	for clk.Now().Before(until.Add(-frameGap)) {
		if evs := r.feed("a", 1); len(evs) != 0 {
			t.Fatalf("during lockout: %v", kinds(evs))
		}
	}
	evs = r.feed("a", 15)
	if !slices.Equal(kinds(evs), []EventKind{EventIdle, EventShot}) {
		t.Fatalf("after lockout: %v, want idle then a shot", kinds(evs))
	}
	// The lockout started a fresh count.
	if _, locked := s2.Failed(clk.Now()); locked {
		t.Fatal("the first failure after a lockout locked again")
	}
}

func TestChangeTestSkipsStaticSceneAndWakesAtOnce(t *testing.T) {
	testmedia.CheckMats(t)
	clk := newClock()
	s, reg := newSelector(t, selectCfg(), WithClock(clk.Now))
	r := &run{t: t, s: s, clk: clk, f: newFrames(t, 640, 360)}
	r.feed("empty", 20)
	if n := counterValue(t, reg, "kioskd_capture_detect_duration_seconds", ""); n != confirmEmpty {
		t.Errorf("cascade ran %v times on 20 identical empty frames, want %d", n, confirmEmpty)
	}
	r.feed("empty", forceFullEvery)
	if n := counterValue(t, reg, "kioskd_capture_detect_duration_seconds", ""); n != confirmEmpty+1 {
		t.Errorf("cascade ran %v times after %d more frames, want one forced search", n, forceFullEvery)
	}
	ev, err := s.Process(r.f.get("a"), clk.Add(frameGap))
	if err != nil || len(ev.Analysis.Faces) != 1 {
		t.Fatalf("first frame with a person: faces %v (%v), want found at once", ev.Analysis.Faces, err)
	}
}

func TestTrackingSearchesNearTheFace(t *testing.T) {
	testmedia.CheckMats(t)
	s, _ := newSelector(t, selectCfg())
	dir, err := testmedia.Dir()
	if err != nil {
		t.Fatal(err)
	}
	g, err := testmedia.NewGenerator(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m := gocv.NewMat()
	defer m.Close()
	var fulls []bool
	every := s.cfg.FullSearchEvery
	for i := range 2*every + 1 {
		if err := g.Render(testmedia.Scene{Subject: "a", Sway: true}, 1280, 720, i, &m); err != nil {
			t.Fatal(err)
		}
		res := s.det.detect(m, true, s.cfg.ChangeThreshold, s.cfg.FullSearchEvery)
		if len(res.faces) != 1 {
			t.Fatalf("frame %d: faces %v", i, res.faces)
		}
		fulls = append(fulls, res.full)
	}
	want := make([]bool, 2*every+1)
	want[0], want[every], want[2*every] = true, true, true
	if !slices.Equal(fulls, want) {
		t.Errorf("whole-frame searches %v, want %v", fulls, want)
	}
}

func TestFileAttemptStore(t *testing.T) {
	dir := t.TempDir()
	st := NewFileAttemptStore(filepath.Join(dir, "a.json"))
	if at, err := st.Load(); err != nil || len(at.Failures) != 0 || !at.LockedUntil.IsZero() {
		t.Fatalf("missing file: %v %v", at, err)
	}
	want := AttemptState{Failures: []time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 1, 0, 0, time.UTC)},
		LockedUntil: time.Date(2025, 1, 1, 0, 5, 0, 0, time.UTC)}
	if err := st.Save(want); err != nil {
		t.Fatal(err)
	}
	at, err := NewFileAttemptStore(filepath.Join(dir, "a.json")).Load()
	if err != nil || len(at.Failures) != 2 || !at.Failures[0].Equal(want.Failures[0]) || !at.Failures[1].Equal(want.Failures[1]) || !at.LockedUntil.Equal(want.LockedUntil) {
		t.Fatalf("round trip: %v %v", at, err)
	}
	// The earlier cap's file (every attempt) holds no failures.
	old := filepath.Join(dir, "old.json")
	if err := os.WriteFile(old, []byte(`{"attempts":["2025-01-01T00:00:00Z"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if at, err := NewFileAttemptStore(old).Load(); err != nil || len(at.Failures) != 0 {
		t.Errorf("old file: %v %v, want empty", at, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileAttemptStore(bad).Load(); err == nil {
		t.Error("corrupt file loaded")
	}
	// A corrupt history does not stop the door: the selector starts empty.
	s, _ := newSelector(t, selectCfg(), WithAttemptStore(NewFileAttemptStore(bad)))
	if len(s.guard.st.Failures) != 0 || !s.guard.st.LockedUntil.IsZero() {
		t.Errorf("guard state %v", s.guard.st)
	}
	if err := NewFileAttemptStore(filepath.Join(dir, "no", "such", "dir.json")).Save(want); err == nil {
		t.Error("save into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".tmp" {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestMetricsInitialised(t *testing.T) {
	testmedia.CheckMats(t)
	_, reg := newSelector(t, defaultCapture())
	for _, r := range AllReasons() {
		if v := counterValue(t, reg, "kioskd_capture_rejections_total", string(r)); v != 0 {
			t.Errorf("%s = %v", r, v)
		}
	}
	for _, n := range []string{"kioskd_capture_shots_total", "kioskd_capture_lockouts_total", "kioskd_capture_detect_duration_seconds"} {
		counterValue(t, reg, n, "")
	}
}

func TestCooldownReusesTheFaceWhileTheSceneIsUnchanged(t *testing.T) {
	testmedia.CheckMats(t)
	clk := newClock()
	s, reg := newSelector(t, selectCfg(), WithClock(clk.Now))
	r := &run{t: t, s: s, clk: clk, f: newFrames(t, 640, 360)}
	if evs := r.feed("a", 10); !slices.Equal(kinds(evs), []EventKind{EventShot}) {
		t.Fatalf("person A: %v, want a shot", kinds(evs))
	}
	s.SetBusy(true)
	s.SetBusy(false)
	before := counterValue(t, reg, "kioskd_capture_detect_duration_seconds", "")
	// The same person, still: the face is there without a search.
	for i := range 20 {
		ev, err := s.Process(r.f.get("a"), clk.Add(frameGap))
		if err != nil || len(ev.Analysis.Faces) != 1 || ev.Kind != EventNone {
			t.Fatalf("cooldown frame %d: kind %v faces %v (%v)", i, ev.Kind, ev.Analysis.Faces, err)
		}
	}
	if n := counterValue(t, reg, "kioskd_capture_detect_duration_seconds", "") - before; n != 0 {
		t.Errorf("cascade ran %v times in cooldown on an unchanged scene, want 0", n)
	}
	// The person leaves: searches resume at once and the presence ends.
	evs := r.feed("empty", selectCfg().AbsentFrames)
	if !slices.Equal(kinds(evs), []EventKind{EventIdle}) || evs[0].i != selectCfg().AbsentFrames-1 {
		t.Fatalf("after leaving: %+v, want idle after %d frames", evs, selectCfg().AbsentFrames)
	}
}
