package idkey_test

import (
	"regexp"
	"testing"

	"github.com/kioskd/kioskd/internal/idkey"
)

// uuidV4 is the canonical lower-case text of a version 4, RFC 9562 variant
// UUID: the version nibble is 4 and the variant nibble is 8, 9, a or b.
var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewFormat(t *testing.T) {
	for range 1000 {
		if k := idkey.New(); !uuidV4.MatchString(k) {
			t.Fatalf("New() = %q, not a canonical UUIDv4", k)
		}
	}
}

func TestNewUnique(t *testing.T) {
	const n = 10000
	seen := make(map[string]struct{}, n)
	for range n {
		k := idkey.New()
		if _, dup := seen[k]; dup {
			t.Fatalf("New() repeated %q within %d keys", k, len(seen))
		}
		seen[k] = struct{}{}
	}
}

// TestNewRandomBits checks that every one of the 122 random bits varies:
// a key built from a constant or a short counter would leave some fixed.
func TestNewRandomBits(t *testing.T) {
	first := idkey.New()
	varies := make([]bool, len(first))
	for range 200 {
		k := idkey.New()
		for i := range k {
			if k[i] != first[i] {
				varies[i] = true
			}
		}
	}
	for i, v := range varies {
		switch i {
		case 8, 13, 18, 23, 14: // the dashes and the version nibble
			if v {
				t.Errorf("position %d changed between keys", i)
			}
		default:
			if !v {
				t.Errorf("position %d never changed over 200 keys", i)
			}
		}
	}
}
