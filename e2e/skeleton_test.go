package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestDemoClip runs the built kioskd on the bundled clip against the built
// emulator: the enrolled astronaut passes, the other person fails, both
// decisions are logged live, the emulator got well-formed requests, and
// kioskd exits 0 at the end of the clip.
func TestDemoClip(t *testing.T) {
	s := startSim(t)
	cfg := writeConfig(t, runOpts{BaseURL: s.URL, Realtime: true})
	k := startKioskd(t, cfg)
	if code := k.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("kioskd exited %d", code)
	}
	ds := decisions(k.Output())
	var pass, fail int
	for _, d := range ds {
		if d["deferred"] != false || d["source"] != "e2e-door" {
			t.Errorf("decision %v: want deferred false and source e2e-door", d)
		}
		if _, ok := d["latency_ms"].(float64); !ok {
			t.Errorf("decision %v has no latency_ms", d)
		}
		switch d["result"] {
		case "PASS":
			pass++
			if d["authentication_id"] == nil || d["authentication_id"] == "" {
				t.Errorf("PASS without authentication_id: %v", d)
			}
		case "FAIL":
			fail++
			if d["reason"] != "faceMatchFailed" {
				t.Errorf("FAIL reason = %v, want faceMatchFailed", d["reason"])
			}
		default:
			t.Errorf("unexpected decision %v", d)
		}
	}
	if pass != 1 || fail != 1 {
		t.Fatalf("got %d PASS and %d FAIL decisions, want 1 and 1: %v", pass, fail, ds)
	}
	reqs := s.requests(t)
	var auths int
	for _, r := range reqs {
		if r["path"] != "/omni/incode-id/authenticate" {
			continue
		}
		auths++
		if r["source"] != "e2e-door" {
			t.Errorf("request source = %v", r["source"])
		}
		img, _ := r["image"].(map[string]any)
		if img == nil || img["format"] != "jpeg" || img["width"].(float64) < 320 {
			t.Errorf("request image = %v, want a decodable JPEG", r["image"])
		}
		if r["apiKey"] != "valid" || r["hardwareId"] != "device" {
			t.Errorf("request credentials: apiKey %v, hardwareId %v", r["apiKey"], r["hardwareId"])
		}
		h, _ := r["headers"].(map[string]any)
		if v, _ := h["Api-Version"].([]any); len(v) != 1 || v[0] != "1.0" {
			t.Errorf("api-version header = %v", h["Api-Version"])
		}
		if v, _ := h["Content-Type"].([]any); len(v) != 1 || v[0] != "application/json" {
			t.Errorf("content-type header = %v", h["Content-Type"])
		}
		if v, _ := h["User-Agent"].([]any); len(v) != 1 || !strings.HasPrefix(v[0].(string), "kioskd/") {
			t.Errorf("user-agent header = %v", h["User-Agent"])
		}
		if r["idempotencyKey"] == nil || r["idempotencyKey"] == "" {
			t.Errorf("request without an idempotency key")
		}
	}
	if auths != 2 {
		t.Fatalf("emulator got %d authenticate requests, want 2: %v", auths, reqs)
	}
}
