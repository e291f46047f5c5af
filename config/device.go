package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"time"
)

// Device identifies this door or kiosk.
type Device struct {
	SourceID string `yaml:"source_id"` // sent as "source"
	Mode     string `yaml:"mode"`      // door | attendance
	// StateDir holds small state that must survive restarts (attempt limiter).
	StateDir string `yaml:"state_dir"`
}

// Door and attendance modes.
const (
	ModeDoor       = "door"
	ModeAttendance = "attendance"
)

func (d *Device) defaults() {
	d.Mode = ModeDoor
	d.StateDir = "/var/lib/kioskd"
}

func (d *Device) validate(p *Problems) {
	if d.SourceID == "" {
		p.add("device.source_id: required")
	} else if len(d.SourceID) > 128 {
		p.add("device.source_id: longer than 128 characters")
	}
	if d.Mode != ModeDoor && d.Mode != ModeAttendance {
		p.add("device.mode: %q is not door or attendance", d.Mode)
	}
}

// Incode is how to reach the Incode ID API.
type Incode struct {
	BaseURL           string        `yaml:"base_url"`
	APIKeyFile        string        `yaml:"api_key_file"`
	HardwareIDFile    string        `yaml:"hardware_id_file"`
	LiveTimeout       time.Duration `yaml:"live_timeout"` // the whole live attempt, retries included
	AllowInsecureHTTP bool          `yaml:"allow_insecure_http"`
	CAFile            string        `yaml:"ca_file"`
	ClientCertFile    string        `yaml:"client_cert_file"`
	ClientKeyFile     string        `yaml:"client_key_file"`
	MaxRetries        int           `yaml:"max_retries"`
	RetryWaitMin      time.Duration `yaml:"retry_wait_min"`
	RetryWaitMax      time.Duration `yaml:"retry_wait_max"`
	// RetryAfterMax caps how long a server's Retry-After hint is honoured
	// within one call.
	RetryAfterMax  time.Duration `yaml:"retry_after_max"`
	RequestTimeout time.Duration `yaml:"request_timeout"` // deferred (queued) deliveries

	// Resolved secrets; never logged.
	APIKey     string `yaml:"-"`
	HardwareID string `yaml:"-"`
}

func (i *Incode) defaults() {
	i.LiveTimeout = 4 * time.Second
	i.MaxRetries = 3
	i.RetryWaitMin = 200 * time.Millisecond
	i.RetryWaitMax = 5 * time.Second
	i.RetryAfterMax = 10 * time.Second
	i.RequestTimeout = 30 * time.Second
}

func (i *Incode) validate(p *Problems) {
	if i.BaseURL == "" {
		p.add("incode.base_url: required")
	} else if err := CheckBaseURL(i.BaseURL, i.AllowInsecureHTTP); err != nil {
		p.add("incode.base_url: %v", err)
	}
	positive(p, "incode.live_timeout", i.LiveTimeout)
	positive(p, "incode.request_timeout", i.RequestTimeout)
	positive(p, "incode.retry_wait_min", i.RetryWaitMin)
	positive(p, "incode.retry_wait_max", i.RetryWaitMax)
	positive(p, "incode.retry_after_max", i.RetryAfterMax)
	if i.RetryWaitMin > i.RetryWaitMax {
		p.add("incode.retry_wait_min (%s) is larger than incode.retry_wait_max (%s)", i.RetryWaitMin, i.RetryWaitMax)
	}
	if i.MaxRetries < 0 || i.MaxRetries > 20 {
		p.add("incode.max_retries: %d is outside 0..20", i.MaxRetries)
	}
	if (i.ClientCertFile == "") != (i.ClientKeyFile == "") {
		p.add("incode.client_cert_file and incode.client_key_file: give both or neither")
	}
	for _, f := range []struct{ name, path string }{
		{"incode.ca_file", i.CAFile},
		{"incode.client_cert_file", i.ClientCertFile},
		{"incode.client_key_file", i.ClientKeyFile},
	} {
		if f.path == "" {
			continue
		}
		if fi, err := os.Stat(f.path); err != nil {
			p.add("%s: %v", f.name, err)
		} else if fi.IsDir() {
			p.add("%s: %s is a directory", f.name, f.path)
		}
	}
}

// CheckBaseURL accepts https URLs, and http only to a loopback host unless
// insecure http is allowed.
func CheckBaseURL(raw string, allowInsecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowInsecure || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("plain http to %s is only allowed to loopback (set incode.allow_insecure_http to override)", u.Hostname())
	default:
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func positive(p *Problems, name string, d time.Duration) {
	if d <= 0 {
		p.add("%s: must be a positive duration, got %s", name, d)
	}
}

func nonNegative(p *Problems, name string, d time.Duration) {
	if d < 0 {
		p.add("%s: must not be negative, got %s", name, d)
	}
}
