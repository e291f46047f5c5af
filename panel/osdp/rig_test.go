package osdp

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/osdptest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type rig struct {
	pd    *PD
	cp    *osdptest.CP
	reg   *prometheus.Registry
	ind   chan Indication
	clk   *clock
	stop  func()
	dir   string
	errCh chan error
}

// startPD runs a PD on the slave side of a new pty pair, opened by path
// through the serial library, and a test CP on the master side.
func startPD(t *testing.T, cfg config.OSDP) *rig {
	t.Helper()
	master, slavePath := osdptest.OpenPTY(t)
	dir := t.TempDir()
	if cfg.Baud == 0 {
		cfg.Baud = 9600
	}
	if cfg.LinkTimeout == 0 {
		cfg.LinkTimeout = 8 * time.Second
	}
	if cfg.VendorCode == "" {
		cfg.VendorCode = "0a0b0c"
	}
	cfg.Device = slavePath
	cfg.KeyPath = filepath.Join(dir, config.OSDPKeyFile)
	r := &rig{reg: prometheus.NewRegistry(), ind: make(chan Indication, 32), clk: &clock{t: time.Unix(1_800_000_000, 0)}, dir: dir, errCh: make(chan error, 1)}
	pd, err := New(cfg, slog.New(slog.DiscardHandler), r.reg, WithClock(r.clk.now),
		WithIndications(func(i Indication) { r.ind <- i }))
	if err != nil {
		t.Fatal(err)
	}
	r.pd = pd
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.errCh <- pd.Run(ctx) }()
	r.stop = func() {
		cancel()
		if err := <-r.errCh; err != nil {
			t.Errorf("Run: %v", err)
		}
		pd.Close()
	}
	t.Cleanup(func() {
		if r.stop != nil {
			r.stop()
		}
	})
	r.cp = osdptest.New(t, master)
	r.cp.Addr = byte(cfg.Address)
	return r
}

// waitFor waits for cond, checking it as the PD's loop goes round.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
