package display

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The built-in message catalogs, one file per language. An integrator adds
// a language or replaces texts with messages.<lang>.yaml in
// display.custom_dir, without rebuilding.
//
//go:embed catalog/*.yaml
var builtinCatalogs embed.FS

// refLanguage is the catalog whose keys every other catalog must have.
const refLanguage = "en"

// badgeSuffix marks the variant of a message used when the door has a
// badge reader or a panel: "use your badge" is only said where there is one.
const badgeSuffix = "+badge"

// maxCatalogBytes bounds one catalog file.
const maxCatalogBytes = 256 << 10

var langPattern = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)

// catalogs maps a language to its messages. Keys are "state",
// "state.reason" for per-reason texts, "key+badge" variants, plus
// "pass.name" (with {name}), "lockout" (with {time}) and "reconnecting".
type catalogs map[string]map[string]string

// loadCatalogs reads the built-in catalogs and then the integrator's
// messages.<lang>.yaml files from dir (may be empty). A file for a built-in
// language may override any subset of keys; a file for a new language must
// have every key. Every problem is reported, one per line.
func loadCatalogs(dir string) (catalogs, error) {
	cats := catalogs{}
	var errs []error
	entries, err := fs.ReadDir(builtinCatalogs, "catalog")
	if err != nil {
		return nil, fmt.Errorf("built-in catalogs: %w", err)
	}
	for _, e := range entries {
		lang := strings.TrimSuffix(e.Name(), ".yaml")
		b, err := builtinCatalogs.ReadFile("catalog/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("built-in catalog %s: %w", lang, err)
		}
		m, err := parseCatalog(b)
		if err != nil {
			return nil, fmt.Errorf("built-in catalog %s: %w", lang, err)
		}
		cats[lang] = m
	}
	ref := cats[refLanguage]
	for lang, m := range cats {
		errs = append(errs, checkKeys("built-in catalog "+lang, m, ref, true)...)
	}
	if dir != "" {
		errs = append(errs, cats.addDir(dir, ref)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cats, nil
}

func (cats catalogs) addDir(dir string, ref map[string]string) []error {
	files, err := filepath.Glob(filepath.Join(dir, "messages.*.yaml"))
	if err != nil {
		return []error{fmt.Errorf("custom_dir: %w", err)}
	}
	var errs []error
	for _, path := range files {
		name := filepath.Base(path)
		lang := strings.TrimSuffix(strings.TrimPrefix(name, "messages."), ".yaml")
		if !langPattern.MatchString(lang) {
			errs = append(errs, fmt.Errorf("%s: %q is not a language code such as fr or pt-BR", path, lang))
			continue
		}
		b, err := readSmall(path, maxCatalogBytes)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := parseCatalog(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		base, builtin := cats[lang]
		if p := checkKeys(path, m, ref, !builtin); len(p) > 0 {
			errs = append(errs, p...)
			continue
		}
		merged := make(map[string]string, len(ref))
		for k, v := range base {
			merged[k] = v
		}
		for k, v := range m {
			merged[k] = v
		}
		cats[lang] = merged
	}
	return errs
}

// parseCatalog reads a flat YAML map of strings; duplicate keys and
// anything but strings are errors.
func parseCatalog(b []byte) (map[string]string, error) {
	var m map[string]string
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a map of message texts: %w", err)
	}
	return m, nil
}

// checkKeys reports keys that ref does not have, empty texts, placeholders
// a text may not carry, and, when complete is set, keys that are missing.
func checkKeys(what string, m, ref map[string]string, complete bool) []error {
	var errs []error
	for _, k := range sortedKeys(m) {
		v := m[k]
		refText, known := ref[k]
		switch {
		case !known:
			errs = append(errs, fmt.Errorf("%s: unknown key %q", what, k))
		case strings.TrimSpace(v) == "":
			errs = append(errs, fmt.Errorf("%s: %s: empty message", what, k))
		default:
			for _, ph := range []string{"{name}", "{time}"} {
				if strings.Contains(v, ph) && !strings.Contains(refText, ph) {
					errs = append(errs, fmt.Errorf("%s: %s: %s has no value here", what, k, ph))
				}
			}
		}
	}
	if complete {
		for _, k := range sortedKeys(ref) {
			if _, ok := m[k]; !ok {
				errs = append(errs, fmt.Errorf("%s: missing key %q", what, k))
			}
		}
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// readSmall reads a regular file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("custom_dir: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("custom_dir: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("custom_dir: %s is not a regular file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("custom_dir: %s is larger than %d bytes", path, limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("custom_dir: read %s: %w", path, err)
	}
	return b, nil
}

// languages lists the languages of cats, sorted.
func (cats catalogs) languages() []string {
	out := make([]string, 0, len(cats))
	for l := range cats {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// Languages lists the built-in languages.
func Languages() []string {
	cats, err := loadCatalogs("")
	if err != nil {
		return nil
	}
	return cats.languages()
}

// MessageKeys lists every key display.messages and a catalog may set, sorted.
func MessageKeys() []string {
	cats, err := loadCatalogs("")
	if err != nil {
		return nil
	}
	return sortedKeys(cats[refLanguage])
}

// messages resolves texts for one language with the config's overrides.
type messages struct {
	m     map[string]string
	badge bool
}

func newMessages(cats catalogs, lang string, overrides map[string]string, badge bool) (messages, error) {
	base, ok := cats[lang]
	if !ok {
		return messages{}, fmt.Errorf("language %q has no catalog (have %s)", lang, strings.Join(cats.languages(), ", "))
	}
	m := make(map[string]string, len(base))
	for k, v := range base {
		m[k] = v
	}
	if p := checkKeys("messages", overrides, cats[refLanguage], false); len(p) > 0 {
		return messages{}, errors.Join(p...)
	}
	for k, v := range overrides {
		m[k] = v
		// An override of the plain text also replaces its badge variant
		// unless that is overridden too: the integrator's words win.
		if _, both := overrides[k+badgeSuffix]; !both {
			delete(m, k+badgeSuffix)
		}
	}
	return messages{m: m, badge: badge}, nil
}

// get is the text for key, its badge variant when the door has a badge
// reader.
func (ms messages) get(key string) (string, bool) {
	if ms.badge {
		if t, ok := ms.m[key+badgeSuffix]; ok {
			return t, true
		}
	}
	t, ok := ms.m[key]
	return t, ok
}

// text is the message for state and reason, falling back to the state's
// generic message for reasons it does not know, so that a new API reason
// never reaches the screen verbatim.
func (ms messages) text(state State, reason string) string {
	if state == StateGuidance {
		reason = guidanceKey(reason)
	}
	if reason != "" && reason != "name" && !strings.Contains(reason, "+") {
		// "pass.name" is the greeting template, not a reason's text.
		if t, ok := ms.get(state.String() + "." + reason); ok {
			return t
		}
	}
	t, _ := ms.get(state.String())
	return t
}
