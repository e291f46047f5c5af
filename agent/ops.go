package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness says whether kioskd can make decisions, and why not.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// Ready reports camera, queue and API state. queueOK is nil when kioskd runs
// without a queue by configuration. Each of checks (the clock, …) adds its
// error, as it is, to the reasons.
func (a *Agent) Ready(queueOK func() error, checks ...func() error) Readiness {
	var r Readiness
	if !a.FirstFrame() {
		r.Reasons = append(r.Reasons, "camera has not delivered a frame yet")
	} else if !a.CameraUp() {
		r.Reasons = append(r.Reasons, "camera is not delivering frames")
	}
	if queueOK != nil {
		if err := queueOK(); err != nil {
			r.Reasons = append(r.Reasons, "queue: "+err.Error())
		}
	}
	if a.AuthError() {
		r.Reasons = append(r.Reasons, "the Incode API refused the device's credentials (401/403)")
	}
	for _, check := range checks {
		if err := check(); err != nil {
			r.Reasons = append(r.Reasons, err.Error())
		}
	}
	r.Ready = len(r.Reasons) == 0
	return r
}

// OpsHandler serves /metrics, /healthz and /readyz; checks are passed to
// Ready.
func (a *Agent) OpsHandler(g prometheus.Gatherer, queueOK func() error, checks ...func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := a.Ready(queueOK, checks...)
		code := http.StatusOK
		if !r.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, r)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// HostGuard rejects requests whose Host header names something other than
// the listen address, so that a web page cannot reach a loopback service
// through DNS rebinding. Only the name is compared: the attacker controls
// the name, not the port, and with listen port 0 the configured port is not
// the one clients use. A wildcard listen address accepts any Host unless
// allowed hosts are given; an allowed entry is a name or a host:port.
func HostGuard(listen string, allowed []string, next http.Handler) http.Handler {
	host, _, _ := net.SplitHostPort(listen)
	names := map[string]bool{}
	hostports := map[string]bool{}
	for _, a := range allowed {
		a = strings.ToLower(a)
		if _, _, err := net.SplitHostPort(a); err == nil {
			hostports[a] = true
		} else {
			names[strings.Trim(a, "[]")] = true
		}
	}
	wildcard := host == "" || host == "0.0.0.0" || host == "::"
	if !wildcard || len(allowed) > 0 {
		for _, h := range []string{host, "localhost", "127.0.0.1", "::1"} {
			if h != "" {
				names[strings.ToLower(h)] = true
			}
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(names)+len(hostports) > 0 && !hostAllowed(names, hostports, r.Host) {
			http.Error(w, "misdirected request", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func hostAllowed(names, hostports map[string]bool, hostport string) bool {
	hostport = strings.ToLower(hostport)
	if hostports[hostport] {
		return true
	}
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	return h != "" && names[h]
}

// Serve runs an HTTP server on listen until ctx ends.
func Serve(ctx context.Context, log *slog.Logger, name, listen string, h http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("%s: listen %s: %w", name, listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Info("listening", "server", name, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("%s: %w", name, err)
	}
}

// Notifier speaks systemd's notify protocol. All methods do nothing when
// kioskd is not run by systemd.
type Notifier struct {
	log *slog.Logger
}

// NewNotifier returns a notifier using $NOTIFY_SOCKET.
func NewNotifier(log *slog.Logger) *Notifier { return &Notifier{log: log} }

func (n *Notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Debug("sd_notify failed", "err", err)
	}
}

// Ready sends READY=1 and a status line.
func (n *Notifier) Ready(status string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + status) }

// Status sends a STATUS= line.
func (n *Notifier) Status(status string) { n.send("STATUS=" + status) }

// Stopping sends STOPPING=1.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping + "\nSTATUS=stopping") }

// Watchdog pings systemd at half its interval while healthy() is true, so a
// frame loop stuck inside a camera read gets the process restarted.
func (n *Notifier) Watchdog(ctx context.Context, healthy func(maxAge time.Duration) bool) error {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return nil
	}
	n.log.Info("systemd watchdog enabled", "interval", interval)
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if healthy(interval) {
				n.send(daemon.SdNotifyWatchdog)
			} else {
				n.log.Warn("frame loop is not making progress: withholding the watchdog ping")
			}
		}
	}
}
