package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

// scriptedAPI answers Authenticate with answer, after the live deadline
// has passed when late is set (the answer raced the deadline and lost).
type scriptedAPI struct {
	idleAPI
	late   bool
	answer *uploader.AuthenticateResponse
	err    error
}

func (a scriptedAPI) Authenticate(ctx context.Context, _ uploader.AuthenticateRequest, _ ...uploader.CallOption) (*uploader.AuthenticateResponse, error) {
	if a.late {
		<-ctx.Done()
	}
	return a.answer, a.err
}

// countingDoor records what the door was told.
type countingDoor struct {
	mu          sync.Mutex
	pass, fails int
}

func (d *countingDoor) Pass(context.Context, actuator.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pass++
	return nil
}

func (d *countingDoor) Fail(context.Context, actuator.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fails++
	return nil
}

func (d *countingDoor) Busy(bool)  {}
func (d *countingDoor) Light(bool) {}

func newDecideAgent(t *testing.T, api Authenticator, door Door) (*Agent, *bytes.Buffer) {
	t.Helper()
	cfg := config.Default()
	cfg.Device.SourceID = "test-door"
	cfg.Incode.LiveTimeout = 30 * time.Millisecond
	var logs bytes.Buffer
	a, err := New(cfg, Deps{
		Camera: idleCamera{}, Selector: idleSelector{}, API: api, Door: door,
		Log: slog.New(slog.NewJSONHandler(&logs, nil)), Reg: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, &logs
}

func lastDecision(t *testing.T, logs *bytes.Buffer) map[string]any {
	t.Helper()
	var d map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "decision" {
			d = m
		}
	}
	if d == nil {
		t.Fatalf("no decision line in %s", logs)
	}
	return d
}

var pass = &uploader.AuthenticateResponse{Status: uploader.StatusPass, AuthenticationID: "auth-1", Token: "user-token"}

// TestNoUnlockWithoutALivePassInTime covers the answers that must never
// open the door: a PASS that arrives after the live deadline, a PASS the
// client found malformed, and a PASS to a queued capture.
func TestNoUnlockWithoutALivePassInTime(t *testing.T) {
	shot := &capture.Shot{JPEG: []byte{0xFF, 0xD8, 0xFF, 0xD9}, FirstSeen: time.Now(), CapturedAt: time.Now()}
	cases := []struct {
		name   string
		api    scriptedAPI
		result string
		reason string
	}{
		{"PASS after the live deadline", scriptedAPI{late: true, answer: pass}, string(decision.Error), "late"},
		{"malformed PASS", scriptedAPI{answer: &uploader.AuthenticateResponse{Status: uploader.StatusPass}, err: uploader.ErrMalformed}, string(decision.Error), "malformed"},
		{"PASS in time", scriptedAPI{answer: pass}, string(decision.Pass), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			door := &countingDoor{}
			a, logs := newDecideAgent(t, c.api, door)
			a.decide(context.Background(), shot)
			d := lastDecision(t, logs)
			if d["result"] != c.result || d["reason"] != c.reason {
				t.Errorf("decision %v, want %s %q", d, c.result, c.reason)
			}
			wantPass := 0
			if c.result == string(decision.Pass) {
				wantPass = 1
			}
			if door.pass != wantPass {
				t.Errorf("door told to pass %d times, want %d", door.pass, wantPass)
			}
		})
	}
	t.Run("deferred PASS", func(t *testing.T) {
		door := &countingDoor{}
		a, logs := newDecideAgent(t, scriptedAPI{answer: pass}, door)
		if err := a.Deliver(context.Background(), queue.Item{ID: "cap-1", CapturedAt: time.Now(), JPEG: shot.JPEG}); err != nil {
			t.Fatal(err)
		}
		d := lastDecision(t, logs)
		if d["result"] != string(decision.Pass) || d["deferred"] != true || d["capture_id"] != "cap-1" {
			t.Errorf("deferred decision %v", d)
		}
		if door.pass != 0 || door.fails != 0 {
			t.Errorf("a deferred answer drove the door: pass %d, fail %d", door.pass, door.fails)
		}
	})
}
