package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// netCam is a network camera for kioskd: a TCP server streaming raw BGR
// frames, which kioskd reads through a GStreamer pipeline (tcpclientsrc !
// rawvideoparse). Being a live source, it exercises what a real IP camera
// does to kioskd: the test can unplug it, stall it inside a read, or slow
// it down, while kioskd keeps running.
type netCam struct {
	t      *testing.T
	addr   string
	frames map[string][][]byte // scene -> raw 640x360 BGR frames

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]bool // value: frozen (stalled) connection
	interval time.Duration
	scene    func(i int) string // frame index -> scene
	wg       sync.WaitGroup
	closed   bool
}

const netCamW, netCamH = 640, 360

func startNetCam(t *testing.T, interval time.Duration, scene func(i int) string) *netCam {
	t.Helper()
	c := &netCam{t: t, conns: map[net.Conn]bool{}, interval: interval, scene: scene, frames: map[string][][]byte{}}
	dir := relFrames(t)
	for _, name := range []string{"empty", "a", "black"} {
		n := 1
		if name == "a" {
			n = relVariants
		}
		for i := range n {
			var raw []byte
			if name == "black" {
				raw = make([]byte, netCamW*netCamH*3)
			} else {
				m := gocv.IMRead(filepath.Join(dir, fmt.Sprintf("%s-%d.jpg", name, i)), gocv.IMReadColor)
				p, err := m.DataPtrUint8()
				if err != nil || m.Cols() != netCamW || m.Rows() != netCamH {
					m.Close()
					t.Fatalf("frame %s-%d: %v", name, i, err)
				}
				raw = append([]byte(nil), p...)
				m.Close()
			}
			c.frames[name] = append(c.frames[name], raw)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	c.serve(ln)
	t.Cleanup(c.close)
	return c
}

// source is the camera.source kioskd is configured with.
func (c *netCam) source() string {
	host, port, _ := net.SplitHostPort(c.addr)
	return fmt.Sprintf("gst:tcpclientsrc host=%s port=%s ! rawvideoparse width=%d height=%d format=bgr framerate=15/1 ! videoconvert ! appsink sync=false max-buffers=2 drop=true",
		host, port, netCamW, netCamH)
}

func (c *netCam) serve(ln net.Listener) {
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				conn.Close()
				return
			}
			c.conns[conn] = false
			c.mu.Unlock()
			c.wg.Add(1)
			go c.stream(conn)
		}
	}()
}

func (c *netCam) stream(conn net.Conn) {
	defer c.wg.Done()
	defer conn.Close()
	start := time.Now()
	for i := 0; ; i++ {
		c.mu.Lock()
		frozen, open := c.conns[conn]
		interval, scene := c.interval, c.scene
		c.mu.Unlock()
		if !open {
			return
		}
		if !frozen {
			s := scene(i)
			v := c.frames[s]
			if _, err := conn.Write(v[i%len(v)]); err != nil {
				return
			}
		}
		// Paced on a fixed schedule, like a sensor.
		next := start.Add(time.Duration(i+1) * interval)
		time.Sleep(time.Until(next))
	}
}

// unplug drops every connection and refuses new ones.
func (c *netCam) unplug() {
	c.mu.Lock()
	ln := c.ln
	c.ln = nil
	for conn := range c.conns {
		conn.Close()
		delete(c.conns, conn)
	}
	c.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// replug listens again on the same address.
func (c *netCam) replug() {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatalf("replug camera on %s: %v", c.addr, err)
	}
	c.serve(ln)
}

// stall freezes the connections open now: kioskd's read on them blocks
// forever, as a wedged camera driver or network stream does. New
// connections stream normally.
func (c *netCam) stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.conns {
		c.conns[conn] = true
	}
}

func (c *netCam) close() {
	c.mu.Lock()
	c.closed = true
	ln := c.ln
	for conn := range c.conns {
		conn.Close()
		delete(c.conns, conn)
	}
	c.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	c.wg.Wait()
}

// personEvery makes a scene schedule: A for frames [from, from+n) of every
// period frames, the brick wall otherwise.
func personEvery(period, from, n int) func(int) string {
	return func(i int) string {
		if j := i % period; j >= from && j < from+n {
			return "a"
		}
		return "empty"
	}
}

// netCamConfig is the camera section for a netCam.
func netCamConfig(c *netCam, extra string) string {
	return "  width: 640\n  height: 360\n  reconnect_min: 200ms\n  reconnect_max: 1s\n" + extra
}

var (
	cameraDownRE = regexp.MustCompile(`"msg":"camera unavailable"`)
	cameraBackRE = regexp.MustCompile(`"msg":"camera back"`)
	stallRE      = regexp.MustCompile(`"msg":"camera: down, reopening".*"what":"stall"`)
	gstMissingRE = regexp.MustCompile(`OpenCV could not open the source`)
)

// startCamKioskd runs kioskd on a network camera and skips the test when
// this OpenCV cannot read GStreamer pipelines.
func startCamKioskd(t *testing.T, cam *netCam, fps int, cameraExtra string, hook *doorHook) (*proc, string, *screen, *sim) {
	t.Helper()
	s := startSim(t)
	cfg := fcfg{BaseURL: s.URL, Clip: `"` + cam.source() + `"`, FPS: fps, NoRealtime: true, Outputs: hook.outputs(),
		Camera: netCamConfig(cam, cameraExtra)}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	scr := watchScreen(t, displayAddr(t, k))
	eventually(t, 20*time.Second, "the first camera frame", func() bool {
		if gstMissingRE.MatchString(k.Output()) && !strings.Contains(k.Output(), `"state":"up"`) {
			t.Skip("this OpenCV cannot open GStreamer pipelines (tcpclientsrc, rawvideoparse)")
		}
		return metricValue(scrape(t, maddr), "kioskd_camera_frames_total") > 0
	})
	return k, maddr, scr, s
}

func readyz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func sawState(s *screen, state string) bool {
	for _, v := range s.seen() {
		if v.State == state {
			return true
		}
	}
	return false
}

func countLive(out string, result string) int {
	n := 0
	for _, d := range decisions(out) {
		if live(d) && d["result"] == result {
			n++
		}
	}
	return n
}

// TestCameraUnplugged unplugs a network camera mid-run and plugs it back:
// kioskd says so (screen, /readyz, metrics), keeps running, reconnects by
// itself and makes decisions again.
func TestCameraUnplugged(t *testing.T) {
	t.Parallel()
	ob := observe(t, "camera", "unplugged mid-run", "network camera (GStreamer tcpclientsrc) drops its connection and refuses new ones for 3 s, then comes back",
		"\"camera unavailable\" on screen, /readyz 503, kioskd_camera_up 0; reconnect without restart; decisions resume")
	cam := startNetCam(t, time.Second/15, personEvery(40, 5, 15))
	hook := newDoorHook(t)
	k, maddr, scr, _ := startCamKioskd(t, cam, 15, "", hook)
	waitDecision(t, k, "a live PASS before the unplug", 30*time.Second, func(d map[string]any) bool { return live(d) && d["result"] == "PASS" })

	cam.unplug()
	unplugged := time.Now()
	k.waitLine(t, cameraDownRE, 10*time.Second)
	noticed := time.Since(unplugged)
	eventually(t, 10*time.Second, "kioskd_camera_up 0 and /readyz 503", func() bool {
		return metricValue(scrape(t, maddr), "kioskd_camera_up") == 0 && readyz(t, maddr) == 503
	})
	scr.waitState(t, "camera_down", 10*time.Second)
	ob.happened("camera down noticed after %.2f s: /readyz 503, kioskd_camera_up 0, screen \"camera unavailable\" once the last result's 3 s on screen ended", noticed.Seconds())
	// Stay unplugged long enough for several reconnect attempts to fail.
	eventually(t, 10*time.Second, "failed reconnects", func() bool {
		return metricValue(scrape(t, maddr), "kioskd_camera_failures_total", "what=open") >= 2
	})
	passes := countLive(k.Output(), "PASS")
	cam.replug()
	replugged := time.Now()
	k.waitLine(t, cameraBackRE, 15*time.Second)
	ob.happened("back %.1f s after the replug", time.Since(replugged).Seconds())
	eventually(t, 30*time.Second, "a live PASS after the replug", func() bool { return countLive(k.Output(), "PASS") > passes })
	fams := scrape(t, maddr)
	if v := metricValue(fams, "kioskd_camera_reconnects_total"); v < 1 {
		t.Errorf("kioskd_camera_reconnects_total = %v after a replug", v)
	}
	if v := metricValue(fams, "kioskd_camera_up"); v != 1 {
		t.Errorf("kioskd_camera_up = %v after the replug", v)
	}
	if c := readyz(t, maddr); c != 200 {
		t.Errorf("/readyz = %d after the replug", c)
	}
	ob.happened("kioskd_camera_reconnects_total %v; next person: live PASS", metricValue(fams, "kioskd_camera_reconnects_total"))
	k.stop(t)
	checkDoor(t, k, hook)
	ob.happened("same process throughout, exit 0")
	ob.lost("nothing (no one was at the door while it was unplugged)")
}

// TestCameraStall wedges the camera inside a read: kioskd notices after
// stall_timeout, abandons the stuck read, reopens the camera and goes on,
// without a restart.
func TestCameraStall(t *testing.T) {
	t.Parallel()
	ob := observe(t, "camera", "stalls inside a read", "network camera keeps the connection open but stops sending (the read blocks forever); stall_timeout 1s",
		"the stuck read is abandoned after stall_timeout and the camera reopened: recovery without restart")
	cam := startNetCam(t, time.Second/15, personEvery(40, 5, 15))
	hook := newDoorHook(t)
	k, maddr, _, _ := startCamKioskd(t, cam, 15, "  stall_timeout: 1s\n", hook)
	waitDecision(t, k, "a live PASS before the stall", 30*time.Second, func(d map[string]any) bool { return live(d) && d["result"] == "PASS" })
	pid := k.cmd.Process.Pid
	passes := countLive(k.Output(), "PASS")
	cam.stall()
	stalled := time.Now()
	k.waitLine(t, stallRE, 10*time.Second)
	ob.happened("stall detected after %.1f s and the camera reopened", time.Since(stalled).Seconds())
	eventually(t, 30*time.Second, "a live PASS after the stall", func() bool { return countLive(k.Output(), "PASS") > passes })
	if !k.running() || k.cmd.Process.Pid != pid {
		t.Fatal("kioskd did not survive the stall")
	}
	fams := scrape(t, maddr)
	if v := metricValue(fams, "kioskd_camera_reconnects_total"); v < 1 {
		t.Errorf("kioskd_camera_reconnects_total = %v after a stall", v)
	}
	ob.happened("next person: live PASS in the same process (kioskd_camera_reconnects_total %v)",
		metricValue(fams, "kioskd_camera_reconnects_total"))
	k.stop(t)
	checkDoor(t, k, hook)
	ob.lost("nothing")
}

// TestCameraSlow feeds kioskd about one frame a second from a live camera:
// it must not call the camera unavailable between frames, and a person
// standing there still gets a decision.
func TestCameraSlow(t *testing.T) {
	t.Parallel()
	ob := observe(t, "camera", "about 1 fps", "network camera sending one frame every 1.1 s (person A in front of it)",
		"no \"camera unavailable\" between frames; a decision after presence_frames frames")
	cam := startNetCam(t, 1100*time.Millisecond, func(int) string { return "a" })
	hook := newDoorHook(t)
	k, maddr, scr, _ := startCamKioskd(t, cam, 1, "", hook)
	d := waitDecision(t, k, "a live decision at 1 fps", 30*time.Second, live)
	if d["result"] != "PASS" {
		t.Errorf("decision at 1 fps: %v", d)
	}
	// A few more frames, with nobody leaving: no outage may be reported.
	frames := metricValue(scrape(t, maddr), "kioskd_camera_frames_total")
	eventually(t, 15*time.Second, "three more frames", func() bool {
		return metricValue(scrape(t, maddr), "kioskd_camera_frames_total") >= frames+3
	})
	// Only after the first frame: opening a camera is not an outage.
	out := k.Output()
	if i := strings.Index(out, `"state":"up"`); i < 0 || cameraDownRE.MatchString(out[i:]) {
		t.Errorf("kioskd called a 1 fps camera unavailable")
	}
	if sawState(scr, "camera_down") {
		t.Errorf("the screen said the camera was unavailable: %v", scr.seen())
	}
	if c := readyz(t, maddr); c != 200 {
		t.Errorf("/readyz = %d with a 1 fps camera", c)
	}
	ob.happened("live %s after %.1f s from the first frame of the face; no \"camera unavailable\", /readyz 200 throughout", d["result"], d["latency_ms"].(float64)/1000)
	k.stop(t)
	checkDoor(t, k, hook)
	ob.lost("nothing")
}

// TestCameraBlackAndEmptyFrames plays a folder of black frames and empty
// (0-byte) images before person A: no decision, no outage, no crash; then
// a decision as usual.
func TestCameraBlackAndEmptyFrames(t *testing.T) {
	t.Parallel()
	ob := observe(t, "camera", "black and empty frames", "image-folder camera: 20 black frames and 5 empty (0-byte) images, then person A",
		"black frames are frames with no face (no decision, camera up); empty images are skipped with a reason; then a normal decision")
	dir := relClip(t, "empty:3,a:15,empty:10")
	black := gocv.NewMatWithSize(netCamH, netCamW, gocv.MatTypeCV8UC3)
	defer black.Close()
	for i := range 20 {
		if !gocv.IMWrite(filepath.Join(dir, fmt.Sprintf("a-black-%02d.jpg", i)), black) {
			t.Fatal("write black frame")
		}
	}
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("b-empty-%02d.jpg", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startSim(t)
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: s.URL, Clip: dir, Outputs: hook.outputs()}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	scr := watchScreen(t, displayAddr(t, k))
	if code := k.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d at the end of the folder", code)
	}
	_ = maddr
	ds := decisions(k.Output())
	if len(ds) != 1 || ds[0]["result"] != "PASS" {
		t.Errorf("decisions %v, want one PASS (for person A only)", ds)
	}
	skipped := strings.Count(k.Output(), "camera: skipping an unreadable image")
	if skipped != 5 {
		t.Errorf("%d empty images reported as skipped, want 5", skipped)
	}
	if cameraDownRE.MatchString(k.Output()) || sawState(scr, "camera_down") {
		t.Errorf("black or empty frames were reported as a camera outage")
	}
	ob.happened("black frames: no face, no decision; 5 empty images skipped, each logged with its reason; then one live PASS for A; exit 0 at the end of the folder")
	checkDoor(t, k, hook)
	ob.lost("nothing")
}

// TestCameraFolderRemoved takes an image-folder camera away mid-run (the
// folder renamed, as when a USB stick with the test clip is pulled) and
// puts it back.
func TestCameraFolderRemoved(t *testing.T) {
	t.Parallel()
	ob := observe(t, "camera", "image folder removed mid-run", "the looping image-folder camera is renamed away for a few reconnect attempts, then renamed back",
		"\"camera unavailable\", kioskd_camera_up 0; the folder is reopened when it is back and counted as a reconnect; decisions resume")
	dir := relClip(t, loopClip)
	s := startSim(t)
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: s.URL, Clip: dir, Loop: true, Outputs: hook.outputs(),
		Camera: "  reconnect_min: 200ms\n  reconnect_max: 1s"}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	waitDecision(t, k, "a live PASS before the removal", 30*time.Second, func(d map[string]any) bool { return live(d) && d["result"] == "PASS" })
	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	k.waitLine(t, cameraDownRE, 10*time.Second)
	eventually(t, 10*time.Second, "kioskd_camera_up 0 and failed reopens", func() bool {
		fams := scrape(t, maddr)
		return metricValue(fams, "kioskd_camera_up") == 0 && metricValue(fams, "kioskd_camera_failures_total", "what=open") >= 2
	})
	passes := countLive(k.Output(), "PASS")
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	k.waitLine(t, cameraBackRE, 10*time.Second)
	eventually(t, 30*time.Second, "a live PASS after the folder came back", func() bool { return countLive(k.Output(), "PASS") > passes })
	fams := scrape(t, maddr)
	if v := metricValue(fams, "kioskd_camera_reconnects_total"); v < 1 {
		t.Errorf("kioskd_camera_reconnects_total = %v after the folder came back", v)
	}
	ob.happened("\"camera unavailable\" and kioskd_camera_up 0 while it was gone; reopened when back (kioskd_camera_reconnects_total %v); next person: live PASS; same process",
		metricValue(fams, "kioskd_camera_reconnects_total"))
	k.stop(t)
	checkDoor(t, k, hook)
	ob.lost("nothing")
}

// TestCameraRTSPNeverAnswers points kioskd at an RTSP address whose server
// accepts connections and never answers: the log names that cause, and the
// warnings of a camera that stays down do not repeat at every attempt.
func TestCameraRTSPNeverAnswers(t *testing.T) {
	t.Parallel()
	ob := observe(t, "camera", "RTSP server never answers", "camera.source is rtsp://127.0.0.1:PORT/stream; the server there accepts TCP connections and never sends a byte",
		"one warning naming the cause (\"accepted the connection but sent no RTSP answer\"), repeats rate-limited; kioskd_camera_failures_total{what=\"open\"} counts every attempt; kioskd keeps running")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			held = append(held, c)
		}
	}()
	cfg := fcfg{BaseURL: "http://127.0.0.1:9", Clip: "rtsp://" + ln.Addr().String() + "/stream",
		Camera: "  reconnect_min: 100ms\n  reconnect_max: 200ms\n  network_timeout: 1s"}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	eventually(t, 60*time.Second, "four failed opens", func() bool {
		return metricValue(scrape(t, maddr), "kioskd_camera_failures_total", "what=open") >= 4
	})
	out := k.Output()
	downs := strings.Count(out, `"msg":"camera: down, reopening"`)
	unavailable := strings.Count(out, `"msg":"camera unavailable"`)
	if !strings.Contains(out, "accepted the connection but sent no RTSP answer") {
		t.Errorf("the log does not name the cause:\n%s", tail(out, 10))
	}
	if downs != 1 || unavailable != 1 {
		t.Errorf("after 4 failed opens: %d \"down, reopening\" and %d \"camera unavailable\" warnings, want 1 of each:\n%s", downs, unavailable, tail(out, 20))
	}
	ob.happened("%d connections accepted over 4+ attempts; %d warning naming the cause (no RTSP answer within 2s), %d \"camera unavailable\"; the rest counted in kioskd_camera_failures_total", accepted.Load(), downs, unavailable)
	k.stop(t)
	ob.lost("—")
}
