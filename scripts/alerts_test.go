package scripts_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAlertRulesUseExportedMetrics: every kioskd_ metric the fleet alert
// rules query is one that kioskd's code registers, so that renaming a metric
// cannot silently turn an alert off. (promtool's own tests in
// scripts/check-alerts.sh prove the rules' logic.)
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join("..", "systemd", "kioskd-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	metricName := regexp.MustCompile(`\bkioskd_[a-z0-9_]+`)
	used := map[string]bool{}
	for _, m := range metricName.FindAllString(string(rules), -1) {
		used[m] = true
	}
	if len(used) < 5 {
		t.Fatalf("found only %d kioskd_ metrics in the rules: %v", len(used), used)
	}

	defined := map[string]bool{}
	literal := regexp.MustCompile(`"(kioskd_[a-z0-9_]+)"`)
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literal.FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for m := range used {
		if !defined[m] {
			t.Errorf("systemd/kioskd-alerts.yml queries %s, which no Go file registers", m)
		}
	}
}
