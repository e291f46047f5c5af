package events_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/events"
)

const crashHelperEnv = "KIOSKD_EVENTS_CRASH_HELPER"

// TestCrashHelper is the child of TestSIGKILLDuringBusyRun: four
// goroutines append events until the process is killed, each printing
// "A id" once Append has returned.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		t.Skip("child process of TestSIGKILLDuringBusyRun")
	}
	l, err := events.Open(path, testConfig(), quiet(), prometheus.NewRegistry())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ev, err := l.Append(context.Background(), events.Event{Door: "crash", Kind: events.KindDecision, Result: "PASS", Reason: fmt.Sprint(g)})
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "A %s\n", ev.ID)
				_ = out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestSIGKILLDuringBusyRun kills a process appending from several
// goroutines, several times, at different points: every event whose
// Append returned is in the log afterwards, none twice, in order.
func TestSIGKILLDuringBusyRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	acked := map[string]bool{}
	for round, kill := range []int{7, 31, 64} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		for sc.Scan() {
			id, ok := strings.CutPrefix(sc.Text(), "A ")
			if !ok {
				continue
			}
			acked[id] = true
			if n++; n == kill {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended without SIGKILL: %v\n%s", round, err, stderr.String())
		}
		if n < kill {
			t.Fatalf("round %d: child acknowledged %d events before dying: %s", round, n, stderr.String())
		}
		got := readAll(t, path)
		seen := map[string]bool{}
		var last uint64
		for _, e := range got {
			if seen[e.ID] {
				t.Fatalf("round %d: event %s twice", round, e.ID)
			}
			if e.Seq <= last {
				t.Fatalf("round %d: seq %d after %d", round, e.Seq, last)
			}
			seen[e.ID], last = true, e.Seq
		}
		for id := range acked {
			if !seen[id] {
				t.Fatalf("round %d: acknowledged event %s lost", round, id)
			}
		}
		t.Logf("round %d: %d acknowledged, %d in the log", round, len(acked), len(got))
	}
}
