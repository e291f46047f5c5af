package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gocv.io/x/gocv"
	"golang.org/x/sync/errgroup"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/agent"
	"github.com/kioskd/kioskd/camera"
	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/events"
	"github.com/kioskd/kioskd/internal/clockcheck"
	"github.com/kioskd/kioskd/internal/httpserve"
	"github.com/kioskd/kioskd/internal/logging"
	"github.com/kioskd/kioskd/internal/sdnotify"
	"github.com/kioskd/kioskd/panel"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

// stopBound is how long a graceful stop may take before kioskd exits anyway.
const stopBound = 10 * time.Second

func buildInfo() string {
	return fmt.Sprintf("kioskd %s (%s, %s/%s, OpenCV %s, gocv %s)",
		version, runtime.Version(), runtime.GOOS, runtime.GOARCH, gocv.OpenCVVersion(), gocv.Version())
}

// newLogger writes JSON (or text) lines to w; when w is the journal stream
// systemd gave kioskd, each line carries its syslog priority.
func newLogger(cfg config.Log, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lvl := new(slog.LevelVar)
	lvl.Set(logging.ParseLevel(cfg.Level))
	f, _ := w.(*os.File)
	return logging.New(w, logging.Options{Level: lvl, Format: cfg.Format, Journal: logging.JournalStream(f, os.Getenv)}), lvl
}

// newRegistry holds the process-wide collectors. The Go collector keeps its
// base series (goroutines, threads, GC pauses) without the 25 MemStats ones
// (process_resident_memory_bytes says what an operator needs): a fleet pays for every series of every door,
// and the e2e series budget test counts them.
func newRegistry(dev config.Device) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(
			collectors.WithGoCollectorMemStatsMetricsDisabled(),
			// GOGC, GOMEMLIMIT and GOMAXPROCS are settings, not health.
			collectors.WithoutGoCollectorRuntimeMetrics(regexp.MustCompile(`.*`)),
		),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		// source_id and mode tie a Prometheus target to its door, so that a
		// dashboard or an alert route can name the door, not an address.
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kioskd_build_info",
			Help: "Build and door information; always 1.",
			ConstLabels: prometheus.Labels{
				"version": version, "goversion": runtime.Version(), "opencv": gocv.OpenCVVersion(),
				"source_id": dev.SourceID, "mode": dev.Mode,
			},
		}, func() float64 { return 1 }),
	)
	return reg
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, _, code := loadConfig("run", args, stderr, nil)
	if code != 0 {
		return code
	}
	log, lvl := newLogger(cfg.Log, stderr)
	for _, w := range cfg.Warnings {
		log.Warn("config", "warning", w)
	}

	// A second signal exits at once; a stop that takes too long is cut off.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	notifier := sdnotify.New(log)
	reg := newRegistry(cfg.Device)
	log.Info("starting",
		"version", version, "opencv", gocv.OpenCVVersion(), "config", cfg.Path,
		"source_id", cfg.Device.SourceID, "mode", cfg.Device.Mode,
		"camera", cfg.Camera.Source, "incode", cfg.Incode.BaseURL,
		"metrics", cfg.Metrics.Listen, "display", cfg.Display.Listen)

	evlog, forwarders := openEvents(cfg, log, reg)

	door, err := actuator.New(cfg.Actuator, log, reg)
	if err != nil {
		log.Error("actuator", "err", err)
		return 1
	}
	defer func() {
		if err := door.Close(); err != nil {
			log.Error("relock on exit", "err", err)
		}
	}()

	var inputs *actuator.Inputs
	if len(cfg.Actuator.Inputs) > 0 {
		onDoor := func(d actuator.DoorEvent) { appendEvent(evlog, log, doorEvent(cfg.Device.SourceID, d)) }
		if inputs, err = actuator.NewInputs(cfg.Actuator, door, log, reg, onDoor); err != nil {
			log.Error("door inputs", "err", err)
			return 1
		}
	}

	api, err := uploader.New(cfg.Incode, "kioskd/"+version, log, reg)
	if err != nil {
		log.Error("incode client", "err", err)
		return 1
	}
	// A wrong clock fails every TLS handshake: say so, rather than only
	// showing everyone "offline".
	clock, err := clockcheck.New(builtAt(), log, reg)
	if err != nil {
		log.Error("clock check", "err", err)
		return 1
	}

	var metricsSrv *httpserve.Server
	if cfg.Metrics.Listen != "" {
		metricsSrv, err = httpserve.New(httpserve.Options{Name: "metrics", MaxConns: cfg.Metrics.MaxConnections,
			WebConfigFile: cfg.Metrics.WebConfigFile}, log, reg)
		if err != nil {
			log.Error("metrics", "err", err)
			return 1
		}
	}

	var disp *display.Server
	if cfg.Display.Listen != "" {
		if disp, err = display.New(cfg.Display, log, reg); err != nil {
			log.Error("display", "err", err)
			return 1
		}
	}

	cam, err := camera.Open(cfg.Camera, log, reg)
	if err != nil {
		log.Error("camera", "err", err)
		return 1
	}
	defer cam.Close()

	var attempts capture.AttemptStore
	if cfg.Device.StateDir != "" {
		if err := os.MkdirAll(cfg.Device.StateDir, 0o700); err != nil {
			log.Warn("state directory unavailable: the attempt cap will not survive a restart", "dir", cfg.Device.StateDir, "err", err)
		} else {
			attempts = capture.NewFileAttemptStore(filepath.Join(cfg.Device.StateDir, "attempts.json"))
		}
	}
	selOpts := []capture.Option{}
	if attempts != nil {
		selOpts = append(selOpts, capture.WithAttemptStore(attempts))
	}
	creds, err := credentials.NewResolver(cfg.Credentials, log, reg)
	if err != nil {
		log.Error("credentials", "err", err)
		return 1
	}
	// The panel's texts go to the screen through the agent, made below and
	// set before the panel's goroutine starts.
	var ag *agent.Agent
	pnl, err := panel.New(cfg.Panel, log, reg, panel.WithGPIO(actuator.OpenLine),
		panel.WithText(func(t panel.Text) { ag.PanelText(t) }))
	if err != nil {
		log.Error("panel", "err", err)
		return 1
	}
	if pnl != nil {
		defer pnl.Close()
	}

	sel, err := capture.New(cfg.Capture, log, reg, selOpts...)
	if err != nil {
		log.Error("capture", "err", err)
		return 1
	}
	defer sel.Close()

	// Sinks (the event log, the panel) are added to the recorder here.
	rec := decision.NewRecorder(log, reg)
	deps := agent.Deps{Camera: cam, Selector: sel, API: clockWatch{api, clock}, Door: door, Log: log, Reg: reg, Recorder: rec}
	if evlog != nil {
		// First, so that the event is on disk before anything else,
		// the decision line included.
		rec.AddSink(events.DecisionSink{Log: evlog})
		deps.Events = evlog
	}
	if pnl != nil {
		deps.Panel, deps.Credentials = pnl, creds
	}
	if disp != nil {
		deps.Display = disp
		if cfg.Display.Preview {
			deps.PreviewFPS = cfg.Display.PreviewFPS
		}
	}
	q, fatal, qerr := openServiceQueue(cfg, log, reg)
	if fatal {
		log.Error("queue refused: fix it and start again", "path", cfg.Queue.Path, "err", qerr)
		return 1
	}
	// The queue's own metrics exist only once it is open: this one says
	// whether it is, so that an alert can fire on a queue that never opened.
	queueUp := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kioskd_queue_up",
		Help: "1 when the retry queue file is open; 0 when it could not be opened (live decisions continue, offline captures are not kept).",
	})
	reg.MustRegister(queueUp)
	var queueOK func() error
	if qerr != nil {
		log.Error("queue unavailable: live decisions continue, offline captures cannot be kept", "path", cfg.Queue.Path, "err", qerr)
		queueOK = func() error { return qerr }
	} else {
		queueUp.Set(1)
		defer func() {
			if err := q.Close(); err != nil {
				log.Error("queue close", "err", err)
			}
		}()
		deps.Queue = q
		queueOK = q.Err
	}
	ag, err = agent.New(cfg, deps)
	if err != nil {
		log.Error("agent", "err", err)
		return 1
	}
	if q != nil {
		drainer := queue.NewDrainer(q, ag.Deliver, log, reg)
		ag.SetDrainer(drainer)
	}

	// Only the stop below ends the run: main's signal context sees the same
	// SIGTERM, and if it ended the run first the stop would skip its
	// "stopping" line and the immediate relock.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-sigs:
		case <-runCtx.Done():
			return
		}
		log.Info("stopping")
		notifier.Stopping()
		cancel()
		// The door is locked the moment a stop begins, not when it ends.
		if err := door.Close(); err != nil {
			log.Error("relock on stop", "err", err)
		}
		select {
		case <-sigs:
			log.Warn("second signal: exiting now")
		case <-time.After(stopBound):
			log.Error("graceful stop took too long: exiting")
		}
		_ = door.Close()
		os.Exit(1)
	}()

	g, gctx := errgroup.WithContext(runCtx)
	for _, f := range forwarders {
		g.Go(func() error { return f.Run(gctx) })
	}
	if evlog != nil {
		g.Go(func() error { return evlog.RunRetention(gctx, time.Hour) })
	}
	if inputs != nil {
		g.Go(func() error { return inputs.Run(gctx) })
	}
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	g.Go(func() error {
		var ms messageSetter
		if d, ok := any(disp).(messageSetter); ok && disp != nil {
			ms = d
		}
		current := cfg
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hups:
				notifier.Status("reloading")
				current = reload(log, lvl, current, ag, ms, creds)
				notifier.Status(fmt.Sprintf("watching %s as %s", cfg.Camera.Source, cfg.Device.SourceID))
			}
		}
	})
	if cfg.Metrics.Listen != "" {
		h := httpserve.HostGuard(cfg.Metrics.Listen, cfg.Metrics.AllowedHosts, ag.OpsHandler(reg, queueOK, clock.Err))
		g.Go(func() error {
			ln, err := httpserve.Listen(gctx, "metrics", cfg.Metrics.Listen)
			if err != nil {
				return err
			}
			return metricsSrv.Serve(gctx, ln, h)
		})
	}
	if disp != nil {
		g.Go(func() error { return disp.Run(gctx) })
	}
	if pnl != nil {
		g.Go(func() error { return pnl.Run(gctx) })
	}
	g.Go(func() error {
		return notifier.Watchdog(gctx, func(maxAge time.Duration) bool {
			// A read stuck inside the camera driver cannot be interrupted
			// from Go: only a restart frees the device.
			return time.Since(ag.Progress()) < maxAge && cam.Stuck() < maxAge
		})
	})
	g.Go(func() error {
		waitFirstFrame(gctx, ag, 10*time.Second)
		notifier.Ready(fmt.Sprintf("watching %s as %s", cfg.Camera.Source, cfg.Device.SourceID))
		return nil
	})
	g.Go(func() error {
		err := ag.Run(gctx)
		// The agent ending (a file source at its end) stops everything else.
		cancel()
		return err
	})
	err = g.Wait()
	notifier.Stopping()
	// Relock and close the queue before the last line says "stopped"; the
	// deferred calls only cover the early returns above.
	if cerr := door.Close(); cerr != nil {
		log.Error("relock on exit", "err", cerr)
	}
	if q != nil {
		if cerr := q.Close(); cerr != nil {
			log.Error("queue close", "err", cerr)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("kioskd stopped with an error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// waitFirstFrame returns once the camera delivered a frame or the bound
// passed: a door with a broken camera still reports ready, with its state.
func waitFirstFrame(ctx context.Context, ag *agent.Agent, bound time.Duration) {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ag.FirstFrame() {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}
