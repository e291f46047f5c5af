package queue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/kioskd/kioskd/internal/promtest"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
)

const crashHelperEnv = "KIOSKD_QUEUE_CRASH_HELPER"

func crashConfig(path string) config.Queue {
	cfg := testConfigAt(path)
	cfg.MaxItems = 1 << 20
	cfg.MaxBytes = 1 << 30
	return cfg
}

// TestHelperProcess is the child of TestCrashSafety: it enqueues items
// until it is killed, printing "E seq size seed" once each Enqueue has
// returned, and acknowledges every third item between "L seq" (about to
// ack) and "A seq" (acked).
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		t.Skip("child process of TestCrashSafety")
	}
	q, err := queue.Open(crashConfig(path), quiet(), prometheus.NewRegistry())
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	for i := 0; ; i++ {
		size, seed := 1000+r.IntN(60000), r.Uint64()
		it, err := q.Enqueue(context.Background(), queue.Item{JPEG: fakeJPEG(size, seed), Source: "crash"})
		if err != nil {
			fmt.Fprintln(os.Stderr, "enqueue:", err)
			os.Exit(4)
		}
		fmt.Printf("E %d %d %d\n", it.Seq, size, seed)
		if i%3 == 2 {
			old, err := q.LeaseOldest()
			if err != nil || old == nil {
				fmt.Fprintln(os.Stderr, "lease:", err)
				os.Exit(5)
			}
			fmt.Printf("L %d\n", old.Seq)
			if err := q.Ack(old.Seq); err != nil {
				fmt.Fprintln(os.Stderr, "ack:", err)
				os.Exit(6)
			}
			fmt.Printf("A %d\n", old.Seq)
		}
	}
}

type crashItem struct {
	size int
	seed uint64
}

// TestCrashSafety kills a process that is enqueueing with SIGKILL at
// random points, many times. After every kill the file must open without
// recovery, pass bbolt's consistency check, and hold every item whose
// Enqueue had returned (minus those acknowledged), intact.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	path := filepath.Join(t.TempDir(), "queue.db")
	enqueued := map[uint64]crashItem{}
	leased := map[uint64]bool{} // an ack may have committed without its "A" line
	acked := map[uint64]bool{}
	deadline := time.Now().Add(90 * time.Second)
	rounds := 0
	for ; rounds < 20 && time.Now().Before(deadline); rounds++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + r.IntN(30)
		delay := time.Duration(r.IntN(3000)) * time.Microsecond
		lines := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue // the test framework's own output
			}
			seq, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				continue
			}
			switch f[0] {
			case "E":
				size, _ := strconv.Atoi(f[2])
				s, _ := strconv.ParseUint(f[3], 10, 64)
				enqueued[seq] = crashItem{size: size, seed: s}
			case "L":
				leased[seq] = true
			case "A":
				acked[seq] = true
			}
			lines++
			if lines == killAfter {
				// A random extra moment, so that the kill lands anywhere
				// in the next transaction, not just after a print.
				time.Sleep(delay)
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v, not by our SIGKILL: %s", rounds, err, stderr.String())
		}
		checkAfterCrash(t, rounds, path, enqueued, leased, acked)
	}
	if rounds < 5 {
		t.Fatalf("only %d rounds in the time allowed", rounds)
	}
	t.Logf("%d kills, %d items enqueued, %d acknowledged", rounds, len(enqueued), len(acked))
}

func checkAfterCrash(t *testing.T, round int, path string, enqueued map[uint64]crashItem, leased, acked map[uint64]bool) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("round %d: bbolt open after kill: %v", round, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatalf("round %d: consistency check: %v", round, err)
	}

	reg := prometheus.NewRegistry()
	q, err := queue.Open(crashConfig(path), quiet(), reg)
	if err != nil {
		t.Fatalf("round %d: Open after kill: %v", round, err)
	}
	defer q.Close()
	if v := promtest.Value(t, reg, "kioskd_queue_recovered_files_total"); v != 0 {
		t.Fatalf("round %d: the file was treated as damaged", round)
	}
	present := map[uint64][]byte{}
	for {
		it, err := q.LeaseOldest()
		if err != nil {
			t.Fatalf("round %d: lease: %v", round, err)
		}
		if it == nil {
			break
		}
		present[it.Seq] = it.JPEG
	}
	for seq, ci := range enqueued {
		img, ok := present[seq]
		switch {
		case acked[seq] && ok:
			t.Fatalf("round %d: seq %d was acknowledged but is back", round, seq)
		case leased[seq]:
		case !ok:
			t.Fatalf("round %d: seq %d was enqueued (Enqueue returned) but is lost", round, seq)
		case string(img) != string(fakeJPEG(ci.size, ci.seed)):
			t.Fatalf("round %d: seq %d is damaged", round, seq)
		}
	}
	if dead, _ := q.List(true); len(dead) != 0 {
		t.Fatalf("round %d: %d items dead-lettered as unreadable", round, len(dead))
	}
}
