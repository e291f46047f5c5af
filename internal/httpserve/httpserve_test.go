package httpserve

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"github.com/kioskd/kioskd/internal/promtest"
	"github.com/kioskd/kioskd/internal/testcert"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/bcrypt"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start serves h with o on a loopback port until the test ends.
func start(t *testing.T, o Options, h http.Handler) (*Server, string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(o, quiet(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(context.Background(), o.Name, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String(), reg
}

func TestHostAllowed(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		allowed []string
		host    string
		want    bool
	}{
		{"127.0.0.1:9108", nil, "127.0.0.1:9108", true},
		{"127.0.0.1:9108", nil, "localhost:9108", true},
		{"127.0.0.1:9108", nil, "[::1]:9108", true},
		{"127.0.0.1:9108", nil, "rebind.attacker.example:9108", false},
		{"127.0.0.1:9108", nil, "", false},
		{"0.0.0.0:9108", nil, "10.0.0.5:9108", true},
		{"0.0.0.0:9108", nil, "anything.example:9108", false},
		{"0.0.0.0:9108", []string{"door1.lan"}, "door1.lan:9108", true},
		{"0.0.0.0:9108", []string{"door1.lan"}, "DOOR1.LAN.:9108", true},
		{"0.0.0.0:9108", []string{"door1.lan"}, "attacker.example:9108", false},
		{"0.0.0.0:9108", []string{"door1.lan:9000"}, "door1.lan:9000", true},
		{"0.0.0.0:9108", []string{"door1.lan:9000"}, "door1.lan:9108", false},
		{"kiosk.local:8088", nil, "kiosk.local:8088", true},
		// Port 0: clients use the port the OS chose, not "0".
		{"127.0.0.1:0", nil, "127.0.0.1:40123", true},
		{"127.0.0.1:0", nil, "localhost:40123", true},
		{"127.0.0.1:9108", nil, "attacker.example", false},
	} {
		if got := HostAllowed(tc.listen, tc.allowed, tc.host); got != tc.want {
			t.Errorf("HostAllowed(%q, %q, %q) = %v, want %v", tc.listen, tc.allowed, tc.host, got, tc.want)
		}
		ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		HostGuard(tc.listen, tc.allowed, ok).ServeHTTP(rec, req)
		if want := map[bool]int{true: 204, false: 421}[tc.want]; rec.Code != want {
			t.Errorf("HostGuard(%q, %q) Host %q: %d, want %d", tc.listen, tc.allowed, tc.host, rec.Code, want)
		}
	}
}

func TestFitConns(t *testing.T) {
	for _, tc := range []struct {
		want  int
		limit uint64
		got   int
	}{
		{64, 1 << 20, 64},
		{64, 200, 42}, // a quarter of 200, less the loopback reserve
		{64, 8, 1},
	} {
		if got := fitConns(tc.want, tc.limit); got != tc.got {
			t.Errorf("fitConns(%d, %d) = %d, want %d", tc.want, tc.limit, got, tc.got)
		}
	}
}

// TestConnectionCap: idle connections beyond the cap and the loopback
// reserve are closed at once and counted; closing one frees its slot.
func TestConnectionCap(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	s, addr, reg := start(t, Options{Name: "metrics", MaxConns: 2, LoopbackReserve: 1}, ok)
	if s.MaxConns() != 2 {
		t.Fatalf("cap %d", s.MaxConns())
	}
	var held []net.Conn
	for range 3 { // two general slots and the loopback one
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
		// A request answered proves the connection holds a slot.
		get(t, c)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("a connection past the cap was kept: %d %v", n, err)
	}
	if v := promtest.Value(t, reg, "kioskd_http_rejected_connections_total"); v != 1 {
		t.Fatalf("rejected %v, want 1", v)
	}
	held[0].Close()
	// The freed slot is taken again (the server notices the close on its
	// own schedule, so poll with requests rather than sleep).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the freed slot was never given out again")
		}
	}
}

func TestLoopbackReserveOnlyForLoopback(t *testing.T) {
	l := &limitListener{general: make(chan struct{}, 1), reserve: make(chan struct{}, 1)}
	remote := fakeConn{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5000}}
	local := fakeConn{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5001}}
	if l.take(remote) == nil {
		t.Fatal("the general slot was refused")
	}
	if l.take(remote) != nil {
		t.Fatal("a remote client took the loopback reserve")
	}
	if l.take(local) == nil {
		t.Fatal("a loopback client did not get the reserve")
	}
}

type fakeConn struct{ remote net.Addr }

func (c fakeConn) RemoteAddr() net.Addr           { return c.remote }
func (fakeConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (fakeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }

func get(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetDeadline(time.Time{})
}

// TestTLSScrapeWithBasicAuth serves metrics through an exporter-toolkit web
// configuration (TLS and a bcrypt basic-auth user) and scrapes them over
// TLS: with the password the metrics come back, without it 401, and plain
// HTTP gets no metrics.
func TestTLSScrapeWithBasicAuth(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := testcert.SelfSigned(t, time.Now().Add(-time.Hour))
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := write("web.yml", []byte("tls_server_config:\n  cert_file: "+certPath+"\n  key_file: "+keyPath+
		"\nbasic_auth_users:\n  prometheus: "+string(hash)+"\n"))

	served := prometheus.NewRegistry()
	served.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "kioskd_test_up", Help: "test"}))
	_, addr, _ := start(t, Options{Name: "metrics", WebConfigFile: webCfg}, promhttp.HandlerFor(served, promhttp.HandlerOpts{}))

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	scrape := func(user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", "https://"+addr+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := scrape("prometheus", "scrape-pass"); code != 200 || !strings.Contains(body, "kioskd_test_up 0") {
		t.Fatalf("TLS scrape with the password: %d %q", code, body)
	}
	if code, _ := scrape("prometheus", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", code)
	}
	if code, _ := scrape("", ""); code != http.StatusUnauthorized {
		t.Fatalf("no password: %d, want 401", code)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "kioskd_test_up") {
			t.Fatal("metrics served over plain HTTP")
		}
	}
	// A broken web config is refused before anything listens.
	if _, err := New(Options{Name: "metrics", WebConfigFile: write("bad.yml", []byte("tls_server_config:\n  cert_file: /nonexistent\n"))}, quiet(), prometheus.NewRegistry()); err == nil {
		t.Fatal("a broken web config was accepted")
	}
}
