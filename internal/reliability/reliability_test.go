package reliability

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendLoadMergeRender(t *testing.T) {
	path := filepath.Join(t.TempDir(), "obs.jsonl")
	for _, o := range []Observation{
		{Area: "service", Case: "hang", Happened: "first", Passed: false},
		{Area: "service", Case: "hang", Happened: "OFFLINE | timeout", Lost: "nothing", Passed: true},
		{Area: "disk", Case: "full", Happened: "queued=false", Passed: true},
		{Area: "process", Case: "kill", Happened: "200 rounds", Passed: true, Soak: true},
	} {
		if err := Append(path, o); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := Load(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 3 || obs[0].Happened != "OFFLINE | timeout" {
		t.Fatalf("Load kept %+v; want the last of each case", obs)
	}

	var st State
	m := Meta{Generated: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Command: "test", Commit: "abc"}
	st.Update(obs, m)
	// A regular run replaces the regular rows and keeps the soak rows.
	st.Update([]Observation{{Area: "service", Case: "503", Passed: true}}, m)
	var cases []string
	for _, o := range st.Observations {
		cases = append(cases, o.Case)
	}
	if strings.Join(cases, ",") != "kill,503" {
		t.Fatalf("after a regular run: %v", cases)
	}

	st.Update(obs, m)
	var doc bytes.Buffer
	if err := Render(&doc, st); err != nil {
		t.Fatal(err)
	}
	s := doc.String()
	for _, want := range []string{"## Service faults", "## Disk faults", "OFFLINE \\| timeout", "## Soak", "200 rounds", "2 of 2 cases passed", "## How to run it"} {
		if !strings.Contains(s, want) {
			t.Errorf("document lacks %q:\n%s", want, s)
		}
	}
	if strings.Index(s, "## Service faults") > strings.Index(s, "## Disk faults") {
		t.Error("sections out of order")
	}
}

func TestLoadRejectsBadLines(t *testing.T) {
	for _, in := range []string{"{", `{"case":"x"}`, `{"area":"x"}`} {
		if _, err := Load(strings.NewReader(in)); err == nil {
			t.Errorf("Load(%q): no error", in)
		}
	}
}
