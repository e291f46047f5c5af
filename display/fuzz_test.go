package display_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/display"
)

// FuzzCustomDir: whatever an integrator puts in messages.fr.yaml and
// colors.yaml, New answers with a display or an error, never a panic, and
// an accepted colour file cannot put anything but colours in the page's
// stylesheet.
func FuzzCustomDir(f *testing.F) {
	f.Add([]byte("pass: \"Salut\"\n"), []byte("pass: \"#00ff00\"\n"))
	f.Add([]byte("pass: [a, b]\n"), []byte("pass: \"red; }\"\n"))
	f.Add([]byte("&a [*a]"), []byte("- x"))
	f.Add([]byte("lockout: \"{time}{time}{name}\"\n"), []byte(""))
	f.Fuzz(func(t *testing.T, msgs, colors []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "messages.fr.yaml"), msgs, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "colors.yaml"), colors, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Language = "fr"
		cfg.CustomDir = dir
		s, err := display.New(cfg, discard(), prometheus.NewRegistry())
		if err != nil {
			return
		}
		rec := get(t, s.Handler(), "/", "localhost")
		if rec.Code != 200 {
			t.Fatalf("page = %d with an accepted custom_dir", rec.Code)
		}
		if body := rec.Body.String(); strings.Count(body, "</style>") != 1 || strings.Count(body, "<script") != 1 {
			t.Fatalf("an accepted colors.yaml %q broke out of the stylesheet", colors)
		}
	})
}
