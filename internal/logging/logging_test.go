package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestJournalPriorities(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Options{Level: slog.LevelDebug, Format: "json", Journal: true})
	log.Debug("d")
	log.Info("i")
	log.With("door", "lobby").Warn("w")
	log.WithGroup("g").Error("e", "k", 1)
	log.Log(t.Context(), slog.LevelError+4, "worse than error")
	want := []struct{ prefix, msg string }{{"<7>", "d"}, {"<6>", "i"}, {"<4>", "w"}, {"<3>", "e"}, {"<3>", "worse than error"}}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		rest, ok := strings.CutPrefix(lines[i], w.prefix)
		if !ok {
			t.Errorf("line %d = %q, want prefix %s", i, lines[i], w.prefix)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(rest), &m); err != nil {
			t.Errorf("line %d after the prefix is not JSON: %v: %q", i, err, rest)
			continue
		}
		if m["msg"] != w.msg {
			t.Errorf("line %d msg = %v, want %s", i, m["msg"], w.msg)
		}
	}
	if !strings.Contains(lines[2], `"door":"lobby"`) || !strings.Contains(lines[3], `"g":{"k":1}`) {
		t.Errorf("attributes or groups lost: %q, %q", lines[2], lines[3])
	}
}

func TestPlainLinesOffTheJournal(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Options{Level: slog.LevelInfo, Format: "json"})
	log.Debug("hidden")
	log.Error("e")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "e" {
		t.Fatalf("want exactly one plain JSON line, got %q (%v)", buf.String(), err)
	}
}

func TestDurationsInMilliseconds(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Options{Level: slog.LevelInfo, Format: "json"})
	log.Info("x", "retry_in", 400*time.Millisecond, "detect", 1500*time.Microsecond, "latency_ms", int64(7),
		slog.Group("g", "wait", 2*time.Second), "timeout_ms", 3*time.Second)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"retry_in_ms": 400, "detect_ms": 1.5, "latency_ms": 7, "timeout_ms": 3000} {
		if got, ok := m[k].(float64); !ok || got != want {
			t.Errorf("%s = %v, want %v (line %s)", k, m[k], want, buf.String())
		}
	}
	if g, _ := m["g"].(map[string]any); g == nil || g["wait_ms"] != float64(2000) {
		t.Errorf("grouped duration not converted: %s", buf.String())
	}
	if _, ok := m["retry_in"]; ok {
		t.Errorf("nanosecond field still present: %s", buf.String())
	}
	buf.Reset()
	New(&buf, Options{Level: slog.LevelInfo, Format: "text"}).Info("x", "retry_in", 250*time.Millisecond)
	if !strings.Contains(buf.String(), "retry_in_ms=250") {
		t.Errorf("text line = %q, want retry_in_ms=250", buf.String())
	}
}

func TestJournalStream(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "JOURNAL_STREAM" {
				return v
			}
			return ""
		}
	}
	match := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	other := fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)
	for _, c := range []struct {
		name string
		f    *os.File
		v    string
		want bool
	}{
		{"systemd's stream", f, match, true},
		{"inherited from a shell, another stderr", f, other, false},
		{"not under systemd", f, "", false},
		{"garbage", f, "x:y", false},
		{"no file", nil, match, false},
	} {
		if got := JournalStream(c.f, env(c.v)); got != c.want {
			t.Errorf("%s: JournalStream = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo} {
		if got := ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
}
