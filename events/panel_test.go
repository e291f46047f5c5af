package events

import (
	"testing"

	"github.com/kioskd/kioskd/decision"
)

// TestFromDecisionCarriesThePanelAnswer: the access event of a PASS that a
// panel decided says what was sent (masked) and what the panel answered.
func TestFromDecisionCarriesThePanelAnswer(t *testing.T) {
	e := FromDecision(decision.Record{Result: decision.Pass, PanelAnswer: "denied", CredentialFormat: "h10301", Credential: "h10301/12/***67"})
	if e.PanelAnswer != "denied" || e.Credential == nil || e.Credential.Number != "h10301/12/***67" || e.Credential.Format != "h10301" {
		t.Fatalf("%+v", e)
	}
	if e := FromDecision(decision.Record{Result: decision.Pass}); e.Credential != nil || e.PanelAnswer != "" {
		t.Fatalf("without a panel: %+v", e)
	}
}
