package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// snapshotConfig writes a configuration for snapshot runs; secrets come
// from the environment as on a real door.
func snapshotConfig(t *testing.T, capture string) string {
	t.Helper()
	t.Setenv("KIOSKD_API_KEY", "test-key")
	t.Setenv("KIOSKD_HARDWARE_ID", "test-device")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	p := filepath.Join(t.TempDir(), "kioskd.yaml")
	cfg := "device:\n  source_id: lobby-door-1\nincode:\n  base_url: http://127.0.0.1:1\ncapture:\n" + capture
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runSnap(t *testing.T, args ...string) (int, []snapshotReport, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runSnapshot(context.Background(), args, &out, &errb)
	var reps []snapshotReport
	dec := json.NewDecoder(&out)
	for dec.More() {
		var r snapshotReport
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output is not JSON lines: %v", err)
		}
		reps = append(reps, r)
	}
	return code, reps, errb.String()
}

func repoFile(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

func TestSnapshotImageReportAndOut(t *testing.T) {
	cfg := snapshotConfig(t, "  min_face_px: 80\n  eyes_cascade: /usr/share/opencv4/haarcascades/haarcascade_eye.xml\n")
	out := filepath.Join(t.TempDir(), "shot.jpg")
	code, reps, stderr := runSnap(t, "--config", cfg, "--input", repoFile("testdata", "astronaut.jpg"), "--out", out)
	if code != 0 || len(reps) != 1 {
		t.Fatalf("exit %d, %d reports, stderr %s", code, len(reps), stderr)
	}
	r := reps[0]
	if !r.Accepted || len(r.Reasons) != 0 || len(r.Faces) != 1 || r.Width != 512 || r.Height != 512 {
		t.Fatalf("report %+v", r)
	}
	if f := r.Faces[0]; f.W < 80 || f.W > 130 || f.X < 140 || f.X > 200 {
		t.Errorf("face %+v, want about (172,62) 100 px", f)
	}
	for name, want := range map[string][2]bool{ // has min, has max
		"face_px": {true, false}, "face_fraction": {true, true}, "center_offset": {false, true},
		"sharpness": {true, false}, "brightness": {true, true}, "contrast": {true, false}, "eyes": {true, false}, "faces": {false, true},
	} {
		m, ok := r.Quality[name]
		if !ok || (m.Min != nil) != want[0] || (m.Max != nil) != want[1] {
			t.Errorf("quality %s = %+v, want min %v max %v", name, m, want[0], want[1])
		}
	}
	if m := r.Quality["face_px"]; *m.Min != 80 || m.Value < 80 {
		t.Errorf("face_px %+v", m)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("--out file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(out)
	img, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Cols() != 512 || img.Rows() != 512 {
		t.Errorf("upload %dx%d, want the whole 512x512 image", img.Cols(), img.Rows())
	}

	// The default minimum rejects the same picture and says why.
	cfg = snapshotConfig(t, "  min_face_px: 120\n")
	code, reps, _ = runSnap(t, "--config", cfg, "--input", repoFile("testdata", "astronaut.jpg"))
	if code != 0 || reps[0].Accepted || len(reps[0].Reasons) != 1 || reps[0].Reasons[0] != "too_small" {
		t.Errorf("min_face_px 120: exit %d %+v", code, reps)
	}
}

func TestSnapshotNoFace(t *testing.T) {
	cfg := snapshotConfig(t, "  min_face_px: 80\n")
	out := filepath.Join(t.TempDir(), "shot.jpg")
	code, reps, stderr := runSnap(t, "--config", cfg, "--input", repoFile("testdata", "coffee.jpg"), "--out", out)
	if code != 1 || len(reps) != 1 || reps[0].Accepted || len(reps[0].Reasons) != 1 || reps[0].Reasons[0] != "no_face" || len(reps[0].Faces) != 0 {
		t.Fatalf("exit %d %+v %s", code, reps, stderr)
	}
	if !strings.Contains(stderr, "no accepted frame") {
		t.Errorf("stderr %q", stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("--out written without an accepted frame: %v", err)
	}
}

func TestSnapshotVideoAndFolder(t *testing.T) {
	cfg := snapshotConfig(t, "  min_face_px: 80\n")
	out := filepath.Join(t.TempDir(), "best.jpg")
	code, reps, stderr := runSnap(t, "--config", cfg, "--input", repoFile("testdata", "clips", "demo.avi"), "--out", out)
	if code != 0 || len(reps) != 72 {
		t.Fatalf("exit %d, %d reports (want 72): %s", code, len(reps), stderr)
	}
	accepted := 0
	for i, r := range reps {
		if r.Frame != i || r.Width != 640 || r.Height != 360 {
			t.Fatalf("report %d: %+v", i, r)
		}
		person := (i >= 8 && i < 32) || (i >= 40 && i < 64)
		if !person && len(r.Faces) != 0 {
			t.Errorf("frame %d (wall): faces %v", i, r.Faces)
		}
		if r.Accepted {
			accepted++
			if !person {
				t.Errorf("frame %d (wall) accepted", i)
			}
		}
	}
	if accepted < 44 {
		t.Errorf("%d of 48 person frames accepted", accepted)
	}

	dir := t.TempDir()
	for _, f := range []string{"astronaut.jpg", "brick.jpg"} {
		b, err := os.ReadFile(repoFile("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, reps, _ = runSnap(t, "--config", cfg, "--input", dir)
	if code != 0 || len(reps) != 2 || !reps[0].Accepted || reps[1].Accepted {
		t.Errorf("folder: exit %d %+v", code, reps)
	}
}

func TestSnapshotBadInput(t *testing.T) {
	cfg := snapshotConfig(t, "  min_face_px: 80\n")
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	broken := filepath.Join(dir, "broken.jpg")
	if err := os.WriteFile(text, []byte("not a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, []byte("\xff\xd8\xff garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{filepath.Join(dir, "missing.jpg"), text, broken} {
		code, reps, stderr := runSnap(t, "--config", cfg, "--input", in)
		if code != 1 || len(reps) != 0 || !strings.Contains(stderr, "input") {
			t.Errorf("%s: exit %d, %d reports, stderr %q", filepath.Base(in), code, len(reps), stderr)
		}
	}
	if code, _, _ := runSnap(t, "--config", cfg); code != 2 {
		t.Errorf("no --input: exit %d, want 2", code)
	}
	if code, _, _ := runSnap(t, "--config", filepath.Join(dir, "missing.yaml"), "--input", text); code != 2 {
		t.Errorf("missing config: exit %d, want 2", code)
	}
}
