// Package idkey makes kioskd's one form of Idempotency-Key: a random UUID
// (version 4) in its canonical text form. The live attempt and its queued
// copy carry the same key, so the API can tell a retry from a new attempt.
package idkey

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a fresh random UUIDv4, e.g.
// "3f2b8c1e-9a4d-4e7f-8b21-0c5d6e7f8a90".
func New() string {
	var b [16]byte
	// crypto/rand.Read does not return an error since Go 1.24: on a broken
	// entropy source it crashes the program rather than hand out a weak key.
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
