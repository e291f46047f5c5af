package main

import (
	"bytes"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskd/kioskd/config"
)

func TestParseBenchReadsCustomMetrics(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkFrameWork/1280x720/face/kioskd         	     100	   5393512 ns/op	       100.0 found_%	       185.4 frames/s
BenchmarkFrameWork/1280x720/face/naive-2        	     100	  78652139 ns/op	       100.0 found_%	       100.0 found_vs_naive_%	        12.71 frames/s	        14.58 speedup_x
BenchmarkFileSize 	       1	81234567890 ns/op	     10000 cycles	  16777216 file-bytes
PASS
ok  	github.com/kioskd/kioskd/capture	40.237s
`)
	res := parseBench(out)
	if got := res["BenchmarkFrameWork/1280x720/face/kioskd"]["frames/s"]; got != 185.4 {
		t.Errorf("kioskd frames/s = %v", got)
	}
	naive := res["BenchmarkFrameWork/1280x720/face/naive"] // the -2 suffix of GOMAXPROCS is dropped
	if naive == nil || naive["speedup_x"] != 14.58 || naive["found_vs_naive_%"] != 100 {
		t.Errorf("naive = %v", naive)
	}
	if got := res["BenchmarkFileSize"]["file-bytes"]; got != 16777216 {
		t.Errorf("file-bytes = %v", got)
	}
	if len(res) != 3 {
		t.Errorf("parsed %d lines, want 3: %v", len(res), res)
	}
}

func TestTargetsAndPercentiles(t *testing.T) {
	b := &bench{}
	b.add("a", "x", "under", 19.9, "ms", "<= 20", "")
	b.add("b", "x", "over", 20.1, "ms", "<= 20", "")
	b.add("c", "x", "floor", 1000, "px", ">= 1000", "")
	b.add("d", "x", "no target", 1, "", "", "")
	want := []*bool{ptr(true), ptr(false), ptr(true), nil}
	for i, m := range b.metrics {
		if (m.OK == nil) != (want[i] == nil) || (m.OK != nil && *m.OK != *want[i]) {
			t.Errorf("%s: ok %v, want %v", m.Name, m.OK, want[i])
		}
	}
	var buf bytes.Buffer
	b.print(&buf, &Results{Metrics: []Metric{{Key: "a", Value: 25}}})
	if !strings.Contains(buf.String(), "NO") || !strings.Contains(buf.String(), "25") {
		t.Errorf("table without the failed target or the previous value:\n%s", buf.String())
	}
	d := dist{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	if p := d.p(50); p != 5 {
		t.Errorf("p50 = %v, want 5 (nearest rank)", p)
	}
	if p := d.p(95); p != 10 {
		t.Errorf("p95 = %v, want 10", p)
	}
	if p := (dist{}).p(50); !math.IsNaN(p) {
		t.Errorf("p50 of nothing = %v, want NaN", p)
	}
}

func ptr(b bool) *bool { return &b }

func TestKioskdConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	c := kioskdConf{clip: filepath.Join(dir, "clip.avi"), simURL: "http://127.0.0.1:9", fps: 30, loop: true,
		maxFailures: "10", extra: "  failure_window: 1m\n  lockout: 20s\n"}
	env := map[string]string{"KIOSKD_API_KEY": benchAPIKey, "KIOSKD_HARDWARE_ID": benchToken}
	cfg, err := config.Parse([]byte(c.yaml(dir)), func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("generated configuration does not load: %v\n%s", err, c.yaml(dir))
	}
	if !cfg.Camera.Realtime || !cfg.Camera.Loop || cfg.Camera.FPS != 30 || cfg.Capture.MaxFailures != 10 ||
		cfg.Capture.Lockout != 20*time.Second || cfg.Queue.Path != filepath.Join(dir, "state", "queue.db") {
		t.Errorf("configuration not as asked: camera %+v, capture attempts %d lockout %v, queue %s",
			cfg.Camera, cfg.Capture.MaxFailures, cfg.Capture.Lockout, cfg.Queue.Path)
	}
	// The measurement's notion of the configured selection time is kioskd's.
	def := config.Default().Capture
	if want := time.Duration(def.PresenceFrames-1)*time.Second/30 + def.Window; configuredSelection() != want {
		t.Errorf("configured selection %v, want %v", configuredSelection(), want)
	}
}

func TestSoakSummary(t *testing.T) {
	res := &SoakResult{WarmupS: 60}
	for i := range 10 {
		res.Samples = append(res.Samples, soakSample{T: float64(i * 30), RSSMB: 130 + float64(i)*0.5, Goroutines: 22, FDs: 15, QueueFile: 1})
	}
	summarise(res, &kioskd{})
	if res.Warm.T != 60 || res.End.T != 270 || res.Start.T != 0 {
		t.Errorf("start/warm/end at %v/%v/%v", res.Start.T, res.Warm.T, res.End.T)
	}
	if g := res.Growth["rss_mb"].(float64); math.Abs(g-3.5) > 1e-9 {
		t.Errorf("growth after warm-up %v MB, want 3.5", g)
	}
	// 0.5 MB every 30 s is 60 MB an hour.
	if s := res.Growth["rss_slope_mb_per_hour"].(float64); math.Abs(s-60) > 0.01 {
		t.Errorf("slope %v MB/h, want 60", s)
	}
}
