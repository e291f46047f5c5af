// Command render turns the observations the end-to-end fault tests wrote
// (KIOSKD_RELIABILITY_OUT) into docs/reliability.md, merging them into the
// observations kept in docs/reliability.json.
//
//	go run ./internal/reliability/render -in obs.jsonl
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/kioskd/kioskd/internal/reliability"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fl := flag.NewFlagSet("render", flag.ContinueOnError)
	fl.SetOutput(stderr)
	in := fl.String("in", "", "observations, one JSON object a line (required)")
	out := fl.String("out", "docs/reliability.md", "document to write")
	state := fl.String("state", "docs/reliability.json", "observations of earlier runs, updated in place")
	command := fl.String("command", "scripts/reliability.sh", "how the observations were produced, for the header")
	commit := fl.String("commit", "", "the commit tested")
	seconds := fl.Float64("seconds", 0, "wall time of the test run")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *in == "" || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: render -in FILE [-out docs/reliability.md] [-state docs/reliability.json] [-command CMD] [-commit SHA] [-seconds N]")
		return 2
	}
	if err := render(*in, *out, *state, reliability.Meta{
		Generated: time.Now().UTC().Truncate(time.Second), Command: *command, Commit: *commit, Seconds: *seconds,
		Host: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()),
	}, stderr); err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	return 0
}

func render(in, out, statePath string, m reliability.Meta, stderr io.Writer) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	obs, err := reliability.Load(f)
	f.Close()
	if err != nil {
		return err
	}
	if len(obs) == 0 {
		return fmt.Errorf("%w in %s", reliability.ErrNoObservations, in)
	}
	var st reliability.State
	switch b, err := os.ReadFile(statePath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%s: %w", statePath, err)
		}
	}
	st.Update(obs, m)
	var doc bytes.Buffer
	if err := reliability.Render(&doc, st); err != nil {
		return err
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(statePath, append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(out, doc.Bytes(), 0o644); err != nil {
		return err
	}
	failed := 0
	for _, o := range obs {
		if !o.Passed {
			failed++
		}
	}
	fmt.Fprintf(stderr, "render: wrote %s and %s: %d new observations, %d failed\n", out, statePath, len(obs), failed)
	return nil
}
