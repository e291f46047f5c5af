// Command benchrun measures kioskd end to end for `make bench` and
// `make soak`: it runs the package benchmarks, then the built binaries
// (bin/kioskd against bin/incode-sim) on clips it generates under out/, and
// prints one table of every figure the issues ask for, written as JSON too
// so that two runs can be compared.
//
//	benchrun bench [-out bench/results.json] [-compare old.json] [-skip go,latency,...]
//	benchrun soak -duration 30m [-out bench/soak.json]
//	benchrun decode CLIP   (one core: camera decode cost, run under taskset)
//	benchrun show [-compare old.json] results.json   (the table of a saved run)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: benchrun bench|soak|decode [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 1
	}
	switch args[0] {
	case "bench":
		return runBench(ctx, root, args[1:], stdout, stderr)
	case "soak":
		return runSoak(ctx, root, args[1:], stdout, stderr)
	case "decode":
		return runDecode(args[1:], stdout, stderr)
	case "show":
		return runShow(root, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "benchrun: unknown command %q\n", args[0])
	return 2
}

// repoRoot is the directory holding go.mod, found from the working directory.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		d = parent
	}
}

type benchFlags struct {
	out     string
	compare string
	skip    map[string]bool
	n       int // decisions per latency run
}

func runBench(ctx context.Context, root string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench/results.json", "write the results here")
	cmp := fs.String("compare", "", "an earlier results.json to compare with")
	skip := fs.String("skip", "", "comma-separated sections to skip: go, queue, latency, lobby, payload, resources, decode")
	n := fs.Int("decisions", 30, "decisions per latency run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f := benchFlags{out: *out, compare: *cmp, skip: map[string]bool{}, n: *n}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			f.skip[s] = true
		}
	}
	b := &bench{root: root, log: stderr, started: time.Now()}
	if err := b.run(ctx, f); err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		b.print(stdout, nil)
		return 1
	}
	var old *Results
	if f.compare != "" {
		if r, err := readResults(f.compare); err == nil {
			old = r
		} else {
			fmt.Fprintf(stderr, "benchrun: no comparison: %v\n", err)
		}
	}
	b.print(stdout, old)
	if err := b.write(filepath.Join(root, f.out)); err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwritten to %s\n", f.out)
	return 0
}

// runShow prints the table of a saved results file, optionally next to
// an earlier one.
func runShow(root string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmp := fs.String("compare", "", "an earlier results.json")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: benchrun show [-compare old.json] results.json")
		return 2
	}
	r, err := readResults(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "benchrun:", err)
		return 1
	}
	var old *Results
	if *cmp != "" {
		if old, err = readResults(*cmp); err != nil {
			fmt.Fprintln(stderr, "benchrun:", err)
			return 1
		}
	}
	b := &bench{root: root, log: stderr, started: r.Started, machine: r.Machine, metrics: r.Metrics, commit: r.Commit, took: time.Duration(r.DurationS) * time.Second}
	b.print(stdout, old)
	return 0
}
