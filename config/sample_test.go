package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kioskd/kioskd/config"
)

// samplePath is the sample configuration that install.sh installs.
var samplePath = filepath.Join("..", "systemd", "kioskd.yaml")

// TestSampleConfigIsValid: the shipped sample passes validation once the
// secrets are there, and says nothing to warn about.
func TestSampleConfigIsValid(t *testing.T) {
	cfg, err := config.Load(samplePath, secretEnv())
	if err != nil {
		t.Fatalf("%s: %v", samplePath, err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
}

// TestSampleConfigListsEveryKey: every key kioskd knows is in the sample,
// so that a key added to config is documented there too.
func TestSampleConfigListsEveryKey(t *testing.T) {
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	nodeKeys(&root, "", have)
	want := map[string]bool{}
	typeKeys(reflect.TypeOf(config.Config{}), "", want)
	if len(want) < 50 {
		t.Fatalf("found only %d keys in config.Config; the walk is broken", len(want))
	}
	var missing []string
	for k := range want {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s lacks these keys; add each with its default and a comment:\n  %s", samplePath, strings.Join(missing, "\n  "))
	}
}

// TestSampleConfigShowsDefaults: each value in the sample is the default,
// except the door's identity, the API host, the example outputs and inputs
// and the example event sinks.
func TestSampleConfigShowsDefaults(t *testing.T) {
	cfg, err := config.Load(samplePath, secretEnv())
	if err != nil {
		t.Fatalf("%s: %v", samplePath, err)
	}
	def := config.Default()
	// The values a sample must set to be valid, and what is not from the file.
	cfg.Device.SourceID = def.Device.SourceID
	cfg.Incode.BaseURL = def.Incode.BaseURL
	cfg.Actuator = def.Actuator
	cfg.Events.Sinks = def.Events.Sinks
	cfg.Path, cfg.Warnings = "", nil
	cfg.Incode.APIKey, cfg.Incode.HardwareID, cfg.Queue.Key = "", "", ""
	// Resolved from device.state_dir, not read from the file.
	cfg.Queue.KeySource, cfg.Queue.GeneratedKey = "", ""
	if cfg.Queue.Path == filepath.Join(cfg.Device.StateDir, config.QueueFileName) {
		cfg.Queue.Path = ""
	}
	var diffs []string
	valueDiffs(reflect.ValueOf(*cfg), reflect.ValueOf(*def), "", &diffs)
	if len(diffs) > 0 {
		t.Errorf("%s differs from config.Default(); show the default (or change the test if a value is set on purpose):\n  %s",
			samplePath, strings.Join(diffs, "\n  "))
	}
}

// nodeKeys collects the dotted key paths in a YAML tree; a list's items
// are all under "[]".
func nodeKeys(n *yaml.Node, path string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			nodeKeys(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			out[p] = true
			nodeKeys(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			nodeKeys(c, path+"[]", out)
		}
	}
}

// typeKeys collects the dotted key paths a type decodes.
func typeKeys(t reflect.Type, path string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		// Types with their own YAML form are leaves.
		if _, ok := reflect.New(t).Interface().(yaml.Unmarshaler); ok {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			// Old* fields read renamed keys, which the sample must not show.
			if !f.IsExported() || name == "-" || strings.HasPrefix(f.Name, "Old") {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			p := join(path, name)
			out[p] = true
			typeKeys(f.Type, p, out)
		}
	case reflect.Slice:
		if e := t.Elem(); e.Kind() == reflect.Struct {
			typeKeys(e, path+"[]", out)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// valueDiffs lists the leaf paths where a and b differ; nil and empty
// slices and maps are equal.
func valueDiffs(a, b reflect.Value, path string, out *[]string) {
	switch a.Kind() {
	case reflect.Struct:
		t := a.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				name = f.Name
			}
			valueDiffs(a.Field(i), b.Field(i), join(path, name), out)
		}
		return
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return
		}
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, path+": sample has "+fmtValue(a)+", default is "+fmtValue(b))
	}
}

func fmtValue(v reflect.Value) string {
	b, err := yaml.Marshal(v.Interface())
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
