package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killRounds is how many times TestKillDuringBusyRun SIGKILLs kioskd:
// $KIOSKD_KILL_ROUNDS, default 8 (make soak runs many more).
func killRounds(t *testing.T) (int, bool) {
	t.Helper()
	v := os.Getenv("KIOSKD_KILL_ROUNDS")
	if v == "" {
		return 8, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("KIOSKD_KILL_ROUNDS=%q: want a positive number", v)
	}
	return n, true
}

// busyScript is what the emulator answers during the kill rounds: mostly
// 503 (so captures are queued), PASS and FAIL (so the drainer acknowledges
// some), and slow answers (so kills land mid-request).
func busyScript(rng *rand.Rand, n int) string {
	items := make([]string, n)
	for i := range items {
		switch r := rng.IntN(20); {
		case r < 12:
			items[i] = "http:503"
		case r < 15:
			items[i] = "pass"
		case r < 16:
			items[i] = "fail:faceMatchFailed"
		default:
			items[i] = "delay:300ms"
		}
	}
	return strings.Join(items, ",")
}

// TestKillDuringBusyRun SIGKILLs kioskd at random moments of a busy run
// (an attempt a second, half of them failing over to the queue, the
// drainer delivering), restarts it on the same state, and checks after
// every kill that the queue file is consistent, and at the end that no
// capture a decision line called queued was lost.
func TestKillDuringBusyRun(t *testing.T) {
	t.Parallel()
	rounds, soak := killRounds(t)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("KIOSKD_KILL_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("KIOSKD_KILL_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	ob := observe(t, "process", "SIGKILL at random points, repeated",
		fmt.Sprintf("%d rounds: start kioskd on the same state, SIGKILL it at a random time, mid-request or just after an enqueue, during a busy run (an attempt a second; the emulator answers 503, PASS, FAIL or slowly; max_retries 0)", rounds),
		"after every kill the queue opens and passes bbolt's check, nothing is moved aside as damaged; every capture a decision line called queued is delivered or still queued")
	if soak {
		ob.o.Soak = true
	}
	s := startSim(t, "--script", busyScript(rng, 40*rounds+50))
	state := t.TempDir()
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, "empty:2,a:10,empty:6"), Loop: true, State: state,
		Incode: "  max_retries: 0", Capture: "  max_failures: 0"}.write(t)

	queued := map[string]bool{} // capture IDs a decision line called queued
	var kills []string
	for round := 1; round <= rounds; round++ {
		k := startKioskd(t, cfg)
		started := time.Now()
		k.waitLine(t, regexpMust(`"msg":"queue open"`), 20*time.Second)
		// Where to kill: at a random time, while the emulator holds a
		// request (a live attempt or a delivery in flight), or just after a
		// capture was queued.
		var how string
		switch rng.IntN(3) {
		case 0:
			after := time.Duration(300+rng.IntN(2700)) * time.Millisecond
			select {
			case <-time.After(after):
			case <-k.done:
				t.Fatalf("round %d: kioskd exited by itself:\n%s", round, tail(k.Output(), 20))
			}
			how = fmt.Sprintf("at %.1fs", after.Seconds())
		case 1:
			eventually(t, 20*time.Second, "a request in flight", func() bool {
				n, _ := simStatusOf(t, s)["inFlight"].(float64)
				return n >= 1 || !k.running()
			})
			time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
			how = "mid-request"
		default:
			queuedBefore := len(queued)
			eventually(t, 20*time.Second, "a queued capture", func() bool {
				for _, d := range decisions(k.Output()) {
					if q, _ := d["queued"].(bool); q && !queued[str(d, "capture_id")] {
						return true
					}
				}
				return !k.running()
			})
			_ = queuedBefore
			how = "just after an enqueue"
		}
		k.signal(t, syscall.SIGKILL)
		after := time.Since(started)
		k.wait(t, 10*time.Second)
		out := k.Output()
		n := 0
		for _, d := range decisions(out) {
			if q, _ := d["queued"].(bool); q {
				queued[str(d, "capture_id")] = true
				n++
			}
		}
		last := "before any decision"
		if ds := decisions(out); len(ds) > 0 {
			last = fmt.Sprintf("after %d decisions", len(ds))
		}
		kills = append(kills, how)
		t.Logf("round %d: killed %s, %v after start (%s), %d newly queued", round, how, after.Round(time.Millisecond), last, n)

		// Consistent: the CLI opens it, bbolt's check passes, and no
		// recovery moved it aside.
		st := queueStats(t, cfg)
		checkBolt(t, filepath.Join(state, "queue.db"))
		if m, _ := filepath.Glob(filepath.Join(state, "queue.db.corrupt-*")); len(m) > 0 {
			t.Fatalf("round %d: the queue file was moved aside as damaged: %v", round, m)
		}
		if strings.Contains(out, "attempt history unreadable") {
			t.Errorf("round %d: the attempt history did not survive a kill", round)
		}
		t.Logf("round %d: queue depth %v", round, st["depth"])
	}
	kinds := map[string]int{}
	for _, k := range kills {
		if strings.HasPrefix(k, "at ") {
			k = "at a random time"
		}
		kinds[k]++
	}
	var kindList []string
	for _, k := range []string{"at a random time", "mid-request", "just after an enqueue"} {
		if kinds[k] > 0 {
			kindList = append(kindList, fmt.Sprintf("%d %s", kinds[k], k))
		}
	}
	ob.happened("%d kills (%s); the queue opened and passed bbolt's check every time, nothing moved aside", rounds, strings.Join(kindList, ", "))
	if len(queued) == 0 {
		t.Fatal("no capture was queued in any round: the run was not busy")
	}

	// Deliver what is left, then account for every queued capture.
	s.script(t, "[]")
	out, errOut, code := kioskdCmd(t, "queue", "drain", "--json", "--config", cfg)
	if code != 0 {
		t.Fatalf("queue drain exited %d: %s%s", code, out, errOut)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("queue drain --json: %v: %s", err, out)
	}
	remaining := map[string]bool{}
	for _, id := range queueListIDs(t, cfg) {
		remaining[id] = true
	}
	reqs := s.requests(t)
	var lost []string
	redelivered := 0
	for id := range queued {
		outs := simKeyOutcomes(reqs, id)
		n200 := 0
		for _, o := range outs {
			if strings.HasSuffix(o, "/200") {
				n200++
			}
		}
		if n200 > 1 {
			redelivered++
		}
		if n200 == 0 && !remaining[id] {
			lost = append(lost, fmt.Sprintf("%s %v", id, outs))
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d queued captures were neither delivered nor kept:\n%s", len(lost), len(queued), strings.Join(lost, "\n"))
	}
	st := queueStats(t, cfg)
	if st["depth"] != float64(0) || st["dead_letters"] != float64(0) {
		t.Errorf("after queue drain: %v", st)
	}
	ob.happened("%d captures were queued across the rounds; `kioskd queue drain` delivered the rest (%v); all %d reached the emulator with their Idempotency-Key (%d of them more than once: at-least-once after a kill)",
		len(queued), sum["delivered"], len(queued)-len(lost), redelivered)
	if len(lost) == 0 {
		ob.lost("nothing (0 of %d queued captures)", len(queued))
	} else {
		ob.lost("%d of %d queued captures", len(lost), len(queued))
	}
}

// queueListIDs lists the IDs of the queued captures of a stopped kioskd.
func queueListIDs(t *testing.T, cfgPath string) []string {
	t.Helper()
	out, errOut, code := kioskdCmd(t, "queue", "list", "--json", "--config", cfgPath)
	if code != 0 {
		t.Fatalf("queue list: %d %s%s", code, out, errOut)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		var wrapped struct {
			Items []map[string]any `json:"items"`
		}
		if err2 := json.Unmarshal([]byte(out), &wrapped); err2 != nil {
			t.Fatalf("queue list --json: %v: %s", err, out)
		}
		items = wrapped.Items
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, str(it, "id"))
	}
	return ids
}
