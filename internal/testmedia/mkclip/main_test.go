package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMkclip(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "c.avi")
	var so, se bytes.Buffer
	if code := run([]string{"-out", out, "-size", "160x120", "-fps", "10", "-script", "empty:2,a:2"}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 || !strings.Contains(so.String(), "4 frames") {
		t.Fatalf("%v %v %q", fi, err, so.String())
	}
	if code := run([]string{"-out", filepath.Join(dir, "f"), "-folder", "-size", "160x120", "-script", "b:3"}, &so, &se); code != 0 {
		t.Fatalf("folder: exit %d: %s", code, se.String())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "f", "*.jpg")); len(m) != 3 {
		t.Errorf("folder: %v", m)
	}
	for _, args := range [][]string{{}, {"-out", out, "-size", "big"}, {"-out", out, "-script", "ghost:1"}} {
		se.Reset()
		if code := run(args, &so, &se); code != 2 || se.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, se.String())
		}
	}
}
