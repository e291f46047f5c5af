package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads kioskd's /metrics.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// metricValue returns the value of the series of name whose labels include
// all of labels ("k=v" pairs); -1 when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// TestMetricsMatchWhatHappened scripts a PASS then a face-mask FAIL and checks
// that /metrics counts exactly that: attempts by result, failures by reason,
// one unlock, an empty queue, and live health endpoints.
func TestMetricsMatchWhatHappened(t *testing.T) {
	s := startSim(t, "--script", "pass,fail:hasFaceMask")
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true, Loop: true})
	k := startKioskd(t, cfg)
	addr := listenAddr(t, k, "metrics")
	eventually(t, 60*time.Second, "two decisions", func() bool { return len(decisions(k.Output())) >= 2 })
	fams := scrape(t, addr)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kioskd_decision_attempts_total", []string{"result=pass"}, 1},
		{"kioskd_decision_attempts_total", []string{"result=fail"}, 1},
		{"kioskd_decision_attempts_total", []string{"result=offline"}, 0},
		{"kioskd_decision_failures_total", []string{"reason=has_face_mask"}, 1},
		// Not pre-created, and nothing counted it: absent.
		{"kioskd_decision_failures_total", []string{"reason=face_match_failed"}, -1},
		{"kioskd_decision_latency_seconds", nil, 2},
		{"kioskd_actuator_unlocks_total", nil, 1},
		{"kioskd_queue_depth", nil, 0},
		{"kioskd_camera_up", nil, 1},
		{"kioskd_build_info", []string{"version=e2e"}, 1},
	}
	for _, c := range checks {
		if got := metricValue(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	var fl []*dto.MetricFamily
	for name, f := range fams {
		if strings.HasPrefix(name, "kioskd_") {
			fl = append(fl, f)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(fl).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	// The labelled kioskd series that alerts and the dashboard read exist
	// from the start, at zero if nothing happened, so that increase() sees
	// their first count.
	for _, want := range []struct{ name, label string }{
		{"kioskd_decision_failures_total", "reason=unauthorized"},
		{"kioskd_decision_failures_total", "reason=forbidden"},
		{"kioskd_decision_attempts_total", "result=error"},
		{"kioskd_queue_drops_total", "reason=overflow"},
		{"kioskd_queue_drops_total", "reason=ttl"},
		{"kioskd_queue_drops_total", "reason=permanent"},
		{"kioskd_actuator_errors_total", "driver=gpio"},
		{"kioskd_capture_rejections_total", "reason=too_small"},
	} {
		if got := metricValue(fams, want.name, want.label); got != 0 {
			t.Errorf("%s{%s} = %v, want a series at 0", want.name, want.label, got)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %s, want 200", path, resp.Status)
		}
	}
	// DNS rebinding: a request that names another host is refused.
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Host = "attacker.example:9108"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host got %s, want 421", resp.Status)
	}
	if n := len(decisions(k.Output())); n != 2 {
		t.Fatalf("%d decisions by the end of the scrape; the counts above assume 2", n)
	}
	k.signal(t, syscall.SIGTERM)
	if code := k.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d after SIGTERM", code)
	}
}
