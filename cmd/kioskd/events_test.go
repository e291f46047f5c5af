package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/events"
)

// eventsCLI writes a configuration whose state directory holds an event
// log with three events, an hour apart, and returns the config path.
func eventsCLI(t *testing.T) (cfgPath string, evs []events.Event) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath = filepath.Join(dir, "kioskd.yaml")
	doc := fmt.Sprintf("device:\n  source_id: lobby-door-1\n  state_dir: %s\nincode:\n  base_url: http://127.0.0.1:9\ncamera:\n  source: /dev/video0\n", state)
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	l, err := events.Open(filepath.Join(state, "events.db"), config.Default().Events, slog.New(slog.DiscardHandler), prometheus.NewRegistry(),
		events.WithClock(func() time.Time { return t0.Add(3 * time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range []events.Event{
		{Kind: events.KindDecision, Result: "PASS", Name: "Ada Lovelace", AuthenticationID: "auth-1", CorrelationID: "corr-1",
			Credential: &events.Credential{Format: "wiegand26", Number: "10012345"}},
		{Kind: events.KindDecision, Result: "FAIL", Reason: "faceNotMatch", Name: "=HYPERLINK(\"x\")"},
		{Kind: events.KindDoorForcedOpen, Reason: "door-contact"},
	} {
		ev.Door, ev.Time = "lobby-door-1", t0.Add(time.Duration(i)*time.Hour)
		a, err := l.Append(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, a)
	}
	return cfgPath, evs
}

func runEventsCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	now := func() time.Time { return time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC) }
	code := runEvents(args, &out, &errb, now)
	return out.String(), errb.String(), code
}

func TestEventsExportJSONL(t *testing.T) {
	cfg, evs := eventsCLI(t)
	out, errOut, code := runEventsCLI(t, "export", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), out)
	}
	var first events.Event
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.ID != evs[0].ID || first.Name != "Ada Lovelace" || first.Credential.Number != "****2345" || first.CorrelationID != "corr-1" {
		t.Errorf("first event %+v", first)
	}
	if strings.Contains(out, "10012345") {
		t.Error("the export shows a full card number")
	}

	// --since as an age: the last 2 hours from 10:30 are 08:30 onwards.
	out, _, code = runEventsCLI(t, "export", "--config", cfg, "--since", "2h")
	if code != 0 || strings.Count(out, "\n") != 2 || strings.Contains(out, evs[0].ID) {
		t.Errorf("--since 2h: exit %d\n%s", code, out)
	}
	out, _, _ = runEventsCLI(t, "export", "--config", cfg, "--since", "2026-03-01T09:00:00Z", "--until", "2026-03-01T10:00:00Z")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, evs[1].ID) {
		t.Errorf("since/until: %s", out)
	}
}

func TestEventsExportCSV(t *testing.T) {
	cfg, evs := eventsCLI(t)
	out, errOut, code := runEventsCLI(t, "export", "--config", cfg, "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || strings.Join(rows[0], ",") != strings.Join(events.CSVHeader, ",") {
		t.Fatalf("rows: %v", rows)
	}
	if rows[1][0] != evs[0].ID || rows[1][4] != "decision" || rows[1][14] != "****2345" {
		t.Errorf("row 1: %v", rows[1])
	}
	// A name that looks like a formula is kept from running in a spreadsheet.
	if rows[2][12] != `'=HYPERLINK("x")` {
		t.Errorf("formula-like name exported as %q", rows[2][12])
	}
}

func TestEventsListTable(t *testing.T) {
	cfg, evs := eventsCLI(t)
	out, errOut, code := runEventsCLI(t, "list", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "TIME") || !strings.Contains(out, "door.forced_open") || !strings.Contains(out, evs[2].ID) {
		t.Errorf("table:\n%s", out)
	}
}

func TestEventsCLIErrors(t *testing.T) {
	cfg, _ := eventsCLI(t)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, 2, "usage"},
		{[]string{"purge", "--config", cfg}, 2, "unknown command"},
		{[]string{"export", "--config", cfg, "--format", "xml"}, 2, `unknown format "xml"`},
		{[]string{"export", "--config", cfg, "--since", "yesterday"}, 2, "is not a time"},
		{[]string{"export", "--config", filepath.Join(t.TempDir(), "none.yaml")}, 2, "read config"},
	} {
		_, errOut, code := runEventsCLI(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut, c.code, c.msg)
		}
	}
	// A configuration whose log does not exist yet.
	dir := t.TempDir()
	p := filepath.Join(dir, "k.yaml")
	doc := fmt.Sprintf("device:\n  source_id: d\n  state_dir: %s\nincode:\n  base_url: http://127.0.0.1:9\ncamera:\n  source: /dev/video0\n", dir)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runEventsCLI(t, "export", "--config", p); code != 1 || !strings.Contains(errOut, "no event log") {
		t.Errorf("missing log: exit %d, %q", code, errOut)
	}
}

// `kioskd queue drain` records the deferred answers in the event log too.
func TestQueueDrainRecordsAccessEvents(t *testing.T) {
	srv, _ := simServer(t)
	t.Setenv("KIOSKD_API_KEY", qAPIKey)
	t.Setenv("KIOSKD_HARDWARE_ID", qToken)
	evPath := filepath.Join(t.TempDir(), "events.db")
	c := newQueueCLI(t, srv.URL, "events:\n  path: "+evPath+"\n")
	items := c.seed(t, c.cfg(t, false), []string{"astronaut.jpg", "chelsea.jpg"}, 0)
	if _, err := events.Open(evPath, config.Default().Events, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := c.run(t, "drain", "--json"); code != 0 {
		t.Fatalf("drain: exit %d\n%s\n%s", code, out, errOut)
	}
	r, err := events.NewReader(evPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []events.Event
	_ = r.Each(time.Time{}, time.Time{}, func(e events.Event) error { got = append(got, e); return nil })
	if len(got) != 2 {
		t.Fatalf("%d events after draining 2 captures", len(got))
	}
	for i, want := range []string{"PASS", "FAIL"} {
		e := got[i]
		if e.Kind != events.KindDecision || !e.Deferred || e.Result != want || e.CaptureID != items[i].ID || e.Door != "lobby-door-1" {
			t.Errorf("event %d: %+v", i, e)
		}
	}
}
