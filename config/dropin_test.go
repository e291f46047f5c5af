package config_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kioskd/kioskd/config"
)

// fleetFiles writes a main file and drop-ins as a fleet installs them: the
// site's part, then the door's.
func fleetFiles(t *testing.T, main string, dropIns map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "kioskd.yaml")
	if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if dropIns != nil {
		if err := os.Mkdir(config.DropInDir(path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range dropIns {
		if err := os.WriteFile(filepath.Join(config.DropInDir(path), name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

const fleetMain = `device:
  source_id: unnamed
  mode: door
incode:
  base_url: https://api.incode.example
  live_timeout: 4s
camera:
  source: /dev/video0
  fps: 30
actuator:
  outputs:
    - {name: door, role: unlock, driver: log, pulse: 3s}
    - {name: green, role: pass, driver: log}
`

func TestDropInsMergeInOrder(t *testing.T) {
	path := fleetFiles(t, fleetMain, map[string]string{
		"10-site.yaml": `incode:
  base_url: https://site.incode.example
camera:
  fps: 15
`,
		"20-door.yaml": `device:
  source_id: lobby-door-7
camera:
  fps: 10
actuator:
  outputs:
    - {name: strike, role: unlock, driver: log, pulse: 5s}
`,
		// Not drop-ins: a package manager's leftover, an editor's backup, a
		// hidden file and a note.
		"20-door.yaml.dpkg-old": "device: {source_id: old}\n",
		"30-x.yaml~":            "device: {source_id: backup}\n",
		".40-hidden.yaml":       "device: {source_id: hidden}\n",
		"README":                "not yaml: [",
		// An empty drop-in (comments only) changes nothing.
		"50-empty.yaml": "# nothing here yet\n",
	})
	cfg, err := config.Load(path, secretEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Device.SourceID != "lobby-door-7" {
		t.Errorf("source_id = %q, want the door's drop-in", cfg.Device.SourceID)
	}
	if cfg.Incode.BaseURL != "https://site.incode.example" {
		t.Errorf("base_url = %q, want the site's drop-in", cfg.Incode.BaseURL)
	}
	if cfg.Camera.FPS != 10 {
		t.Errorf("fps = %v, want 10 (the later drop-in wins)", cfg.Camera.FPS)
	}
	// Sibling keys the drop-ins did not name are kept: mappings merge.
	if cfg.Camera.Source != "/dev/video0" || cfg.Incode.LiveTimeout.String() != "4s" || cfg.Device.Mode != "door" {
		t.Errorf("keys of the main file lost: source %q, live_timeout %v, mode %q", cfg.Camera.Source, cfg.Incode.LiveTimeout, cfg.Device.Mode)
	}
	// A list replaces the whole list.
	if len(cfg.Actuator.Outputs) != 1 || cfg.Actuator.Outputs[0].Name != "strike" {
		t.Errorf("outputs = %+v, want only the door's strike", cfg.Actuator.Outputs)
	}
	if cfg.Path != path {
		t.Errorf("Path = %q, want the main file", cfg.Path)
	}
}

func TestDropInProblemsNameTheFile(t *testing.T) {
	path := fleetFiles(t, fleetMain, map[string]string{
		"10-site.yaml": "camera:\n  fps: 15\n  colour: blue\n",
		"20-door.yaml": "- a list\n- not sections\n",
		"30-type.yaml": "queue:\n  max_items: lots\n",
	})
	_, err := config.Load(path, secretEnv())
	var p config.Problems
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want Problems", err)
	}
	all := strings.Join(p, "\n")
	for _, want := range []string{
		"10-site.yaml: line 3: field colour not found",
		"20-door.yaml: line 1: the top level must be sections",
		"30-type.yaml: line 2:",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems do not say %q:\n%s", want, all)
		}
	}
	for _, v := range secretValues {
		if strings.Contains(all, v) {
			t.Errorf("a problem shows a secret: %s", all)
		}
	}
}

func TestDropInValidationAfterMerge(t *testing.T) {
	// Each file is fine alone; the merge is checked as a whole.
	path := fleetFiles(t, fleetMain, map[string]string{"10-site.yaml": "device:\n  mode: turnstile\n"})
	_, err := config.Load(path, secretEnv())
	if err == nil || !strings.Contains(err.Error(), "device.mode") {
		t.Fatalf("err = %v, want a device.mode problem", err)
	}
}

func TestDropInDirectoryUnusable(t *testing.T) {
	path := fleetFiles(t, fleetMain, nil)
	// A file where the directory should be.
	if err := os.WriteFile(config.DropInDir(path), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path, secretEnv()); err == nil || !strings.Contains(err.Error(), "drop-ins") {
		t.Fatalf("err = %v, want a drop-ins error", err)
	}
	// A drop-in that is not a regular file (here a directory) is refused.
	path = fleetFiles(t, fleetMain, map[string]string{})
	if err := os.Mkdir(filepath.Join(config.DropInDir(path), "10-dir.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path, secretEnv()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v, want a not-a-regular-file problem", err)
	}
}

func TestSourcesAndAnnotatedPrint(t *testing.T) {
	path := fleetFiles(t, fleetMain, map[string]string{
		"10-site.yaml": "incode:\n  base_url: https://user:pw@site.incode.example/?token=abc\ncamera:\n  fps: 15\n",
		"20-door.yaml": "device:\n  source_id: lobby-door-7\nactuator:\n  outputs:\n    - {name: strike, role: unlock, driver: log, pulse: 5s}\n",
	})
	src, err := config.Sources(path)
	if err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(config.DropInDir(path), "10-site.yaml")
	door := filepath.Join(config.DropInDir(path), "20-door.yaml")
	for k, want := range map[string]string{
		"device.source_id": door + ":2",
		"device.mode":      path + ":3",
		"camera.fps":       site + ":4",
		"camera.source":    path + ":8",
		"actuator.outputs": door + ":4",
	} {
		if src[k] != want {
			t.Errorf("Sources[%s] = %q, want %q", k, src[k], want)
		}
	}
	if _, ok := src["capture.window"]; ok {
		t.Error("a value no file sets has a source")
	}
	cfg, err := config.Load(path, secretEnv())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := config.WriteAnnotated(&buf, cfg, src); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"source_id: lobby-door-7 # " + door + ":2",
		"fps: 15 # " + site + ":4",
		"window: 400ms # default",
		"outputs: # " + door + ":4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("print lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range append([]string{"pw@", "user:", "token=abc"}, secretValues...) {
		if strings.Contains(out, leak) {
			t.Errorf("print shows %q:\n%s", leak, out)
		}
	}
	// What is printed is the configuration kioskd runs with: loaded again
	// (with the URL that was redacted put back), it is the same.
	again := strings.Replace(out, "https://xxxxx@site.incode.example/?token=xxxxx", "https://user:pw@site.incode.example/?token=abc", 1)
	back, err := config.Parse([]byte(again), secretEnv())
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	// Compared in YAML form: an empty list printed as [] comes back as an
	// empty slice where the default was nil.
	a, _ := yaml.Marshal(back)
	b, _ := yaml.Marshal(cfg)
	if !bytes.Equal(a, b) {
		t.Errorf("printed config differs from the loaded one:\n%s\n%s", a, b)
	}
}

// FuzzDropIns: whatever a drop-in holds, Load never panics; a problem is
// one line; an accepted merge prints (check-config --print) and what is
// printed loads again to the same configuration.
func FuzzDropIns(f *testing.F) {
	f.Add([]byte("camera:\n  fps: 15\n"))
	f.Add([]byte("actuator:\n  outputs: []\n"))
	f.Add([]byte("device: ~\n"))
	f.Add([]byte("- 1\n"))
	f.Add([]byte("a: &a {b: *a}\n"))
	f.Add([]byte("device: &d {source_id: x}\nincode: *d\n"))
	f.Add([]byte("<<: {device: {source_id: x}}\n"))
	f.Add([]byte("camera:\n  fps: 15\n---\ncamera:\n  fps: 10\n"))
	f.Add([]byte("incode:\n  base_url: https://u:p@h.example/?t=1\n"))
	dir := f.TempDir()
	path := filepath.Join(dir, "kioskd.yaml")
	if err := os.WriteFile(path, []byte(fleetMain), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Mkdir(config.DropInDir(path), 0o755); err != nil {
		f.Fatal(err)
	}
	dropIn := filepath.Join(config.DropInDir(path), "10-x.yaml")
	env := secretEnv()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(dropIn, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, env)
		if err != nil {
			var p config.Problems
			if !errors.As(err, &p) {
				return // not a Problems: an I/O error, reported as such
			}
			for _, s := range p {
				if s == "" || strings.ContainsAny(s, "\r\n") {
					t.Fatalf("problem is not one line: %q", s)
				}
			}
			return
		}
		src, err := config.Sources(path)
		if err != nil {
			t.Fatalf("Load accepted what Sources refuses: %v", err)
		}
		var buf bytes.Buffer
		if err := config.WriteAnnotated(&buf, cfg, src); err != nil {
			t.Fatalf("print: %v", err)
		}
		if strings.Contains(cfg.Incode.BaseURL, "@") || strings.Contains(cfg.Incode.BaseURL, "?") {
			return // redacted in print: it does not load back the same
		}
		back, err := config.Parse(buf.Bytes(), env)
		if err != nil {
			t.Fatalf("printed config does not load: %v\n%s", err, buf.String())
		}
		a, _ := yaml.Marshal(back)
		b, _ := yaml.Marshal(cfg)
		if !bytes.Equal(a, b) {
			t.Fatalf("printed config loads differently:\n%s\n%s", a, b)
		}
	})
}
