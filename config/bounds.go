package config

import (
	"fmt"
	"reflect"
	"regexp"
	"time"
)

// MaxFileSize bounds the configuration file (and each drop-in): a door's
// settings fit in a few kilobytes, and YAML's aliases can make a large file
// cost far more memory than its size.
const MaxFileSize = 1 << 20

// defaultMaxDuration bounds every duration in the configuration that has no
// limit of its own below. Walking the struct keeps settings added later
// bounded too: a typo of "3000h" for "3000ms" is an error, not a door that
// waits four months.
const defaultMaxDuration = 24 * time.Hour

// durationLimits are the settings whose sensible range ends elsewhere than a
// day. Keys are YAML paths with list indexes removed.
var durationLimits = map[string]time.Duration{
	"incode.live_timeout":      time.Minute,
	"incode.request_timeout":   10 * time.Minute,
	"incode.retry_wait_min":    time.Minute,
	"incode.retry_wait_max":    15 * time.Minute,
	"incode.retry_after_max":   time.Hour,
	"capture.window":           10 * time.Second,
	"capture.cooldown":         10 * time.Minute,
	"camera.max_frame_age":     time.Minute,
	"camera.stall_timeout":     10 * time.Minute,
	"camera.network_timeout":   10 * time.Minute,
	"camera.reconnect_min":     time.Minute,
	"camera.reconnect_max":     time.Hour,
	"actuator.outputs.pulse":   10 * time.Minute,
	"actuator.outputs.timeout": 10 * time.Minute,
	"queue.ttl":                30 * 24 * time.Hour,
	"queue.retry_after_max":    24 * time.Hour,
	// Access records are kept as long as the site's policy says; five years
	// covers the audit periods integrators are asked for.
	"events.retention": 5 * 365 * 24 * time.Hour,
}

// defaultMaxBytes bounds every size setting without a limit of its own.
const defaultMaxBytes ByteSize = 1 << 40

var sizeLimits = map[string]ByteSize{
	"queue.max_bytes":  64 << 30,
	"events.max_bytes": 64 << 30,
}

var listIndex = regexp.MustCompile(`\[\d+\]`)

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// checkBounds reports every duration or size above its upper bound, named by
// its YAML path.
func checkBounds(p *Problems, c *Config) {
	walk("", reflect.ValueOf(c).Elem(), func(path string, v reflect.Value) {
		key := listIndex.ReplaceAllString(path, "")
		switch v.Type() {
		case durationType:
			limit, ok := durationLimits[key]
			if !ok {
				limit = defaultMaxDuration
			}
			if d := time.Duration(v.Int()); d > limit {
				p.add("%s: %s is longer than the largest accepted value, %s", path, d, limit)
			}
		case byteSizeType:
			limit, ok := sizeLimits[key]
			if !ok {
				limit = defaultMaxBytes
			}
			if b := ByteSize(v.Int()); b > limit {
				p.add("%s: %s is larger than the largest accepted value, %s", path, fmt.Sprint(int64(b))+"B", limit)
			}
		}
	})
}
