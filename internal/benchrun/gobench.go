package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchLine holds the figures of one benchmark result line, by unit.
type benchLine map[string]float64

// goBench runs `go test -bench` in pkg and parses its result lines. With
// pin it runs on core 0 only (taskset), as the issues ask for per-frame work.
func (b *bench) goBench(ctx context.Context, pkg, pattern, benchtime string, pin bool, timeout time.Duration) (map[string]benchLine, error) {
	args := []string{"test", "-run", "^$", "-bench", pattern, "-benchtime", benchtime, "-count", "1", "-timeout", timeout.String(), pkg}
	var cmd *exec.Cmd
	if pin {
		cmd = exec.CommandContext(ctx, "taskset", append([]string{"-c", "0", "go"}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, "go", args...)
	}
	cmd.Dir = b.root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	b.logf("go %s", strings.Join(args, " "))
	err := cmd.Run()
	logName := filepath.Join(b.root, "out", "bench", "go-"+strings.Trim(strings.NewReplacer("/", "_", ".", "", "|", "_", "^", "", "$", "").Replace(pkg+"-"+pattern), "_")+".txt")
	_ = os.WriteFile(logName, out.Bytes(), 0o644)
	b.logf("  %s (%s, output in %s)", map[bool]string{true: "ok", false: "FAILED"}[err == nil], time.Since(start).Round(time.Second), logName)
	res := parseBench(out.Bytes())
	if err != nil {
		return res, fmt.Errorf("go test -bench %s %s: %w", pattern, pkg, err)
	}
	return res, nil
}

func parseBench(out []byte) map[string]benchLine {
	res := map[string]benchLine{}
	procSuffix := regexp.MustCompile(`-\d+$`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procSuffix.ReplaceAllString(f[0], "")
		l := benchLine{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			l[f[i+1]] = v
		}
		res[name] = l
	}
	return res
}

func (b *bench) captureBenchmarks(ctx context.Context) error {
	var errs []string
	res, err := b.goBench(ctx, "./capture/", "^(BenchmarkFrameWork|BenchmarkEncode)$", "100x", true, 15*time.Minute)
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, size := range []string{"640x480", "1280x720"} {
		for _, scene := range []string{"face", "noface"} {
			base := "BenchmarkFrameWork/" + size + "/" + scene
			ours, naive := res[base+"/kioskd"], res[base+"/naive"]
			key := "capture." + size + "." + scene
			label := size + " " + map[string]string{"face": "face", "noface": "no face"}[scene]
			if ours == nil || naive == nil {
				continue
			}
			b.add(key+".fps", "capture (1 core)", label+": kioskd frames/s", ours["frames/s"], "fps", "", "")
			b.add(key+".naive_fps", "capture (1 core)", label+": naive frames/s", naive["frames/s"], "fps", "", "")
			target := ""
			if size == "1280x720" {
				target = ">= 4"
			}
			b.add(key+".speedup", "capture (1 core)", label+": speed-up over naive", naive["speedup_x"], "x", target, "")
			if scene == "face" {
				b.add(key+".found", "capture (1 core)", label+": face frames found", ours["found_%"], "%", "", "")
				b.add(key+".naive_found", "capture (1 core)", label+": face frames found by naive", naive["found_%"], "%", "", "")
				t := ""
				if size == "1280x720" {
					t = ">= 95"
				}
				b.add(key+".found_vs_naive", "capture (1 core)", label+": found vs naive", naive["found_vs_naive_%"], "%", t, "")
			} else {
				b.add(key+".false", "capture (1 core)", label+": frames with a false face", ours["false_face_%"], "%", "", "")
			}
		}
	}
	if e := res["BenchmarkEncode"]; e != nil {
		b.add("capture.encode_ms", "capture (1 core)", "encode chosen 1280x720 frame (JPEG q85 + base64)", e["ms/encode"], "ms", "", "")
		b.add("capture.encode_base64_bytes", "capture (1 core)", "encoded size, base64", e["base64_bytes"]/1024, "KB", "", "")
	}
	res, err = b.goBench(ctx, "./capture/", "^BenchmarkLongRun$", "1x", true, 15*time.Minute)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if l := res["BenchmarkLongRun"]; l != nil {
		b.add("capture.longrun.frames", "capture (1 core)", "long run: frames processed (1280x720)", l["frames"], "frames", ">= 10000", "")
		b.add("capture.longrun.rss_start", "capture (1 core)", "long run: RSS at start", l["rss_start_MB"], "MB", "", "")
		b.add("capture.longrun.rss_end", "capture (1 core)", "long run: RSS at end", l["rss_end_MB"], "MB", "", "")
		b.add("capture.longrun.rss_growth", "capture (1 core)", "long run: RSS growth", l["rss_end_MB"]-l["rss_start_MB"], "MB", "<= 5", "")
	}
	res, err = b.goBench(ctx, "./agent/", "^BenchmarkSelfView$", "300x", true, 10*time.Minute)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if l := res["BenchmarkSelfView"]; l != nil {
		b.add("display.selfview.ms", "capture (1 core)", "self-view: 1280x720 frame to a 640x360 JPEG", l["ms/frame"], "ms", "", "")
		b.add("display.selfview.cpu", "capture (1 core)", "self-view at 15 fps while a screen watches: share of a core", l["core_%_at_15fps"], "%", "<= 10", "")
		b.add("display.selfview.kb", "capture (1 core)", "self-view frame size", l["KB/frame"], "KB", "", "")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (b *bench) queueBenchmarks(ctx context.Context) error {
	var errs []string
	res, err := b.goBench(ctx, "./queue/", "^(BenchmarkEnqueue150KB|BenchmarkDrain)$", "300x", false, 10*time.Minute)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if l := res["BenchmarkEnqueue150KB"]; l != nil {
		b.add("queue.enqueue.p50", "queue", "enqueue 150 KB with fsync: p50", l["p50-ms"], "ms", "", "")
		b.add("queue.enqueue.p99", "queue", "enqueue 150 KB with fsync: p99", l["p99-ms"], "ms", "", "")
	}
	if l := res["BenchmarkDrain"]; l != nil {
		b.add("queue.drain.items_per_s", "queue", "drain to local emulator (in process)", l["items/s"], "items/s", "", "")
	}
	res, err = b.goBench(ctx, "./queue/", "^BenchmarkFileSize$", "1x", false, 30*time.Minute)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if l := res["BenchmarkFileSize"]; l != nil {
		b.add("queue.filesize.peak_mb", "queue", fmt.Sprintf("file size after %.0f enqueue/ack cycles of 150 KB: peak", l["cycles"]), l["peak-file-bytes"]/(1<<20), "MB", fmt.Sprintf("<= %g", l["limit-bytes"]/(1<<20)), "byte limit")
		b.add("queue.filesize.end_mb", "queue", "file size at the end", l["file-bytes"]/(1<<20), "MB", "", "")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
