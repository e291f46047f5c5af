// Package e2e holds kioskd's end-to-end tests: they build the real kioskd and
// incode-sim binaries, run them as processes on loopback, and check what a
// person at the door, an operator and the Incode service would see.
package e2e
