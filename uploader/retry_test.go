package uploader

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
)

func TestRetry503ThenPass(t *testing.T) {
	e := newEnv(t, []string{"http:503", "pass"}, nil)
	resp, err := e.c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"), WithIdempotencyKey("k-503"))
	if err != nil || resp.Status != StatusPass {
		t.Fatalf("%+v, %v", resp, err)
	}
	if got := e.retries("authenticate"); got != 1 {
		t.Errorf("retries counted %v, want 1", got)
	}
	recs := e.sim.Requests()
	if len(recs) != 2 || recs[0].Status != 503 || recs[1].Outcome != "PASS" {
		t.Fatalf("emulator saw %+v", recs)
	}
	// The body was replayed whole, with the same idempotency key.
	if recs[0].Image.SHA256 != recs[1].Image.SHA256 || recs[0].BodyBytes != recs[1].BodyBytes || recs[1].IdempotencyKey != "k-503" {
		t.Errorf("retry differs from the first attempt: %+v vs %+v", recs[0], recs[1])
	}
	if got := testutil.ToFloat64(e.c.m.responses.WithLabelValues("authenticate", "5xx")); got != 1 {
		t.Errorf("5xx responses %v", got)
	}
	if got := testutil.ToFloat64(e.c.m.uploaded); got != float64(recs[0].BodyBytes+recs[1].BodyBytes) {
		t.Errorf("uploaded bytes %v, want %d", got, recs[0].BodyBytes+recs[1].BodyBytes)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	e := newEnv(t, []string{"http:429:retry-after=1", "pass"}, nil)
	start := time.Now()
	resp, err := e.c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"))
	took := time.Since(start)
	if err != nil || resp.Status != StatusPass {
		t.Fatalf("%+v, %v", resp, err)
	}
	if took < time.Second {
		t.Errorf("retried after %v, before the server's Retry-After of 1s", took)
	}
	if e.retries("authenticate") != 1 {
		t.Errorf("retries %v", e.retries("authenticate"))
	}
}

// A Retry-After longer than what is left of the deadline ends the call at
// once with the 429, rather than sleeping into a timeout.
func TestRetryAfterBeyondDeadline(t *testing.T) {
	e := newEnv(t, []string{"http:429:retry-after=3", "pass"}, nil)
	start := time.Now()
	_, err := e.c.Authenticate(ctxTimeout(t, 2*time.Second), tinyFace(t))
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 429 || ae.RetryAfter != 3*time.Second || !Retryable(err) {
		t.Fatalf("want a retryable 429 with RetryAfter 3s, got %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("gave up after %v", took)
	}
	if e.retries("authenticate") != 0 {
		t.Error("retried")
	}
}

// retry_after_max caps how long a Retry-After is honoured.
func TestRetryAfterCapped(t *testing.T) {
	e := newEnv(t, []string{"http:503:retry-after=60", "pass"}, func(c *config.Incode) { c.RetryAfterMax = 100 * time.Millisecond })
	start := time.Now()
	resp, err := e.c.Authenticate(ctxTimeout(t, 5*time.Second), tinyFace(t))
	if err != nil || resp.Status != StatusPass {
		t.Fatalf("%+v, %v", resp, err)
	}
	if took := time.Since(start); took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %v, want the capped 100ms wait", took)
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	for _, item := range []string{"http:400", "http:401", "http:403", "http:404", "http:501"} {
		t.Run(item, func(t *testing.T) {
			e := newEnv(t, []string{item, "pass"}, nil)
			_, err := e.c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"))
			var ae *APIError
			if !errors.As(err, &ae) || Retryable(err) {
				t.Fatalf("want a permanent *APIError, got %v", err)
			}
			if e.retries("authenticate") != 0 || e.requests("authenticate") != 1 {
				t.Errorf("retried: %v retries, %d requests", e.retries("authenticate"), e.requests("authenticate"))
			}
		})
	}
}

func TestRetriesExhausted(t *testing.T) {
	e := newEnv(t, []string{"http:502", "http:504", "http:500", "pass"}, func(c *config.Incode) { c.MaxRetries = 2 })
	_, err := e.c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"))
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 500 || !Retryable(err) || Reason(err) != "server_error" {
		t.Fatalf("want the last answer, a 500, got %v", err)
	}
	if e.retries("authenticate") != 2 || e.requests("authenticate") != 3 {
		t.Errorf("%v retries, %d requests; want 2 and 3", e.retries("authenticate"), e.requests("authenticate"))
	}
}

func TestHungServerCutAtDeadline(t *testing.T) {
	e := newEnv(t, []string{"hang", "pass"}, nil)
	start := time.Now()
	_, err := e.c.Authenticate(ctxTimeout(t, 400*time.Millisecond), tinyFace(t))
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || Reason(err) != "timeout" || !Retryable(err) {
		t.Fatalf("want a timeout, got %v", err)
	}
	if took < 400*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("returned after %v, want about the 400ms deadline", took)
	}
	if e.retries("authenticate") != 0 {
		t.Error("retried after the deadline")
	}
}

// The deadline bounds all attempts together, waits included.
func TestDeadlineBoundsAllAttempts(t *testing.T) {
	script := []string{}
	for range 12 {
		script = append(script, "http:503")
	}
	e := newEnv(t, script, func(c *config.Incode) {
		c.MaxRetries = 10
		c.RetryWaitMin = 100 * time.Millisecond
		c.RetryWaitMax = 100 * time.Millisecond
	})
	start := time.Now()
	_, err := e.c.Authenticate(ctxTimeout(t, 500*time.Millisecond), tinyFace(t))
	took := time.Since(start)
	if err == nil || !Retryable(err) {
		t.Fatalf("want a retryable error, got %v", err)
	}
	if took > 900*time.Millisecond {
		t.Errorf("call took %v with a 500ms deadline", took)
	}
	// Waits of 50-100ms fit up to ten times into 500ms (fewer on a loaded
	// machine); the client stops once the next wait would pass the deadline.
	if n := e.requests("authenticate"); n < 2 || n > 11 {
		t.Errorf("%d attempts", n)
	}
}

func TestCanceledIsNotRetried(t *testing.T) {
	e := newEnv(t, []string{"delay:5s"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := e.c.Authenticate(ctx, tinyFace(t))
	if !errors.Is(err, context.Canceled) || Reason(err) != "canceled" || Retryable(err) {
		t.Fatalf("want canceled, got %v", err)
	}
	if e.retries("authenticate") != 0 {
		t.Error("retried a canceled call")
	}
}

func TestResetConnectionRetried(t *testing.T) {
	e := newEnv(t, []string{"reset", "pass"}, nil)
	resp, err := e.c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"), WithIdempotencyKey("k-reset"))
	if err != nil || resp.Status != StatusPass {
		t.Fatalf("%+v, %v", resp, err)
	}
	if e.retries("authenticate") != 1 {
		t.Errorf("retries %v, want 1", e.retries("authenticate"))
	}
	if got := testutil.ToFloat64(e.c.m.responses.WithLabelValues("authenticate", "error")); got != 1 {
		t.Errorf("attempts without an answer %v, want 1", got)
	}
}

// Connection refused is a transport error, retried, then reported.
func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testConfig("http://" + addr)
	cfg.MaxRetries = 2
	reg := prometheus.NewRegistry()
	c, err := New(cfg, "kioskd/test", discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"))
	if err == nil || Reason(err) != "transport" || !Retryable(err) {
		t.Fatalf("want a retryable transport error, got %v", err)
	}
	if got := testutil.ToFloat64(c.m.retries.WithLabelValues("authenticate")); got != 2 {
		t.Errorf("retries %v, want 2", got)
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{waitMin: 100 * time.Millisecond, waitMax: time.Second, retryAfterMax: 10 * time.Second,
		jitter: func() float64 { return 0.999 }, now: func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		if got := c.backoff(n, nil); got > want*time.Millisecond || got < want*time.Millisecond/2 {
			t.Errorf("backoff(%d) = %v, want in [%v, %v]", n, got, want*time.Millisecond/2, want*time.Millisecond)
		}
	}
	c.jitter = func() float64 { return 0 }
	if got := c.backoff(0, nil); got != 50*time.Millisecond {
		t.Errorf("no jitter: %v", got)
	}
	resp := &http.Response{Header: http.Header{}}
	for v, want := range map[string]time.Duration{
		"2":                             2 * time.Second,
		"0":                             0,
		"120":                           10 * time.Second, // capped
		"Wed, 01 Jan 2025 00:00:05 GMT": 5 * time.Second,
		"Tue, 31 Dec 2024 00:00:00 GMT": 0,
		"soon":                          -1,
		"-5":                            -1,
	} {
		resp.Header.Set("Retry-After", v)
		got := c.backoff(0, resp)
		if want < 0 {
			want = 50 * time.Millisecond // ignored: exponential
		}
		if got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
}
