package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is the systemd side of sd_notify: a unixgram socket that
// collects every message kioskd sends.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifySocket{path: path, msgs: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			for _, line := range strings.Split(string(buf[:k]), "\n") {
				n.msgs <- line
			}
		}
	}()
	return n
}

// expect waits for a message starting with prefix.
func (n *notifySocket) expect(t *testing.T, prefix string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", prefix)
			}
			if strings.HasPrefix(m, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q from kioskd within %s", prefix, timeout)
		}
	}
}

// quiet asserts that at most one message starting with prefix arrives in d:
// one sent just before the stall may still be on its way, while a healthy
// process pings every half interval.
func (n *notifySocket) quiet(t *testing.T, prefix string, d time.Duration) {
	t.Helper()
	// What was sent before the stall is history.
	for drained := false; !drained; {
		select {
		case <-n.msgs:
		default:
			drained = true
		}
	}
	deadline := time.After(d)
	got := 0
	for {
		select {
		case m := <-n.msgs:
			if strings.HasPrefix(m, prefix) {
				got++
				if got > 1 {
					t.Fatalf("got %d %q while the frame loop was stuck", got, m)
				}
			}
		case <-deadline:
			return
		}
	}
}

// frameFolder makes an image-folder camera source of n copies of a photo.
func frameFolder(t *testing.T, photo string, n int) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot, "testdata", photo))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d.jpg", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSystemdNotify runs kioskd as systemd would: READY=1 once it is up,
// WATCHDOG=1 pings while the frame loop runs, STOPPING=1 on SIGTERM, exit 0.
func TestSystemdNotify(t *testing.T) {
	s := startSim(t)
	n := listenNotify(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Loop: true, Realtime: true})
	k := startKioskd(t, cfg, "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=1000000")
	n.expect(t, "READY=1", 20*time.Second)
	for i := 0; i < 3; i++ {
		n.expect(t, "WATCHDOG=1", 3*time.Second)
	}
	k.signal(t, syscall.SIGTERM)
	n.expect(t, "STOPPING=1", 5*time.Second)
	if code := k.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d after SIGTERM, want 0", code)
	}
}

// TestWatchdogStopsWhenCameraHangs makes the camera driver block inside a
// read (a video file that is a FIFO: the test writes the first part of a clip
// and then nothing more, keeping the pipe open): the watchdog pings must stop
// so that systemd restarts kioskd.
func TestWatchdogStopsWhenCameraHangs(t *testing.T) {
	t.Parallel()
	s := startSim(t)
	n := listenNotify(t)
	fifo := filepath.Join(t.TempDir(), "camera.avi")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	clip, err := os.ReadFile(filepath.Join(repoRoot, "testdata/clips/demo.avi"))
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			wrote <- err
			return
		}
		t.Cleanup(func() { w.Close() })
		_, err = w.Write(clip[:len(clip)/2])
		wrote <- err
	}()
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Clip: fifo, Realtime: true})
	k := startKioskd(t, cfg, "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=1000000")
	n.expect(t, "READY=1", 20*time.Second)
	n.expect(t, "WATCHDOG=1", 3*time.Second)
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("feeding the FIFO: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("kioskd did not read the FIFO")
	}
	eventually(t, 15*time.Second, "the watchdog warning", func() bool {
		return strings.Contains(k.Output(), "withholding the watchdog ping")
	})
	n.quiet(t, "WATCHDOG=1", 3*time.Second)
	k.signal(t, syscall.SIGKILL)
	k.wait(t, 5*time.Second)
}
