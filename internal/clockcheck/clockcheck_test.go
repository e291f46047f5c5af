package clockcheck

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/testcert"
	"github.com/kioskd/kioskd/uploader"
)

// fakeClock is the injected clock: tests move it, nothing sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time  { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) set(t time.Time) { f.mu.Lock(); f.t = t; f.mu.Unlock() }
func wrong(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	v, err := testutil.GatherAndCount(reg, "kioskd_clock_wrong")
	if err != nil || v != 1 {
		t.Fatalf("kioskd_clock_wrong: %d series, %v", v, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "kioskd_clock_wrong" {
			return mf.Metric[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestClockBeforeBuildDate(t *testing.T) {
	built := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: time.Date(1970, 1, 1, 0, 0, 42, 0, time.UTC)} // a Pi without RTC at boot
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	c, err := New(built, slog.New(slog.NewJSONHandler(&logs, nil)), reg, WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "before this kioskd was built") {
		t.Fatalf("Err = %v, want the build date named", err)
	}
	if v := wrong(t, reg); v != 1 {
		t.Errorf("kioskd_clock_wrong = %v, want 1", v)
	}
	if n := strings.Count(logs.String(), `"level":"ERROR"`); n != 1 {
		t.Errorf("%d error lines, want exactly one (logged on the change, not on every check):\n%s", n, logs.String())
	}
	// NTP puts the clock right: no request needed to clear it.
	clk.set(built.Add(time.Hour))
	if err := c.Err(); err != nil {
		t.Errorf("Err after the clock was set = %v", err)
	}
	if v := wrong(t, reg); v != 0 {
		t.Errorf("kioskd_clock_wrong = %v after the clock was set, want 0", v)
	}
	if !strings.Contains(logs.String(), "looks right again") {
		t.Errorf("no line saying the clock is right again:\n%s", logs.String())
	}
	// An unknown build date checks nothing.
	c2, err := New(time.Time{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), WithClock(func() time.Time { return time.Unix(0, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Err(); err != nil {
		t.Errorf("unknown build date: Err = %v", err)
	}
}

// TestCertificateNotYetValid runs the real Incode client against a real
// TLS server whose certificate starts tomorrow: the handshake error the
// client returns is recognised, and a call that gets through clears it.
func TestCertificateNotYetValid(t *testing.T) {
	notBefore := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	caFile, keyFile := testcert.SelfSigned(t, notBefore)
	cert, err := tls.LoadX509KeyPair(caFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"name":{"fullName":"A"}}`))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()

	cfg := config.Default().Incode
	cfg.BaseURL, cfg.CAFile, cfg.APIKey, cfg.HardwareID = srv.URL, caFile, "k", "h"
	cfg.MaxRetries = 0
	api, err := uploader.New(cfg, "kioskd/test", slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	// The real clock: the certificate is a day ahead of it.
	c, err := New(time.Time{}, slog.New(slog.NewJSONHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	_, callErr := api.UserInfo(context.Background(), "tok")
	if callErr == nil {
		t.Fatal("a certificate valid from tomorrow was accepted")
	}
	c.Observe(errors.New("dial tcp: connection refused")) // other errors say nothing about the clock
	if err := c.Err(); err != nil {
		t.Fatalf("Err after an unrelated error = %v", err)
	}
	c.Observe(callErr)
	err = c.Err()
	if err == nil || !strings.Contains(err.Error(), "certificate is valid from "+notBefore.UTC().Format(time.RFC3339)) {
		t.Fatalf("Err = %v (call error %v), want the certificate's start named", err, callErr)
	}
	if v := wrong(t, reg); v != 1 {
		t.Errorf("kioskd_clock_wrong = %v, want 1", v)
	}
	if !strings.Contains(logs.String(), "system clock is wrong") {
		t.Errorf("not logged:\n%s", logs.String())
	}
	// The clock catches up: the check clears without another request.
	c.now = func() time.Time { return notBefore.Add(time.Minute) }
	if err := c.Err(); err != nil {
		t.Errorf("Err once the clock passed the certificate's start = %v", err)
	}
	// A call that goes through clears it too.
	c.now = time.Now
	c.Observe(callErr)
	c.Observe(nil)
	if err := c.Err(); err != nil {
		t.Errorf("Err after a call went through = %v", err)
	}
}
