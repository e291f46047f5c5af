package decision_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/queue"
	"github.com/kioskd/kioskd/uploader"
)

// clock is the drainer's and the client's time; every timer the drainer
// arms is announced on armed (the drainer has nothing to do until then).
type clock struct {
	mu     sync.Mutex
	t      time.Time
	timers []*timer
	armed  chan time.Duration
}

type timer struct {
	c  chan time.Time
	at time.Time
}

func (t *timer) C() <-chan time.Time { return t.c }
func (t *timer) Stop() bool          { return true }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) NewTimer(d time.Duration) queue.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: make(chan time.Time, 1), at: c.t.Add(d)}
	c.timers = append(c.timers, t)
	c.armed <- d
	return t
}

// advance moves time on and fires the timers that are due.
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.t) {
			kept = append(kept, t)
			continue
		}
		t.c <- c.t
	}
	c.timers = kept
}

func (c *clock) sleep(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.armed:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the drainer never went to sleep")
		return 0
	}
}

// drainRig is a real queue, a real client over HTTP to a server that
// always answers with status and header, and the agent's delivery.
type drainRig struct {
	clk      *clock
	requests atomic.Int64
	reg      *prometheus.Registry
}

func startDrainRig(t *testing.T, status int, retryAfter func(now time.Time) string) *drainRig {
	t.Helper()
	r := &drainRig{clk: &clock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC), armed: make(chan time.Duration, 100)}, reg: prometheus.NewRegistry()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if v := retryAfter(r.clk.Now()); v != "" {
			w.Header().Set("Retry-After", v)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	cfg := config.Default()
	cfg.Device.SourceID = "door-1"
	cfg.Incode.BaseURL, cfg.Incode.APIKey, cfg.Incode.HardwareID = srv.URL, "key-123456", "device-123456"
	cfg.Queue.Path = filepath.Join(t.TempDir(), "queue.db")
	cfg.Queue.Encrypt = false // encryption at rest is the queue's own test
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	api, err := uploader.New(cfg.Incode, "kioskd/test", log, r.reg, uploader.WithClock(r.clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(cfg.Queue, log, r.reg, queue.WithClock(r.clk.Now), queue.WithTimer(r.clk.NewTimer), queue.WithHeartbeat(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if _, err := q.Enqueue(context.Background(), queue.Item{CapturedAt: r.clk.Now(), Source: "door-1", JPEG: []byte{0xFF, 0xD8, 0xFF, 0xD9}}); err != nil {
		t.Fatal(err)
	}
	dl := &decision.Delivery{API: api, Rec: decision.NewRecorder(log, r.reg), Device: cfg.Device, Timeout: cfg.Incode.RequestTimeout,
		RetryAfterMax: cfg.Queue.RetryAfterMax, Now: r.clk.Now}
	d := queue.NewDrainer(q, dl.Deliver, log, r.reg, queue.WithClock(r.clk.Now), queue.WithTimer(r.clk.NewTimer), queue.WithHeartbeat(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *drainRig) gauge(t *testing.T) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "kioskd_decision_deferred_retry_after_seconds" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no retry-after gauge")
	return 0
}

// TestDrainerHonoursRetryAfter: a 429 with Retry-After in seconds (beyond
// the ceiling) or as an HTTP date holds the queued capture for that long,
// with one request per try, and the metric shows the wait.
func TestDrainerHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header func(now time.Time) string
		want   time.Duration
	}{
		{"seconds beyond the ceiling", func(time.Time) string { return "3600" }, 15 * time.Minute},
		{"HTTP date", func(now time.Time) string { return now.Add(10 * time.Minute).UTC().Format(http.TimeFormat) }, 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startDrainRig(t, http.StatusTooManyRequests, tc.header)
			if d := r.clk.sleep(t); d < tc.want-time.Second || d > tc.want {
				t.Fatalf("after a 429 the drainer sleeps %v, want %v", d, tc.want)
			}
			if n := r.requests.Load(); n != 1 {
				t.Fatalf("%d requests for one try, want 1", n)
			}
			if g := r.gauge(t); g != tc.want.Seconds() {
				t.Errorf("retry-after gauge %v, want %v", g, tc.want.Seconds())
			}
			r.clk.advance(tc.want - 2*time.Second)
			select {
			case d := <-r.clk.armed:
				t.Fatalf("woke before the wait was over (then slept %v)", d)
			default:
			}
			if n := r.requests.Load(); n != 1 {
				t.Fatalf("%d requests before the wait was over", n)
			}
			r.clk.advance(2 * time.Second)
			r.clk.sleep(t)
			if n := r.requests.Load(); n != 2 {
				t.Fatalf("%d requests after the wait, want 2", n)
			}
		})
	}
}

// TestDrainerBacksOffWhileTheServiceFails: a service that answers 500 gets
// one request per try, and the pauses grow to backoff_max.
func TestDrainerBacksOffWhileTheServiceFails(t *testing.T) {
	r := startDrainRig(t, http.StatusInternalServerError, func(time.Time) string { return "" })
	var waits []time.Duration
	for try := 1; try <= 12; try++ {
		d := r.clk.sleep(t)
		if n := r.requests.Load(); n != int64(try) {
			t.Fatalf("try %d: %d requests, want one per try", try, n)
		}
		waits = append(waits, d)
		r.clk.advance(d)
	}
	def := config.Default().Queue
	last := waits[len(waits)-1]
	if last < def.BackoffMax/2 || last > def.BackoffMax {
		t.Errorf("backoff after 12 failures %v, want near backoff_max %v (all: %v)", last, def.BackoffMax, waits)
	}
	if waits[3] <= waits[0] {
		t.Errorf("backoff does not grow: %v", waits)
	}
}
