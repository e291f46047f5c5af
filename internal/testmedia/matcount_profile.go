//go:build matprofile

package testmedia

import (
	"bytes"
	"testing"

	"gocv.io/x/gocv"
)

// MatCount is the number of open Mats, and whether it is known (only with
// the matprofile build tag).
func MatCount() (int, bool) { return gocv.MatProfile.Count(), true }

// CheckMats fails t when the test ends with more or fewer open Mats than it
// started with. Call it first, so that its cleanup runs after the others.
func CheckMats(t testing.TB) {
	t.Helper()
	start := gocv.MatProfile.Count()
	t.Cleanup(func() {
		if end := gocv.MatProfile.Count(); end != start {
			var b bytes.Buffer
			_ = gocv.MatProfile.WriteTo(&b, 1)
			t.Errorf("open Mats: %d at start, %d at end; unclosed:\n%s", start, end, b.String())
		}
	})
}
