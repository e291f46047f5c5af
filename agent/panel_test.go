package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/internal/osdptest"
	"github.com/kioskd/kioskd/panel"
	"github.com/kioskd/kioskd/uploader"
)

// panelAPI passes everyone, as verification "ver-<name>", and answers
// userinfo with the status set for the token.
type panelAPI struct {
	mu     sync.Mutex
	who    string
	status uploader.IdentityStatus
}

func (a *panelAPI) Authenticate(context.Context, uploader.AuthenticateRequest, ...uploader.CallOption) (*uploader.AuthenticateResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &uploader.AuthenticateResponse{Status: uploader.StatusPass, AuthenticationID: "auth-" + a.who, Token: "tok-" + a.who, VerificationID: "ver-" + a.who}, nil
}

func (a *panelAPI) UserInfo(context.Context, string) (*uploader.UserInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &uploader.UserInfo{Status: a.status, IdentityID: "ident-" + a.who, Name: &uploader.Name{FirstName: "Ann"}}, nil
}

func (a *panelAPI) set(who string, st uploader.IdentityStatus) {
	a.mu.Lock()
	a.who, a.status = who, st
	a.mu.Unlock()
}

// TestPanelDecides: a live PASS sends the person's card over OSDP (secure
// channel, a real pty) to a panel that grants card 100 and refuses card 200;
// the screen shows the panel's answer and the strike is never pulsed. A
// REVOKED identity and one without a card send nothing.
func TestPanelDecides(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "credentials.csv")
	if err := os.WriteFile(csv, []byte("identity,facility,card\nver-ann,7,100\nver-bob,7,200\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	creds, err := credentials.NewResolver(config.Credentials{File: csv, Format: "h10301"}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	scbk := bytes.Repeat([]byte{0x42}, 16)
	master, slave := osdptest.OpenPTY(t)
	pcfg := config.Default().Panel
	pcfg.Protocol, pcfg.OSDP.Device, pcfg.OSDP.SCBK = config.PanelOSDP, slave, scbk
	pcfg.DecisionTimeout = time.Second
	pnl, err := panel.New(pcfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var cards []uint64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = pnl.Run(ctx) }()
	go func() {
		defer wg.Done()
		osdptest.New(t, master).Serve(ctx, 20*time.Millisecond, scbk, func(n int, data []byte) byte {
			c, err := credentials.Decode(credentials.Bits{Data: data, Count: n})
			if err != nil {
				t.Errorf("card: %v", err)
				return 0
			}
			mu.Lock()
			cards = append(cards, c.Card)
			mu.Unlock()
			if c.Card == 100 {
				return osdptest.Green
			}
			return osdptest.Red
		})
	}()
	defer func() { cancel(); wg.Wait(); pnl.Close() }()
	for deadline := time.Now().Add(5 * time.Second); !pnl.Up(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the panel never polled")
		}
	}

	api := &panelAPI{}
	door := &countingDoor{}
	scr := &screen{}
	cfg := config.Default()
	cfg.Device.SourceID = "door"
	cfg.Incode.LiveTimeout = 2 * time.Second
	cfg.Display.GreetByName = true
	var logs bytes.Buffer
	a, err := New(cfg, Deps{Camera: idleCamera{}, Selector: idleSelector{}, API: api, Door: door, Display: scr,
		Log: slog.New(slog.NewJSONHandler(&logs, nil)), Reg: reg, Panel: pnl, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	shot := &capture.Shot{JPEG: []byte{0xFF, 0xD8, 0xFF, 0xD9}, FirstSeen: time.Now(), CapturedAt: time.Now()}

	for _, tc := range []struct {
		who             string
		status          uploader.IdentityStatus
		state           display.State
		reason          string
		answer, notSent string
		cardsAtThePanel int
	}{
		{"ann", uploader.IdentityActive, display.StatePass, "", panel.AnswerGranted, "", 1},
		{"bob", uploader.IdentityActive, display.StateSeeReception, display.ReasonPanelRefused, panel.AnswerDenied, "", 2},
		{"ann", uploader.IdentityRevoked, display.StateSeeReception, display.ReasonRevoked, "not_sent", credentials.ReasonRevoked, 2},
		{"eve", uploader.IdentityActive, display.StateSeeReception, display.ReasonNoCredential, "not_sent", credentials.ReasonNoCredential, 2},
	} {
		api.set(tc.who, tc.status)
		logs.Reset()
		a.decide(context.Background(), shot)
		d := lastDecision(t, &logs)
		if d["result"] != "PASS" || d["panel_answer"] != tc.answer {
			t.Errorf("%s %s: decision %v", tc.who, tc.status, d)
		}
		if tc.notSent != "" && d["panel_not_sent"] != tc.notSent {
			t.Errorf("%s: not sent because %v, want %s", tc.who, d["panel_not_sent"], tc.notSent)
		}
		if tc.answer == panel.AnswerGranted && d["credential"] != "h10301/7/*00" {
			t.Errorf("credential on the decision line: %v", d["credential"])
		}
		if u := scr.last(); u.State != tc.state || u.Reason != tc.reason {
			t.Errorf("%s: screen %+v, want %s %s", tc.who, u, tc.state, tc.reason)
		}
		mu.Lock()
		n := len(cards)
		mu.Unlock()
		if n != tc.cardsAtThePanel {
			t.Errorf("%s: the panel has seen %d cards, want %d", tc.who, n, tc.cardsAtThePanel)
		}
	}
	if door.pass != 0 {
		t.Errorf("the strike was pulsed %d times with a panel deciding", door.pass)
	}
	if got := testutil.ToFloat64(a.pm.notSent.WithLabelValues(credentials.ReasonRevoked)); got != 1 {
		t.Errorf("not-sent (revoked) counted %v times", got)
	}
	// The panel's text goes on screen.
	a.PanelText(panel.Text{Text: "See the guard"})
	if u := scr.last(); u.Text != "See the guard" {
		t.Errorf("panel text: %+v", u)
	}
}
