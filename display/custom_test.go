package display_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/display"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCustomDir(t *testing.T) {
	// A complete new language: every key of the English catalog.
	var it strings.Builder
	for _, k := range display.MessageKeys() {
		it.WriteString(k + ": \"IT " + k + "\"\n")
	}
	dir := writeFiles(t, map[string]string{
		"messages.it.yaml": it.String(),
		"messages.en.yaml": "pass: \"Hello, come in\"\n",
		"logo.svg":         `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="red"/></svg>`,
		"colors.yaml":      "pass: \"#0000ff\"\nguide: \"#202020\"\n",
	})
	cfg := testConfig()
	cfg.CustomDir = dir
	s := newServer(t, cfg)
	h := s.Handler()
	s.Publish(display.Update{State: display.StatePass})
	rec := get(t, h, "/", "localhost")
	body := rec.Body.String()
	if !strings.Contains(body, "Hello, come in") {
		t.Errorf("the override of pass is not shown")
	}
	if !strings.Contains(body, `src="/logo"`) {
		t.Errorf("the page does not show the logo")
	}
	// A dark custom colour gets white text, a light one black.
	if !strings.Contains(body, "--c-guide: #202020; --k-guide: #ffffff;") || !strings.Contains(body, "--c-pass: #0000ff; --k-pass: #ffffff;") {
		t.Errorf("custom colours not in the stylesheet")
	}
	if logo := get(t, h, "/logo", "localhost"); logo.Code != http.StatusOK || logo.Header().Get("Content-Type") != "image/svg+xml" {
		t.Errorf("GET /logo = %d %q", logo.Code, logo.Header().Get("Content-Type"))
	}
	if err := s.SetMessages("it", nil); err != nil {
		t.Fatalf("the added language is refused: %v", err)
	}
	if body := get(t, h, "/", "localhost").Body.String(); !strings.Contains(body, "IT pass") || !strings.Contains(body, `lang="it"`) {
		t.Errorf("the added language is not shown")
	}

	for name, c := range map[string]struct {
		files map[string]string
		want  []string
	}{
		"incomplete new language": {map[string]string{"messages.it.yaml": "ready: x\n"}, []string{`missing key "checking"`, `missing key "pass"`}},
		"unknown key":             {map[string]string{"messages.fr.yaml": "pass: x\npas: y\n"}, []string{`unknown key "pas"`}},
		"empty text":              {map[string]string{"messages.fr.yaml": "pass: \" \"\n"}, []string{"pass: empty message"}},
		"placeholder":             {map[string]string{"messages.fr.yaml": "pass: \"Salut {name}\"\n"}, []string{"{name} has no value here"}},
		"not a map":               {map[string]string{"messages.fr.yaml": "- a\n- b\n"}, []string{"not a map of message texts"}},
		"duplicate key":           {map[string]string{"messages.fr.yaml": "pass: a\npass: b\n"}, []string{"not a map"}},
		"bad language name":       {map[string]string{"messages.French.yaml": "pass: a\n"}, []string{"not a language code"}},
		"bad colour":              {map[string]string{"colors.yaml": "pass: \"red; background: url(x)\"\n"}, []string{"is not a colour"}},
		"unknown tone":            {map[string]string{"colors.yaml": "passed: \"#00ff00\"\n"}, []string{`unknown tone "passed"`}},
		"not a png":               {map[string]string{"logo.png": "GIF89a"}, []string{"is not a PNG"}},
	} {
		cfg := testConfig()
		cfg.CustomDir = writeFiles(t, c.files)
		_, err := display.New(cfg, discard(), prometheus.NewRegistry())
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", name, err, w)
			}
		}
	}
	cfg.CustomDir = filepath.Join(t.TempDir(), "missing")
	if _, err := display.New(cfg, discard(), prometheus.NewRegistry()); err == nil {
		t.Errorf("a missing custom_dir is accepted")
	}
}

func TestBadgeWording(t *testing.T) {
	for _, c := range []struct {
		badge bool
		state display.State
		want  string
	}{
		{false, display.StateOffline, "Offline — please call reception"},
		{true, display.StateOffline, "Offline — please use your badge"},
		{false, display.StateCameraDown, "Camera unavailable — please call reception"},
		{true, display.StateCameraDown, "Camera unavailable — use your badge or call reception"},
	} {
		cfg := testConfig()
		cfg.BadgeReader = c.badge
		s := newServer(t, cfg)
		s.Publish(display.Update{State: c.state})
		if body := get(t, s.Handler(), "/", "localhost").Body.String(); !strings.Contains(body, c.want) {
			t.Errorf("badge_reader %v, %s: page lacks %q", c.badge, c.state, c.want)
		}
	}
	// Without a badge reader no built-in text mentions a badge.
	for _, lang := range display.Languages() {
		cfg := testConfig()
		cfg.Language = lang
		s := newServer(t, cfg)
		for _, st := range display.States() {
			for _, reason := range []string{"", "faceMatchFailed", "spoofAttempt", "hasFaceMask"} {
				s.Publish(display.Update{State: st, Reason: reason})
				body := strings.ToLower(get(t, s.Handler(), "/", "localhost").Body.String())
				for _, badge := range []string{"badge", "tarjeta", "ausweis", "cartão"} {
					if strings.Contains(body, badge) {
						t.Errorf("%s %s/%s mentions %q without a badge reader", lang, st, reason, badge)
					}
				}
			}
		}
	}
	// Overriding the plain text also replaces its badge variant.
	cfg := testConfig()
	cfg.BadgeReader = true
	cfg.Messages = map[string]string{"offline": "Offline — knock on the door"}
	s := newServer(t, cfg)
	s.Publish(display.Update{State: display.StateOffline})
	if body := get(t, s.Handler(), "/", "localhost").Body.String(); !strings.Contains(body, "knock on the door") {
		t.Errorf("an override of offline does not win over offline+badge")
	}
}
