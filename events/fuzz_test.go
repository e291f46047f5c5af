package events_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/events"
)

// FuzzAppend: whatever text reaches an event (a name from userinfo, a
// reason, a card number) is either refused with an error or stored and
// read back unchanged, with the card number masked to its last four
// characters. Nothing panics.
func FuzzAppend(f *testing.F) {
	f.Add("Ada Lovelace", "faceNotMatch", "10012345")
	f.Add("", "", "")
	f.Add("=cmd|' /C calc'!A0", "\x00\xff", "12")
	f.Add(strings.Repeat("é", 200), "\n", "ABCDEFGHIJ")
	l, err := events.Open(filepath.Join(f.TempDir(), "events.db"), testConfig(), quiet(), prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, reason, number string) {
		ev, err := l.Append(context.Background(), events.Event{Time: time.Now(), Door: "d", Kind: events.KindDecision,
			Name: name, Reason: reason, Credential: &events.Credential{Format: "wiegand26", Number: number}})
		if err != nil {
			return
		}
		got, err := l.Read(ev.Seq-1, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("read back: %v %v", got, err)
		}
		e := got[0]
		if e.Name != name || e.Reason != reason || !utf8.ValidString(e.Credential.Number) {
			t.Fatalf("stored %q/%q, appended %q/%q", e.Name, e.Reason, name, reason)
		}
		r := []rune(number)
		if len(r) > 4 && string([]rune(e.Credential.Number)[len(r)-4:]) != string(r[len(r)-4:]) ||
			strings.Count(e.Credential.Number, "*") < len(r)-4 {
			t.Fatalf("number %q stored as %q", number, e.Credential.Number)
		}
	})
}
