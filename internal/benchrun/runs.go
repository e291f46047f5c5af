package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/testmedia"
)

// Run parameters. Presence and window are kioskd's defaults; the clips
// are paced at 30 fps like a live camera.
const (
	benchFPS   = 30
	clipNoise  = 3 // grey levels of sensor noise: no two frames are equal
	decideWait = 4 * time.Second
)

// clip makes (once) a clip under out/bench/clips and returns its path.
func (b *bench) clip(name string, w, h int, script string) (string, error) {
	dir := filepath.Join(b.root, "out", "bench", "clips")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%dx%d.avi", name, w, h))
	stamp := path + ".script"
	if old, err := os.ReadFile(stamp); err == nil && string(old) == script {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
	}
	segs, err := testmedia.ParseScript(script)
	if err != nil {
		return "", err
	}
	g, err := testmedia.NewGenerator(filepath.Join(b.root, "testdata"))
	if err != nil {
		return "", err
	}
	defer g.Close()
	start := time.Now()
	if err := g.WriteClip(path, w, h, benchFPS, segs, testmedia.ClipOptions{Noise: clipNoise}); err != nil {
		return "", err
	}
	b.logf("clip %s (%s) in %s", filepath.Base(path), script, time.Since(start).Round(time.Millisecond))
	return path, os.WriteFile(stamp, []byte(script), 0o644)
}

// doorScript: someone arrives, stays 2 s, leaves; 1 s of empty hall; the
// second person (not enrolled) does the same.
const doorScript = "empty:30,a:60,empty:30,b:60"

func (b *bench) runDir(name string) (string, error) {
	dir := filepath.Join(b.root, "out", "bench", "run-"+name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

func (b *bench) run(ctx context.Context, f benchFlags) error {
	b.machine = machineInfo()
	defer func() { b.machine.LoadEnd = loadAvg() }()
	for _, bin := range []string{"kioskd", "incode-sim"} {
		if _, err := os.Stat(filepath.Join(b.root, "bin", bin)); err != nil {
			return fmt.Errorf("bin/%s missing: run make build first", bin)
		}
	}
	var errs []error
	step := func(name string, fn func(context.Context) error) {
		if f.skip[name] || ctx.Err() != nil {
			return
		}
		start := time.Now()
		b.logf("== %s", name)
		if err := fn(ctx); err != nil {
			b.logf("%s: %v", name, err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		b.logf("== %s done in %s", name, time.Since(start).Round(time.Second))
	}
	step("latency", func(ctx context.Context) error { return b.latency(ctx, f.n) })
	step("lobby", b.lobby)
	step("payload", b.payload)
	step("decode", b.decode)
	step("resources", b.resources)
	// Issue 18: the busy scene, the negative set, paced against unpaced.
	step("negatives", b.negatives)
	step("replay", b.replay)
	step("moving", b.moving)
	step("go", b.captureBenchmarks)
	step("queue", b.queueBenchmarks)
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// decisionRun runs kioskd on clip against an emulator until n live
// decisions were made, and joins them with the emulator's records.
type decisionRun struct {
	decisions []decision
	records   map[string]simRecord // by authentication id
}

func (b *bench) decisionRun(ctx context.Context, name, clip string, so simOpts, n int, maxFailures string) (*decisionRun, error) {
	dir, err := b.runDir(name)
	if err != nil {
		return nil, err
	}
	s, err := startSim(b.root, dir, so)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	k, err := startKioskd(b.root, dir, kioskdConf{clip: clip, simURL: s.url, fps: benchFPS, loop: true, maxFailures: maxFailures})
	if err != nil {
		return nil, err
	}
	ds := k.waitDecisions(ctx, n, time.Duration(n)*4*time.Second+30*time.Second)
	k.stop()
	recs, err := s.requests()
	if err != nil {
		return nil, err
	}
	r := &decisionRun{decisions: ds, records: map[string]simRecord{}}
	for _, rec := range recs {
		if rec.AuthenticationID != "" && rec.Endpoint == "authenticate" {
			r.records[rec.AuthenticationID] = rec
		}
	}
	b.logf("%s: %d decisions, %d emulator records (log: %s)", name, len(ds), len(r.records), filepath.Join(dir, "kioskd.log"))
	if len(ds) < n {
		return r, fmt.Errorf("%s: %d of %d decisions", name, len(ds), n)
	}
	return r, nil
}

type dist []float64

func (d dist) p(q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return percentile(s, q)
}

// configuredSelection is the time kioskd waits by configuration before it
// can decide: presence_frames frames after the first, and the window.
func configuredSelection() time.Duration {
	c := config.Default().Capture
	return time.Duration(c.PresenceFrames-1)*time.Second/benchFPS + c.Window
}

func (b *bench) latency(ctx context.Context, n int) error {
	clip, err := b.clip("door", 1280, 720, doorScript)
	if err != nil {
		return err
	}
	conf := float64(configuredSelection()) / float64(time.Millisecond)
	var errs []error
	for _, lat := range []time.Duration{0, 300 * time.Millisecond} {
		name := fmt.Sprintf("latency-%dms", lat.Milliseconds())
		r, err := b.decisionRun(ctx, name, clip, simOpts{latency: lat}, n, "0")
		if err != nil {
			errs = append(errs, err)
			if r == nil || len(r.decisions) == 0 {
				continue
			}
		}
		var total, presence, window, sel, enc, upload, service, act, overhead dist
		var rows []map[string]any
		for _, d := range r.decisions {
			rec, ok := r.records[d.AuthID]
			if !ok {
				continue
			}
			svc := float64(rec.DurationMs)
			oh := d.LatencyMs - conf - svc
			total = append(total, d.LatencyMs)
			presence = append(presence, d.PresenceMs)
			window = append(window, d.WindowMs)
			sel = append(sel, d.SelectMs)
			enc = append(enc, d.EncodeMs)
			upload = append(upload, d.UploadMs)
			service = append(service, svc)
			act = append(act, d.ActuatorMs)
			overhead = append(overhead, oh)
			rows = append(rows, map[string]any{"result": d.Result, "total_ms": d.LatencyMs, "presence_ms": d.PresenceMs,
				"window_ms": d.WindowMs, "select_ms": d.SelectMs, "encode_ms": d.EncodeMs, "upload_ms": d.UploadMs,
				"service_ms": svc, "actuator_ms": d.ActuatorMs, "overhead_ms": oh})
		}
		b.detail(name, rows)
		if len(total) == 0 {
			errs = append(errs, fmt.Errorf("%s: no decision matched an emulator record", name))
			continue
		}
		area := fmt.Sprintf("latency, service +%d ms", lat.Milliseconds())
		key := fmt.Sprintf("latency.svc%d.", lat.Milliseconds())
		note := fmt.Sprintf("n=%d", len(total))
		for _, q := range []float64{50, 95, 99} {
			b.add(key+fmt.Sprintf("total.p%.0f", q), area, fmt.Sprintf("first face frame → door signal, p%.0f", q), total.p(q), "ms", "", map[bool]string{true: note}[q == 50])
		}
		b.add(key+"presence.p50", area, "  presence frames, p50", presence.p(50), "ms", "", fmt.Sprintf("configured %.0f", conf-float64(config.Default().Capture.Window.Milliseconds())))
		b.add(key+"window.p50", area, "  selection window, p50", window.p(50), "ms", "", fmt.Sprintf("configured %d", config.Default().Capture.Window.Milliseconds()))
		b.add(key+"select.p50", area, "  window end → upload starts (frame, encode, hand-off), p50", sel.p(50), "ms", "", "")
		b.add(key+"select.p95", area, "  window end → upload starts, p95", sel.p(95), "ms", "", "")
		b.add(key+"encode.p50", area, "  encode (in the above), p50", enc.p(50), "ms", "", "")
		b.add(key+"upload.p50", area, "  upload round trip, p50", upload.p(50), "ms", "", "")
		b.add(key+"service.p50", area, "  service time (emulator), p50", service.p(50), "ms", "", "")
		b.add(key+"actuator.p50", area, "  actuator, p50", actuator(act), "ms", "", "")
		b.add(key+"overhead.p50", area, "agent overhead (total − presence/window − service), p50", overhead.p(50), "ms", "", "")
		b.add(key+"overhead.p95", area, "agent overhead, p95", overhead.p(95), "ms", "<= 20", "")
		b.add(key+"overhead.p99", area, "agent overhead, p99", overhead.p(99), "ms", "", "")
	}
	return errors.Join(errs...)
}

func actuator(d dist) float64 { return d.p(50) }

// lobbyArrivals is how many enrolled people walk up in a lobby run.
const lobbyArrivals = 20

// lobby measures a busy door with the default brute-force guard: enrolled
// people arriving every 3 s and every 1.5 s (half of the gap in view).
// Every one must be let in.
func (b *bench) lobby(ctx context.Context) error {
	var errs []error
	for _, every := range []time.Duration{3 * time.Second, 1500 * time.Millisecond} {
		frames := int(every.Seconds() * benchFPS)
		name := fmt.Sprintf("lobby-%dms", every.Milliseconds())
		clip, err := b.clip(name, 1280, 720, "empty:30"+strings.Repeat(fmt.Sprintf(",a:%d,empty:%d", frames/2, frames-frames/2), lobbyArrivals))
		if err != nil {
			return err
		}
		r, err := b.decisionRun(ctx, name, clip, simOpts{}, lobbyArrivals, "")
		if err != nil {
			errs = append(errs, err)
			if r == nil || len(r.decisions) < 2 {
				continue
			}
		}
		var door dist
		refused := 0
		for _, d := range r.decisions {
			if d.Result != "PASS" {
				refused++
				continue
			}
			door = append(door, d.LatencyMs)
		}
		span := r.decisions[len(r.decisions)-1].Time.Sub(r.decisions[0].Time)
		perMin := 0.0
		if span > 0 {
			perMin = float64(len(door)-1) / span.Minutes()
		}
		area := fmt.Sprintf("lobby, arrivals every %.1f s", every.Seconds())
		key := fmt.Sprintf("lobby.every%dms.", every.Milliseconds())
		b.add(key+"admitted_per_minute", area, "people admitted per minute", perMin, "/min", fmt.Sprintf(">= %.0f", 0.9*time.Minute.Seconds()/every.Seconds()), fmt.Sprintf("n=%d", len(r.decisions)))
		b.add(key+"door.p95", area, "time at the door (first face frame → door signal), p95", door.p(95), "ms", "", "")
		b.add(key+"refused", area, "people refused (FAIL, ERROR, OFFLINE, lockout)", float64(refused), "", "<= 0", "default capture guard")
	}
	return errors.Join(errs...)
}

func (b *bench) payload(ctx context.Context) error {
	var errs []error
	for _, sz := range [][2]int{{1280, 720}, {1920, 1080}} {
		clip, err := b.clip("door", sz[0], sz[1], doorScript)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("payload-%dx%d", sz[0], sz[1])
		r, err := b.decisionRun(ctx, name, clip, simOpts{}, 6, "0")
		if err != nil {
			errs = append(errs, err)
			if r == nil {
				continue
			}
		}
		var size dist
		long := 0
		for _, rec := range r.records {
			if rec.Image != nil {
				size = append(size, float64(rec.Image.Bytes)/1024)
				long = max(rec.Image.Width, rec.Image.Height)
			}
		}
		if len(size) == 0 {
			errs = append(errs, fmt.Errorf("%s: no images recorded", name))
			continue
		}
		key := fmt.Sprintf("payload.%dx%d.", sz[0], sz[1])
		label := fmt.Sprintf("%dx%d camera", sz[0], sz[1])
		target, ltarget := "", ""
		if sz[0] == 1280 {
			target, ltarget = "<= 200", ">= 1000"
		}
		b.add(key+"jpeg_kb", "payload (defaults)", label+": JPEG sent, median", size.p(50), "KB", target, fmt.Sprintf("max %.0f", size.p(100)))
		b.add(key+"long_side", "payload (defaults)", label+": long side of the upload", float64(long), "px", ltarget, "")
	}
	clip, err := b.clip("door", 1280, 720, doorScript)
	if err != nil {
		return err
	}
	r, err := b.decisionRun(ctx, "upload-2mbit", clip, simOpts{bandwidth: "2Mbit/s"}, 6, "0")
	if err != nil {
		errs = append(errs, err)
	}
	if r != nil && len(r.decisions) > 0 {
		var up, total dist
		for _, d := range r.decisions {
			up = append(up, d.UploadMs)
			total = append(total, d.LatencyMs)
		}
		b.add("payload.2mbit.upload_p50", "payload (defaults)", "upload round trip at 2 Mbit/s (1280x720), p50", up.p(50), "ms", "", fmt.Sprintf("n=%d", len(up)))
		b.add("payload.2mbit.upload_p95", "payload (defaults)", "upload round trip at 2 Mbit/s, p95", up.p(95), "ms", "", "")
		b.add("payload.2mbit.total_p50", "payload (defaults)", "first face frame → door signal at 2 Mbit/s, p50", total.p(50), "ms", "", "")
	}
	return errors.Join(errs...)
}

// decode measures the camera's decode of the 1280x720 MJPEG clip on one
// core, in a child process of this program.
func (b *bench) decode(ctx context.Context) error {
	clip, err := b.clip("static", 1280, 720, "empty:900")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "taskset", "-c", "0", self, "decode", clip).Output()
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	var d decodeResult
	if err := json.Unmarshal(out, &d); err != nil {
		return fmt.Errorf("decode output %q: %w", out, err)
	}
	b.detail("decode", d)
	b.add("decode.full_ms", "camera decode (1 core)", "1280x720 MJPEG frame, full BGR decode", d.FullMs, "ms", "", fmt.Sprintf("%.1f%% of a core at 30 fps", d.FullMs*3))
	b.add("decode.grab_ms", "camera decode (1 core)", "  of which demux + JPEG decode (grab)", d.GrabMs, "ms", "", "")
	if d.ReducedMs > 0 {
		b.add("decode.reduced_ms", "camera decode (1 core)", "1/8-scale grey decode of the same frame (change test)", d.ReducedMs, "ms", "", fmt.Sprintf("%.1f%% at 30 fps", d.ReducedMs*3))
	}
	return nil
}

// resources measures kioskd pinned to one core at a steady 30 fps.
func (b *bench) resources(ctx context.Context) error {
	static, err := b.clip("static", 1280, 720, "empty:900")
	if err != nil {
		return err
	}
	face, err := b.clip("face", 1280, 720, "a:900")
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range []struct{ name, label, clip, target string }{
		{"static", "nobody in front of the camera (static scene)", static, "<= 5"},
		{"face", "face present continuously (cooldown, no attempt cap)", face, "<= 30"},
	} {
		r, err := b.steady(ctx, c.name, c.clip)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		area := "resources 1280x720 @30fps (1 core)"
		b.add("resources."+c.name+".cpu", area, c.label+": CPU", r.cpu, "% of a core", c.target, "")
		b.add("resources."+c.name+".rss", area, c.label+": resident memory", r.rss, "MB", "<= 150", fmt.Sprintf("peak %.0f", r.hwm))
		b.add("resources."+c.name+".goroutines", area, c.label+": goroutines", r.goroutines, "", "", "")
		b.add("resources."+c.name+".fds", area, c.label+": open fds", r.fds, "", "", "")
	}
	if err := b.drain(ctx, static); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

type steadyResult struct {
	cpu, rss, hwm, goroutines, fds float64
	fps                            float64 // frames the camera delivered per second
	msPerFrame                     float64 // CPU time per frame delivered
	dropped                        float64 // frames the paced clip passed over because the loop was late
	droppedBetween                 float64 // the same between the two marks given to steady
}

// steady runs kioskd on a looping clip, skips a warm-up and measures CPU
// over a window. The clips last 30 s, so the window (6-26 s) lies within
// one pass: reopening the file at the loop is not what a live camera does.
//
// marks, when given, are two moments of the window (since kioskd started):
// droppedBetween counts the frames dropped between them.
func (b *bench) steady(ctx context.Context, name, clip string, marks ...time.Duration) (steadyResult, error) {
	var r steadyResult
	dir, err := b.runDir("resources-" + name)
	if err != nil {
		return r, err
	}
	s, err := startSim(b.root, dir, simOpts{})
	if err != nil {
		return r, err
	}
	defer s.stop()
	k, err := startKioskd(b.root, dir, kioskdConf{clip: clip, simURL: s.url, fps: benchFPS, loop: true, maxFailures: "0"})
	if err != nil {
		return r, err
	}
	defer k.stop()
	started := time.Now()
	if !sleepCtx(ctx, 6*time.Second) {
		return r, ctx.Err()
	}
	a, err := sampleProc(k.pid)
	if err != nil {
		return r, err
	}
	m0, err := k.scrape()
	if err != nil {
		return r, err
	}
	var between []float64
	for _, at := range marks {
		if !sleepCtx(ctx, time.Until(started.Add(at))) {
			return r, ctx.Err()
		}
		m, err := k.scrape()
		if err != nil {
			return r, err
		}
		between = append(between, m["kioskd_camera_stale_frames_dropped_total"])
	}
	if !sleepCtx(ctx, time.Until(started.Add(26*time.Second))) {
		return r, ctx.Err()
	}
	z, err := sampleProc(k.pid)
	if err != nil {
		return r, err
	}
	m, err := k.scrape()
	if err != nil {
		return r, err
	}
	r = steadyResult{cpu: cpuShare(a, z), rss: float64(z.rssKB) / 1024, hwm: float64(z.hwmKB) / 1024,
		goroutines: m["go_goroutines"], fds: m["process_open_fds"]}
	frames := m["kioskd_camera_frames_total"]
	if wall := z.at.Sub(a.at).Seconds(); wall > 0 {
		r.dropped = m["kioskd_camera_stale_frames_dropped_total"] - m0["kioskd_camera_stale_frames_dropped_total"]
		if len(between) == 2 {
			r.droppedBetween = between[1] - between[0]
		}
		n := frames - m0["kioskd_camera_frames_total"]
		r.fps = n / wall
		if n > 0 {
			r.msPerFrame = float64(z.cpu-a.cpu) / float64(time.Millisecond) / n
		}
	}
	b.logf("%s: cpu %.1f%%, rss %.0f MB (peak %.0f), %v goroutines, %v fds, %v frames, %v dropped in the window, %d decisions",
		name, r.cpu, r.rss, r.hwm, r.goroutines, r.fds, frames, r.dropped, len(k.decided()))
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drain fills the queue with captures and measures kioskd while its
// drainer delivers them, the camera on a static scene.
func (b *bench) drain(ctx context.Context, static string) error {
	const items = 300
	dir, err := b.runDir("resources-drain")
	if err != nil {
		return err
	}
	fillSize, err := fillQueue(b.root, filepath.Join(dir, "state", "queue.db"), items)
	if err != nil {
		return fmt.Errorf("fill queue: %w", err)
	}
	s, err := startSim(b.root, dir, simOpts{})
	if err != nil {
		return err
	}
	defer s.stop()
	k, err := startKioskd(b.root, dir, kioskdConf{clip: static, simURL: s.url, fps: benchFPS, loop: true, maxFailures: "0"})
	if err != nil {
		return err
	}
	defer k.stop()
	var a, z procSample
	started := false
	deadline := time.Now().Add(3 * time.Minute)
	for {
		m, err := k.scrape()
		if err != nil {
			return err
		}
		depth := m["kioskd_queue_depth"]
		if !started && depth < items {
			if a, err = sampleProc(k.pid); err != nil {
				return err
			}
			a.at = time.Now()
			started = true
			b.logf("drain started (depth %v)", depth)
		}
		if started && depth == 0 {
			if z, err = sampleProc(k.pid); err != nil {
				return err
			}
			m, _ = k.scrape()
			area := "resources 1280x720 @30fps (1 core)"
			wall := z.at.Sub(a.at)
			b.add("resources.drain.cpu", area, fmt.Sprintf("queue draining (%d captures of %.0f KB): CPU", items, float64(fillSize)/1024), cpuShare(a, z), "% of a core", "", fmt.Sprintf("over %.1f s", wall.Seconds()))
			b.add("resources.drain.items_per_s", area, "queue draining: captures delivered", float64(items)/wall.Seconds(), "items/s", "", "")
			b.add("resources.drain.rss", area, "queue draining: resident memory", float64(z.rssKB)/1024, "MB", "<= 150", fmt.Sprintf("peak %.0f", float64(z.hwmKB)/1024))
			b.add("resources.drain.goroutines", area, "queue draining: goroutines", m["go_goroutines"], "", "", "")
			b.add("resources.drain.fds", area, "queue draining: open fds", m["process_open_fds"], "", "", "")
			b.logf("drain: %d items in %s, %d deferred decisions logged", items, wall.Round(time.Millisecond), k.deferredCount())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drain: queue depth still %v after 3 minutes", depth)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}
