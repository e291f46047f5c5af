package agent

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness says whether kioskd can make decisions, and why not.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// Ready reports camera, queue and API state. queueOK is nil when kioskd runs
// without a queue by configuration.
func (a *Agent) Ready(queueOK func() error) Readiness {
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
	r.Ready = len(r.Reasons) == 0
	return r
}

// OpsHandler serves /metrics, /healthz and /readyz.
func (a *Agent) OpsHandler(g prometheus.Gatherer, queueOK func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := a.Ready(queueOK)
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
