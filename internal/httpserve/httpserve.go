// Package httpserve is how every kioskd listener (metrics and health, the
// kiosk display) serves HTTP: the same timeouts, a connection cap that keeps
// file descriptors for the door path, slots only loopback clients may take,
// one Host check against DNS rebinding, and optionally TLS and basic auth
// from a Prometheus exporter-toolkit web configuration file.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
)

// Options describe one listener.
type Options struct {
	// Name is the server's name in logs, errors and the "server" label.
	Name string
	// MaxConns caps open connections from any client (default
	// DefaultMaxConns); FitConns lowers it to the descriptor budget.
	MaxConns int
	// LoopbackReserve is how many connections beyond MaxConns only
	// loopback clients may open, so that the kiosk's own browser always
	// gets in (default DefaultLoopbackReserve).
	LoopbackReserve int
	// Streaming marks a server whose responses last (SSE, MJPEG): no read
	// or write timeout, which would cut them.
	Streaming bool
	// WebConfigFile is an exporter-toolkit web configuration file (TLS,
	// basic auth); empty: plain HTTP.
	WebConfigFile string
}

// Defaults. A Prometheus server scrapes over one or two connections; a
// kiosk page holds two (the page and its event stream) plus the preview.
const (
	DefaultMaxConns        = 64
	DefaultLoopbackReserve = 8
	ReadHeaderTimeout      = 5 * time.Second
	ReadTimeout            = 10 * time.Second
	WriteTimeout           = 30 * time.Second
	IdleTimeout            = 30 * time.Second
	shutdownGrace          = 2 * time.Second
)

// descriptorShare is the part of the process's descriptor limit one
// listener may hold (a quarter: the two listeners together at most half).
// The rest stays for what opens the door: the upload to the Incode API, the
// camera's reopen, the queue file, the journal socket.
const descriptorShare = 4

// FitConns returns want, lowered so that one listener's connections stay
// within its share of the soft RLIMIT_NOFILE (which Go raises to the hard
// limit at start, and the unit sets with LimitNOFILE).
func FitConns(want int) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return want
	}
	return fitConns(want, rl.Cur)
}

func fitConns(want int, limit uint64) int {
	share := int(min(limit/descriptorShare, 1<<20))
	return max(1, min(want, share-DefaultLoopbackReserve))
}

// Listen opens a TCP listener on addr.
func Listen(ctx context.Context, name, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	return ln, nil
}

// Server serves one listener. Build it with New; Serve runs it.
type Server struct {
	o        Options
	log      *slog.Logger
	open     prometheus.Gauge
	rejected prometheus.Counter
}

// New checks the options and registers the listener's connection metrics,
// labelled with its name.
func New(o Options, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.LoopbackReserve <= 0 {
		o.LoopbackReserve = DefaultLoopbackReserve
	}
	o.MaxConns = FitConns(o.MaxConns)
	if o.WebConfigFile != "" {
		if err := web.Validate(o.WebConfigFile); err != nil {
			return nil, fmt.Errorf("%s: web config %s: %w", o.Name, o.WebConfigFile, err)
		}
	}
	s := &Server{
		o:   o,
		log: log,
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_http_open_connections", Help: "Open client connections, by server.",
			ConstLabels: prometheus.Labels{"server": o.Name},
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_http_rejected_connections_total", Help: "Connections closed at once because the server's connection cap was reached, by server.",
			ConstLabels: prometheus.Labels{"server": o.Name},
		}),
	}
	for _, c := range []prometheus.Collector{s.open, s.rejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("%s: register metrics: %w", o.Name, err)
		}
	}
	return s, nil
}

// CheckWebConfig reads an exporter-toolkit web configuration file and the
// certificates it names, as Serve will: check-config reports its problems.
func CheckWebConfig(path string) error { return web.Validate(path) }

// MaxConns is the connection cap in force, after FitConns.
func (s *Server) MaxConns() int { return s.o.MaxConns }

// Serve serves h on ln until ctx is done, then closes ln and every open
// connection within a short grace. Request contexts derive from ctx, so
// streams end when it does.
func (s *Server) Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if !s.o.Streaming {
		srv.ReadTimeout, srv.WriteTimeout = ReadTimeout, WriteTimeout
	}
	ln = &limitListener{Listener: ln, general: make(chan struct{}, s.o.MaxConns),
		reserve: make(chan struct{}, s.o.LoopbackReserve), open: s.open, rejected: s.rejected}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	}()
	s.log.Info("listening", "server", s.o.Name, "addr", ln.Addr().String(),
		"tls", s.o.WebConfigFile != "", "max_connections", s.o.MaxConns)
	var err error
	if s.o.WebConfigFile != "" {
		file := s.o.WebConfigFile
		err = web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &file}, s.log.With("server", s.o.Name))
	} else {
		err = srv.Serve(ln)
	}
	cancel()
	<-done
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s: serve: %w", s.o.Name, err)
}

// limitListener accepts every connection the kernel hands it, so that a
// flood never fills the backlog ahead of a real client, but keeps only as
// many as there are slots: the rest are closed at once. Loopback clients
// may also take the reserved slots.
type limitListener struct {
	net.Listener
	general, reserve chan struct{}
	open             prometheus.Gauge
	rejected         prometheus.Counter
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if slot := l.take(c); slot != nil {
			l.open.Inc()
			return &limitConn{Conn: c, release: func() { <-slot; l.open.Dec() }}, nil
		}
		l.rejected.Inc()
		_ = c.Close()
	}
}

func (l *limitListener) take(c net.Conn) chan struct{} {
	select {
	case l.general <- struct{}{}:
		return l.general
	default:
	}
	if !IsLoopback(c.RemoteAddr()) {
		return nil
	}
	select {
	case l.reserve <- struct{}{}:
		return l.reserve
	default:
		return nil
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// IsLoopback reports whether addr is a loopback address.
func IsLoopback(addr net.Addr) bool {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopbackRequest reports whether r came from a loopback address.
func IsLoopbackRequest(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HostAllowed is the one Host check of every listener, against DNS
// rebinding: a page elsewhere can make a browser resolve its own name to
// this box, but not send a Host header other than that name. So accept
// "localhost", IP literals (a rebinding needs a name), the listen address's
// host, and the allowed entries (a name, or a host:port matched whole);
// case and a trailing dot do not matter.
func HostAllowed(listen string, allowed []string, hostport string) bool {
	if hostport == "" {
		return false
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if host == "localhost" || net.ParseIP(host) != nil {
		return true
	}
	if lh, _, err := net.SplitHostPort(listen); err == nil && strings.EqualFold(strings.Trim(lh, "[]"), host) {
		return true
	}
	for _, a := range allowed {
		a = strings.TrimSuffix(strings.ToLower(a), ".")
		if a == strings.ToLower(hostport) || strings.Trim(a, "[]") == host {
			return true
		}
	}
	return false
}

// HostGuard answers 421 to a request whose Host HostAllowed refuses.
func HostGuard(listen string, allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !HostAllowed(listen, allowed, r.Host) {
			http.Error(w, "misdirected request", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// LoopbackOnly reports whether addr (host:port) listens on loopback only.
func LoopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
