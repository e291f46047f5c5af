package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"
)

// soakScripts are the emulator scripts played in turn, one every
// soakScriptEvery: answers, slow answers and faults mixed, and now and then
// an outage long enough to fill the queue and make the drainer work.
func soakScripts() []string {
	return []string{
		"pass,fail:hasFaceMask,http:503,delay:1s,pass,http:429:retry-after=1,fail:spoofAttempt,reset,http:500,delay:300ms",
		"pass,garbage,fail:faceMatchFailed,delay:2s,http:502,pass,half,fail:hasLenses,http:504",
		"http:503,http:503,http:503,http:503,http:503,http:503,http:503,http:503,http:503,http:503,http:503,http:503,hang",
		"pass,wrongshape,delay:500ms,fail:otherError,reset,pass,http:503,http:503",
	}
}

const soakScriptEvery = 15 * time.Second

// soakSample is one reading during a soak.
type soakSample struct {
	T          float64 `json:"t_s"`
	RSSMB      float64 `json:"rss_mb"`
	HWMMB      float64 `json:"rss_peak_mb"`
	Goroutines float64 `json:"goroutines"`
	FDs        float64 `json:"fds"`
	Threads    int64   `json:"threads"`
	QueueFile  float64 `json:"queue_file_mb"`
	QueueDepth float64 `json:"queue_depth"`
	CPUPct     float64 `json:"cpu_pct"`
	Decisions  int     `json:"decisions"`
}

// SoakResult is what bench/soak.json holds.
type SoakResult struct {
	Started     time.Time      `json:"started"`
	Duration    string         `json:"duration"`
	Commit      string         `json:"commit"`
	Command     string         `json:"command"`
	Machine     Machine        `json:"machine"`
	WarmupS     float64        `json:"warmup_s"`
	Start       soakSample     `json:"start"`
	Warm        soakSample     `json:"after_warmup"`
	End         soakSample     `json:"end"`
	Growth      map[string]any `json:"growth_after_warmup"`
	Results     map[string]int `json:"decisions_by_result"`
	Deferred    int            `json:"deferred_answers"`
	CleanStop   bool           `json:"clean_stop"`
	Samples     []soakSample   `json:"samples"`
	SimRequests int            `json:"emulator_requests"`
}

func runSoak(ctx context.Context, root string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dur := fs.Duration("duration", 30*time.Minute, "how long to run")
	out := fs.String("out", "bench/soak.json", "write the result here")
	every := fs.Duration("every", 10*time.Second, "sampling interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dur < time.Minute {
		fmt.Fprintln(stderr, "benchrun soak: -duration must be at least 1m")
		return 2
	}
	b := &bench{root: root, log: stderr, started: time.Now()}
	res, err := b.soak(ctx, *dur, *every)
	if res != nil {
		printSoak(stdout, res)
		data, _ := json.MarshalIndent(res, "", "  ")
		path := filepath.Join(root, *out)
		if werr := os.WriteFile(path, append(data, '\n'), 0o644); werr != nil {
			fmt.Fprintln(stderr, "benchrun soak:", werr)
			return 1
		}
		fmt.Fprintf(stdout, "\nwritten to %s\n", *out)
	}
	if err != nil {
		fmt.Fprintln(stderr, "benchrun soak:", err)
		return 1
	}
	return 0
}

func (b *bench) soak(ctx context.Context, dur, every time.Duration) (*SoakResult, error) {
	b.machine = machineInfo()
	clip, err := b.clip("door", 1280, 720, doorScript)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(b.root, "out", "soak")
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s, err := startSim(b.root, dir, simOpts{})
	if err != nil {
		return nil, err
	}
	defer s.stop()
	// A cap of 10 attempts a minute with a 20 s lockout: the clip makes
	// about 20 a minute, so lockouts come and go too.
	k, err := startKioskd(b.root, dir, kioskdConf{clip: clip, simURL: s.url, fps: benchFPS, loop: true,
		maxFailures: "10", extra: "  failure_window: 1m\n  lockout: 20s\n"})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			k.stop()
		}
	}()
	b.logf("soak for %s: kioskd pid %d, logs in %s", dur, k.pid, dir)

	warm := min(5*time.Minute, dur/5)
	res := &SoakResult{Started: b.started.UTC(), Duration: dur.String(), Commit: gitDescribe(b.root),
		Command: "make soak DURATION=" + dur.String(), Machine: b.machine, WarmupS: warm.Seconds()}
	queuePath := filepath.Join(dir, "state", "queue.db")
	start := time.Now()
	prev, err := sampleProc(k.pid)
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	scripts := soakScripts()
	nextScript := time.Now()
	scriptN := 0
	end := start.Add(dur)
	for time.Now().Before(end) {
		if time.Now().After(nextScript) {
			if err := s.script(scripts[scriptN%len(scripts)]); err != nil {
				b.logf("script: %v", err)
			}
			scriptN++
			nextScript = nextScript.Add(soakScriptEvery)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-k.done:
			return res, fmt.Errorf("kioskd exited during the soak; see %s", filepath.Join(dir, "kioskd.log"))
		case <-tick.C:
		}
		p, err := sampleProc(k.pid)
		if err != nil {
			return res, err
		}
		m, err := k.scrape()
		if err != nil {
			return res, err
		}
		var qf float64
		if fi, err := os.Stat(queuePath); err == nil {
			qf = float64(fi.Size()) / (1 << 20)
		}
		smp := soakSample{T: round(time.Since(start).Seconds()), RSSMB: round(float64(p.rssKB) / 1024), HWMMB: round(float64(p.hwmKB) / 1024),
			Goroutines: m["go_goroutines"], FDs: m["process_open_fds"], Threads: p.thread, QueueFile: round(qf),
			QueueDepth: m["kioskd_queue_depth"], CPUPct: round(cpuShare(prev, p)), Decisions: len(k.decided())}
		prev = p
		res.Samples = append(res.Samples, smp)
		if len(res.Samples)%6 == 0 {
			b.logf("t=%4.0fs rss %.1f MB, %v goroutines, %v fds, queue %.2f MB (%v items), cpu %.1f%%, %d decisions",
				smp.T, smp.RSSMB, smp.Goroutines, smp.FDs, smp.QueueFile, smp.QueueDepth, smp.CPUPct, smp.Decisions)
		}
	}
	k.stop()
	stopped = true
	b.machine.LoadEnd = loadAvg()
	res.Machine = b.machine
	res.CleanStop = k.cmd.ProcessState != nil && k.cmd.ProcessState.ExitCode() == 0
	if recs, err := s.requests(); err == nil {
		res.SimRequests = len(recs)
	}
	summarise(res, k)
	return res, nil
}

func summarise(res *SoakResult, k *kioskd) {
	if len(res.Samples) == 0 {
		return
	}
	res.Start = res.Samples[0]
	res.End = res.Samples[len(res.Samples)-1]
	res.Warm = res.End
	for _, s := range res.Samples {
		if s.T >= res.WarmupS {
			res.Warm = s
			break
		}
	}
	var after []soakSample
	for _, s := range res.Samples {
		if s.T >= res.WarmupS {
			after = append(after, s)
		}
	}
	span := func(get func(soakSample) float64) (float64, float64) {
		lo, hi := get(after[0]), get(after[0])
		for _, s := range after {
			lo, hi = min(lo, get(s)), max(hi, get(s))
		}
		return lo, hi
	}
	// The slope of a least-squares line is steadier than end minus start.
	slope := func(get func(soakSample) float64) float64 {
		if len(after) < 2 {
			return 0
		}
		var n, sx, sy, sxx, sxy float64
		for _, s := range after {
			x, y := s.T/3600, get(s)
			n++
			sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
		}
		d := n*sxx - sx*sx
		if d == 0 {
			return 0
		}
		return (n*sxy - sx*sy) / d
	}
	rss := func(s soakSample) float64 { return s.RSSMB }
	gor := func(s soakSample) float64 { return s.Goroutines }
	fds := func(s soakSample) float64 { return s.FDs }
	rlo, rhi := span(rss)
	glo, ghi := span(gor)
	flo, fhi := span(fds)
	qlo, qhi := span(func(s soakSample) float64 { return s.QueueFile })
	res.Growth = map[string]any{
		"rss_mb":                round(res.End.RSSMB - res.Warm.RSSMB),
		"rss_min_max_mb":        []float64{rlo, rhi},
		"rss_slope_mb_per_hour": round(slope(rss)),
		"goroutines_min_max":    []float64{glo, ghi},
		"fds_min_max":           []float64{flo, fhi},
		"queue_file_min_max_mb": []float64{qlo, qhi},
	}
	res.Results = map[string]int{}
	for _, d := range k.decided() {
		res.Results[d.Result]++
	}
	res.Deferred = k.deferredCount()
}

func printSoak(w io.Writer, r *SoakResult) {
	fmt.Fprintf(w, "\nkioskd soak — %s, %s, %d cores (%s), %d MB\n\n", r.Duration, r.Commit, r.Machine.Nproc, r.Machine.CPU, r.Machine.MemoryMB)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tSTART\tAFTER WARM-UP\tEND")
	fmt.Fprintf(tw, "time (s)\t%.0f\t%.0f\t%.0f\n", r.Start.T, r.Warm.T, r.End.T)
	fmt.Fprintf(tw, "resident memory (MB)\t%.1f\t%.1f\t%.1f\n", r.Start.RSSMB, r.Warm.RSSMB, r.End.RSSMB)
	fmt.Fprintf(tw, "peak resident memory (MB)\t%.1f\t%.1f\t%.1f\n", r.Start.HWMMB, r.Warm.HWMMB, r.End.HWMMB)
	fmt.Fprintf(tw, "goroutines\t%.0f\t%.0f\t%.0f\n", r.Start.Goroutines, r.Warm.Goroutines, r.End.Goroutines)
	fmt.Fprintf(tw, "open file descriptors\t%.0f\t%.0f\t%.0f\n", r.Start.FDs, r.Warm.FDs, r.End.FDs)
	fmt.Fprintf(tw, "OS threads\t%d\t%d\t%d\n", r.Start.Threads, r.Warm.Threads, r.End.Threads)
	fmt.Fprintf(tw, "queue file (MB)\t%.2f\t%.2f\t%.2f\n", r.Start.QueueFile, r.Warm.QueueFile, r.End.QueueFile)
	fmt.Fprintf(tw, "queue depth\t%.0f\t%.0f\t%.0f\n", r.Start.QueueDepth, r.Warm.QueueDepth, r.End.QueueDepth)
	fmt.Fprintf(tw, "live decisions so far\t%d\t%d\t%d\n", r.Start.Decisions, r.Warm.Decisions, r.End.Decisions)
	tw.Flush()
	fmt.Fprintln(w)
	keys := make([]string, 0, len(r.Growth))
	for k := range r.Growth {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "after warm-up: %s = %v\n", k, r.Growth[k])
	}
	ok := "yes"
	if g, _ := r.Growth["rss_mb"].(float64); g > 5 {
		ok = "NO"
	}
	fmt.Fprintf(w, "RSS growth after warm-up <= 5 MB: %s\n", ok)
	fmt.Fprintf(w, "decisions: %v, deferred answers: %d, emulator requests: %d, clean stop: %v\n", r.Results, r.Deferred, r.SimRequests, r.CleanStop)
}
