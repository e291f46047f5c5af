package queue_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kioskd/kioskd/internal/promtest"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/clock"
	"github.com/kioskd/kioskd/queue"
)

// scripted is a DeliverFunc whose every call is announced on calls and
// answered by the test through results.
type scripted struct {
	calls   chan queue.Item
	results chan error
}

func newScripted() *scripted {
	return &scripted{calls: make(chan queue.Item, 100), results: make(chan error)}
}

func (s *scripted) deliver(ctx context.Context, it queue.Item) error {
	s.calls <- it
	select {
	case err := <-s.results:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *scripted) next(t *testing.T) queue.Item {
	t.Helper()
	select {
	case it := <-s.calls:
		return it
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery attempt")
		return queue.Item{}
	}
}

func (s *scripted) none(t *testing.T) {
	t.Helper()
	select {
	case it := <-s.calls:
		t.Fatalf("unexpected delivery of seq %d", it.Seq)
	default:
	}
}

type drainerRig struct {
	q   *queue.Queue
	d   *queue.Drainer
	clk *clock.Fake
	s   *scripted
	reg *prometheus.Registry
}

// startDrainer runs a drainer until the test ends.
func startDrainer(t *testing.T, cfg config.Queue, setup func(q *queue.Queue), opts ...queue.Option) *drainerRig {
	t.Helper()
	clk := newFakeClock()
	q, reg := open(t, cfg, clockOptions(clk)...)
	if setup != nil {
		setup(q)
	}
	s := newScripted()
	var logs logBuffer
	// A long heartbeat makes every timer the drainer arms the wait it
	// chose, not the idle tick.
	d := queue.NewDrainer(q, s.deliver, logs.logger(), reg, append([]queue.Option{queue.WithHeartbeat(24 * time.Hour)}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("drainer log:\n%s", logs.String())
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return &drainerRig{q: q, d: d, clk: clk, s: s, reg: reg}
}

func items(t *testing.T, q *queue.Queue, n int) []queue.Item {
	var out []queue.Item
	for i := range n {
		out = append(out, enqueue(t, q, queue.Item{JPEG: fakeJPEG(200+i, uint64(i)), Source: "door"}))
	}
	return out
}

func TestDrainerDeliversInOrder(t *testing.T) {
	var all []queue.Item
	r := startDrainer(t, testConfig(t), func(q *queue.Queue) { all = items(t, q, 3) })
	for i, want := range all {
		got := r.s.next(t)
		if got.Seq != want.Seq || got.ID != want.ID || len(got.JPEG) != 200+i {
			t.Fatalf("delivery %d: %v, want %v", i, got, want)
		}
		r.s.results <- nil
	}
	waitTimer(t, r.clk) // idle
	if st, _ := r.q.Stats(); st.Depth != 0 {
		t.Fatalf("depth %d after every delivery was acknowledged", st.Depth)
	}
	if v := promtest.Value(t, r.reg, "kioskd_queue_delivered_total"); v != 3 {
		t.Errorf("delivered_total = %v", v)
	}
}

func TestDrainerBacksOffWithoutHammering(t *testing.T) {
	cfg := testConfig(t)
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Second, 80*time.Second
	var all []queue.Item
	r := startDrainer(t, cfg, func(q *queue.Queue) { all = items(t, q, 2) })

	first := r.s.next(t)
	r.s.results <- errors.New("server_error: 503")
	wait := waitTimer(t, r.clk)
	if wait < 5*time.Second || wait > 10*time.Second {
		t.Fatalf("the drainer waits %s after a failure, want within backoff_min's jitter [5s, 10s]", wait)
	}
	// The item behind is not tried while the service is down.
	r.s.none(t)

	r.clk.Advance(wait)
	again := r.s.next(t)
	if again.Seq != first.Seq || again.Attempts != 1 || again.LastError != "server_error: 503" || again.ID != first.ID {
		t.Fatalf("retry: %v, want seq %d with one attempt recorded", again, first.Seq)
	}
	r.s.results <- errors.New("server_error: 503")
	wait2 := waitTimer(t, r.clk)
	if wait2 < 10*time.Second || wait2 > 20*time.Second {
		t.Fatalf("second wait %s, want within [10s, 20s]", wait2)
	}
	r.s.none(t)
	r.clk.Advance(wait2)
	if got := r.s.next(t); got.Seq != all[0].Seq || got.Attempts != 2 {
		t.Fatalf("third attempt: %v", got)
	}
	r.s.results <- nil
	if got := r.s.next(t); got.Seq != all[1].Seq {
		t.Fatalf("after recovery: %v, want seq %d", got, all[1].Seq)
	}
	r.s.results <- nil
	waitTimer(t, r.clk)
	if v := promtest.Value(t, r.reg, "kioskd_queue_delivery_failures_total", "kind", "retryable"); v != 2 {
		t.Errorf("retryable failures = %v", v)
	}
}

func TestDrainerDeadLettersPermanentFailures(t *testing.T) {
	var all []queue.Item
	r := startDrainer(t, testConfig(t), func(q *queue.Queue) { all = items(t, q, 2) })
	r.s.next(t)
	r.s.results <- queue.Permanent(errors.New("bad_request: 400"))
	if got := r.s.next(t); got.Seq != all[1].Seq {
		t.Fatalf("after a permanent failure: %v, want the next item at once", got)
	}
	r.s.results <- nil
	waitTimer(t, r.clk)
	dead, _ := r.q.List(true)
	if len(dead) != 1 || dead[0].Seq != all[0].Seq || dead[0].LastError != "bad_request: 400" {
		t.Fatalf("dead letters %v", dead)
	}
	if v := promtest.Value(t, r.reg, "kioskd_queue_drops_total", "reason", "permanent"); v != 1 {
		t.Errorf("drops{permanent} = %v", v)
	}
}

func TestDrainerGivesUpAfterMaxAttempts(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxAttempts = 2
	var all []queue.Item
	r := startDrainer(t, cfg, func(q *queue.Queue) { all = items(t, q, 2) })
	r.s.next(t)
	r.s.results <- errors.New("timeout")
	r.clk.Advance(waitTimer(t, r.clk))
	r.s.next(t)
	r.s.results <- errors.New("timeout")
	// The head is dead-lettered; the drainer still backs off once before
	// the next item, as the service has not answered.
	r.clk.Advance(waitTimer(t, r.clk))
	if got := r.s.next(t); got.Seq != all[1].Seq {
		t.Fatalf("got %v, want seq %d", got, all[1].Seq)
	}
	r.s.results <- nil
	waitTimer(t, r.clk)
	if v := promtest.Value(t, r.reg, "kioskd_queue_drops_total", "reason", "max_attempts"); v != 1 {
		t.Errorf("drops{max_attempts} = %v", v)
	}
}

func TestDrainerWake(t *testing.T) {
	cfg := testConfig(t)
	cfg.BackoffMin, cfg.BackoffMax = time.Hour, time.Hour
	r := startDrainer(t, cfg, func(q *queue.Queue) { items(t, q, 1) })
	r.s.next(t)
	r.s.results <- errors.New("transport")
	waitTimer(t, r.clk)
	r.s.none(t)
	// A live attempt just succeeded: try now, long before the backoff ends.
	r.d.Wake()
	got := r.s.next(t)
	if got.Attempts != 1 {
		t.Fatalf("woken delivery %v", got)
	}
	r.s.results <- nil
	waitTimer(t, r.clk)
	if st, _ := r.q.Stats(); st.Depth != 0 {
		t.Fatalf("depth %d", st.Depth)
	}
}

func TestDrainerPicksUpNewItems(t *testing.T) {
	r := startDrainer(t, testConfig(t), nil)
	waitTimer(t, r.clk) // idle on an empty queue
	it := enqueue(t, r.q, queue.Item{JPEG: fakeJPEG(100, 1)})
	if got := r.s.next(t); got.Seq != it.Seq {
		t.Fatalf("got %v", got)
	}
	r.s.results <- nil
}

func TestDrainerAppliesTTL(t *testing.T) {
	cfg := testConfig(t)
	cfg.TTL = time.Hour
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Minute, 10*time.Minute
	r := startDrainer(t, cfg, func(q *queue.Queue) { items(t, q, 1) })
	r.s.next(t)
	r.s.results <- errors.New("transport")
	waitTimer(t, r.clk)
	// The service stays down past the TTL: the face is deleted undelivered,
	// with no further attempt once it has expired.
	r.clk.Advance(61 * time.Minute)
	waitTimer(t, r.clk)
	r.s.none(t)
	if v := promtest.Value(t, r.reg, "kioskd_queue_drops_total", "reason", "ttl"); v != 1 {
		t.Errorf("drops{ttl} = %v", v)
	}
	if st, _ := r.q.Stats(); st.Depth != 0 {
		t.Fatalf("depth %d", st.Depth)
	}
}

func TestDrainerProgressAndAgeGauge(t *testing.T) {
	cfg := testConfig(t)
	cfg.BackoffMin, cfg.BackoffMax = time.Hour, time.Hour
	r := startDrainer(t, cfg, func(q *queue.Queue) { items(t, q, 1) }, queue.WithHeartbeat(5*time.Second))
	start := r.clk.Now()
	r.s.next(t)
	r.s.results <- errors.New("transport")
	beat := waitTimer(t, r.clk)
	if beat != 5*time.Second {
		t.Fatalf("idle wait %s, want the 5s heartbeat", beat)
	}
	r.clk.Advance(beat)
	waitTimer(t, r.clk)
	if p := r.d.Progress(); !p.Equal(start.Add(beat)) {
		t.Errorf("Progress = %s, want %s", p, start.Add(beat))
	}
	if v := promtest.Value(t, r.reg, "kioskd_queue_oldest_age_seconds"); v != beat.Seconds() {
		t.Errorf("oldest age gauge %v, want %v", v, beat.Seconds())
	}
}

func TestDrainerStopsMidDelivery(t *testing.T) {
	clk := newFakeClock()
	q, reg := open(t, testConfig(t), clockOptions(clk)...)
	it := enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})
	s := newScripted()
	d := queue.NewDrainer(q, s.deliver, quiet(), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	s.next(t)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	pending, _ := q.List(false)
	if len(pending) != 1 || pending[0].Seq != it.Seq || pending[0].Attempts != 0 {
		t.Fatalf("an interrupted delivery must leave the item as it was: %v", pending)
	}
	// The lease was given back: the item can be leased again.
	if got, _ := q.Lease(); got == nil {
		t.Fatal("item still leased after shutdown")
	}
}

func TestDrainOnce(t *testing.T) {
	clk := newFakeClock()
	q, reg := open(t, testConfig(t), clockOptions(clk)...)
	all := items(t, q, 4)
	// Not due for an hour: drain delivers it anyway.
	if err := q.RetryLater(all[0].Seq, "x"); err != nil {
		t.Fatal(err)
	}
	results := map[uint64]error{all[1].Seq: queue.Permanent(errors.New("bad_request")), all[2].Seq: errors.New("server_error")}
	var seen []uint64
	d := queue.NewDrainer(q, func(_ context.Context, it queue.Item) error {
		seen = append(seen, it.Seq)
		return results[it.Seq]
	}, quiet(), reg, clockOptions(clk)...)
	var reported int
	sum, err := d.Drain(context.Background(), func(queue.Item, error) { reported++ })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Delivered != 1 || sum.DeadLettered != 1 || sum.Remaining != 2 || sum.Stopped == nil || reported != 3 {
		t.Fatalf("summary %+v, reported %d", sum, reported)
	}
	if fmt.Sprint(seen) != fmt.Sprint([]uint64{all[0].Seq, all[1].Seq, all[2].Seq}) {
		t.Fatalf("delivered %v", seen)
	}
}

// TestDrainerOverHTTP runs the drainer against a real HTTP server that
// fails twice with 503 and then answers: the retried item carries the same
// idempotency key, and every image arrives intact.
func TestDrainerOverHTTP(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	images := map[string][]byte{}
	failures := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Face struct {
				Base64Image string `json:"base64Image"`
			} `json:"face"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		img, err := base64.StdEncoding.DecodeString(body.Face.Base64Image)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		key := r.Header.Get("Idempotency-Key")
		keys = append(keys, key)
		if failures > 0 {
			failures--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		images[key] = img
		_, _ = io.WriteString(w, `{"status":"PASS","authenticationId":"a-1"}`)
	}))
	defer srv.Close()

	clk := newFakeClock()
	cfg := testConfig(t)
	q, reg := open(t, cfg, clockOptions(clk)...)
	photos := map[string][]byte{}
	for _, name := range []string{"chelsea.jpg", "coffee.jpg"} {
		it := enqueue(t, q, queue.Item{JPEG: testJPEG(t, name)})
		photos[it.ID] = testJPEG(t, name)
	}
	d := queue.NewDrainer(q, httpDeliver(srv.URL), quiet(), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for range 2 {
		clk.Advance(waitTimer(t, clk))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := q.Stats(); st.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("queue not drained")
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline: the HTTP round trips are real
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 4 || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Errorf("idempotency keys %q: want the first item's key on all three of its attempts", keys)
	}
	for id, p := range photos {
		if string(images[id]) != string(p) {
			t.Errorf("item %s: image not delivered intact", id)
		}
	}
}

func httpDeliver(url string) queue.DeliverFunc {
	return func(ctx context.Context, it queue.Item) error {
		body, _ := json.Marshal(map[string]any{"face": map[string]string{"base64Image": base64.StdEncoding.EncodeToString(it.JPEG)}})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/omni/incode-id/authenticate", bytesReader(body))
		if err != nil {
			return queue.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", it.ID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("status %d", resp.StatusCode)
		default:
			return queue.Permanent(fmt.Errorf("status %d", resp.StatusCode))
		}
	}
}
