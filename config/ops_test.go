package config_test

import (
	"strings"
	"testing"

	"github.com/kioskd/kioskd/config"
)

// TestMetricsReachableFromNetwork: a non-loopback metrics address needs
// allowed_hosts (or a web config with TLS and basic auth); loopback does
// not.
func TestMetricsReachableFromNetwork(t *testing.T) {
	for _, tc := range []struct {
		metrics string
		ok      bool
	}{
		{"  listen: 127.0.0.1:9108\n", true},
		{"  listen: '[::1]:9108'\n", true},
		{"  listen: 0.0.0.0:9108\n", false},
		{"  listen: 0.0.0.0:9108\n  allowed_hosts: [door1.lan]\n", true},
		{"  listen: 10.0.0.5:9108\n", false},
		{"  listen: 127.0.0.1:9108\n  max_connections: 0\n", false},
	} {
		doc := "device:\n  source_id: d\nincode:\n  base_url: https://api.incode.example\ncamera:\n  source: /dev/video0\nqueue:\n  encrypt: false\nmetrics:\n" + tc.metrics
		_, err := config.Parse([]byte(doc), func(k string) string {
			return map[string]string{"KIOSKD_API_KEY": "k", "KIOSKD_HARDWARE_ID": "h"}[k]
		})
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok %v", tc.metrics, err, tc.ok)
		}
		if err != nil && !tc.ok && strings.Contains(tc.metrics, "0.0.0.0") && !strings.Contains(err.Error(), "metrics.allowed_hosts") {
			t.Errorf("%q: the problem does not name allowed_hosts: %v", tc.metrics, err)
		}
	}
}
