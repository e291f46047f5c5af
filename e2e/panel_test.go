package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/internal/osdptest"
)

// TestPanelOSDP runs the built kioskd as an OSDP reader on a pty, with a
// control panel written in this test polling it through Secure Channel,
// against the built emulator, on the looping demo clip. The astronaut
// passes four times:
//  1. before the panel polls: nothing can be sent, "please wait";
//  2. the card reaches the panel with the right bits, the panel lights the
//     LED green, the screen says "Welcome";
//  3. the panel lights it red, the screen shows the refusal;
//  4. the identity is REVOKED in the emulator: nothing is sent.
//
// Between 3 and 4 the credentials file changes and kioskd gets SIGHUP. The
// strike is never pulsed: the panel drives it.
func TestPanelOSDP(t *testing.T) {
	ob := observe(t, "panel", "OSDP panel link not polling, then granting, refusing, revoked identity",
		"the panel is silent at the first PASS; later it answers green, then red; then the identity is revoked",
		"no card while the link is down (please wait); the card of who passed reaches the panel; the screen shows the panel's answer; a revoked identity sends nothing; the strike is never pulsed by kioskd")
	s := startSim(t)
	vid := astronautID(t, s)
	dir := t.TempDir()
	csv := filepath.Join(dir, "credentials.csv")
	if err := os.WriteFile(csv, []byte("identity,facility,card\n"+vid+",7,100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scbk := bytes.Repeat([]byte{0x5c}, 16)
	key := filepath.Join(dir, "osdp-scbk")
	if err := os.WriteFile(key, []byte(fmt.Sprintf("%x\n", scbk)), 0o600); err != nil {
		t.Fatal(err)
	}
	master, slave := osdptest.OpenPTY(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Loop: true, Realtime: true, Capture: "  max_attempts: 100", Extra: fmt.Sprintf(`panel:
  protocol: osdp
  decision_timeout: 1s
  osdp:
    device: %s
    baud: 9600
    address: 0
    scbk_file: %s
credentials:
  file: %s
`, slave, key, csv)})
	k := startKioskd(t, cfg)
	scr := watchScreen(t, displayAddr(t, k))

	passes := func() []map[string]any {
		var out []map[string]any
		for _, d := range decisions(k.Output()) {
			if d["result"] == "PASS" {
				out = append(out, d)
			}
		}
		return out
	}
	waitPasses := func(n int) map[string]any {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("PASS decision %d", n), func() bool { return len(passes()) >= n })
		return passes()[n-1]
	}
	waitText := func(state, text string) {
		t.Helper()
		eventually(t, 10*time.Second, "the screen to show "+text, func() bool {
			for _, v := range scr.seen() {
				if v.State == state && v.Text == text {
					return true
				}
			}
			return false
		})
	}

	// 1. Nobody polls yet.
	d := waitPasses(1)
	if d["panel_answer"] != "link_down" {
		t.Fatalf("first PASS: %v", d)
	}
	waitText("see_reception", "Please wait — or see reception")
	ob.happened("PASS with no panel polling: panel_answer %v, screen 'Please wait — or see reception'", d["panel_answer"])

	// 2 and 3. The panel polls, answers the first card green and the second red.
	var mu sync.Mutex
	var cards []credentials.Credential
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		osdptest.New(t, master).Serve(ctx, 30*time.Millisecond, scbk, func(n int, data []byte) byte {
			c, err := credentials.Decode(credentials.Bits{Data: data, Count: n})
			if err != nil {
				t.Errorf("card at the panel: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			cards = append(cards, c)
			if len(cards) == 1 {
				return osdptest.Green
			}
			return osdptest.Red
		})
	}()
	defer func() { cancel(); <-done }()
	seenCards := func() []credentials.Credential {
		mu.Lock()
		defer mu.Unlock()
		return append([]credentials.Credential(nil), cards...)
	}

	d = waitPasses(2)
	if d["panel_answer"] != "granted" || d["credential"] != "h10301/7/*00" || d["credential_format"] != "h10301" {
		t.Fatalf("second PASS: %v", d)
	}
	if c := seenCards(); len(c) != 1 || c[0].Format != credentials.H10301 || c[0].Facility != 7 || c[0].Card != 100 {
		t.Fatalf("the panel got %+v", c)
	}
	waitText("pass", "Welcome")
	ob.happened("card h10301 7/100 at the panel (26 bits, parity checked), LED green, screen 'Welcome'")

	d = waitPasses(3)
	if d["panel_answer"] != "denied" {
		t.Fatalf("third PASS: %v", d)
	}
	waitText("see_reception", "Access refused — please see reception")
	ob.happened("LED red: screen 'Access refused — please see reception'")

	// 4. The credentials file changes and kioskd gets SIGHUP: the next card
	// is the new one.
	if err := os.WriteFile(csv, []byte("identity,facility,card\n"+vid+",7,300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k.signal(t, syscall.SIGHUP)
	line := k.waitLine(t, regexp.MustCompile(`"msg":"reloaded"`), 10*time.Second)
	if !strings.Contains(line, `"credentials"`) {
		t.Fatalf("reload did not apply the credentials: %s", line)
	}
	d = waitPasses(4)
	if c := seenCards(); len(c) != 3 || c[2].Card != 300 || d["credential"] != "h10301/7/*00" {
		t.Fatalf("after the reload the panel got %+v (decision %v)", c, d)
	}
	ob.happened("credentials file changed + SIGHUP: the next card sent is the new one (7/300)")

	// 5. Revoked: nothing goes to the panel.
	resp, err := http.Post(s.URL+"/_sim/revoke?verificationId="+vid, "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	d = waitPasses(5)
	if d["panel_answer"] != "not_sent" || d["panel_not_sent"] != "revoked" {
		t.Fatalf("fifth PASS: %v", d)
	}
	waitText("see_reception", "Your access is not active — please see reception")
	if c := seenCards(); len(c) != 3 {
		t.Fatalf("the panel got %d cards, want 3: a revoked identity's card was sent", len(c))
	}
	ob.happened("REVOKED identity: panel_not_sent revoked, no card at the panel, screen 'Your access is not active — please see reception'")

	k.signal(t, syscall.SIGTERM)
	k.wait(t, 20*time.Second)
	for _, l := range logLines(k.Output()) {
		if l["msg"] == "actuator output" && l["output"] == "door" && l["state"] == "on" {
			t.Fatalf("the strike was pulsed with a panel deciding: %v", l)
		}
	}
	ob.happened("the unlock output was never switched on")
	ob.lost("nothing")
}

// astronautID is the emulator's verificationId of the enrolled astronaut.
func astronautID(t *testing.T, s *sim) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/_sim/identities")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ids []struct {
		File           string `json:"file"`
		VerificationID string `json:"verificationId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if strings.Contains(id.File, "astronaut") {
			return id.VerificationID
		}
	}
	t.Fatalf("no astronaut among %v", ids)
	return ""
}
