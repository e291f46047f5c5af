package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "h"}, []string{"a", "b"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "h"})
	reg.MustRegister(c, g)
	c.WithLabelValues("x", "1").Add(2)
	c.WithLabelValues("y", "2").Add(5)
	g.Set(7)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"c_total", []string{"a", "y"}, 5},
		{"c_total", []string{"a", "x", "b", "1"}, 2},
		{"g", nil, 7},
	} {
		if got := Value(t, reg, tc.name, tc.labels...); got != tc.want {
			t.Errorf("Value(%s %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

// TestHasLabels: every pair must match, and a pair that matches no label
// rules the series out.
func TestHasLabels(t *testing.T) {
	n, v := func(s string) *string { return &s }, func(s string) *string { return &s }
	m := &dto.Metric{Label: []*dto.LabelPair{{Name: n("a"), Value: v("x")}, {Name: n("b"), Value: v("1")}}}
	for _, tc := range []struct {
		labels []string
		want   bool
	}{
		{nil, true},
		{[]string{"a", "x"}, true},
		{[]string{"a", "x", "b", "1"}, true},
		{[]string{"a", "x", "b", "2"}, false},
		{[]string{"c", "x"}, false},
	} {
		if got := hasLabels(m, tc.labels); got != tc.want {
			t.Errorf("hasLabels(%v) = %v, want %v", tc.labels, got, tc.want)
		}
	}
}
