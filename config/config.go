// Package config loads kioskd's YAML configuration: one typed Config, strict
// decoding, defaults, a Validate that lists every problem at once, and
// secrets read from files, systemd credentials or the environment.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Config is the whole kioskd configuration file.
type Config struct {
	Device   Device   `yaml:"device"`
	Incode   Incode   `yaml:"incode"`
	Camera   Camera   `yaml:"camera"`
	Capture  Capture  `yaml:"capture"`
	Queue    Queue    `yaml:"queue"`
	Actuator Actuator `yaml:"actuator"`
	Events   Events   `yaml:"events"`
	Display  Display  `yaml:"display"`
	Metrics  Metrics  `yaml:"metrics"`
	Log      Log      `yaml:"log"`

	Panel       Panel       `yaml:"panel"`
	Credentials Credentials `yaml:"credentials"`

	// Path is the file the configuration was read from, if any.
	Path string `yaml:"-"`
	// Warnings are problems that do not stop kioskd from running.
	Warnings []string `yaml:"-"`
}

// Problems is every problem found in a configuration, one line each.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "\n") }

func (p *Problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// Env abstracts the process environment so that tests control it.
type Env func(key string) string

// Load reads the file at path and the drop-ins in path+".d", merges them,
// then decodes, defaults and validates the result. Secrets are
// resolved through env (os.Getenv when nil). The returned error is a
// Problems when the file was readable but wrong.
func Load(path string, env Env) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Drop-ins in <path>.d/ are merged over the file (see dropin.go).
	if data, err = mergeDropIns(path, data); err != nil {
		return nil, err
	}
	cfg, err := Parse(data, env)
	if cfg != nil {
		cfg.Path = path
	}
	return cfg, err
}

// ReadFile reads a configuration file of at most MaxFileSize bytes.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read config: %s is larger than %d bytes; a configuration file is a few kilobytes", path, MaxFileSize)
	}
	return data, nil
}

// Parse decodes YAML strictly, applies defaults, resolves secrets and
// validates. Every problem is reported, not only the first.
func Parse(data []byte, env Env) (*Config, error) {
	if env == nil {
		env = os.Getenv
	}
	cfg := Default()
	problems, err := decodeStrict(data, cfg)
	if err != nil {
		return nil, err
	}
	cfg.Capture.renamed(func(w string) { cfg.Warnings = append(cfg.Warnings, w) })
	cfg.resolveSecrets(env, &problems)
	problems = append(problems, cfg.Validate()...)
	cfg.warnResolution()
	cfg.warnPanel()
	if len(problems) > 0 {
		// check-config prints one line per problem; YAML errors quote
		// values, which may hold line breaks.
		for i := range problems {
			problems[i] = oneLine(problems[i])
		}
		for i := range cfg.Warnings {
			cfg.Warnings[i] = oneLine(cfg.Warnings[i])
		}
		return cfg, problems
	}
	for i := range cfg.Warnings {
		cfg.Warnings[i] = oneLine(cfg.Warnings[i])
	}
	return cfg, nil
}

// decodeStrict decodes one YAML document into cfg, refusing unknown keys.
// Type errors come back as problems; a document that is not YAML at all is
// the returned error.
func decodeStrict(data []byte, cfg *Config) (Problems, error) {
	var problems Problems
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				problems.add("%s", explainRemoved(e))
			}
		} else {
			return nil, Problems{oneLine("yaml: " + strings.TrimPrefix(err.Error(), "yaml: "))}
		}
	}
	// A second document would be silently ignored: someone who concatenated
	// two files must hear that only the first one counts.
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		problems.add("yaml: line %d: a second YAML document; the file must hold exactly one", next.Line)
	} else if !errors.Is(err, io.EOF) {
		problems.add("yaml: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return problems, nil
}

// oneLine makes s valid UTF-8 on a single line by escaping control
// characters.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Validate checks every section and returns all problems found.
func (c *Config) Validate() Problems {
	var p Problems
	c.Device.validate(&p)
	c.Incode.validate(&p)
	c.Camera.validate(&p)
	c.Capture.validate(&p)
	c.Queue.validate(&p)
	c.Actuator.validate(&p)
	c.Events.validate(&p)
	c.Display.validate(&p)
	c.Metrics.validate(&p)
	c.Log.validate(&p)
	c.Panel.validate(&p)
	c.Credentials.validate(&p, c.Panel.Protocol)
	checkFinite(&p, c)
	checkBounds(&p, c)
	checkHeaderValue(&p, "incode.api_key_file", c.Incode.APIKey)
	checkHeaderValue(&p, "incode.hardware_id_file", c.Incode.HardwareID)
	return p
}

// checkFinite reports every NaN or infinite float in v, named by its YAML
// path: a range check such as "fps <= 0 || fps > 240" lets NaN through.
func checkFinite(p *Problems, c *Config) {
	walk("", reflect.ValueOf(c).Elem(), func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Float32, reflect.Float64:
			if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
				p.add("%s: %g is not a finite number", path, f)
			}
		}
	})
}

// walk calls visit for every value in v, named by its YAML path. Walking the
// struct keeps fields added later covered by the checks built on it.
func walk(path string, v reflect.Value, visit func(path string, v reflect.Value)) {
	visit(path, v)
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walk(path, v.Elem(), visit)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i), visit)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			walk(fmt.Sprintf("%s.%v", path, iter.Key()), iter.Value(), visit)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if path != "" {
				name = path + "." + name
			}
			walk(name, v.Field(i), visit)
		}
	}
}

// checkHeaderValue reports a secret that cannot be sent as an HTTP header
// (a line break or other control character inside it), without its value.
func checkHeaderValue(p *Problems, field, v string) {
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		p.add("%s: the secret contains a control character (a line break inside the key?)", field)
	}
}

// Default returns a configuration with every default applied.
func Default() *Config {
	c := &Config{}
	c.Device.defaults()
	c.Incode.defaults()
	c.Camera.defaults()
	c.Capture.defaults()
	c.Queue.defaults()
	c.Actuator.defaults()
	c.Events.defaults()
	c.Display.defaults()
	c.Metrics.defaults()
	c.Log.defaults()
	c.Panel.defaults()
	c.Credentials.defaults()
	return c
}

// readSecret finds a secret: the explicit file first, then the systemd
// credential of that name, then the environment variable. It never puts the
// secret's value into a problem or a warning.
func (c *Config) readSecret(field, file, credential, envVar string, env Env, required bool, p *Problems) string {
	if file != "" {
		v, err := readSecretFile(file)
		if err != nil {
			p.add("%s: %v", field, err)
			return ""
		}
		if w := worldReadable(file); w != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: %s", field, w))
		}
		return v
	}
	if dir := env("CREDENTIALS_DIRECTORY"); dir != "" {
		path := filepath.Join(dir, credential)
		if _, err := os.Stat(path); err == nil {
			v, err := readSecretFile(path)
			if err != nil {
				p.add("%s: credential %s: %v", field, credential, err)
				return ""
			}
			return v
		}
	}
	if v := strings.TrimSpace(env(envVar)); v != "" {
		return v
	}
	if required {
		p.add("%s: not set (give %s, a systemd credential %q, or $%s)", field, field, credential, envVar)
	}
	return ""
}

// maxSecretSize bounds what is read from a secret file: a key is small, and a
// wrong path (a device, a log) must not be slurped into memory.
const maxSecretSize = 64 << 10

func readSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("secret file %s is a directory", path)
	}
	// A device would be read forever and a FIFO would block the start.
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("secret file %s is not a regular file", path)
	}
	if fi.Size() > maxSecretSize {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	// The file may have grown since Stat.
	b, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	if len(b) > maxSecretSize {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return v, nil
}

func worldReadable(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return fmt.Sprintf("secret file %s is readable by everyone (mode %04o); chmod 0600 it", path, fi.Mode().Perm())
	}
	return ""
}

func (c *Config) resolveSecrets(env Env, p *Problems) {
	c.Incode.APIKey = c.readSecret("incode.api_key_file", c.Incode.APIKeyFile, "api-key", "KIOSKD_API_KEY", env, true, p)
	c.Incode.HardwareID = c.readSecret("incode.hardware_id_file", c.Incode.HardwareIDFile, "hardware-id", "KIOSKD_HARDWARE_ID", env, true, p)
	c.resolveStatePaths()
	c.resolveQueueKey(env, p)
	c.resolveEventSecrets(p)
	c.resolveSCBK(env, p)
}

// minUploadSide is what Incode asks of a selfie's long side.
const minUploadSide = 1000

// warnResolution warns when the camera cannot give the service the long
// side it asks for: kioskd still runs, but matches may suffer.
func (c *Config) warnResolution() {
	long := max(c.Camera.Width, c.Camera.Height)
	if long > 0 && long < minUploadSide {
		c.Warnings = append(c.Warnings, fmt.Sprintf("camera.width/height: %dx%d gives uploads under the %d px on the long side that Incode asks for", c.Camera.Width, c.Camera.Height, minUploadSide))
	}
}
