package uploader

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/incodesim"
)

// Secrets used by every test; the secrecy test looks for them in logs,
// errors and metrics.
const (
	testAPIKey      = "apikey-SECRET-5f1e2d3c4b5a"
	testDeviceToken = "devtoken-SECRET-0a9b8c7d6e"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is the real client against the real emulator on a loopback port.
type env struct {
	sim  *incodesim.Sim
	srv  *httptest.Server
	c    *Client
	reg  *prometheus.Registry
	logs *syncBuffer
}

func testConfig(baseURL string) config.Incode {
	return config.Incode{
		BaseURL:        baseURL,
		APIKey:         testAPIKey,
		HardwareID:     testDeviceToken,
		MaxRetries:     3,
		RetryWaitMin:   5 * time.Millisecond,
		RetryWaitMax:   20 * time.Millisecond,
		RetryAfterMax:  5 * time.Second,
		RequestTimeout: 10 * time.Second,
	}
}

// enrollDir is a folder enrolling the astronaut as "Eileen Collins".
func enrollDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	b := readTestdata(t, "enroll/astronaut.jpg")
	if err := os.WriteFile(filepath.Join(dir, "Eileen_Collins.jpg"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newEnv(t *testing.T, script []string, mod func(*config.Incode)) *env {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sim, err := incodesim.New(incodesim.Options{
		APIKey:      testAPIKey,
		DeviceToken: testDeviceToken,
		EnrollDir:   enrollDir(t),
		Script:      script,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	e := &env{sim: sim, srv: srv, reg: prometheus.NewRegistry(), logs: logs}
	cfg := testConfig(srv.URL)
	if mod != nil {
		mod(&cfg)
	}
	e.c, err = New(cfg, "kioskd/test", log, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) retries(endpoint string) float64 {
	return testutil.ToFloat64(e.c.m.retries.WithLabelValues(endpoint))
}

// requests counts what the emulator received on an endpoint.
func (e *env) requests(endpoint string) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func faceRequest(t testing.TB, file string) AuthenticateRequest {
	return AuthenticateRequest{
		Face:   FaceObject{Base64Image: base64.StdEncoding.EncodeToString(readTestdata(t, file))},
		Source: "lobby-door-1",
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestResponse(code int) *http.Response {
	return &http.Response{StatusCode: code, Header: http.Header{}}
}

// tinyFace is a 16x16 PNG: cheap for the emulator to decode when a test
// measures time rather than matching.
func tinyFace(t testing.TB) AuthenticateRequest {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 16, 16))); err != nil {
		t.Fatal(err)
	}
	return AuthenticateRequest{Face: FaceObject{Base64Image: base64.StdEncoding.EncodeToString(buf.Bytes())}}
}
