package capture

import (
	"slices"
	"testing"

	"github.com/kioskd/kioskd/internal/testmedia"
)

// TestReconfigureAppliesNewThresholds changes the brightness floor of a
// running selector: the same frames that gave a shot now give "too dark"
// guidance, a bad configuration changes nothing, and no Mat leaks.
func TestReconfigureAppliesNewThresholds(t *testing.T) {
	testmedia.CheckMats(t)
	r, s := newRun(t, selectCfg())
	if evs := r.feed("a", 20); len(evs) != 1 || evs[0].ev.Kind != EventShot {
		t.Fatalf("person A before the reload: events %v, want one shot", kinds(evs))
	}
	r.feed("empty", 10) // the face leaves: the cooldown ends

	bad := selectCfg()
	bad.Cascade = "/nonexistent/cascade.xml"
	if err := s.Reconfigure(bad); err == nil {
		t.Fatal("Reconfigure with a missing cascade: no error")
	}
	bad = selectCfg()
	bad.MinFacePx = 0
	if err := s.Reconfigure(bad); err == nil {
		t.Fatal("Reconfigure without defaults: no error")
	}
	if evs := r.feed("a", 20); len(evs) != 1 || evs[0].ev.Kind != EventShot {
		t.Fatalf("person A after refused reloads: events %v, want one shot with the old settings", kinds(evs))
	}
	r.feed("empty", 10)

	dark := selectCfg()
	dark.MinBrightness, dark.MaxBrightness = 230, 250
	if err := s.Reconfigure(dark); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	evs := r.feed("a", 20)
	if len(evs) != 1 || evs[0].ev.Kind != EventGuidance || !slices.Contains(evs[0].ev.Reasons, ReasonTooDark) {
		t.Fatalf("person A after the reload: events %v, want one too_dark guidance and no shot", evs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Reconfigure(selectCfg()); err == nil {
		t.Fatal("Reconfigure after Close: no error")
	}
}
