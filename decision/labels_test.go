package decision

import "testing"

func TestLabelValueOneStyle(t *testing.T) {
	for in, want := range map[string]string{
		"PASS":            "pass",
		"OFFLINE":         "offline",
		"hasFaceMask":     "has_face_mask",
		"faceMatchFailed": "face_match_failed",
		"rate_limited":    "rate_limited",
		"unknown":         "unknown",
		"":                "",
	} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
	for _, r := range failureReasons() {
		if got := boundedReason(r); got != labelValue(r) {
			t.Errorf("boundedReason(%q) = %q", r, got)
		}
	}
	if got := boundedReason("notAReason"); got != "unknown" {
		t.Errorf("boundedReason of an unlisted reason = %q, want unknown", got)
	}
}
