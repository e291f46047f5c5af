package e2e

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
)

// TestDescriptorFloodKeepsTheDoor holds hundreds of idle connections to the
// metrics port of a kioskd whose descriptor limit is lowered to 256 (the
// unit sets 1024): the listener keeps only its share and closes the rest at
// once, so uploads, the camera and the queue still get descriptors and a
// real person's live PASS opens the door.
func TestDescriptorFloodKeepsTheDoor(t *testing.T) {
	t.Parallel()
	ob := observe(t, "listeners", "idle connection flood on the metrics port",
		"RLIMIT_NOFILE 256 (prlimit); 300 idle TCP connections to the metrics port, redialled every second",
		"the listener keeps at most its share (a quarter of the limit) and closes the rest at once; no \"too many open files\"; a live PASS during the flood opens the door")
	s := startSim(t)
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, loopClip), Loop: true, Outputs: hook.outputs()}.write(t)
	k := startArgv(t, kioskdEnv(), "prlimit", "--nofile=256:256", "--", filepath.Join(binDir, "kioskd"), "run", "--config", cfg)
	maddr := listenAddr(t, k, "metrics")
	displayAddr(t, k)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var conns []net.Conn
			for range 300 {
				c, err := net.DialTimeout("tcp", maddr, time.Second)
				if err == nil {
					conns = append(conns, c)
				}
			}
			mu.Lock()
			peak = max(peak, len(conns))
			mu.Unlock()
			select {
			case <-stop:
			case <-time.After(time.Second):
			}
			for _, c := range conns {
				c.Close()
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	// A decision that starts while the flood is on.
	eventually(t, 10*time.Second, "the flood to start", func() bool { mu.Lock(); defer mu.Unlock(); return peak > 0 })
	before := len(decisions(k.Output()))
	var pass map[string]any
	eventually(t, 45*time.Second, "a live PASS during the flood", func() bool {
		ds := decisions(k.Output())
		for _, d := range ds[min(before, len(ds)):] {
			if live(d) && d["result"] == "PASS" {
				pass = d
				return true
			}
		}
		if !k.running() {
			t.Fatalf("kioskd exited during the flood:\n%s", tail(k.Output(), 30))
		}
		return false
	})
	ob.happened("live PASS during the flood (%s)", str(pass, "authentication_id"))
	fds := countFDs(k)
	ob.happened("kioskd held %d descriptors during the flood", fds)
	if fds >= 200 {
		t.Errorf("kioskd holds %d descriptors of its 256 during the flood", fds)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the cleanup
	if strings.Contains(k.Output(), "too many open files") {
		t.Errorf("kioskd ran out of descriptors:\n%s", tail(k.Output(), 20))
	}
	// The server frees the flood's slots as it sees the connections close.
	eventually(t, 20*time.Second, "a scrape after the flood", func() bool {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	rejected := metricValue(scrape(t, maddr), "kioskd_http_rejected_connections_total", "server=metrics")
	if rejected < 100 {
		t.Errorf("kioskd_http_rejected_connections_total{server=metrics} = %v, want the flood's excess", rejected)
	}
	ob.happened("kioskd_http_rejected_connections_total{server=metrics} %v; no \"too many open files\"", rejected)
	k.stop(t)
	if n := checkDoor(t, k, hook); n < 1 {
		t.Error("the door never opened")
	}
	ob.lost("nothing")
}

func countFDs(k *proc) int {
	entries, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(k.cmd.Process.Pid), "fd"))
	return len(entries)
}

// TestKioskScreenNotStarved takes every display stream slot, then opens the
// kiosk browser's stream: it ends the oldest and gets the screen.
func TestKioskScreenNotStarved(t *testing.T) {
	t.Parallel()
	ob := observe(t, "listeners", "display stream slots all taken",
		"display.max_clients 4; four event streams held open, then the kiosk browser (loopback) connects",
		"the kiosk browser gets the current screen at once; the oldest stream is ended and counted")
	s := startSim(t)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, loopClip), Loop: true, Display: "  max_clients: 4"}.write(t)
	k := startKioskd(t, cfg)
	daddr := displayAddr(t, k)
	maddr := listenAddr(t, k, "metrics")
	for range 4 {
		watchScreen(t, daddr)
	}
	eventually(t, 10*time.Second, "four streams open", func() bool {
		return metricValue(scrape(t, maddr), "kioskd_display_clients", "stream=events") == 4
	})
	kiosk := watchScreen(t, daddr)
	eventually(t, 10*time.Second, "the kiosk browser's screen", func() bool { return len(kiosk.seen()) > 0 })
	ev := metricValue(scrape(t, maddr), "kioskd_display_rejected_requests_total", "reason=evicted")
	if ev != 1 {
		t.Errorf("evicted %v streams, want 1", ev)
	}
	ob.happened("kiosk browser got %q; %v stream evicted", kiosk.seen()[0].State, ev)
	ob.lost("nothing")
}

// TestQueueFileIsNotAWeapon: a queue path that is a symbolic link is refused
// by the daemon (a startup error) and by `kioskd queue stats`, and the file
// it points to keeps its mode and bytes; stats and list leave a real queue
// file byte for byte as it was; a wrong key is a startup error.
func TestQueueFileIsNotAWeapon(t *testing.T) {
	t.Parallel()
	ob := observe(t, "queue file", "symbolic link, read-only commands and a wrong key",
		"queue.path a symlink to a 0644 file; `kioskd queue stats|list` on a real queue; queue.key_file replaced by another key",
		"run and stats refuse the link, its target unchanged; stats and list change nothing on disk; a wrong key stops the start with the documented error")
	target := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(target, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	link := filepath.Join(state, "queue.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	s := startSim(t)
	cfg := fcfg{BaseURL: s.URL, Clip: relClip(t, loopClip), Loop: true, State: state}.write(t)
	k := startKioskd(t, cfg)
	if code := k.wait(t, 30*time.Second); code == 0 {
		t.Error("kioskd ran with a symlinked queue file")
	}
	if !regexp.MustCompile(`"msg":"queue refused.*symbolic link`).MatchString(k.Output()) {
		t.Errorf("no clear error about the link:\n%s", tail(k.Output(), 10))
	}
	_, errOut, code := kioskdCmd(t, "queue", "stats", "--config", cfg)
	if code == 0 || !strings.Contains(errOut, "symbolic link") {
		t.Errorf("queue stats on a link: exit %d %s", code, errOut)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Errorf("the link's target is now %04o", fi.Mode().Perm())
	}
	ob.happened("run exited %d and stats exited %d naming the link; target still 0644", k.wait(t, time.Second), code)

	// A real queue: the service makes it (and its key), stats and list only read.
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	k = startKioskd(t, cfg)
	listenAddr(t, k, "metrics")
	k.stop(t)
	sum := func() [32]byte { return sha256.Sum256(readFile(t, link)) }
	fi0, _ := os.Stat(link)
	before := sum()
	for _, sub := range []string{"stats", "list"} {
		if out, errOut, code := kioskdCmd(t, "queue", sub, "--config", cfg); code != 0 {
			t.Fatalf("queue %s: %d %s%s", sub, code, out, errOut)
		}
	}
	fi1, _ := os.Stat(link)
	if sum() != before || !fi0.ModTime().Equal(fi1.ModTime()) || fi0.Mode() != fi1.Mode() {
		t.Error("queue stats/list changed the file")
	}
	if fi, err := os.Stat(filepath.Join(state, "queue.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("generated key: %v %v", fi, err)
	}
	out, _, _ := kioskdCmd(t, "check-config", "--config", cfg)
	if !strings.Contains(out, "generated per-device key") || !strings.Contains(out, filepath.Join(state, "queue.key")) {
		t.Errorf("check-config does not say where the key is: %s", out)
	}
	ob.happened("stats and list left the file byte for byte; key generated 0600; check-config names it")

	// Another key, with an item sealed under the first one.
	holdQueueItem(t, link, readFile(t, filepath.Join(state, "queue.key")))
	if err := os.WriteFile(filepath.Join(state, "queue.key"), []byte(strings.Repeat("cd", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k = startKioskd(t, cfg)
	if code := k.wait(t, 30*time.Second); code == 0 {
		t.Error("kioskd ran with the wrong queue key")
	}
	if !strings.Contains(k.Output(), "queue key does not match the file") {
		t.Errorf("no clear error about the key:\n%s", tail(k.Output(), 10))
	}
	ob.happened("wrong key: run exited %d with \"queue key does not match the file\"", k.wait(t, time.Second))
	ob.lost("nothing")
}

// holdQueueItem seals one item into the queue file with key, as the
// service would have while offline.
func holdQueueItem(t *testing.T, path string, key []byte) {
	t.Helper()
	qc := config.Default().Queue
	qc.Path, qc.Key = path, strings.TrimSpace(string(key))
	q, err := queue.Open(qc, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Enqueue(context.Background(), queue.Item{JPEG: []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9}}); err != nil {
		t.Fatal(err)
	}
}
