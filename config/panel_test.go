package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskd/kioskd/config"
)

func TestPanelValidation(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "scbk")
	if err := os.WriteFile(key, []byte("000102030405060708090A0B0C0D0E0F\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "device: {source_id: d, state_dir: " + dir + "}\nincode: {base_url: https://x.example}\ncamera: {source: /dev/video0}\n"
	env := secretEnv()
	cfg, err := config.Parse([]byte(base+"panel: {protocol: osdp, osdp: {device: /dev/ttyUSB0, scbk_file: "+key+"}}\ncredentials: {file: /x.csv}\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Panel.OSDP.SCBK) != 16 || cfg.Panel.OSDP.SCBK[15] != 0x0f {
		t.Fatalf("SCBK % x", cfg.Panel.OSDP.SCBK)
	}
	// A key set by the panel wins over the file.
	if err := os.WriteFile(filepath.Join(dir, config.OSDPKeyFile), []byte("ffffffffffffffffffffffffffffffff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = config.Parse([]byte(base+"panel: {protocol: osdp, osdp: {device: /dev/ttyUSB0, scbk_file: "+key+"}}\ncredentials: {file: /x.csv}\n"), env)
	if err != nil || cfg.Panel.OSDP.SCBK[0] != 0xff {
		t.Fatalf("stored key not used: %v", err)
	}
	os.Remove(filepath.Join(dir, config.OSDPKeyFile))

	for _, tc := range []struct{ yaml, want string }{
		{"panel: {protocol: rs232}", "panel.protocol"},
		{"panel: {protocol: osdp, osdp: {device: /dev/ttyUSB0, baud: 4800, scbk_file: " + key + "}}\ncredentials: {file: /x.csv}", "panel.osdp.baud"},
		{"panel: {protocol: osdp, osdp: {device: /dev/ttyUSB0, address: 127, scbk_file: " + key + "}}\ncredentials: {file: /x.csv}", "panel.osdp.address"},
		{"panel: {protocol: osdp, osdp: {device: /dev/ttyUSB0}}\ncredentials: {file: /x.csv}", "panel.osdp.scbk_file: not set"},
		{"panel: {protocol: osdp, osdp: {scbk_file: " + key + "}}\ncredentials: {file: /x.csv}", "panel.osdp.device"},
		{"panel: {protocol: osdp, osdp: {device: /dev/ttyUSB0, scbk_file: " + key + "}}", "credentials: panel.protocol osdp needs"},
		{"panel: {protocol: wiegand, wiegand: {d0: 5, d1: 5}}\ncredentials: {file: /x.csv}", "panel.wiegand.d0/d1"},
		{"panel: {protocol: wiegand, wiegand: {d0: 5, d1: 6, pulse: 5ms}}\ncredentials: {file: /x.csv}", "panel.wiegand.pulse"},
		{"panel: {decision_timeout: 0s}", "panel.decision_timeout"},
		{"credentials: {format: h9}", "credentials.format"},
	} {
		_, err := config.Parse([]byte(base+tc.yaml+"\n"), env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
	// Unlock outputs are said to stay idle.
	cfg, err = config.Parse([]byte(base+"actuator: {outputs: [{name: door, role: unlock, driver: log, pulse: 3s}]}\npanel: {protocol: osdp, osdp: {device: /dev/ttyUSB0, scbk_file: "+key+"}}\ncredentials: {file: /x.csv}\n"), env)
	if err != nil || len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "never pulsed") {
		t.Fatalf("warnings %q, %v", cfg.Warnings, err)
	}
	// Install mode needs no key.
	if _, err := config.Parse([]byte(base+"panel: {protocol: osdp, osdp: {device: /dev/ttyUSB0, install_mode: true}}\ncredentials: {userinfo_field: badge}\n"), env); err != nil {
		t.Fatal(err)
	}
}
