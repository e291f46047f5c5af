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
func (a *Agent) panelPass(ctx context.Context, shot *capture.Shot, resp *uploader.AuthenticateResponse, id string, t *timing) {
	ident, name, err := a.identify(ctx, resp)
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
		ev := actuator.Event{Source: a.cfg.Device.SourceID, Result: ResultPass, Reason: reason, AuthenticationID: resp.AuthenticationID}
		t.actuator = a.timed(func() { a.signalFail(ctx, ev) })
		latency := a.observeLatency(shot)
		a.publish(display.Update{State: "fail", Reason: "see_reception"}, true)
		a.log.Warn("nothing sent to the panel", "reason", reason, "authentication_id", resp.AuthenticationID)
		a.record(ResultPass, "", resp.AuthenticationID, latency, false,
			t.with(shot, "capture_id", id, "panel_answer", "not_sent", "panel_not_sent", reason)...)
		return
	}
	var res panel.Result
	var perr error
	t.actuator = a.timed(func() { res, perr = a.d.Panel.Send(ctx, cred) })
	latency := a.observeLatency(shot)
	switch res.Answer {
	case panel.AnswerGranted, panel.AnswerSent:
		a.publish(display.Update{State: "pass", Name: name}, true)
	case panel.AnswerDenied:
		ev := actuator.Event{Source: a.cfg.Device.SourceID, Result: ResultPass, Reason: "panel_denied", AuthenticationID: resp.AuthenticationID}
		a.signalFail(ctx, ev)
		a.publish(display.Update{State: "fail", Reason: "panel_denied"}, true)
	default:
		a.publish(display.Update{State: "fail", Reason: "panel_no_answer"}, true)
	}
	kv := []any{"capture_id", id, "panel_answer", res.Answer, "panel_wait_ms", millis(res.Waited),
		"credential_format", string(cred.Format), "credential", cred.Masked()}
	if perr != nil {
		kv = append(kv, "panel_err", perr.Error())
	}
	a.record(ResultPass, "", resp.AuthenticationID, latency, false, t.with(shot, kv...)...)
}

// identify gathers what is known of who passed; userinfo is fetched with
// the PASS token when the credential lookup needs it. Without userinfo the
// identity's status is unknown, and a REVOKED identity must not get through.
func (a *Agent) identify(ctx context.Context, resp *uploader.AuthenticateResponse) (credentials.Identity, string, error) {
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
		name = nameOf(info)
	}
	return ident, name, nil
}

// PanelText shows a text the panel sent the reader, over what is on screen.
func (a *Agent) PanelText(t panel.Text) {
	a.mu.Lock()
	u := a.shown
	a.mu.Unlock()
	if u.State == "" {
		u.State = "ready"
	}
	u.Text = strings.TrimSpace(t.Text)
	a.publish(u, true)
}
