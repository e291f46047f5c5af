// Package scripts_test runs the shell scripts in scripts/ the way an
// integrator does, against a temporary root directory.
package scripts_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// installRoot is a temporary system root with just enough of /etc for
// useradd --prefix and groupadd --prefix.
func installRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":   "root:x:0:\nvideo:x:44:\n",
		"etc/shadow":  "root:*:19000:0:99999:7:::\n",
		"etc/gshadow": "root:*::\nvideo:*::\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// standIn writes an executable shell script that stands in for a binary;
// install.sh runs `kioskd version` and prints what it says.
func standIn(t *testing.T, dir, name, says string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+says+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// runInstall runs install.sh non-interactively, as CI does.
func runInstall(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("./install.sh", args...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CI=true"}, env...)
	cmd.Stdin = nil // /dev/null: nothing may wait for input
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkMode asserts a path's permission bits and owner.
func checkMode(t *testing.T, p string, mode os.FileMode, uid int) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Error(err)
		return
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), mode)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		t.Errorf("%s: owner %d, want %d", p, st.Uid, uid)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// accountLines counts the lines of an account file that define name.
func accountLines(t *testing.T, p, name string) int {
	t.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(readFile(t, p)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name+":") {
			n++
		}
	}
	return n
}

// accountID returns the numeric id (third field) of name in an account file.
func accountID(t *testing.T, p, name string) int {
	t.Helper()
	for _, l := range strings.Split(readFile(t, p), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[0] == name {
			id, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
	}
	t.Fatalf("%s not in %s", name, p)
	return -1
}

// unitPaths returns the absolute paths the unit refers to for the binary
// and the credentials.
func unitPaths(t *testing.T, unit string) (exec string, creds []string) {
	t.Helper()
	for _, l := range strings.Split(unit, "\n") {
		switch {
		case strings.HasPrefix(l, "ExecStart="):
			exec = strings.Fields(strings.TrimPrefix(l, "ExecStart="))[0]
		case strings.HasPrefix(l, "LoadCredential="):
			_, path, _ := strings.Cut(strings.TrimPrefix(l, "LoadCredential="), ":")
			creds = append(creds, path)
		}
	}
	if exec == "" || len(creds) != 3 {
		t.Fatalf("unit: ExecStart %q, LoadCredential paths %q", exec, creds)
	}
	return exec, creds
}

func TestInstallIdempotentAndUninstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("install.sh creates accounts and root-owned files: run as root (CI does)")
	}
	for _, tool := range []string{"useradd", "groupadd", "install"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Fatalf("%s is missing (Debian's passwd and coreutils packages)", tool)
			}
		}
	}
	root := installRoot(t)
	bins := t.TempDir()
	v1 := standIn(t, bins, "kioskd-v1", "kioskd v1")
	v2 := standIn(t, bins, "kioskd-v2", "kioskd v2")
	sim := standIn(t, bins, "incode-sim", "incode-sim")
	r := func(p string) string { return filepath.Join(root, p) }

	unitSrc := readFile(t, filepath.Join("..", "systemd", "kioskd.service"))
	sampleSrc := readFile(t, filepath.Join("..", "systemd", "kioskd.yaml"))
	binPath, credPaths := unitPaths(t, unitSrc)

	// First install.
	out, err := runInstall(t, nil, "--root", root, "--binary", v1, "--sim-binary", sim)
	if err != nil {
		t.Fatalf("first install: %v\n%s", err, out)
	}
	for _, want := range []string{"created system user kioskd", "created group gpio", "installed /etc/kioskd/kioskd.yaml", "skipped daemon-reload and enable", "kioskd v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("first install output lacks %q:\n%s", want, out)
		}
	}
	uid := accountID(t, r("etc/passwd"), "kioskd")
	if uid == 0 {
		t.Fatal("kioskd got uid 0")
	}
	if readFile(t, r(binPath)) != readFile(t, v1) {
		t.Errorf("%s (the unit's ExecStart) is not the given binary", binPath)
	}
	checkMode(t, r(binPath), 0o755, 0)
	checkMode(t, r("usr/local/bin/incode-sim"), 0o755, 0)
	if got := readFile(t, r("etc/systemd/system/kioskd.service")); got != unitSrc {
		t.Error("installed unit differs from systemd/kioskd.service")
	}
	checkMode(t, r("etc/systemd/system/kioskd.service"), 0o644, 0)
	if got := readFile(t, r("etc/kioskd/kioskd.yaml")); got != sampleSrc {
		t.Error("installed config differs from systemd/kioskd.yaml")
	}
	checkMode(t, r("etc/kioskd/credentials"), 0o700, 0)
	for _, p := range credPaths {
		checkMode(t, r(p), 0o600, 0)
		if readFile(t, r(p)) != "" {
			t.Errorf("placeholder %s is not empty", p)
		}
	}
	checkMode(t, r("var/lib/kioskd"), 0o700, uid)
	if !strings.Contains(readFile(t, r("etc/udev/rules.d/60-kioskd-gpio.rules")), `GROUP="gpio"`) {
		t.Error("udev rule does not give gpiochips to the gpio group")
	}
	for _, p := range []string{"usr/local/share/kioskd/kioskd.yaml.sample", "usr/local/share/kioskd/kioskd-alerts.yml",
		"usr/local/share/kioskd/kioskd-kiosk.service"} {
		if !exists(r(p)) {
			t.Errorf("%s not installed", p)
		}
	}

	// The integrator fills in a credential and edits the config; kioskd
	// queues a capture.
	const key = "integrator-api-key"
	if err := os.WriteFile(r(credPaths[0]), []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	edited := sampleSrc + "# edited on the box\n"
	if err := os.WriteFile(r("etc/kioskd/kioskd.yaml"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r("var/lib/kioskd/queue.db"), []byte("queue"), 0o600); err != nil {
		t.Fatal(err)
	}
	passwdBefore, groupBefore := readFile(t, r("etc/passwd")), readFile(t, r("etc/group"))

	// Second install (an upgrade), with DESTDIR instead of --root.
	out, err = runInstall(t, []string{"DESTDIR=" + root}, "--binary", v2)
	if err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	if strings.Contains(out, "created") {
		t.Errorf("second install created something again:\n%s", out)
	}
	if !strings.Contains(out, "kept /etc/kioskd/kioskd.yaml") {
		t.Errorf("second install does not say it kept the config:\n%s", out)
	}
	if readFile(t, r(binPath)) != readFile(t, v2) {
		t.Error("upgrade did not replace the binary")
	}
	if readFile(t, r("etc/kioskd/kioskd.yaml")) != edited {
		t.Error("upgrade overwrote the edited config")
	}
	if readFile(t, r(credPaths[0])) != key+"\n" {
		t.Error("upgrade overwrote a credential")
	}
	if readFile(t, r("etc/passwd")) != passwdBefore || readFile(t, r("etc/group")) != groupBefore {
		t.Error("second install changed the account files")
	}
	if n := accountLines(t, r("etc/passwd"), "kioskd"); n != 1 {
		t.Errorf("%d kioskd users", n)
	}
	for _, g := range []string{"gpio", "video", "kioskd"} {
		if n := accountLines(t, r("etc/group"), g); n != 1 {
			t.Errorf("%d %s groups", n, g)
		}
	}
	if strings.Contains(out, key) {
		t.Error("install printed a credential")
	}

	// Uninstall keeps the configuration, the credentials and the queue.
	out, err = runInstall(t, nil, "--root", root, "--uninstall")
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	for _, p := range []string{binPath, "/usr/local/bin/incode-sim", "/etc/systemd/system/kioskd.service", "/etc/udev/rules.d/60-kioskd-gpio.rules", "/usr/local/share/kioskd"} {
		if exists(r(p)) {
			t.Errorf("uninstall left %s", p)
		}
	}
	for _, p := range append([]string{"/etc/kioskd/kioskd.yaml", "/var/lib/kioskd/queue.db"}, credPaths...) {
		if !exists(r(p)) {
			t.Errorf("uninstall removed %s", p)
		}
	}
	// A second uninstall has nothing to do and still succeeds.
	if out, err := runInstall(t, nil, "--root", root, "--uninstall"); err != nil || strings.Contains(out, "removed") {
		t.Errorf("second uninstall: %v\n%s", err, out)
	}
}

func TestInstallRefusesBadArguments(t *testing.T) {
	root := t.TempDir()
	for _, args := range [][]string{
		{"--root", root, "--binary", filepath.Join(root, "no-such-binary")},
		{"--root", root, "--frobnicate"},
	} {
		out, err := runInstall(t, nil, args...)
		if err == nil {
			t.Errorf("%q: exit 0\n%s", args, out)
		}
		if !strings.Contains(out, "install.sh") {
			t.Errorf("%q: no message:\n%s", args, out)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("a refused install wrote into the root: %v", entries)
	}
}
