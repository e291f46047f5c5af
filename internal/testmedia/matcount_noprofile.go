//go:build !matprofile

package testmedia

import "testing"

// MatCount is the number of open Mats, and whether it is known (only with
// the matprofile build tag).
func MatCount() (int, bool) { return 0, false }

// CheckMats needs the matprofile build tag; without it the leak check is
// logged as not run, so that a plain `go test` still builds and runs.
func CheckMats(t testing.TB) {
	t.Helper()
	t.Log("Mat leak check needs -tags matprofile; not checked")
}
