package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/camera"
	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/events"
)

// framesCamera delivers n frames, then ends.
type framesCamera struct{ n int }

func (c *framesCamera) Read(context.Context, *gocv.Mat) (time.Time, error) {
	if c.n == 0 {
		return time.Time{}, camera.ErrEnded
	}
	c.n--
	return time.Now(), nil
}
func (c *framesCamera) State() camera.State { return camera.StateUp }

// lockoutSelector reports a lockout on each frame, with the given ends.
type lockoutSelector struct {
	idleSelector
	until []time.Time
}

func (s *lockoutSelector) Process(gocv.Mat, time.Time) (capture.Event, error) {
	u := s.until[0]
	s.until = s.until[1:]
	return capture.Event{Kind: capture.EventLockout, Until: u}, nil
}

// A lockout becomes one access event, however many frames report it.
func TestLockoutIsAnAccessEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	l, err := events.Open(path, config.Default().Events, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	u1 := time.Date(2026, 3, 1, 8, 5, 0, 0, time.UTC)
	u2 := u1.Add(time.Hour)
	cfg := config.Default()
	cfg.Device.SourceID = "lobby-1"
	a, err := New(cfg, Deps{Camera: &framesCamera{n: 5}, Selector: &lockoutSelector{until: []time.Time{u1, u1, u1, u2, u2}},
		API: idleAPI{}, Door: idleDoor{}, Events: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := l.Read(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != events.KindLockout || got[0].Door != "lobby-1" ||
		got[0].Reason != "until 2026-03-01T08:05:00Z" || got[1].Reason != "until 2026-03-01T09:05:00Z" {
		t.Fatalf("lockout events %+v", got)
	}
}
