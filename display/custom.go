package display

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// custom is what an integrator put in display.custom_dir besides message
// catalogs: a logo and the colours of the tones.
type custom struct {
	logo     []byte
	logoType string
	colors   map[string]string // tone -> #rrggbb
}

const maxLogoBytes = 1 << 20

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// loadCustom reads logo.svg or logo.png and colors.yaml from dir; missing
// files are fine, bad ones are errors.
func loadCustom(dir string) (custom, error) {
	var c custom
	if dir == "" {
		return c, nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return c, fmt.Errorf("custom_dir: %w", err)
	}
	if !st.IsDir() {
		return c, fmt.Errorf("custom_dir: %s is not a directory", dir)
	}
	var errs []error
	for _, l := range []struct{ name, typ string }{{"logo.svg", "image/svg+xml"}, {"logo.png", "image/png"}} {
		path := filepath.Join(dir, l.name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		b, err := readSmall(path, maxLogoBytes)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if l.typ == "image/png" && !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			errs = append(errs, fmt.Errorf("custom_dir: %s is not a PNG", path))
			break
		}
		if l.typ == "image/svg+xml" && !bytes.Contains(b, []byte("<svg")) {
			errs = append(errs, fmt.Errorf("custom_dir: %s is not an SVG", path))
			break
		}
		c.logo, c.logoType = b, l.typ
		break
	}
	path := filepath.Join(dir, "colors.yaml")
	if _, err := os.Stat(path); err == nil {
		b, err := readSmall(path, 64<<10)
		if err != nil {
			errs = append(errs, err)
		} else {
			var m map[string]string
			dec := yaml.NewDecoder(bytes.NewReader(b))
			if err := dec.Decode(&m); err != nil {
				errs = append(errs, fmt.Errorf("%s: not a map of tone: \"#rrggbb\": %w", path, err))
			}
			for _, k := range sortedKeys(m) {
				if !slices.Contains(tones, k) {
					errs = append(errs, fmt.Errorf("%s: unknown tone %q (known: %s)", path, k, strings.Join(tones, ", ")))
				} else if !hexColor.MatchString(m[k]) {
					errs = append(errs, fmt.Errorf("%s: %s: %q is not a colour like #00a651", path, k, m[k]))
				}
			}
			c.colors = m
		}
	}
	if len(errs) > 0 {
		return custom{}, errors.Join(errs...)
	}
	return c, nil
}

// colorCSS sets the custom properties the page's stylesheet reads; the
// values were checked against hexColor, so they cannot break out of CSS.
func (c custom) colorCSS() string {
	if len(c.colors) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(":root {")
	for _, k := range sortedKeys(c.colors) {
		fmt.Fprintf(&b, " --c-%s: %s; --k-%s: %s;", k, strings.ToLower(c.colors[k]), k, inkOn(c.colors[k]))
	}
	b.WriteString(" }\n")
	return b.String()
}

// inkOn picks black or white text, whichever contrasts more with the
// background colour bg (#rrggbb), by WCAG relative luminance.
func inkOn(bg string) string {
	var r, g, b int
	if _, err := fmt.Sscanf(strings.ToLower(bg), "#%02x%02x%02x", &r, &g, &b); err != nil {
		return "#000000"
	}
	lin := func(c int) float64 {
		v := float64(c) / 255
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	l := 0.2126*lin(r) + 0.7152*lin(g) + 0.0722*lin(b)
	// Contrast with black is (l+0.05)/0.05, with white 1.05/(l+0.05).
	if (l+0.05)/0.05 >= 1.05/(l+0.05) {
		return "#000000"
	}
	return "#ffffff"
}
