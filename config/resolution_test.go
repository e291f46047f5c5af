package config

import (
	"strings"
	"testing"
)

func TestWarnsWhenCameraCannotMeet1000px(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"KIOSKD_API_KEY": "k", "KIOSKD_HARDWARE_ID": "h"}[k]
	}
	base := "device: {source_id: d}\nincode: {base_url: 'https://incode.example'}\n"
	for _, tc := range []struct {
		camera string
		warn   bool
	}{
		{"camera: {width: 640, height: 480}\n", true},
		{"camera: {width: 1280, height: 720}\n", false},
		{"camera: {width: 720, height: 1280}\n", false},
	} {
		cfg, err := Parse([]byte(base+tc.camera), env)
		if err != nil {
			t.Fatalf("%s: %v", tc.camera, err)
		}
		got := false
		for _, w := range cfg.Warnings {
			if strings.Contains(w, "1000 px") {
				got = true
			}
		}
		if got != tc.warn {
			t.Errorf("%s: warning %v, want %v (%v)", tc.camera, got, tc.warn, cfg.Warnings)
		}
	}
}
