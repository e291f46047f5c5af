package agent

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/actuator"
	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/panel"
	"github.com/kioskd/kioskd/uploader"
)

// Panel is the building's access-control panel: it gets the credential of
// who passed and answers with its LED or beeper.
type Panel interface {
	Send(ctx context.Context, c credentials.Credential) (panel.Result, error)
}

// Credentials finds the credential of who passed.
type Credentials interface {
	Resolve(id credentials.Identity) (credentials.Credential, error)
	NeedsUserInfo() bool
}

// userinfoTimeout bounds the userinfo call between a PASS and the card
// going to the panel.
const userinfoTimeout = 2 * time.Second

// Why nothing went to the panel after a PASS; bounded label values.
const (
	notSentStatusUnknown = "status_unknown" // userinfo could not be fetched, so REVOKED could not be ruled out
)

type panelMetrics struct {
	notSent *prometheus.CounterVec
}

func newPanelMetrics(reg prometheus.Registerer) *panelMetrics {
	m := &panelMetrics{notSent: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kioskd_decision_panel_not_sent_total",
		Help: "Live PASSes whose credential was not sent to the panel, by reason (revoked, no_credential, bad_field, status_unknown).",
	}, []string{"reason"})}
	reg.MustRegister(m.notSent)
	return m
}

// panelPass handles a live PASS when a panel decides: find who passed,
// send their credential, wait for the panel's answer and show it. The strike
// is the panel's: the unlock outputs are not pulsed.
func (a *Agent) panelPass(ctx context.Context, shot *capture.Shot, resp *uploader.AuthenticateResponse, rec decision.Record, t *timing, extra []any) {
	rec.Unlocked = false
	ident, name, err := a.whoPassed(ctx, resp)
	rec.IdentityID = ident.IdentityID
	var cred credentials.Credential
	if err == nil {
		cred, err = a.d.Credentials.Resolve(ident)
	}
	if err != nil {
		reason := notSentStatusUnknown
		var ns *credentials.NotSentError
		if errors.As(err, &ns) {
			reason = ns.Reason
		}
		a.pm.notSent.WithLabelValues(reason).Inc()
		rec.PanelAnswer, rec.PanelNotSent = "not_sent", reason
		t.actuator = a.timed(func() { a.panelIndicate(ctx, rec, reason) })
		rec.Latency = a.latency(shot)
		screen := ""
		switch reason {
		case credentials.ReasonRevoked:
			screen = display.ReasonRevoked
		case credentials.ReasonNoCredential:
			screen = display.ReasonNoCredential
		}
		a.publish(display.Update{State: display.StateSeeReception, Reason: screen}, true)
		a.log.Warn("nothing sent to the panel", "reason", reason, "authentication_id", resp.AuthenticationID)
		a.rec.Record(ctx, rec, t.with(shot, extra...)...)
		return
	}
	var res panel.Result
	var perr error
	t.actuator = a.timed(func() { res, perr = a.d.Panel.Send(ctx, cred) })
	rec.Latency = a.latency(shot)
	rec.PanelAnswer, rec.PanelWait = res.Answer, res.Waited
	rec.CredentialFormat, rec.Credential = string(cred.Format), cred.Masked()
	switch res.Answer {
	case panel.AnswerGranted, panel.AnswerSent:
		rec.Name = name
		a.publish(display.Update{State: display.StatePass, Name: name}, true)
	case panel.AnswerDenied:
		a.panelIndicate(ctx, rec, "panel_denied")
		a.publish(display.Update{State: display.StateSeeReception, Reason: display.ReasonPanelRefused}, true)
	default:
		a.publish(display.Update{State: display.StateSeeReception, Reason: display.ReasonPanelNoAnswer}, true)
	}
	if perr != nil {
		extra = append(extra, "panel_err", perr.Error())
	}
	a.rec.Record(ctx, rec, t.with(shot, extra...)...)
}

// panelIndicate lights the fail indicator for a PASS the panel refused or
// that sent nothing; it never touches the strike.
func (a *Agent) panelIndicate(ctx context.Context, rec decision.Record, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), doorTimeout)
	defer cancel()
	ev := actuator.Event{Result: string(rec.Result), Reason: reason, Source: rec.Source, AuthenticationID: rec.AuthenticationID}
	if err := a.d.Door.Fail(ctx, ev); err != nil {
		a.log.Error("indicator failed", "err", err)
	}
}

// whoPassed gathers what is known of who passed; userinfo is fetched with
// the PASS token when the credential lookup needs it. Without userinfo the
// identity's status is unknown, and a REVOKED identity must not get through.
func (a *Agent) whoPassed(ctx context.Context, resp *uploader.AuthenticateResponse) (credentials.Identity, string, error) {
	ident := credentials.Identity{VerificationID: resp.VerificationID}
	if !a.d.Credentials.NeedsUserInfo() {
		return ident, "", nil
	}
	if resp.Token == "" {
		return ident, "", errors.New("no token to fetch userinfo with")
	}
	uctx, cancel := context.WithTimeout(ctx, userinfoTimeout)
	defer cancel()
	info, err := a.d.API.UserInfo(uctx, resp.Token)
	if err == nil && info == nil {
		err = errors.New("empty userinfo")
	}
	if err != nil {
		a.log.Warn("userinfo unavailable: the identity's status cannot be checked", "reason", uploader.Reason(err))
		return ident, "", err
	}
	ident.IdentityID, ident.Status = info.IdentityID, string(info.Status)
	if v := info.IDAttestation; v != nil && v.IDValidation != nil {
		ident.Fields = map[string]string{}
		for _, c := range v.IDValidation.CustomFields {
			ident.Fields[c.Key] = c.Value
		}
	}
	name := ""
	if a.cfg.Display.GreetByName {
		name = info.Name.First()
	}
	return ident, name, nil
}

// PanelText shows a text the panel sent the reader, over what is on screen.
func (a *Agent) PanelText(t panel.Text) {
	a.mu.Lock()
	u := a.shown
	a.mu.Unlock()
	u.Text = strings.TrimSpace(t.Text)
	a.publish(u, true)
}
