package credentials

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
)

func TestEncodeH10301ByHand(t *testing.T) {
	c, err := New(H10301, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Facility 00000001, card 0000000000000001: the first twelve data bits
	// hold one 1 (even parity 1), the last twelve one 1 (odd parity 0).
	want := "1" + "00000001" + "0000000000000001" + "0"
	if got := c.Encode().String(); got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	b := c.Encode()
	if b.Count != 26 || len(b.Data) != 4 || b.Data[0] != 0x80 || b.Data[1] != 0x80 || b.Data[2] != 0x00 || b.Data[3] != 0x80 {
		t.Fatalf("left-aligned image %x/%d", b.Data, b.Count)
	}
}

func TestRoundTripAndParity(t *testing.T) {
	for _, tc := range []struct {
		f         Format
		fac, card uint64
		bits      int
	}{
		{H10301, 255, 65535, 26}, {H10301, 12, 34567, 26}, {H10306, 65535, 1, 34},
		{H10304, 4660, 524287, 37}, {H10304, 0, 0, 37},
	} {
		c, err := New(tc.f, tc.fac, tc.card)
		if err != nil {
			t.Fatal(err)
		}
		b := c.Encode()
		if b.Count != tc.bits {
			t.Fatalf("%s: %d bits", tc.f, b.Count)
		}
		back, err := Decode(b)
		if err != nil || back.Format != tc.f || back.Facility != tc.fac || back.Card != tc.card {
			t.Fatalf("%s: decoded %+v, %v", tc.f, back, err)
		}
		// Flip each data bit: parity must catch it.
		for i := 1; i < b.Count-1; i++ {
			bad := Bits{Data: append([]byte(nil), b.Data...), Count: b.Count}
			bad.Data[i/8] ^= 0x80 >> (i % 8)
			if _, err := Decode(bad); err == nil {
				t.Fatalf("%s: flipped bit %d not caught", tc.f, i)
			}
		}
	}
	if _, err := New(H10301, 256, 1); err == nil {
		t.Fatal("facility 256 accepted for 26-bit")
	}
	if _, err := New(H10304, 1, 1<<19); err == nil {
		t.Fatal("card 2^19 accepted for 37-bit")
	}
}

func TestParseFile(t *testing.T) {
	good := "# staff\nidentity,facility,card,format,bits\nver-1,12,34567,,\nid-2,1,60000,h10306,34\nid-3,,1011,raw,\nid-4,,0x2f,raw,8\n"
	tab, err := Parse(strings.NewReader(good), H10301)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab) != 4 {
		t.Fatalf("%d entries", len(tab))
	}
	if _, err := New(H10306, 1, 70000); err == nil {
		t.Fatal("70000 fits 16 bits?")
	}
	bad := "identity,facility,card,format\nver-1,12,34567\nver-1,1,2\nx,300,1\ny,1,abc\nz,1,1,h9999\n,1,1\n"
	_, err = Parse(strings.NewReader(bad), H10301)
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("want Problems, got %v", err)
	}
	joined := strings.Join(p, "\n")
	for _, want := range []string{"line 3: identity \"ver-1\" already on line 2", "line 4: facility 300", "line 5: the card is not", "line 6: unknown card format", "line 7: no identity"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %q in:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "abc") {
		t.Error("a card value is echoed in an error")
	}
	for _, in := range []string{"", "card,facility\n", "identity,card,color\n", "identity,card\n\"unterminated\n"} {
		if _, err := Parse(strings.NewReader(in), H10301); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func writeFile(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "credentials.csv")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolverFileFieldRevokedReload(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "identity,facility,card\nver-1,12,34567\nident-2,1,2\n")
	reg := prometheus.NewRegistry()
	r, err := NewResolver(config.Credentials{File: path, UserinfoField: "badge", Format: "h10301"}, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Resolve(Identity{VerificationID: "ver-1", Status: "ACTIVE"})
	if err != nil || c.Card != 34567 || c.Facility != 12 {
		t.Fatalf("ver-1: %+v %v", c, err)
	}
	if c, err := r.Resolve(Identity{VerificationID: "zzz", IdentityID: "ident-2"}); err != nil || c.Card != 2 {
		t.Fatalf("by identityId: %+v %v", c, err)
	}
	var ns *NotSentError
	if _, err := r.Resolve(Identity{VerificationID: "ver-1", Status: "REVOKED"}); !errors.As(err, &ns) || ns.Reason != ReasonRevoked {
		t.Fatalf("revoked: %v", err)
	}
	if c, err := r.Resolve(Identity{VerificationID: "other", Fields: map[string]string{"badge": "7:123"}}); err != nil || c.Facility != 7 || c.Card != 123 {
		t.Fatalf("field: %+v %v", c, err)
	}
	if _, err := r.Resolve(Identity{VerificationID: "other", Fields: map[string]string{"badge": "x"}}); !errors.As(err, &ns) || ns.Reason != ReasonBadField {
		t.Fatalf("bad field: %v", err)
	}
	if _, err := r.Resolve(Identity{VerificationID: "nobody"}); !errors.As(err, &ns) || ns.Reason != ReasonNoCredential {
		t.Fatalf("nobody: %v", err)
	}
	if got := testutil.ToFloat64(r.lookups.WithLabelValues(ReasonRevoked)); got != 1 {
		t.Fatalf("revoked lookups %v", got)
	}
	// A broken file is refused and the old table stays.
	writeFile(t, dir, "identity,facility,card\nver-9,999,1\n")
	if err := r.Reload(config.Credentials{File: path, Format: "h10301"}); err == nil {
		t.Fatal("bad file reloaded")
	}
	if _, err := r.Resolve(Identity{VerificationID: "ver-1"}); err != nil {
		t.Fatal("old table lost after a failed reload")
	}
	writeFile(t, dir, "identity,facility,card\nver-9,9,1\n")
	if err := r.Reload(config.Credentials{File: path, Format: "h10301"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(Identity{VerificationID: "ver-1"}); err == nil {
		t.Fatal("ver-1 still there after reload")
	}
	if testutil.ToFloat64(r.entries) != 1 {
		t.Fatal("entries gauge")
	}
}

func TestMasked(t *testing.T) {
	c, _ := New(H10301, 12, 34567)
	if m := c.Masked(); m != "h10301/12/***67" {
		t.Fatalf("masked %q", m)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("identity,facility,card,format,bits\nv,1,2,,\nw,,0101,raw,\n")
	f.Fuzz(func(t *testing.T, s string) {
		tab, err := Parse(strings.NewReader(s), H10301)
		if err == nil {
			for _, c := range tab {
				_ = c.Encode().String()
				_ = c.Masked()
			}
		}
	})
}
