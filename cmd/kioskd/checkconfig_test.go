package main_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildKioskdForCheckConfig builds this command into dir and returns the
// binary's path.
func buildKioskdForCheckConfig(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go" // where install-deps puts Go
	}
	bin := filepath.Join(dir, "kioskd")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type checkConfigResult struct {
	code           int
	stdout, stderr string
}

func runCheckConfig(t *testing.T, bin, path string, env ...string) checkConfigResult {
	t.Helper()
	cmd := exec.Command(bin, "check-config", "--config", path)
	// Only what the test gives: no secrets or credentials from the caller.
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	return checkConfigResult{code, stdout.String(), stderr.String()}
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

const (
	ccAPIKey     = "sk-live-CHECKCONFIG-KEY-31337"
	ccHardwareID = "hw-CHECKCONFIG-TOKEN-4242"
)

func TestCheckConfigBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildKioskdForCheckConfig(t, dir)
	secrets := []string{"KIOSKD_API_KEY=" + ccAPIKey, "KIOSKD_HARDWARE_ID=" + ccHardwareID}
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noSecrets := func(t *testing.T, r checkConfigResult) {
		t.Helper()
		for _, s := range []string{ccAPIKey, ccHardwareID} {
			if strings.Contains(r.stdout+r.stderr, s) {
				t.Errorf("secret printed:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
			}
		}
	}

	t.Run("valid file exits 0", func(t *testing.T) {
		p := write("good.yaml", `
device:
  source_id: lobby-door-1
incode:
  base_url: https://api.incode.example
camera:
  source: /dev/video0
actuator:
  outputs:
    - {name: door, role: unlock, driver: log, pulse: 3s}
`, 0o644)
		r := runCheckConfig(t, bin, p, secrets...)
		noSecrets(t, r)
		if r.code != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
		if r.stderr != "" {
			t.Errorf("stderr not empty: %q", r.stderr)
		}
		if !strings.Contains(r.stdout, p) || !strings.Contains(r.stdout, "ok") {
			t.Errorf("stdout %q does not say the file is ok", r.stdout)
		}
	})

	t.Run("the shipped sample is valid", func(t *testing.T) {
		r := runCheckConfig(t, bin, filepath.Join("..", "..", "systemd", "kioskd.yaml"), secrets...)
		noSecrets(t, r)
		if r.code != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
	})

	t.Run("the credentials file is checked row by row", func(t *testing.T) {
		csv := write("credentials.csv", "identity,facility,card\nver-1,12,34567\nver-2,300,1\nver-1,1,1\n", 0o600)
		key := write("scbk", "000102030405060708090a0b0c0d0e0f\n", 0o600)
		p := write("panel.yaml", `
device:
  source_id: lobby-door-1
  state_dir: `+dir+`/state
incode:
  base_url: https://api.incode.example
camera:
  source: /dev/video0
panel:
  protocol: osdp
  osdp: {device: /dev/ttyUSB0, scbk_file: `+key+`}
credentials:
  file: `+csv+`
`, 0o644)
		r := runCheckConfig(t, bin, p, secrets...)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
		}
		got := lines(r.stderr)
		if len(got) != 2 || !strings.Contains(got[0], "line 3: facility 300") || !strings.Contains(got[1], `line 4: identity "ver-1" already on line 2`) {
			t.Fatalf("stderr:\n%s", r.stderr)
		}
		if strings.Contains(r.stderr, "0001020304") {
			t.Fatal("the SCBK was printed")
		}
		write("credentials.csv", "identity,facility,card\nver-1,12,34567\n", 0o600)
		if r := runCheckConfig(t, bin, p, secrets...); r.code != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
		write("scbk", "not hex", 0o600)
		if r := runCheckConfig(t, bin, p, secrets...); r.code != 2 || !strings.Contains(r.stderr, "panel.osdp.scbk_file: the key is not 32 hex digits") || strings.Contains(r.stderr, "not hex") {
			t.Fatalf("bad SCBK: exit %d; stderr:\n%s", r.code, r.stderr)
		}
	})

	t.Run("three mistakes exit 2 with one line each", func(t *testing.T) {
		p := write("bad.yaml", `
device:
  source_id: lobby-door-1
  mode: turnstile
incode:
  base_url: https://api.incode.example
  live_timout: 4s
camera:
  source: /dev/video0
  fps: fast
`, 0o644)
		r := runCheckConfig(t, bin, p, secrets...)
		noSecrets(t, r)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
		}
		got := lines(r.stderr)
		if len(got) != 3 {
			t.Fatalf("got %d lines on stderr, want 3:\n%s", len(got), r.stderr)
		}
		for i, want := range []string{"device.mode", "live_timout", "fast"} {
			found := false
			for _, l := range got {
				if strings.Contains(l, want) {
					found = true
				}
			}
			if !found {
				t.Errorf("mistake %d (%s) not reported:\n%s", i+1, want, r.stderr)
			}
		}
		for _, l := range got {
			if !strings.HasPrefix(l, p+": ") {
				t.Errorf("line %q does not start with the file name", l)
			}
		}
		if r.stdout != "" {
			t.Errorf("stdout not empty: %q", r.stdout)
		}
	})

	t.Run("a catalog with a missing or unknown key exits 2 naming each", func(t *testing.T) {
		custom := filepath.Join(dir, "screen")
		if err := os.MkdirAll(custom, 0o755); err != nil {
			t.Fatal(err)
		}
		// A new language must have every key; a built-in one may override
		// a few, but only keys that exist.
		write(filepath.Join("screen", "messages.it.yaml"), "ready: \"Guardi lo schermo\"\n", 0o644)
		write(filepath.Join("screen", "messages.fr.yaml"), "pass: \"Bonjour\"\npas: \"x\"\n", 0o644)
		p := write("catalog.yaml", "device:\n  source_id: d\nincode:\n  base_url: https://api.incode.example\n"+
			"display:\n  language: it\n  custom_dir: "+custom+"\n", 0o644)
		r := runCheckConfig(t, bin, p, secrets...)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
		}
		for _, want := range []string{`messages.it.yaml: missing key "checking"`, `messages.fr.yaml: unknown key "pas"`} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		for _, l := range lines(r.stderr) {
			if !strings.HasPrefix(l, p+": ") {
				t.Errorf("line %q does not start with the file name", l)
			}
		}
	})

	t.Run("missing secrets are problems, not crashes", func(t *testing.T) {
		p := write("nosecrets.yaml", "device:\n  source_id: d\nincode:\n  base_url: https://api.incode.example\n", 0o644)
		r := runCheckConfig(t, bin, p) // no environment secrets
		if r.code != 2 {
			t.Fatalf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
		}
		if got := lines(r.stderr); len(got) != 2 || !strings.Contains(r.stderr, "KIOSKD_API_KEY") || !strings.Contains(r.stderr, "KIOSKD_HARDWARE_ID") {
			t.Errorf("want one line for each missing secret:\n%s", r.stderr)
		}
	})

	t.Run("world-readable secret warns and exits 0", func(t *testing.T) {
		key := write("api-key", ccAPIKey+"\n", 0o644)
		p := write("warn.yaml", "device:\n  source_id: d\nincode:\n  base_url: https://api.incode.example\n  api_key_file: "+key+"\n", 0o644)
		r := runCheckConfig(t, bin, p, "KIOSKD_HARDWARE_ID="+ccHardwareID)
		noSecrets(t, r)
		if r.code != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
		if got := lines(r.stderr); len(got) != 1 || !strings.Contains(got[0], "warning") || !strings.Contains(got[0], key) {
			t.Errorf("want one warning naming %s:\n%s", key, r.stderr)
		}
	})

	t.Run("unreadable or broken files exit 2", func(t *testing.T) {
		for _, p := range []string{
			filepath.Join(dir, "does-not-exist.yaml"),
			write("syntax.yaml", "device:\n  source_id: [unclosed\n", 0o644),
			dir, // a directory
		} {
			r := runCheckConfig(t, bin, p, secrets...)
			if r.code != 2 || len(lines(r.stderr)) != 1 {
				t.Errorf("%s: exit %d with stderr %q; want 2 and one line", p, r.code, r.stderr)
			}
		}
	})
}
