// Package agent runs kioskd: the frame loop that owns the camera and the
// selector, the decision worker that authenticates a chosen frame and drives
// the door and the display, and the drainer that delivers queued captures.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"
	"golang.org/x/sync/errgroup"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/camera"
	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/events"
	"github.com/kioskd/kioskd/internal/idkey"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

// Camera delivers live frames; it is used only by the frame loop.
type Camera interface {
	Read(ctx context.Context, dst *gocv.Mat) (time.Time, error)
	State() camera.State
}

// unpacedCamera is a camera whose frames wait for the loop (a clip replayed
// as fast as possible).
type unpacedCamera interface {
	Unpaced() bool
}

// Selector turns frames into guidance and chosen shots, and keeps the
// brute-force guard; frame loop only.
type Selector interface {
	Process(frame gocv.Mat, ts time.Time) (capture.Event, error)
	SetBusy(busy bool)
	// Failed counts a "not a match" or "not live" answer; it reports
	// whether that started a lockout, and until when.
	Failed(now time.Time) (until time.Time, locked bool)
}

// Authenticator is the part of the Incode client the agent uses.
type Authenticator interface {
	Authenticate(ctx context.Context, req uploader.AuthenticateRequest, opts ...uploader.CallOption) (*uploader.AuthenticateResponse, error)
	UserInfo(ctx context.Context, userToken string) (*uploader.UserInfo, error)
}

// Queue keeps captures whose live attempt could not reach the service.
type Queue interface {
	Enqueue(ctx context.Context, it queue.Item) (queue.Item, error)
}

// Drainer delivers the queue in the background.
type Drainer interface {
	Run(ctx context.Context) error
	Wake()
}

// Door drives the strike and the indicators.
type Door interface {
	Pass(ctx context.Context, ev actuator.Event) error
	Fail(ctx context.Context, ev actuator.Event) error
	Busy(on bool)
	// Light switches the optional lamp (role: light).
	Light(on bool)
}

// Display shows the person at the door what is happening.
type Display interface {
	Publish(u display.Update)
	PublishPreview(f display.Frame)
	// Watching reports whether a screen shows the self-view: frames are
	// encoded only then.
	Watching() bool
}

// Deps are the parts the agent drives. Queue and Drainer may be nil when the
// queue could not be opened: live decisions still work. Display may be nil.
type Deps struct {
	Camera   Camera
	Selector Selector
	API      Authenticator
	Queue    Queue
	Drainer  Drainer
	Door     Door
	Display  Display
	Log      *slog.Logger
	Reg      prometheus.Registerer
	Now      func() time.Time
	// PreviewFPS > 0 publishes the self-view while a screen watches it.
	PreviewFPS float64
	// Panel, when set, decides a live PASS (see panel.go); Credentials is
	// then required.
	Panel       Panel
	Credentials Credentials
	// Recorder records every decision; New makes one on Reg when nil.
	Recorder *decision.Recorder
	// Events, when set, records lockouts (decisions reach it through
	// the Recorder's sink).
	Events Events
}

// Events keeps access events; Append returns once the event is durable.
type Events interface {
	Append(ctx context.Context, ev events.Event) (events.Event, error)
}

// Agent is one running kioskd.
type Agent struct {
	cfg *config.Config
	d   Deps
	log *slog.Logger
	now func() time.Time
	m   *metrics
	pm  *panelMetrics
	rec *decision.Recorder

	deliver *decision.Delivery

	shots   chan *capture.Shot
	decided chan decision.Outcome
	recfg   chan config.Capture

	progress   atomic.Int64 // unix nanos of the frame loop's last iteration
	firstFrame atomic.Bool
	cameraUp   atomic.Bool
	downWarned atomic.Bool // "camera unavailable" said before the first frame
	authError  atomic.Bool
	holdUntil  atomic.Int64 // unix nanos until which a result stays on screen

	mu      sync.Mutex
	shown   display.Update
	pending *display.Update // the frame loop's latest update, held back by a result
}

// resultHold is how long a PASS/FAIL/OFFLINE message stays on screen before
// the frame loop's guidance takes over again.
const resultHold = 3 * time.Second

// New checks the dependencies and registers the agent's metrics.
func New(cfg *config.Config, d Deps) (*Agent, error) {
	if d.Camera == nil || d.Selector == nil || d.API == nil || d.Door == nil {
		return nil, errors.New("agent: camera, selector, api and door are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Reg == nil {
		d.Reg = prometheus.NewRegistry()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Panel != nil && d.Credentials == nil {
		return nil, errors.New("agent: a panel needs credentials")
	}
	if d.Recorder == nil {
		d.Recorder = decision.NewRecorder(d.Log, d.Reg)
	}
	a := &Agent{
		cfg:     cfg,
		d:       d,
		log:     d.Log,
		now:     d.Now,
		m:       newMetrics(d.Reg),
		pm:      newPanelMetrics(d.Reg),
		rec:     d.Recorder,
		shots:   make(chan *capture.Shot, 1),
		decided: make(chan decision.Outcome, 1),
		recfg:   make(chan config.Capture, 1),
	}
	a.deliver = &decision.Delivery{API: d.API, Rec: d.Recorder, Device: cfg.Device, Timeout: cfg.Incode.RequestTimeout, RetryAfterMax: cfg.Queue.RetryAfterMax,
		Now: d.Now, OnAuth: a.applyAuth}
	a.progress.Store(a.now().UnixNano())
	return a, nil
}

// Run runs until ctx is cancelled or a non-looping file source ends; in the
// latter case the in-flight decision is finished first and Run returns nil.
func (a *Agent) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	bgCtx, bgCancel := context.WithCancel(gctx)
	g.Go(func() error {
		defer bgCancel()
		p, pctx := errgroup.WithContext(gctx)
		p.Go(func() error { return a.frameLoop(pctx) })
		p.Go(func() error { return a.decisionWorker(pctx) })
		return p.Wait()
	})
	if a.d.Drainer != nil {
		g.Go(func() error {
			err := a.d.Drainer.Run(bgCtx)
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("drainer: %w", err)
			}
			return nil
		})
	}
	a.publish(display.Update{State: display.StateReady}, true)
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// captureReconfigurer is a selector whose thresholds can change at run time.
type captureReconfigurer interface {
	Reconfigure(cfg config.Capture) error
}

// ReconfigureCapture hands new capture settings to the frame loop, which
// owns the selector and applies them between two frames.
func (a *Agent) ReconfigureCapture(c config.Capture) error {
	if _, ok := a.d.Selector.(captureReconfigurer); !ok {
		return errors.New("this selector cannot change its settings at run time")
	}
	select {
	case a.recfg <- c:
		return nil
	default:
		return errors.New("a reload is already pending")
	}
}

func (a *Agent) applyCapture(c config.Capture) {
	if err := a.d.Selector.(captureReconfigurer).Reconfigure(c); err != nil {
		a.log.Error("reload: capture settings not applied", "err", err)
	}
}

// SetDrainer attaches the queue's drainer; its delivery function is usually
// the agent's own Deliver, hence the two steps.
func (a *Agent) SetDrainer(d Drainer) { a.d.Drainer = d }

// Progress is when the frame loop last went round; the watchdog uses it.
func (a *Agent) Progress() time.Time { return time.Unix(0, a.progress.Load()) }

// FirstFrame reports whether the camera has delivered a frame yet.
func (a *Agent) FirstFrame() bool { return a.firstFrame.Load() }

// CameraUp reports whether the last read delivered a frame.
func (a *Agent) CameraUp() bool { return a.cameraUp.Load() }

// AuthError reports whether the last API answer was 401 or 403.
func (a *Agent) AuthError() bool { return a.authError.Load() }

func (a *Agent) frameLoop(ctx context.Context) error {
	defer close(a.shots)
	frame := gocv.NewMat()
	defer frame.Close()
	var pv *preview
	if a.d.Display != nil {
		pv = newPreview(a.d.PreviewFPS)
	}
	defer pv.close()
	busy, lit := false, false
	var lockedUntil time.Time // the lockout last recorded as an event
	// A clip replayed as fast as possible waits for each decision, as its
	// frames wait for the loop: otherwise how many frames pass unexamined
	// during an upload would depend on the machine, and so would the
	// decisions that follow.
	uc, ok := a.d.Camera.(unpacedCamera)
	waitDecisions := ok && uc.Unpaced()
	settled := func(out decision.Outcome) {
		busy = false
		if until := a.settle(out); !until.IsZero() {
			lockedUntil = until
			a.recordLockout(until)
		}
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		if busy && waitDecisions {
			select {
			case out := <-a.decided:
				settled(out)
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case out := <-a.decided:
			settled(out)
		case c := <-a.recfg:
			a.applyCapture(c)
		default:
		}
		ts, err := a.d.Camera.Read(ctx, &frame)
		a.progress.Store(a.now().UnixNano())
		a.expireHold(busy)
		switch {
		case errors.Is(err, camera.ErrEnded):
			a.log.Info("camera input ended")
			if busy {
				// The last attempt's failure must still reach the guard.
				select {
				case out := <-a.decided:
					if until := a.settle(out); !until.IsZero() {
						a.recordLockout(until)
					}
				case <-ctx.Done():
				}
			}
			return nil
		case ctx.Err() != nil:
			return nil
		case err != nil && a.firstFrame.Load() && a.d.Camera.State() == camera.StateUp:
			// A slow camera (1 fps, a long exposure) misses the read's one
			// second bound without being down: the source says down only
			// after its stall timeout. Saying "camera unavailable" now would
			// flash it on the screen between two frames.
			continue
		case err != nil:
			// Once per outage (and once before the first frame): the camera
			// logs each failed reopen with its cause, rate-limited.
			if a.cameraUp.Swap(false) || !a.firstFrame.Load() && !a.downWarned.Swap(true) {
				a.log.Warn("camera unavailable", "err", err)
			}
			a.publish(display.Update{State: display.StateCameraDown}, false)
			continue
		}
		if !a.cameraUp.Swap(true) && a.firstFrame.Load() {
			a.log.Info("camera back")
		}
		a.firstFrame.Store(true)
		ev, err := a.d.Selector.Process(frame, ts)
		if err != nil {
			a.log.Warn("frame rejected", "err", err)
			continue
		}
		if pv != nil && a.d.Display.Watching() {
			if f, ok := pv.frame(a.now(), frame, ev.Analysis); ok {
				a.d.Display.PublishPreview(f)
			}
		}
		lit = a.light(lit, ev)
		switch ev.Kind {
		case capture.EventShot:
			if busy || ev.Shot == nil {
				continue
			}
			busy = true
			a.d.Selector.SetBusy(true)
			select {
			case a.shots <- ev.Shot:
			case <-ctx.Done():
				return nil
			}
		case capture.EventGuidance:
			if !busy {
				a.publish(guidanceUpdate(ev, frame), false)
			}
		case capture.EventNone:
			if !busy {
				a.steer(ev, frame)
			}
		case capture.EventLockout:
			a.publish(display.Update{State: display.StateLockout, Until: ev.Until}, false)
			if !ev.Until.Equal(lockedUntil) { // a lockout that outlived a restart
				lockedUntil = ev.Until
				a.recordLockout(ev.Until)
			}
		case capture.EventIdle:
			if !busy {
				a.publish(display.Update{State: display.StateReady}, false)
			}
		}
	}
}

// settle ends an attempt on the frame loop: detection resumes, and a
// counted failure goes to the brute-force guard. It returns the end of the
// lockout that failure started, if it did.
func (a *Agent) settle(out decision.Outcome) (lockedUntil time.Time) {
	a.d.Selector.SetBusy(false)
	if out.CountsTowardCap {
		if until, locked := a.d.Selector.Failed(a.now()); locked {
			// Shown once the result has been read.
			a.publish(display.Update{State: display.StateLockout, Until: until}, false)
			return until
		}
	}
	return time.Time{}
}

func (a *Agent) decisionWorker(ctx context.Context) error {
	defer func() {
		// Fail-secure: a bug in a decision must not leave the strike
		// open while the process dies.
		if p := recover(); p != nil {
			if c, ok := a.d.Door.(interface{ Close() error }); ok {
				_ = c.Close()
			}
			panic(p)
		}
	}()
	for {
		select {
		case shot, ok := <-a.shots:
			if !ok {
				return nil
			}
			out := a.decide(ctx, shot)
			// The frame loop takes one outcome per shot before it sends
			// the next, so this never blocks.
			select {
			case a.decided <- out:
			case <-ctx.Done():
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// decide makes one live attempt: ask, decide, then door, screen and
// record, in that order, whatever the answer. Only a well-formed PASS that
// arrives before the live deadline opens the door.
func (a *Agent) decide(ctx context.Context, shot *capture.Shot) decision.Outcome {
	start := a.now()
	a.publish(display.Update{State: display.StateChecking, Since: start, Until: start.Add(a.cfg.Incode.LiveTimeout)}, true)
	a.d.Door.Busy(true)
	defer a.d.Door.Busy(false)

	id := idkey.New()
	liveCtx, cancel := context.WithTimeout(ctx, a.cfg.Incode.LiveTimeout)
	defer cancel()
	var t timing
	t.uploadStart = a.now()
	resp, err := a.d.API.Authenticate(liveCtx, uploader.FaceRequest(shot.JPEG, a.cfg.Device.SourceID), uploader.WithIdempotencyKey(id))
	t.upload = a.now().Sub(t.uploadStart)
	in := decision.Input{Answer: resp, Err: err, InTime: liveCtx.Err() == nil, Stopping: ctx.Err() != nil, Mode: a.cfg.Device.Mode}
	out := decision.Decide(in)
	var extra []any
	if out.Queue {
		in.Queued = a.enqueue(shot, id)
		out = decision.Decide(in)
		extra = append(extra, "queued", in.Queued)
	}
	if err != nil {
		extra = append(extra, "err", err)
	}
	a.applyAuth(out)

	rec := decision.NewRecord(a.now(), a.cfg.Device, decision.KindLive, out, resp)
	rec.CaptureID, rec.CapturedAt = id, shot.CapturedAt
	if out.Unlock && a.d.Panel != nil {
		// The panel decides and drives the strike (panel.go).
		a.panelPass(ctx, shot, resp, rec, &t, extra)
		if out.WakeDrainer {
			a.wakeDrainer()
		}
		return out
	}
	t.actuator = a.timed(func() { a.signal(ctx, out, rec) })
	rec.Latency = a.latency(shot)
	u := display.Update{State: out.Screen}
	if out.Result == decision.Fail {
		u.Reason = out.Reason
	}
	if out.Unlock {
		// Best effort and after the door: a greeting must not delay it.
		rec.Name, rec.IdentityID = a.identify(ctx, resp.Token)
		u.Name = rec.Name
	}
	a.publish(u, true)
	a.rec.Record(ctx, rec, t.with(shot, extra...)...)
	if out.WakeDrainer {
		a.wakeDrainer()
	}
	return out
}

// doorTimeout bounds one door signal when kioskd is stopping; each output
// also applies its own configured timeout.
const doorTimeout = 10 * time.Second

// signal drives the door for an outcome. The outputs get their own bounded
// time, never what is left of the live deadline: a PASS that arrived late
// in the window still gets its whole pulse, and a hook its whole timeout.
func (a *Agent) signal(ctx context.Context, out decision.Outcome, rec decision.Record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), doorTimeout)
	defer cancel()
	ev := actuator.Event{Result: string(out.Result), Reason: out.Reason, Source: rec.Source, AuthenticationID: rec.AuthenticationID}
	if out.Unlock {
		if err := a.d.Door.Pass(ctx, ev); err != nil {
			a.log.Error("door did not open", "err", err)
		}
		return
	}
	if err := a.d.Door.Fail(ctx, ev); err != nil {
		a.log.Error("indicator failed", "err", err)
	}
}

// timing is where the time of one live decision went. Its fields go on the
// decision log line, so that latency splits into presence, window, the
// agent's own work, the upload (service time included) and the actuator.
type timing struct {
	uploadStart time.Time
	upload      time.Duration
	actuator    time.Duration
}

// with appends the timing fields to kv.
func (t *timing) with(shot *capture.Shot, kv ...any) []any {
	if !shot.PresentAt.IsZero() {
		kv = append(kv, "presence_ms", millis(shot.PresentAt.Sub(shot.FirstSeen)))
		if !shot.DecidedAt.IsZero() {
			kv = append(kv, "window_ms", millis(shot.DecidedAt.Sub(shot.PresentAt)))
		}
	}
	if !shot.DecidedAt.IsZero() {
		// The frame that closed the window, encoding, the hand-off to this
		// worker and the display update, until the upload starts.
		kv = append(kv, "select_ms", millis(t.uploadStart.Sub(shot.DecidedAt)))
	}
	return append(kv, "encode_ms", millis(shot.EncodeDuration), "upload_ms", millis(t.upload), "actuator_ms", millis(t.actuator))
}

func (a *Agent) timed(f func()) time.Duration {
	start := a.now()
	f()
	return a.now().Sub(start)
}

// millis is d in milliseconds to a tenth.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*10) / 10
}

// latency is face first seen → door signal.
func (a *Agent) latency(shot *capture.Shot) time.Duration {
	return max(a.now().Sub(shot.FirstSeen), 0)
}

func (a *Agent) enqueue(shot *capture.Shot, id string) bool {
	if a.d.Queue == nil {
		a.m.queueErrs.Inc()
		a.log.Error("capture not queued: the queue is not open")
		return false
	}
	// The capture must be kept even when the agent is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.d.Queue.Enqueue(ctx, queue.Item{
		ID:         id,
		CapturedAt: shot.CapturedAt,
		Source:     a.cfg.Device.SourceID,
		JPEG:       shot.JPEG,
	})
	if err != nil {
		a.m.queueErrs.Inc()
		a.log.Error("capture not queued", "err", err)
		return false
	}
	return true
}

// Deliver is the drainer's delivery function: it sends a queued capture and
// records the answer. A deferred answer never opens the door.
func (a *Agent) Deliver(ctx context.Context, it queue.Item) error {
	return a.deliver.Deliver(ctx, it)
}

func (a *Agent) wakeDrainer() {
	if a.d.Drainer != nil {
		a.d.Drainer.Wake()
	}
}

// applyAuth follows what an outcome says about the device's credentials.
func (a *Agent) applyAuth(out decision.Outcome) {
	switch {
	case out.AuthError:
		a.setAuthError(true)
	case out.AuthOK:
		a.setAuthError(false)
	}
}

func (a *Agent) setAuthError(on bool) {
	if on {
		a.m.authErr.Set(1)
	} else {
		a.m.authErr.Set(0)
	}
	was := a.authError.Swap(on)
	if on && !was {
		a.log.Error("the Incode API refused this device's credentials (401/403): check the API key and the device token")
	}
}

// identify fetches the greeting name and the identity id when the greeting
// is configured. It is best effort: the door has already opened, and any
// part of the answer may be missing.
func (a *Agent) identify(ctx context.Context, token string) (name, identityID string) {
	if !a.cfg.Display.GreetByName || token == "" {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := a.d.API.UserInfo(ctx, token)
	if err != nil || info == nil {
		a.log.Debug("no greeting name", "reason", uploader.Reason(err))
		return "", ""
	}
	return info.Name.First(), info.IdentityID
}

// publish shows u unless it is what is already shown. Frame-loop updates
// (force=false) wait until a result has been on screen long enough: the
// latest one is kept and shown when the hold ends, since the selector
// reports guidance only when it changes.
func (a *Agent) publish(u display.Update, force bool) {
	if a.d.Display == nil {
		return
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if force {
		a.pending = nil
		switch u.State {
		case display.StatePass, display.StateFail, display.StateSeeReception, display.StateOffline,
			display.StateRecorded, display.StateServiceUnavailable:
			a.holdUntil.Store(now.Add(resultHold).UnixNano())
		default:
			a.holdUntil.Store(0)
		}
	} else {
		if now.UnixNano() < a.holdUntil.Load() {
			a.pending = &u
			return
		}
		if u.State == a.shown.State && u.Reason == a.shown.Reason && u.Until.Equal(a.shown.Until) {
			return
		}
	}
	a.shown = u
	a.d.Display.Publish(u)
}

// expireHold puts the frame loop's latest update (or "ready") back on
// screen once a result has been shown long enough and nothing else has
// replaced it.
func (a *Agent) expireHold(busy bool) {
	if busy || a.d.Display == nil {
		return
	}
	hold := a.holdUntil.Load()
	if hold == 0 || a.now().UnixNano() < hold {
		return
	}
	a.holdUntil.Store(0)
	next := display.Update{State: display.StateReady}
	a.mu.Lock()
	if a.pending != nil {
		next = *a.pending
		a.pending = nil
	}
	a.mu.Unlock()
	a.publish(next, false)
}
