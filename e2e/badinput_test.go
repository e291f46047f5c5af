package e2e

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// badImages are camera frames no camera should send; each must be
// rejected with a reason and never crash kioskd (gocv v0.31 aborts the
// process on an OpenCV exception, so this is checked on the real binary).
type badImage struct {
	file string // name in the folder
	what string
	// run is what kioskd run says about it: a log line at info level
	// containing this, or "metric:" and a rejection reason counted.
	run string
	// snap is what kioskd snapshot says about it alone (report or error).
	snap string
}

var bigImage struct {
	once sync.Once
	data []byte
	err  error
}

// hugeJPEG is a real 10000x10000 JPEG (uniform grey, so it is small on disk
// and 300 MB once decoded).
func hugeJPEG(t *testing.T) []byte {
	t.Helper()
	bigImage.once.Do(func() {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 10000, 10000, gocv.MatTypeCV8UC1)
		defer m.Close()
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 50})
		if err != nil {
			bigImage.err = err
			return
		}
		bigImage.data = append([]byte(nil), buf.GetBytes()...)
		buf.Close()
	})
	if bigImage.err != nil {
		t.Fatal(bigImage.err)
	}
	return bigImage.data
}

// pngBomb is a PNG whose header announces w x h RGB pixels, followed by a
// little compressed data: what a decoder would allocate is in the header.
func pngBomb(t *testing.T, w, h uint32) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(data)))
		b.Write(n[:])
		body := append([]byte(typ), data...)
		b.Write(body)
		binary.BigEndian.PutUint32(n[:], crc32.ChecksumIEEE(body))
		b.Write(n[:])
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8 bits, RGB
	chunk("IHDR", ihdr)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	if _, err := zw.Write(make([]byte, 1<<16)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	return b.Bytes()
}

func tinyJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{200, 100, 50, 255})
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeBadImages puts the bad images into dir (sorted before the clip's
// frame-* files) and returns what each must produce.
func writeBadImages(t *testing.T, dir string) []badImage {
	t.Helper()
	astro := readFile(t, filepath.Join(repoRoot, "testdata", "astronaut.jpg"))
	imgs := []struct {
		b    badImage
		data []byte
	}{
		{badImage{"a-1x1.jpg", "a 1x1 frame", "metric:invalid_frame", `"reasons":["invalid_frame"]`}, tinyJPEG(t)},
		// Refused from the header: decoding it would cost 300 MB.
		{badImage{"b-10000x10000.jpg", "a 10000x10000 frame", "more than 8294400 pixels", "more than 8294400 pixels"}, hugeJPEG(t)},
		{badImage{"c-garbage.jpg", "a .jpg file of random bytes", "not a decodable image", "not a decodable image"}, bytes.Repeat([]byte("\x13\x37garbage"), 4000)},
		// libjpeg would decode what it has and fill the rest with grey (a
		// face with its chin missing, uploadable): refused instead.
		{badImage{"d-header-only.jpg", "a JPEG cut after its first 600 bytes", "truncated", "truncated"}, astro[:600]},
		{badImage{"e-empty.jpg", "an empty .jpg file", "size 0 bytes", "size 0 bytes"}, nil},
		{badImage{"f-cut-short.jpg", "person A's JPEG with its last 2 KB cut off", "truncated", "truncated"}, astro[:len(astro)-2048]},
		// A PNG header that says 20000x20000: 1.2 GB once decoded.
		{badImage{"g-20000x20000.png", "a PNG of 20000x20000", "more than 8294400 pixels", "more than 8294400 pixels"}, pngBomb(t, 20000, 20000)},
	}
	var out []badImage
	for _, im := range imgs {
		if err := os.WriteFile(filepath.Join(dir, im.b.file), im.data, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, im.b)
	}
	return out
}

// TestBadImagesInTheCamera plays a folder of bad frames before person A
// through the built kioskd: each bad frame is rejected with a reason, the
// process never crashes, and A still gets a decision.
func TestBadImagesInTheCamera(t *testing.T) {
	t.Parallel()
	ob := observe(t, "input", "bad camera frames (kioskd run)",
		"image-folder camera: 1x1 frame, 10000x10000 JPEG, random bytes named .jpg, a JPEG cut after its headers, an empty file, a JPEG with its end cut off, a PNG header of 20000x20000; then person A",
		"each rejected with a reason at the default log level (or counted as a rejection), oversized pictures refused from their header (peak RSS stays low), truncated JPEGs never uploaded, no crash; then a normal decision")
	dir := relClip(t, "empty:3,a:15,empty:8")
	bad := writeBadImages(t, dir)
	s := startSim(t)
	hook := newDoorHook(t)
	cfg := fcfg{BaseURL: s.URL, Clip: dir, Outputs: hook.outputs()}.write(t)
	k := startKioskd(t, cfg)
	maddr := listenAddr(t, k, "metrics")
	var fams = scrape(t, maddr)
	var peak int64
	eventually(t, 60*time.Second, "a decision for person A", func() bool {
		if len(decisions(k.Output())) > 0 {
			fams = scrape(t, maddr)
			peak = peakRSS(t, k.cmd.Process.Pid)
			return true
		}
		if !k.running() {
			t.Fatalf("kioskd exited:\n%s", tail(k.Output(), 30))
		}
		return false
	})
	if code := k.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
	out := k.Output()
	var said []string
	for _, b := range bad {
		if reason, ok := strings.CutPrefix(b.run, "metric:"); ok {
			if v := metricValue(fams, "kioskd_capture_rejections_total", "reason="+reason); v < 1 {
				t.Errorf("%s: kioskd_capture_rejections_total{reason=%s} = %v", b.what, reason, v)
			}
			said = append(said, fmt.Sprintf("%s: counted in kioskd_capture_rejections_total{reason=%q}", b.what, reason))
			continue
		}
		if !strings.Contains(out, b.run) {
			t.Errorf("%s (%s): kioskd did not say %q", b.what, b.file, b.run)
			continue
		}
		said = append(said, fmt.Sprintf("%s: %q", b.what, b.run))
	}
	ds := decisions(out)
	if len(ds) != 1 || ds[0]["result"] != "PASS" {
		t.Errorf("decisions %v, want one PASS for person A", ds)
	}
	if v := metricValue(fams, "kioskd_camera_read_errors_total"); v < 3 {
		t.Errorf("kioskd_camera_read_errors_total = %v, want the bad files counted", v)
	}
	// The 10000x10000 JPEG alone is 300 MB decoded, the PNG 1.2 GB.
	if peak > 280<<20 {
		t.Errorf("kioskd's peak RSS was %d MB: a bomb was decoded", peak>>20)
	}
	if v := metricValue(fams, "kioskd_camera_images_rejected_total", `reason=too_large`); v < 2 {
		t.Errorf("kioskd_camera_images_rejected_total{reason=too_large} = %v, want 2", v)
	}
	if v := metricValue(fams, "kioskd_camera_images_rejected_total", `reason=truncated`); v < 2 {
		t.Errorf("kioskd_camera_images_rejected_total{reason=truncated} = %v, want 2", v)
	}
	ob.happened("%s; peak RSS %d MB; then live PASS for A; exit 0 at the end of the folder", strings.Join(said, "; "), peak>>20)
	checkDoor(t, k, hook)
	ob.lost("nothing")
}

// TestBadImagesInSnapshot runs `kioskd snapshot` on each bad image and on a
// folder holding them: a report or an error naming the image, exit codes as
// documented, never a crash.
func TestBadImagesInSnapshot(t *testing.T) {
	t.Parallel()
	ob := observe(t, "input", "bad images (kioskd snapshot)",
		"`kioskd snapshot --input` on each bad image, and on a folder of them with person A",
		"a JSON report with a rejection reason, or an error naming the file; never a crash")
	dir := t.TempDir()
	bad := writeBadImages(t, dir)
	a := filepath.Join(dir, "z-person-a.jpg")
	if err := os.WriteFile(a, readFile(t, filepath.Join(relFrames(t), "a-0.jpg")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fcfg{BaseURL: "http://127.0.0.1:9", Clip: dir}.write(t)
	var facts []string
	for _, b := range bad {
		out, errOut, code := kioskdCmd(t, "snapshot", "--config", cfg, "--input", filepath.Join(dir, b.file))
		if code != 0 && code != 1 {
			t.Errorf("snapshot %s exited %d (a crash?): %s%s", b.what, code, out, errOut)
			continue
		}
		got := strings.TrimSpace(out + " " + errOut)
		if code == 0 {
			var rep map[string]any
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rep); err != nil {
				t.Errorf("snapshot %s: exit 0 without a JSON report: %q", b.what, out)
				continue
			}
			if rep["accepted"] != false {
				t.Errorf("snapshot %s: accepted: %v", b.what, rep)
			}
		}
		if !strings.Contains(got, b.snap) {
			t.Errorf("snapshot %s: exit %d, %q does not say %q", b.what, code, got, b.snap)
		}
		facts = append(facts, fmt.Sprintf("%s: exit %d, %s", b.what, code, b.snap))
	}
	// A folder: every image gets a line, the bad ones rejected, A accepted.
	out, errOut, code := kioskdCmd(t, "snapshot", "--config", cfg, "--input", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	accepted := 0
	for _, l := range lines {
		var rep map[string]any
		if json.Unmarshal([]byte(l), &rep) == nil && rep["accepted"] == true {
			accepted++
		}
	}
	if code != 0 || accepted != 1 || len(lines) != len(bad)+1 {
		t.Errorf("snapshot of a folder with bad images: exit %d, %d report lines (%d accepted), want exit 0, %d lines, 1 accepted:\n%s%s",
			code, len(lines), accepted, len(bad)+1, out, errOut)
	}
	facts = append(facts, fmt.Sprintf("the folder: exit %d, %d report lines, %d accepted (person A)", code, len(lines), accepted))
	ob.happened("%s", strings.Join(facts, "; "))
	ob.lost("nothing")
}

func clipStr(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// TestHostileSecretFiles runs the built binary on secret files that are a
// directory, a FIFO, or readable by everyone: the first two are errors
// naming the setting, the last a warning (as the README says).
func TestHostileSecretFiles(t *testing.T) {
	t.Parallel()
	ob := observe(t, "input", "hostile secret files",
		"incode.api_key_file is a directory, a FIFO, or a file mode 0644",
		"directory and FIFO: `check-config` exits 2 naming the setting; world-readable: accepted with a warning from check-config and run")
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "key-dir")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "key-fifo")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "key-open")
	if err := os.WriteFile(open, []byte(apiKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	var facts []string
	for _, c := range []struct {
		name, path, want string
		code             int
	}{
		{"a directory", keyDir, "is a directory", 2},
		{"a FIFO", fifo, "not a regular file", 2},
		{"world-readable", open, "readable by everyone", 0},
	} {
		cfg := fcfg{BaseURL: "http://127.0.0.1:9", Clip: relClip(t, "empty:1"), Incode: "  api_key_file: " + c.path}.write(t)
		out, errOut, code := kioskdCmd(t, "check-config", "--config", cfg)
		if code != c.code || !strings.Contains(errOut, "incode.api_key_file") || !strings.Contains(errOut, c.want) {
			t.Errorf("check-config with the key in %s: exit %d, %q%q; want exit %d and a line naming incode.api_key_file saying %q", c.name, code, out, errOut, c.code, c.want)
		}
		if strings.Contains(out+errOut, apiKey) {
			t.Errorf("check-config printed the API key")
		}
		said := tempPathRE.ReplaceAllString(strings.TrimSpace(errOut[strings.LastIndex(errOut, "incode.api_key_file"):]), "…/")
		facts = append(facts, fmt.Sprintf("%s: exit %d, %q", c.name, code, clipStr(said, 110)))
		if c.code == 0 {
			k := startKioskd(t, cfg)
			k.waitLine(t, regexpMust(`"msg":"config".*readable by everyone`), 20*time.Second)
			k.stop(t)
			facts = append(facts, "run logs the same warning at start")
		}
	}
	ob.happened("%s", strings.Join(facts, "; "))
	ob.lost("—")
}

// peakRSS is the process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }
