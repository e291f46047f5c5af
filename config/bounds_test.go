package config

import (
	"reflect"
	"testing"
)

// TestLimitsNameRealSettings: a limit keyed by a setting that was renamed
// or removed would silently stop applying.
func TestLimitsNameRealSettings(t *testing.T) {
	c := Default()
	c.Actuator.Outputs = append(c.Actuator.Outputs, Output{})
	paths := map[string]bool{}
	walk("", reflect.ValueOf(c).Elem(), func(p string, _ reflect.Value) { paths[listIndex.ReplaceAllString(p, "")] = true })
	for k := range durationLimits {
		if !paths[k] {
			t.Errorf("durationLimits names %s, which is no setting", k)
		}
	}
	for k := range sizeLimits {
		if !paths[k] {
			t.Errorf("sizeLimits names %s, which is no setting", k)
		}
	}
}
