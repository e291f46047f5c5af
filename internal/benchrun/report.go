package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Metric is one figure of the table. Key is stable across runs so that two
// results files can be compared line by line.
type Metric struct {
	Key    string  `json:"key"`
	Area   string  `json:"area"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Target string  `json:"target,omitempty"`
	OK     *bool   `json:"ok,omitempty"`
	Note   string  `json:"note,omitempty"`
}

// Machine is where a run happened.
type Machine struct {
	Nproc     int     `json:"nproc"`
	CPU       string  `json:"cpu"`
	MemoryMB  int     `json:"memory_mb"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go"`
	LoadStart float64 `json:"load1_start"`
	LoadEnd   float64 `json:"load1_end"`
}

// Results is what bench/results.json holds.
type Results struct {
	Started   time.Time      `json:"started"`
	DurationS float64        `json:"duration_s"`
	Commit    string         `json:"commit"`
	Command   string         `json:"command"`
	Machine   Machine        `json:"machine"`
	Metrics   []Metric       `json:"metrics"`
	Details   map[string]any `json:"details,omitempty"`
}

type bench struct {
	root    string
	log     io.Writer
	started time.Time
	machine Machine
	metrics []Metric
	details map[string]any
	commit  string        // of a saved run (show)
	took    time.Duration // of a saved run (show)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench: "+format+"\n", args...)
}

// add records a figure; target is "<= N" or ">= N" (or empty).
func (b *bench) add(key, area, name string, v float64, unit, target, note string) {
	m := Metric{Key: key, Area: area, Name: name, Value: round(v), Unit: unit, Target: target, Note: note}
	if target != "" {
		op, lim, ok := parseTarget(target)
		if ok {
			good := (op == "<=" && v <= lim) || (op == ">=" && v >= lim)
			m.OK = &good
		}
	}
	b.metrics = append(b.metrics, m)
}

func (b *bench) detail(key string, v any) {
	if b.details == nil {
		b.details = map[string]any{}
	}
	b.details[key] = v
}

func parseTarget(t string) (string, float64, bool) {
	f := strings.Fields(t)
	if len(f) < 2 || (f[0] != "<=" && f[0] != ">=") {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(f[1], 64)
	return f[0], v, err == nil
}

func round(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	switch a := math.Abs(v); {
	case a >= 1000:
		return math.Round(v)
	case a >= 10:
		return math.Round(v*10) / 10
	default:
		return math.Round(v*1000) / 1000
	}
}

func (b *bench) results() Results {
	return Results{
		Started:   b.started.UTC(),
		DurationS: math.Round(time.Since(b.started).Seconds()),
		Commit:    gitDescribe(b.root),
		Command:   "make bench",
		Machine:   b.machine,
		Metrics:   b.metrics,
		Details:   b.details,
	}
}

func (b *bench) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(b.results(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func readResults(path string) (*Results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// print writes the one table; with old, a column of the earlier values.
func (b *bench) print(w io.Writer, old *Results) {
	prev := map[string]float64{}
	if old != nil {
		for _, m := range old.Metrics {
			prev[m.Key] = m.Value
		}
	}
	m := b.machine
	commit, took := b.commit, b.took
	if commit == "" {
		commit, took = gitDescribe(b.root), time.Since(b.started).Round(time.Second)
	}
	fmt.Fprintf(w, "\nkioskd bench — %s, %s, %d cores (%s), %d MB, load %.2f → %.2f, took %s\n\n",
		b.started.UTC().Format("2006-01-02 15:04 MST"), commit, m.Nproc, m.CPU, m.MemoryMB, m.LoadStart, m.LoadEnd, took)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	head := "AREA\tMEASURE\tVALUE\tTARGET\tOK"
	if old != nil {
		head += "\tPREVIOUS"
	}
	fmt.Fprintln(tw, head)
	for _, x := range b.metrics {
		ok := ""
		if x.OK != nil {
			ok = map[bool]string{true: "yes", false: "NO"}[*x.OK]
		}
		name := x.Name
		if x.Note != "" {
			name += " (" + x.Note + ")"
		}
		line := fmt.Sprintf("%s\t%s\t%s %s\t%s\t%s", x.Area, name, fmtVal(x.Value), x.Unit, x.Target, ok)
		if old != nil {
			if p, found := prev[x.Key]; found {
				line += "\t" + fmtVal(p)
			} else {
				line += "\t-"
			}
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func fmtVal(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func gitDescribe(root string) string {
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func machineInfo() Machine {
	m := Machine{Nproc: runtime.NumCPU(), GoVersion: runtime.Version(), LoadStart: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if kb := procField("/proc/meminfo", "MemTotal:"); kb > 0 {
		m.MemoryMB = int(kb / 1024)
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// procField reads a "Key: N kB" line of a /proc status-like file.
func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
