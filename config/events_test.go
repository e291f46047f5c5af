package config_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskd/kioskd/config"
)

func TestEventsDefaultsAndPath(t *testing.T) {
	cfg, err := config.Parse([]byte(minimalYAML), secretEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Events.Retention != 720*time.Hour || cfg.Events.MaxEvents != 100000 || cfg.Events.MaxBytes != 64<<20 {
		t.Errorf("defaults: %+v", cfg.Events)
	}
	if got := cfg.EventsPath(); got != "/var/lib/kioskd/events.db" {
		t.Errorf("EventsPath() = %q", got)
	}
	s := config.EventSink{Type: "mqtt", URL: "mqtt://b:1883"}.WithDefaults(2)
	if s.Name != "mqtt-2" || s.Topic != "kioskd/{source_id}/events" || s.AvailabilityTopic != "kioskd/{source_id}/availability" || s.BatchSize != 100 {
		t.Errorf("sink defaults: %+v", s)
	}
}

func TestEventsSinksAndInputsValidate(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "mqtt-password", "s3cret-broker-pw\n", 0o600)
	yml := minimalYAML + `
events:
  retention: 0s
  max_events: 0
  max_bytes: 10KiB
  sinks:
    - {type: mqtt, url: "mqtt://broker:1883", topic: "doors/#", password_file: ` + pw + `}
    - {type: mqtt, url: "http://broker:1883"}
    - {type: http, url: "http://siem.example.net/events"}
    - {type: http, url: "http://127.0.0.1:9000/events", name: mqtt-0}
    - {type: kafka, url: "kafka://x:1"}
    - {type: http, url: "https://x/e", batch_size: 5000, cert_file: /c.pem}
actuator:
  held_open: 0s
  outputs:
    - {name: door, role: unlock, driver: log, pulse: 3s}
  inputs:
    - {name: door, role: door_position, driver: gpio, chip: gpiochip0, line: 3}
    - {name: rex, role: exit_button, driver: exec, line: 4, line_name: X}
    - {name: rex2, role: door_position, driver: gpio, chip: gpiochip0, debounce: 5s}
`
	cfg, err := config.Parse([]byte(yml), secretEnv())
	got := strings.Join(problemsOf(t, err), "\n")
	for _, want := range []string{
		"events.retention: must be a positive duration",
		"events.max_events: must be at least 1",
		"events.max_bytes: must be at least 1MiB",
		`events.sinks[0].topic: "doors/#" is not an MQTT topic`,
		`events.sinks[1].url: "http://broker:1883" must be mqtt://host:port or mqtts://host:port`,
		`events.sinks[2].url: "http://siem.example.net/events" sends events unencrypted`,
		`events.sinks[3].name: "mqtt-0" is used twice`,
		`events.sinks[4].type: "kafka" is not mqtt or http`,
		"events.sinks[5].batch_size: 5000 is outside 1..1000",
		"events.sinks[5]: cert_file and key_file go together",
		`actuator.inputs[0].name: "door" is used twice`,
		`actuator.inputs[1].role: "exit_button" is not door_position or exit_request`,
		`actuator.inputs[1].driver: "exec" is not gpio`,
		"actuator.inputs[1].chip: required",
		"actuator.inputs[1]: give line or line_name",
		"actuator.inputs[2].role: a second door_position input",
		"actuator.inputs[2].debounce: 5s is outside 0..1s",
		"actuator.held_open: 0s is outside 1s..1h",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing problem %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "s3cret-broker-pw") {
		t.Error("a problem shows the broker password")
	}
	if cfg.Events.Sinks[0].Password != "s3cret-broker-pw" {
		t.Error("password_file not read")
	}
	if p := (&config.Config{Device: config.Device{StateDir: ""}}).EventsPath(); p != "" {
		t.Errorf("no state dir, no path: got %q", p)
	}
	if p := (&config.Config{Events: config.Events{Path: filepath.Join(dir, "e.db")}}).EventsPath(); p != filepath.Join(dir, "e.db") {
		t.Errorf("explicit path: got %q", p)
	}
}
