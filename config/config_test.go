package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kioskd/kioskd/config"
)

// Secret values used throughout: every Problems and Warnings string produced
// by these tests is checked not to contain them.
const (
	apiKey     = "sk-live-APIKEY-9f8e7d6c5b4a"
	hardwareID = "hwid-DEVICETOKEN-0a1b2c3d"
	queueKey   = "5ec7e7ab00112233445566778899aabbccddeeff5ec7e7ab0011223344556677" // 32 bytes in hex
)

var secretValues = []string{apiKey, hardwareID, queueKey}

// envOf returns an Env backed by a map, so no test touches the real
// environment.
func envOf(kv map[string]string) config.Env {
	return func(k string) string { return kv[k] }
}

// secretEnv provides both required secrets through the environment.
func secretEnv() config.Env {
	return envOf(map[string]string{"KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID})
}

const minimalYAML = `
device:
  source_id: lobby-door-1
incode:
  base_url: https://api.incode.example
camera:
  source: testdata/clip.avi
`

func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; tests depend on the exact mode.
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// problemsOf returns the Problems in err, failing the test when err is some
// other kind of error.
func problemsOf(t *testing.T, err error) config.Problems {
	t.Helper()
	if err == nil {
		return nil
	}
	var p config.Problems
	if !errors.As(err, &p) {
		t.Fatalf("error %v (%T) is not a config.Problems", err, err)
	}
	return p
}

// assertNoSecrets checks that no secret value leaks into what is printed
// about a configuration.
func assertNoSecrets(t *testing.T, cfg *config.Config, err error) {
	t.Helper()
	var lines []string
	if err != nil {
		lines = append(lines, err.Error())
	}
	if cfg != nil {
		lines = append(lines, cfg.Warnings...)
	}
	for _, l := range lines {
		for _, s := range secretValues {
			if strings.Contains(l, s) {
				t.Errorf("secret value leaked into %q", l)
			}
		}
	}
}

func containsProblem(ps []string, substrs ...string) bool {
	for _, p := range ps {
		all := true
		for _, s := range substrs {
			if !strings.Contains(p, s) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func TestParseMinimalAppliesDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(minimalYAML), secretEnv())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	def := config.Default()
	if cfg.Device.SourceID != "lobby-door-1" || cfg.Incode.BaseURL != "https://api.incode.example" || cfg.Camera.Source != "testdata/clip.avi" {
		t.Errorf("values from the file not applied: %+v %+v %+v", cfg.Device, cfg.Incode, cfg.Camera)
	}
	if cfg.Device.Mode != config.ModeDoor {
		t.Errorf("device.mode = %q, want the default %q", cfg.Device.Mode, config.ModeDoor)
	}
	if cfg.Incode.LiveTimeout != def.Incode.LiveTimeout || cfg.Incode.LiveTimeout <= 0 {
		t.Errorf("incode.live_timeout = %s, want default %s", cfg.Incode.LiveTimeout, def.Incode.LiveTimeout)
	}
	if cfg.Camera.FPS != def.Camera.FPS || cfg.Queue.MaxBytes != def.Queue.MaxBytes || cfg.Capture.Cascade != def.Capture.Cascade {
		t.Errorf("defaults not kept for keys the file does not set")
	}
	if cfg.Metrics.Listen == "" || !strings.HasPrefix(cfg.Metrics.Listen, "127.0.0.1:") {
		t.Errorf("metrics.listen = %q, want a loopback default", cfg.Metrics.Listen)
	}
	if cfg.Incode.APIKey != apiKey || cfg.Incode.HardwareID != hardwareID {
		t.Errorf("secrets from the environment not resolved")
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("unexpected warnings: %q", cfg.Warnings)
	}
	if p := cfg.Validate(); len(p) != 0 {
		t.Errorf("a parsed config does not validate again: %v", p)
	}
}

// TestParseDesignSample decodes the sample from DESIGN.md (with secret paths
// pointing at real files) and checks that each value lands in its field.
func TestParseDesignSample(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "api-key", apiKey+"\n", 0o600)
	hwFile := writeFile(t, dir, "hardware-id", hardwareID+"\n", 0o600)
	doc := `
device:
  source_id: lobby-door-1        # sent as "source"
  mode: attendance
incode:
  base_url: https://INCODE_HOST
  api_key_file: ` + keyFile + `
  hardware_id_file: ` + hwFile + `
  live_timeout: 4s
camera:
  source: /dev/video0
  width: 1280
  height: 720
  fps: 30
  loop: false
  realtime: true
capture:
  cascade: /usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml
  min_face_px: 120
  window: 400ms
  cooldown: 3s
queue:
  path: /var/lib/kioskd/queue.db
  max_items: 1000
  max_bytes: 512MiB
  ttl: 24h
actuator:
  outputs:
    - {name: door, role: unlock, driver: gpio, chip: gpiochip0, line: 17, pulse: 3s}
    - {name: hook, role: unlock, driver: exec, command: [/usr/local/bin/door-hook, --door, "1"], timeout: 2s, pulse: 1s}
    - {name: green, role: pass, driver: log}
display:
  listen: 127.0.0.1:8088
  language: en
metrics:
  listen: 127.0.0.1:9108
log:
  level: info
  format: json
`
	// The environment must lose against the files.
	env := envOf(map[string]string{"KIOSKD_API_KEY": "from-env", "KIOSKD_HARDWARE_ID": "from-env"})
	cfg, err := config.Parse([]byte(doc), env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	assertNoSecrets(t, cfg, err)
	if cfg.Device.Mode != config.ModeAttendance || !cfg.Camera.Realtime || cfg.Camera.Loop {
		t.Errorf("device/camera values not applied: %+v %+v", cfg.Device, cfg.Camera)
	}
	if cfg.Incode.LiveTimeout != 4*time.Second || cfg.Capture.Window != 400*time.Millisecond || cfg.Queue.TTL != 24*time.Hour {
		t.Errorf("durations not decoded: %s %s %s", cfg.Incode.LiveTimeout, cfg.Capture.Window, cfg.Queue.TTL)
	}
	if cfg.Queue.MaxBytes != 512<<20 {
		t.Errorf("queue.max_bytes = %d, want %d", cfg.Queue.MaxBytes, 512<<20)
	}
	outs := cfg.Actuator.Outputs
	if len(outs) != 3 {
		t.Fatalf("got %d outputs, want 3", len(outs))
	}
	if outs[0].Line == nil || *outs[0].Line != 17 || outs[0].Chip != "gpiochip0" || outs[0].Pulse != 3*time.Second {
		t.Errorf("gpio output not decoded: %+v", outs[0])
	}
	if strings.Join(outs[1].Command, " ") != "/usr/local/bin/door-hook --door 1" || outs[1].Timeout != 2*time.Second {
		t.Errorf("exec output not decoded: %+v", outs[1])
	}
	if cfg.Incode.APIKey != apiKey || cfg.Incode.HardwareID != hardwareID {
		t.Errorf("secrets: files must win over the environment")
	}
}

func TestLoadSetsPathAndReportsMissingFile(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "kioskd.yaml", minimalYAML, 0o600)
	cfg, err := config.Load(p, secretEnv())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Path != p {
		t.Errorf("Path = %q, want %q", cfg.Path, p)
	}
	_, err = config.Load(filepath.Join(dir, "missing.yaml"), secretEnv())
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: err = %v, want one wrapping os.ErrNotExist", err)
	}
}

// TestThreeMistakesAllReported: one unknown key, one value of the wrong type
// and one invalid value are all listed, each once.
func TestThreeMistakesAllReported(t *testing.T) {
	doc := `
device:
  source_id: lobby-door-1
  mode: turnstile
incode:
  base_url: https://api.incode.example
  live_timout: 4s
camera:
  source: /dev/video0
  fps: fast
`
	cfg, err := config.Parse([]byte(doc), secretEnv())
	ps := problemsOf(t, err)
	if len(ps) != 3 {
		t.Fatalf("got %d problems, want 3:\n%s", len(ps), ps)
	}
	if !containsProblem(ps, "line 7", "live_timout") {
		t.Errorf("unknown key not reported with its line: %q", ps)
	}
	if !containsProblem(ps, "line 10", "fast") {
		t.Errorf("wrong type not reported with its line: %q", ps)
	}
	if !containsProblem(ps, "device.mode", "turnstile") {
		t.Errorf("invalid mode not reported: %q", ps)
	}
	for _, p := range ps {
		if strings.ContainsAny(p, "\r\n") {
			t.Errorf("problem spans lines: %q", p)
		}
	}
	assertNoSecrets(t, cfg, err)
}

// TestBadSizeDoesNotHideOtherProblems: a size that does not parse is one
// problem among others, not the end of decoding.
func TestBadSizeDoesNotHideOtherProblems(t *testing.T) {
	doc := `
device:
  source_id: x
  colour: blue
incode:
  base_url: https://api.incode.example
queue:
  max_bytes: lots
camera:
  source: "0"
  width: -5
`
	_, err := config.Parse([]byte(doc), secretEnv())
	ps := problemsOf(t, err)
	if !containsProblem(ps, "line 4", "colour") {
		t.Errorf("unknown key lost: %q", ps)
	}
	if !containsProblem(ps, "line 8", "lots") {
		t.Errorf("bad size not reported with its line: %q", ps)
	}
	if !containsProblem(ps, "camera.width") {
		t.Errorf("validation problem lost after a bad size: %q", ps)
	}
}

func TestUnknownKeysHaveLineNumbers(t *testing.T) {
	doc := `device:
  source_id: x
  sourceid: y
incode:
  base_url: https://api.incode.example
  api_key: do-not-put-keys-here
camerra:
  source: /dev/video0
actuator:
  outputs:
    - {name: door, role: unlock, driver: log, pulse: 1s, pin: 4}
`
	_, err := config.Parse([]byte(doc), secretEnv())
	ps := problemsOf(t, err)
	for _, want := range []struct{ line, key string }{
		{"line 3", "sourceid"},
		{"line 6", "api_key"},
		{"line 7", "camerra"},
		{"line 11", "pin"},
	} {
		if !containsProblem(ps, want.line, want.key) {
			t.Errorf("unknown key %s not reported at %s: %q", want.key, want.line, ps)
		}
	}
	// The value of an unknown key may be a secret pasted in the wrong place.
	if containsProblem(ps, "do-not-put-keys-here") {
		t.Errorf("value of an unknown key echoed: %q", ps)
	}
}

func TestSyntaxErrorIsAProblem(t *testing.T) {
	cfg, err := config.Parse([]byte("device:\n  source_id: [unclosed\n"), secretEnv())
	ps := problemsOf(t, err)
	if len(ps) == 0 {
		t.Fatalf("no problem for broken YAML (cfg %+v)", cfg)
	}
	if !containsProblem(ps, "yaml") {
		t.Errorf("syntax problem does not say yaml: %q", ps)
	}
}

func TestEmptyFileNamesRequiredKeys(t *testing.T) {
	_, err := config.Parse(nil, envOf(nil))
	ps := problemsOf(t, err)
	for _, want := range []string{"device.source_id", "incode.base_url", "incode.api_key_file", "incode.hardware_id_file"} {
		if !containsProblem(ps, want) {
			t.Errorf("empty file: %s not reported as missing: %q", want, ps)
		}
	}
}

func TestMoreThanOneDocumentIsAProblem(t *testing.T) {
	doc := minimalYAML + "---\ndevice:\n  source_id: other-door\n"
	_, err := config.Parse([]byte(doc), secretEnv())
	if ps := problemsOf(t, err); !containsProblem(ps, "document") {
		t.Errorf("a second YAML document was silently ignored: %q", ps)
	}
}

func TestByteSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want config.ByteSize
		ok   bool
	}{
		{"1048576", 1 << 20, true},
		{"512MiB", 512 << 20, true},
		{"1.5GB", 1_500_000_000, true},
		{"64 KiB", 64 << 10, true},
		{"10B", 10, true},
		{"-1MiB", 0, false},
		{"lots", 0, false},
		{"", 0, false},
		{"NaN", 0, false},
		{"nanMiB", 0, false},
		{"Inf", 0, false},
		{"2000000GiB", 0, false},
		{"5 PB", 0, false},
	} {
		got, err := config.ParseByteSize(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestLargeFileIsRefused: a file over 1 MiB is refused before it is decoded
// (a YAML file that large, or one of aliases, costs far more memory than its
// size), and one just under the limit is still read.
func TestLargeFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	pad := "\n# " + strings.Repeat("x", 1000)
	big := minimalYAML + strings.Repeat(pad, config.MaxFileSize/len(pad)+1)
	p := writeFile(t, dir, "big.yaml", big, 0o600)
	_, err := config.Load(p, secretEnv())
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("Load of a %d-byte file: err = %v, want a size error", len(big), err)
	}
	fits := minimalYAML + strings.Repeat(pad, (config.MaxFileSize-len(minimalYAML))/len(pad)-1)
	p = writeFile(t, dir, "fits.yaml", fits, 0o600)
	if _, err := config.Load(p, secretEnv()); err != nil {
		t.Fatalf("Load of a %d-byte file: %v", len(fits), err)
	}
}

// TestRenamedAttemptCapKeys: a configuration written for the earlier cap,
// which counted every attempt, still loads; check-config says what the
// keys now mean, and their values move to the new keys.
func TestRenamedAttemptCapKeys(t *testing.T) {
	cfg, err := config.Parse([]byte("device: {source_id: d}\nincode: {base_url: 'http://127.0.0.1:1'}\ncapture:\n  max_attempts: 7\n  attempt_window: 2m\n"), secretEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Capture.MaxFailures != 7 || cfg.Capture.FailureWindow != 2*time.Minute {
		t.Errorf("max_failures %d, failure_window %s: the old values were not moved", cfg.Capture.MaxFailures, cfg.Capture.FailureWindow)
	}
	all := strings.Join(cfg.Warnings, "\n")
	for _, want := range []string{"capture.max_attempts: renamed capture.max_failures", "faceMatchFailed, spoofAttempt", "capture.attempt_window: renamed capture.failure_window"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}
