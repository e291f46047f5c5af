package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kioskd/kioskd/config"
)

// hostileCases are files an attacker or a careless integrator could write.
// Each must be refused with a problem that points at what is wrong.
var hostileCases = []struct {
	name string
	doc  string
	want []string // each must appear in some problem
}{
	{"wrong type: string for int", "camera:\n  width: wide\n", []string{"line 2", "wide"}},
	{"wrong type: list for string", "device:\n  mode: [door, attendance]\n", []string{"line 2"}},
	{"wrong type: map for list", "actuator:\n  outputs: {door: 1}\n", []string{"line 2"}},
	{"wrong type: bool for duration", "incode:\n  live_timeout: true\n", []string{"line 2"}},
	{"wrong type: bare number for duration", "capture:\n  cooldown: 3\n", []string{"line 2"}},
	{"wrong type: section is a scalar", "camera: /dev/video0\n", []string{"line 1"}},
	{"wrong type: document is a list", "- device\n- incode\n", []string{"line 1"}},
	{"negative duration: live timeout", "incode:\n  live_timeout: -4s\n", []string{"incode.live_timeout"}},
	{"negative duration: cooldown", "capture:\n  cooldown: -1ms\n", []string{"capture.cooldown"}},
	{"negative duration: queue ttl", "queue:\n  ttl: -24h\n", []string{"queue.ttl"}},
	{"negative duration: pulse", "actuator:\n  outputs:\n    - {name: door, role: unlock, driver: log, pulse: -3s}\n", []string{"actuator.outputs[0].pulse"}},
	{"negative duration: reconnect", "camera:\n  reconnect_max: -1s\n", []string{"camera.reconnect_max"}},
	{"zero duration where time must pass", "incode:\n  request_timeout: 0s\n", []string{"incode.request_timeout"}},
	{"unknown top-level key", "telemetry:\n  endpoint: x\n", []string{"line 1", "telemetry"}},
	{"unknown nested key", "queue:\n  max_item: 5\n", []string{"line 2", "max_item"}},
	{"duplicate key", "device:\n  mode: door\n  mode: attendance\n", []string{"line 3", "mode"}},
	{"huge int overflows", "camera:\n  width: 99999999999999999999999\n", []string{"line 2"}},
	{"huge width", "camera:\n  width: 100000\n  height: 100000\n", []string{"camera.width"}},
	{"huge fps", "camera:\n  fps: 1e300\n", []string{"camera.fps"}},
	{"infinite fps", "camera:\n  fps: .inf\n", []string{"camera.fps"}},
	{"NaN fps", "camera:\n  fps: .nan\n", []string{"camera.fps"}},
	{"NaN face fraction", "capture:\n  max_face_fraction: .NaN\n", []string{"capture.max_face_fraction"}},
	{"NaN preview fps", "display:\n  preview_fps: .nan\n", []string{"display.preview_fps"}},
	{"huge duration", "queue:\n  ttl: 99999999999h\n", []string{"line 2"}},
	{"cooldown of 292 years", "capture:\n  cooldown: 9223372036854775807ns\n", []string{"capture.cooldown", "longer than"}},
	{"live timeout of 1000h", "incode:\n  live_timeout: 1000h\n", []string{"incode.live_timeout", "1m0s"}},
	{"lockout of ten years", "capture:\n  lockout: 87600h\n", []string{"capture.lockout", "24h0m0s"}},
	{"queue ttl of a year", "queue:\n  ttl: 8760h\n", []string{"queue.ttl"}},
	{"queue of a terabyte", "queue:\n  max_bytes: 100000GiB\n", []string{"queue.max_bytes"}},
	{"huge retries", "incode:\n  max_retries: 100000\n", []string{"incode.max_retries"}},
	{"huge unlock pulse", "actuator:\n  outputs:\n    - {name: door, role: unlock, driver: log, pulse: 8760h}\n", []string{"actuator.outputs[0].pulse"}},
	{"huge jpeg quality", "capture:\n  jpeg_quality: 1000\n", []string{"capture.jpeg_quality"}},
	{"bad size: words", "queue:\n  max_bytes: plenty\n", []string{"line 2", "plenty"}},
	{"bad size: negative", "queue:\n  max_bytes: -1GiB\n", []string{"line 2"}},
	{"bad size: too big", "queue:\n  max_bytes: 9000000GiB\n", []string{"line 2"}},
	{"bad size: unknown unit", "queue:\n  max_bytes: 5 furlongs\n", []string{"line 2"}},
	{"bad size: a list", "queue:\n  max_bytes: [1, 2]\n", []string{"line 2"}},
	{"bad size: too small", "queue:\n  max_bytes: 10KiB\n", []string{"queue.max_bytes"}},
	{"http to a remote host", "incode:\n  base_url: http://api.incode.example\n", []string{"incode.base_url", "allow_insecure_http"}},
	{"http to a host that only looks local", "incode:\n  base_url: http://localhost.attacker.example\n", []string{"incode.base_url"}},
	{"http to the wildcard address", "incode:\n  base_url: http://0.0.0.0:8080\n", []string{"incode.base_url"}},
	{"other scheme", "incode:\n  base_url: file:///etc/passwd\n", []string{"incode.base_url"}},
	{"no host", "incode:\n  base_url: https://\n", []string{"incode.base_url"}},
	{"not a URL", "incode:\n  base_url: \"http://[::1\"\n", []string{"incode.base_url"}},
	{"bad mode", "device:\n  mode: always_open\n", []string{"device.mode"}},
	{"source id too long", "device:\n  source_id: " + strings.Repeat("x", 300) + "\n", []string{"device.source_id"}},
	{"listen not host:port", "metrics:\n  listen: everywhere\n", []string{"metrics.listen"}},
	{"unknown driver", "actuator:\n  outputs:\n    - {name: door, role: unlock, driver: telnet, pulse: 1s}\n", []string{"actuator.outputs[0].driver"}},
	{"gpio without a line", "actuator:\n  outputs:\n    - {name: door, role: unlock, driver: gpio, chip: gpiochip0, pulse: 1s}\n", []string{"actuator.outputs[0]"}},
	{"negative gpio line", "actuator:\n  outputs:\n    - {name: door, role: unlock, driver: gpio, chip: gpiochip0, line: -1, pulse: 1s}\n", []string{"actuator.outputs[0].line"}},
	{"alias bomb", aliasBomb(), []string{"line 1", "a0"}},
	{"multi-line value stays on one line", "camera:\n  width: \"1\\n2\\n3\"\n", []string{"line 2"}},
}

// base is a valid configuration. A hostile document is put first, so the
// line numbers in the table are its own, and the base's sections that it
// does not set follow.
const base = `device:
  source_id: lobby-door-1
incode:
  base_url: https://api.incode.example
camera:
  source: /dev/video0
`

func merge(doc string) string {
	if strings.HasPrefix(doc, "- ") {
		return doc // a document that is not a mapping cannot be merged
	}
	var out []string
	skip := false
	for _, l := range strings.Split(base, "\n") {
		if l != "" && !strings.HasPrefix(l, " ") {
			key := strings.TrimSuffix(l, ":")
			// YAML forbids a repeated top-level key.
			skip = strings.HasPrefix(doc, key+":") || strings.Contains(doc, "\n"+key+":")
		}
		if !skip {
			out = append(out, l)
		}
	}
	return doc + strings.Join(out, "\n")
}

// aliasBomb expands to 10^9 strings if a decoder follows every alias.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("actuator:\n  outputs: *a9\n")
	return b.String()
}

func TestHostileFiles(t *testing.T) {
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			doc := merge(tc.doc)
			cfg, err := config.Parse([]byte(doc), secretEnv())
			assertNoSecrets(t, cfg, err)
			ps := problemsOf(t, err)
			if len(ps) == 0 {
				t.Fatalf("accepted:\n%s", doc)
			}
			for _, w := range tc.want {
				if !containsProblem(ps, w) {
					t.Errorf("no problem mentions %q: %q", w, ps)
				}
			}
			checkProblemsPrintable(t, ps)
		})
	}
}

// TestHostileBaseIsValid guards the table: without the hostile part the
// base must pass, or every case above would pass for the wrong reason.
func TestHostileBaseIsValid(t *testing.T) {
	if _, err := config.Parse([]byte(base), secretEnv()); err != nil {
		t.Fatalf("base document: %v", err)
	}
	for _, doc := range []string{
		"incode:\n  base_url: http://127.0.0.1:8080\n",
		"incode:\n  base_url: http://localhost:8080\n",
		"incode:\n  base_url: http://[::1]:8080\n",
		"incode:\n  base_url: http://api.incode.example\n  allow_insecure_http: true\n",
	} {
		if _, err := config.Parse([]byte(merge(doc)), secretEnv()); err != nil {
			t.Errorf("%q refused: %v", doc, err)
		}
	}
}

// checkProblemsPrintable: check-config prints one line per problem, so no
// problem may contain a line break, and each must be valid text.
func checkProblemsPrintable(t *testing.T, ps config.Problems) {
	t.Helper()
	for _, p := range ps {
		if p == "" || strings.ContainsAny(p, "\r\n") || !utf8.ValidString(p) {
			t.Errorf("problem is not one printable line: %q", p)
		}
	}
}

// FuzzParse: Parse never panics, and what it returns is either a Config
// that passes Validate or a non-empty Problems, each problem one line.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(minimalYAML))
	f.Add([]byte(""))
	f.Add([]byte("{}"))
	f.Add([]byte("~"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("queue:\n  max_bytes: 1.5GiB\n  ttl: 1h\n"))
	f.Add([]byte("actuator:\n  outputs:\n    - {name: d, role: unlock, driver: gpio, chip: gpiochip0, line: 17, pulse: 3s, pattern: [1ms, 2ms]}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("<<: {device: {source_id: x}}\n"))
	f.Add([]byte(aliasBomb()))
	for _, tc := range hostileCases {
		f.Add([]byte(merge(tc.doc)))
	}
	// The 7 KB sample is left out on purpose: the fuzzer minimises every
	// new input derived from a seed, and minimising kilobytes takes its full
	// minute each time. TestSampleConfig* cover the sample.
	env := secretEnv()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, env)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config and nil error")
			}
			if p := cfg.Validate(); len(p) != 0 {
				t.Fatalf("accepted a config that does not validate: %q", p)
			}
			return
		}
		var ps config.Problems
		if !errors.As(err, &ps) {
			t.Fatalf("error is %T, not Problems: %v", err, err)
		}
		if len(ps) == 0 {
			t.Fatal("empty Problems returned as an error")
		}
		checkProblemsPrintable(t, ps)
		assertNoSecrets(t, cfg, err)
	})
}
