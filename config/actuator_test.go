package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/kioskd/kioskd/config"
)

func TestOutputDefaults(t *testing.T) {
	cases := []struct {
		in    config.Output
		check func(config.Output) bool
		what  string
	}{
		{config.Output{Role: "pass", Driver: "log"}, func(o config.Output) bool { return o.Pulse == 2*time.Second }, "indicator pulse 2s"},
		{config.Output{Role: "fail", Driver: "log", Pulse: 500 * time.Millisecond}, func(o config.Output) bool { return o.Pulse == 500*time.Millisecond }, "explicit pulse kept"},
		{config.Output{Role: "unlock", Driver: "log"}, func(o config.Output) bool { return o.Pulse == 0 }, "unlock pulse never defaulted"},
		{config.Output{Role: "pass", Driver: "exec"}, func(o config.Output) bool { return o.Timeout == 2*time.Second }, "exec timeout 2s"},
		{config.Output{Role: "pass", Driver: "http"}, func(o config.Output) bool { return o.Timeout == time.Second && o.RetryCount() == 2 }, "http timeout 1s, 2 retries"},
		{config.Output{Role: "pass", Driver: "http", Retries: ptr(0)}, func(o config.Output) bool { return o.RetryCount() == 0 }, "retries: 0 kept"},
		{config.Output{Role: "buzzer", Driver: "gpio"}, func(o config.Output) bool {
			return slices.Equal(o.Pattern, config.DefaultPassPattern()) && slices.Equal(o.FailPattern, config.DefaultFailPattern())
		}, "buzzer patterns"},
	}
	for _, c := range cases {
		if got := c.in.WithDefaults(); !c.check(got) {
			t.Errorf("%s: WithDefaults(%+v) = %+v", c.what, c.in, got)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestActuatorAndDisplayProblems(t *testing.T) {
	cases := []struct {
		doc  string
		want string
	}{
		{"actuator:\n  outputs:\n    - {name: hook, role: pass, driver: exec, command: [door-hook]}\n", "must be an absolute path"},
		{"actuator:\n  outputs:\n    - {name: ctl, role: unlock, driver: http, url: 'ftp://x/door', pulse: 1s}\n", "is not an http(s) URL"},
		{"actuator:\n  outputs:\n    - {name: ctl, role: unlock, driver: http, url: 'http://x', pulse: 1s, retries: 11}\n", "retries: 11 is outside 0..10"},
		{"actuator:\n  outputs:\n    - {name: bz, role: buzzer, driver: log, pattern: [100ms, 0s]}\n", "pattern[1]"},
		{"actuator:\n  outputs:\n    - {name: bz, role: buzzer, driver: log, fail_pattern: [6s, 6s]}\n", "more than 10s"},
		{"actuator:\n  outputs:\n    - {name: red, role: fail, driver: log, pulse: 2m}\n", "at most 1m"},
		{"actuator:\n  outputs:\n    - {name: hook, role: pass, driver: exec, command: [/bin/true], timeout: 5m}\n", "longer than 1m"},
		{"actuator:\n  outputs:\n    - {name: d, role: unlock, driver: gpio, chip: gpiochip0, line: 5000, pulse: 1s}\n", "outside 0..1023"},
		{"display:\n  heartbeat: 100ms\n", "display.heartbeat"},
		{"display:\n  max_clients: 0\n", "display.max_clients"},
		{"display:\n  allowed_hosts: ['http://x/']\n", "display.allowed_hosts[0]"},
		{"display:\n  messages: {pass: ' '}\n", "display.messages.pass"},
		{"display:\n  language: French\n", "display.language"},
		{"display:\n  preview_fps: 20\n", "display.preview_fps"},
	}
	for _, c := range cases {
		_, err := config.Parse([]byte(merge(c.doc)), secretEnv())
		ps := problemsOf(t, err)
		if !containsProblem(ps, c.want) {
			t.Errorf("%q: problems %q, want one containing %q", c.doc, ps, c.want)
		}
	}

	good := "actuator:\n  outputs:\n" +
		"    - {name: door, role: unlock, driver: gpio, chip: gpiochip0, line: 17, active_low: true, pulse: 3s}\n" +
		"    - {name: ctl, role: unlock, driver: http, url: 'https://door.example/api', pulse: 3s, retries: 0}\n" +
		"    - {name: bz, role: buzzer, driver: gpio, chip: gpiochip0, line_name: BUZZER, pattern: [100ms], fail_pattern: [80ms, 80ms, 80ms]}\n" +
		"display:\n  language: es\n  heartbeat: 5s\n  max_clients: 4\n  allowed_hosts: [door1.example.org, 'screen.lan:9000']\n" +
		"  messages: {pass: Adelante}\n"
	cfg, err := config.Parse([]byte(merge(good)), secretEnv())
	if err != nil {
		t.Fatalf("valid actuator and display sections refused: %v", err)
	}
	if r := cfg.Actuator.Outputs[1].Retries; r == nil || *r != 0 {
		t.Errorf("retries: 0 not decoded: %v", r)
	}
	if cfg.Display.Heartbeat != 5*time.Second || cfg.Display.MaxClients != 4 {
		t.Errorf("display settings not decoded: %+v", cfg.Display)
	}
	d := config.Default().Display
	if d.Heartbeat != 15*time.Second || d.MaxClients != 16 || d.Listen != "127.0.0.1:8088" || !d.Preview {
		t.Errorf("display defaults = %+v", d)
	}
}
