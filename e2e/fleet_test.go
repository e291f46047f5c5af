package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kioskd/kioskd/internal/testcert"
)

// seriesBudget is what one door may cost Prometheus at idle: 200 doors of
// it is 30,000 series.
const seriesBudget = 150

// idleConfig writes a configuration for a door where nobody comes: the
// camera sees a brick wall.
func idleConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	wall := filepath.Join(dir, "wall")
	if err := os.Mkdir(wall, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "brick.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wall, "brick.jpg"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing is sent at idle: the API address is never dialled.
	return writeConfig(t, runOpts{BaseURL: "http://127.0.0.1:9", Clip: wall + "/", Loop: true, Realtime: true, State: dir})
}

// TestFleetMetrics runs a door at idle and checks what a fleet's Prometheus
// pays for it and can rely on: the series budget, the build-info labels
// that name the door, one style of label values, and a dashboard whose
// every expression parses and names only metrics kioskd exports.
func TestFleetMetrics(t *testing.T) {
	k := startKioskd(t, idleConfig(t))
	addr := listenAddr(t, k, "metrics")
	eventually(t, 30*time.Second, "the camera up", func() bool { return metricValue(scrape(t, addr), "kioskd_camera_up") == 1 })
	raw := scrapeRaw(t, addr)
	fams := scrape(t, addr)

	t.Run("series budget", func(t *testing.T) {
		per := map[string]int{}
		n := 0
		for _, l := range strings.Split(raw, "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			n++
			name := l[:strings.IndexAny(l, "{ ")]
			per[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")]++
		}
		t.Logf("%d series at idle (budget %d)", n, seriesBudget)
		if n > seriesBudget {
			var names []string
			for k := range per {
				names = append(names, k)
			}
			sort.Slice(names, func(i, j int) bool { return per[names[i]] > per[names[j]] })
			var top []string
			for _, name := range names[:min(10, len(names))] {
				top = append(top, fmt.Sprintf("%s %d", name, per[name]))
			}
			t.Errorf("%d series at idle, budget %d; the largest: %s", n, seriesBudget, strings.Join(top, ", "))
		}
	})

	t.Run("build info names the door", func(t *testing.T) {
		f := fams["kioskd_build_info"]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("kioskd_build_info: %v", f)
		}
		got := map[string]string{}
		for _, l := range f.Metric[0].Label {
			got[l.GetName()] = l.GetValue()
		}
		want := map[string]*regexp.Regexp{
			"version":   regexp.MustCompile(`^e2e$`),
			"goversion": regexp.MustCompile(`^go1\.\d+`),
			"opencv":    regexp.MustCompile(`^\d+\.\d+\.\d+$`),
			"source_id": regexp.MustCompile(`^e2e-door$`),
			"mode":      regexp.MustCompile(`^door$`),
		}
		if len(got) != len(want) {
			t.Errorf("labels %v, want exactly %d", got, len(want))
		}
		for k, re := range want {
			if !re.MatchString(got[k]) {
				t.Errorf("kioskd_build_info{%s=%q}, want %s", k, got[k], re)
			}
		}
	})

	t.Run("label values in one style", func(t *testing.T) {
		style := regexp.MustCompile(`^[a-z0-9_]+$`)
		free := map[string]bool{"le": true, "quantile": true, "version": true, "goversion": true, "opencv": true, "source_id": true}
		for name, f := range fams {
			if !strings.HasPrefix(name, "kioskd_") {
				continue
			}
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if !free[l.GetName()] && !style.MatchString(l.GetValue()) {
						t.Errorf("%s{%s=%q}: label values are lower snake_case", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		checkDashboard(t, filepath.Join(repoRoot, "dashboards", "kioskd-fleet.json"), exported(fams))
	})

	k.signal(t, syscall.SIGTERM)
	if code := k.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
}

func scrapeRaw(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exported is every series name a scrape can hold: histograms and
// summaries add _bucket, _sum and _count.
func exported(fams map[string]*dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	return names
}

// dashboardVars stands in for Grafana's variables so that Prometheus's own
// parser (promtool) can read the expressions.
var dashboardVars = strings.NewReplacer(
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d",
	"$source_id", ".*", "$job", "kioskd",
)

// promScrapeSeries are the series Prometheus itself writes for every
// target; a dashboard may use them beside kioskd's own.
var promScrapeSeries = map[string]bool{"up": true}

func checkDashboard(t *testing.T, path string, names map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	var variables []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				exprs = append(exprs, e)
			}
			if d, ok := v["definition"].(string); ok {
				variables = append(variables, d)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(dash)
	if len(exprs) < 10 {
		t.Fatalf("%d expressions in %s; the walk found too few", len(exprs), path)
	}
	// Template variables are label_values(SELECTOR, label): the selector is
	// PromQL.
	lv := regexp.MustCompile(`^label_values\((.+), *[a-z_]+\)$`)
	for _, d := range variables {
		m := lv.FindStringSubmatch(d)
		if m == nil {
			t.Errorf("variable query %q is not label_values(selector, label)", d)
			continue
		}
		exprs = append(exprs, m[1])
	}
	for i := range exprs {
		exprs[i] = dashboardVars.Replace(exprs[i])
		if strings.Contains(exprs[i], "$") {
			t.Errorf("expression %q uses a variable the test does not know", exprs[i])
		}
	}
	promtoolParses(t, exprs)
	for _, e := range exprs {
		for _, n := range metricNames(e) {
			if !names[n] && !promScrapeSeries[n] {
				t.Errorf("dashboard expression names %s, which kioskd does not export: %s", n, e)
			}
		}
	}
}

// promtoolParses checks expressions with Prometheus's own parser: each
// becomes a recording rule that `promtool check rules` reads.
func promtoolParses(t *testing.T, exprs []string) {
	t.Helper()
	if err := promtoolCheck(t, exprs); err != nil {
		t.Error(err)
	}
}

func promtoolCheck(t *testing.T, exprs []string) error {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing: scripts/install-deps.sh test installs Debian's prometheus package")
	}
	var rules bytes.Buffer
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(e) // a JSON string is a valid YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:expr_%d\n        expr: %s\n", i, q)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, rules.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		return fmt.Errorf("promtool check rules: %v\n%s\n%s", err, out, rules.String())
	}
	return nil
}

// metricNames lists the metric names an expression selects. Strings, label
// matchers, ranges and grouping label lists are removed first; what is left
// that is an identifier not followed by "(" and not a keyword is a name.
func metricNames(expr string) []string {
	strip := []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\boffset\s+-?[0-9a-z]+`),
	}
	for _, re := range strip {
		expr = re.ReplaceAllString(expr, " ")
	}
	// Numbers (0.95, 1e3), keeping the character before them: "vector(0)"
	// must stay a call.
	expr = regexp.MustCompile(`(^|[^a-zA-Z_:0-9])[0-9][0-9.eE+x]*`).ReplaceAllString(expr, "${1} ")
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "inf": true, "nan": true, "Inf": true, "NaN": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	var names []string
	for _, m := range ident.FindAllStringSubmatch(expr, -1) {
		id := strings.TrimRight(strings.TrimSuffix(strings.TrimSpace(m[0]), "("), " \t")
		if m[1] != "" || keywords[id] {
			continue
		}
		names = append(names, id)
	}
	return names
}

// TestDashboardNameCheck keeps the dashboard check honest: it finds the
// names in expressions like the dashboard's, and promtool refuses what is
// not PromQL.
func TestDashboardNameCheck(t *testing.T) {
	for expr, want := range map[string]string{
		`histogram_quantile(0.95, sum by (source_id, le) (rate(kioskd_decision_latency_seconds_bucket{job="kioskd"}[5m]) * on (job, instance) group_left (source_id) kioskd_build_info{source_id=~"a.*"}))`: "kioskd_decision_latency_seconds_bucket kioskd_build_info",
		`count(up{job="kioskd"} == 0) or vector(0)`:                  "up",
		`kioskd_queue_depth offset 5m > 1e3 and kioskd_camera_up`:    "kioskd_queue_depth kioskd_camera_up",
		`sum without (reason) (increase(kioskd_typo_total[1d])) > 0`: "kioskd_typo_total",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
	if err := promtoolCheck(t, []string{`sum by (door (kioskd_camera_up)`}); err == nil {
		t.Error("promtool accepted an expression that is not PromQL")
	}
	if err := promtoolCheck(t, []string{`sum by (door) (kioskd_camera_up)`}); err != nil {
		t.Error(err)
	}
}

// TestJournalPriorities runs kioskd as systemd does, with stderr connected
// to what $JOURNAL_STREAM names (here a file standing in for journald's
// socket), on a camera that does not exist: every line carries the syslog
// priority of its level, durations are in milliseconds, and the same run on
// a plain file writes plain JSON.
func TestJournalPriorities(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, runOpts{BaseURL: "http://127.0.0.1:9", Clip: "/dev/video-kioskd-absent", State: dir})
	run := func(journal bool) string {
		t.Helper()
		out, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		env := append(os.Environ(), kioskdEnv()...)
		if journal {
			var st syscall.Stat_t
			if err := syscall.Fstat(int(out.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			env = append(env, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
		} else {
			// Inherited from a shell started under systemd: another stream.
			env = append(env, "JOURNAL_STREAM=1:1")
		}
		cmd := exec.Command(filepath.Join(binDir, "kioskd"), "run", "--config", cfg)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = repoRoot, env, out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		read := func() string {
			b, err := os.ReadFile(out.Name())
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		eventually(t, 20*time.Second, "the camera reported down", func() bool { return strings.Contains(read(), "retry_in_ms") })
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("kioskd: %v\n%s", err, read())
		}
		return read()
	}
	prio := map[string]string{"DEBUG": "<7>", "INFO": "<6>", "WARN": "<4>", "ERROR": "<3>"}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(run(true)), "\n") {
		m := regexp.MustCompile(`^(<\d>)(\{.*\})$`).FindStringSubmatch(l)
		if m == nil {
			t.Errorf("journal line without a priority prefix and a JSON object: %q", l)
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(m[2]), &rec); err != nil {
			t.Errorf("not JSON after the prefix: %v: %q", err, l)
			continue
		}
		level, _ := rec["level"].(string)
		if prio[level] != m[1] {
			t.Errorf("level %s written with %s, want %s: %q", level, m[1], prio[level], l)
		}
		seen[level] = true
		checkMilliseconds(t, rec)
	}
	if !seen["INFO"] || !seen["WARN"] {
		t.Errorf("levels seen %v; the run should log info and a warning (camera down)", seen)
	}
	for _, l := range strings.Split(strings.TrimSpace(run(false)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("off the journal a line is plain JSON: %v: %q", err, l)
		}
	}
}

// checkMilliseconds: a field named like a duration is in milliseconds; a
// nanosecond count (400000000 for 400 ms) is the mistake it guards against.
func checkMilliseconds(t *testing.T, rec map[string]any) {
	t.Helper()
	for k, v := range rec {
		switch k {
		case "retry_in", "wait", "interval", "backoff", "timeout", "delay", "age", "duration", "elapsed":
			t.Errorf("duration field %q without a unit: %v", k, rec)
		}
		if f, ok := v.(float64); ok && strings.HasSuffix(k, "_ms") && f > 24*3600*1000 {
			t.Errorf("%s = %v: more than a day, nanoseconds?", k, f)
		}
	}
	if v, ok := rec["retry_in_ms"].(float64); ok && (v <= 0 || v > 60000) {
		t.Errorf("retry_in_ms = %v, want the reconnect backoff in milliseconds", v)
	}
}

// TestCheckConfigPrintDropIns: a site drop-in and a door drop-in over the
// main file, as `kioskd check-config --print` shows them, with no secret.
func TestCheckConfigPrintDropIns(t *testing.T) {
	dir := t.TempDir()
	main := writeConfig(t, runOpts{BaseURL: "http://127.0.0.1:9", State: dir})
	d := main + ".d"
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"10-site.yaml": "camera:\n  fps: 10\nmetrics:\n  listen: 127.0.0.1:9108\n",
		"20-door.yaml": "device:\n  source_id: lobby-door-7\n",
	}
	for name, c := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := kioskdCmd(t, "check-config", "--print", "--config", main)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"source_id: lobby-door-7 # " + filepath.Join(d, "20-door.yaml") + ":2",
		"fps: 10 # " + filepath.Join(d, "10-site.yaml") + ":2",
		"mode: door # " + main + ":3",
		"window: 400ms # " + main,
		"max_items: 1000 # default",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--print lacks %q:\n%s", want, out)
		}
	}
	for _, s := range []string{apiKey, deviceToken} {
		if strings.Contains(out+errOut, s) {
			t.Errorf("--print shows a secret:\n%s", out)
		}
	}
	// The door's drop-in, broken: the problem names it.
	if err := os.WriteFile(filepath.Join(d, "20-door.yaml"), []byte("device:\n  sourceid: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = kioskdCmd(t, "check-config", "--config", main)
	if code != 2 || !strings.Contains(errOut, filepath.Join(d, "20-door.yaml")+": line 2: field sourceid not found") {
		t.Errorf("exit %d, stderr %q; want 2 and the drop-in's line named", code, errOut)
	}
}

// TestClockBehindCertificate: the Incode host's certificate is valid from
// tomorrow by this box's clock, as on a box without a real-time clock that
// booted without network time. kioskd says the clock is wrong in the log,
// in kioskd_clock_wrong and in /readyz, and keeps the capture for later.
func TestClockBehindCertificate(t *testing.T) {
	cert, key := testcert.SelfSigned(t, time.Now().Add(24*time.Hour))
	s := startSimArgs(t, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true, Loop: true, Incode: "  ca_file: " + cert})
	k := startKioskd(t, cfg)
	addr := listenAddr(t, k, "metrics")
	d := waitDecision(t, k, "the first decision", 60*time.Second, func(map[string]any) bool { return true })
	if d["result"] != "OFFLINE" {
		t.Errorf("decision %v, want OFFLINE (the capture is kept until the clock is right)", d)
	}
	line := k.waitLine(t, regexp.MustCompile(`"level":"ERROR","msg":"clock"`), 10*time.Second)
	if !strings.Contains(line, "system clock is wrong") || !strings.Contains(line, "certificate is valid from") {
		t.Errorf("clock line %q does not say what is wrong", line)
	}
	if v := metricValue(scrape(t, addr), "kioskd_clock_wrong"); v != 1 {
		t.Errorf("kioskd_clock_wrong = %v, want 1", v)
	}
	if code, body := getReadyz(t, addr); code != http.StatusServiceUnavailable || !strings.Contains(body, "system clock is wrong") {
		t.Errorf("/readyz = %d %s, want 503 naming the clock", code, body)
	}
	k.signal(t, syscall.SIGTERM)
	if code := k.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
}
