package agent

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"github.com/kioskd/kioskd/camera"
	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

// frameCamera delivers n frames, then ends.
type frameCamera struct{ n, i int }

func (c *frameCamera) Read(context.Context, *gocv.Mat) (time.Time, error) {
	if c.i >= c.n {
		return time.Time{}, camera.ErrEnded
	}
	c.i++
	return time.Now(), nil
}
func (c *frameCamera) State() camera.State { return camera.StateUp }

// shotSelector shoots on every third frame it is not busy for, and counts
// what the guard was told.
type shotSelector struct {
	busy   atomic.Bool
	frames int
	failed atomic.Int64
}

func (s *shotSelector) Process(gocv.Mat, time.Time) (capture.Event, error) {
	s.frames++
	if s.busy.Load() || s.frames%3 != 0 {
		return capture.Event{Kind: capture.EventGuidance, Reasons: []capture.Reason{"too_small"}}, nil
	}
	now := time.Now()
	return capture.Event{Kind: capture.EventShot, Shot: &capture.Shot{JPEG: []byte{0xFF, 0xD8, 0xFF, 0xD9}, FirstSeen: now, CapturedAt: now}}, nil
}
func (s *shotSelector) SetBusy(b bool) { s.busy.Store(b) }
func (s *shotSelector) Failed(time.Time) (time.Time, bool) {
	return time.Now().Add(time.Minute), s.failed.Add(1)%2 == 0
}

// rotatingAPI answers PASS, FAIL faceMatchFailed and 503 in turn.
type rotatingAPI struct{ n atomic.Int64 }

func (a *rotatingAPI) Authenticate(context.Context, uploader.AuthenticateRequest, ...uploader.CallOption) (*uploader.AuthenticateResponse, error) {
	switch a.n.Add(1) % 3 {
	case 1:
		return &uploader.AuthenticateResponse{Status: uploader.StatusPass, AuthenticationID: "a", Token: "t"}, nil
	case 2:
		return &uploader.AuthenticateResponse{Status: uploader.StatusFail, FailureReason: uploader.ReasonFaceMatchFailed}, nil
	}
	return nil, &uploader.APIError{StatusCode: 503}
}
func (a *rotatingAPI) UserInfo(context.Context, string) (*uploader.UserInfo, error) {
	return &uploader.UserInfo{Status: uploader.IdentityActive}, nil
}

type memQueue struct {
	mu    sync.Mutex
	items []queue.Item
}

func (q *memQueue) Enqueue(_ context.Context, it queue.Item) (queue.Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, it)
	return it, nil
}

type wakeDrainer struct{ wakes atomic.Int64 }

func (d *wakeDrainer) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (d *wakeDrainer) Wake()                         { d.wakes.Add(1) }

// TestRunWithFakes runs the whole agent (frame loop, decision worker,
// drainer, screen) on fakes; `make race` runs it under the race detector.
// Every shot gets one decision, the door opens for each PASS only, each
// counted FAIL reaches the guard, and each OFFLINE is queued.
func TestRunWithFakes(t *testing.T) {
	cfg := config.Default()
	cfg.Device.SourceID = "door-1"
	cfg.Incode.LiveTimeout = time.Second
	sel := &shotSelector{}
	api := &rotatingAPI{}
	door := &countingDoor{}
	q := &memQueue{}
	dr := &wakeDrainer{}
	var logs bytes.Buffer
	var mu sync.Mutex
	a, err := New(cfg, Deps{Camera: &frameCamera{n: 300}, Selector: sel, API: api, Queue: q, Drainer: dr, Door: door,
		Display: &screen{}, Log: slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, nil)), Reg: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ds := 0
	for _, l := range bytes.Split(logs.Bytes(), []byte("\n")) {
		if bytes.Contains(l, []byte(`"msg":"decision"`)) {
			ds++
		}
	}
	mu.Unlock()
	calls := int(api.n.Load())
	if calls == 0 || ds != calls {
		t.Fatalf("%d decision lines for %d attempts", ds, calls)
	}
	passes, fails, offline := (calls+2)/3, (calls+1)/3, calls/3
	door.mu.Lock()
	defer door.mu.Unlock()
	if door.pass != passes || door.fails != fails+offline {
		t.Errorf("door: %d passes, %d fails; want %d and %d", door.pass, door.fails, passes, fails+offline)
	}
	if int(sel.failed.Load()) != fails {
		t.Errorf("guard told of %d failures, want %d", sel.failed.Load(), fails)
	}
	if len(q.items) != offline {
		t.Errorf("%d captures queued, want %d", len(q.items), offline)
	}
	if int(dr.wakes.Load()) != passes+fails {
		t.Errorf("drainer woken %d times, want %d", dr.wakes.Load(), passes+fails)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
