package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Events is the durable access-event log and where its events go.
type Events struct {
	// Path is the log file; empty means events.db in device.state_dir.
	Path string `yaml:"path"`
	// Retention is how long an event is kept. Events name people: this is
	// a privacy setting, to be set from the site's data-retention policy.
	Retention time.Duration `yaml:"retention"`
	MaxEvents int           `yaml:"max_events"`
	MaxBytes  ByteSize      `yaml:"max_bytes"`
	Sinks     []EventSink   `yaml:"sinks"`
}

// EventSink is one place events are sent to: an MQTT broker or an HTTP
// endpoint that takes batches.
type EventSink struct {
	// Name labels the sink's metrics and keeps its delivery position in
	// the log; default "<type>-<index>". Renaming a sink restarts its
	// delivery from the oldest event kept.
	Name string `yaml:"name"`
	Type string `yaml:"type"` // mqtt | http
	URL  string `yaml:"url"`  // mqtt://host:1883, mqtts://host:8883, https://host/path
	// Topic (mqtt) may hold {source_id}; default kioskd/{source_id}/events.
	Topic string `yaml:"topic"`
	// AvailabilityTopic (mqtt) gets a retained "online", and "offline" as
	// the last will; default kioskd/{source_id}/availability.
	AvailabilityTopic string `yaml:"availability_topic"`
	ClientID          string `yaml:"client_id"` // mqtt; default kioskd-{source_id}
	Username          string `yaml:"username"`
	PasswordFile      string `yaml:"password_file"`
	TokenFile         string `yaml:"token_file"` // http: sent as a bearer token
	CAFile            string `yaml:"ca_file"`
	CertFile          string `yaml:"cert_file"`
	KeyFile           string `yaml:"key_file"`
	// BatchSize is how many events one delivery carries at most.
	BatchSize  int           `yaml:"batch_size"`
	Timeout    time.Duration `yaml:"timeout"`
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`

	// Resolved secrets; never logged.
	Password string `yaml:"-"`
	Token    string `yaml:"-"`
}

// Defaults of one sink, applied by EventSink.WithDefaults.
const (
	DefaultEventTopic        = "kioskd/{source_id}/events"
	DefaultAvailabilityTopic = "kioskd/{source_id}/availability"
)

func (e *Events) defaults() {
	e.Retention = 30 * 24 * time.Hour
	e.MaxEvents = 100000
	e.MaxBytes = 64 << 20
}

// WithDefaults returns s with every unset setting filled in; i is its
// index in the list.
func (s EventSink) WithDefaults(i int) EventSink {
	if s.Name == "" {
		s.Name = fmt.Sprintf("%s-%d", s.Type, i)
	}
	if s.Type == "mqtt" {
		if s.Topic == "" {
			s.Topic = DefaultEventTopic
		}
		if s.AvailabilityTopic == "" {
			s.AvailabilityTopic = DefaultAvailabilityTopic
		}
		if s.ClientID == "" {
			s.ClientID = "kioskd-{source_id}"
		}
	}
	if s.BatchSize == 0 {
		s.BatchSize = 100
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	if s.BackoffMin == 0 {
		s.BackoffMin = time.Second
	}
	if s.BackoffMax == 0 {
		s.BackoffMax = 5 * time.Minute
	}
	return s
}

// EventsPath is where the event log lives, or "" when there is nowhere
// to keep it (no path and no state directory).
func (c *Config) EventsPath() string {
	if c.Events.Path != "" {
		return c.Events.Path
	}
	if c.Device.StateDir == "" {
		return ""
	}
	return filepath.Join(c.Device.StateDir, "events.db")
}

func (e *Events) validate(p *Problems) {
	if strings.HasSuffix(e.Path, "/") {
		p.add("events.path: %q is a directory; name the file, e.g. %sevents.db", e.Path, e.Path)
	}
	positive(p, "events.retention", e.Retention)
	if e.MaxEvents < 1 {
		p.add("events.max_events: must be at least 1, got %d", e.MaxEvents)
	}
	if e.MaxBytes < 1<<20 {
		p.add("events.max_bytes: must be at least 1MiB, got %d", int64(e.MaxBytes))
	}
	names := map[string]bool{}
	for i, s := range e.Sinks {
		at := fmt.Sprintf("events.sinks[%d]", i)
		s = s.WithDefaults(i)
		if names[s.Name] {
			p.add("%s.name: %q is used twice", at, s.Name)
		}
		names[s.Name] = true
		s.validate(p, at)
	}
}

func (s EventSink) validate(p *Problems, at string) {
	u, err := url.Parse(s.URL)
	if s.URL == "" || err != nil || u.Host == "" {
		p.add("%s.url: %q is not a URL with a host", at, s.URL)
		u = nil
	}
	switch s.Type {
	case "mqtt":
		if u != nil && u.Scheme != "mqtt" && u.Scheme != "mqtts" {
			p.add("%s.url: %q must be mqtt://host:port or mqtts://host:port", at, s.URL)
		}
		for name, t := range map[string]string{"topic": s.Topic, "availability_topic": s.AvailabilityTopic} {
			if strings.ContainsAny(t, "#+\x00") || t == "" {
				p.add("%s.%s: %q is not an MQTT topic to publish to (no wildcards)", at, name, t)
			}
		}
	case "http":
		if u != nil && u.Scheme != "http" && u.Scheme != "https" {
			p.add("%s.url: %q is not an http(s) URL", at, s.URL)
		} else if u != nil && u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			// Events name people: they leave the box encrypted.
			p.add("%s.url: %q sends events unencrypted; use https (http only to loopback)", at, s.URL)
		}
	default:
		p.add("%s.type: %q is not mqtt or http", at, s.Type)
	}
	if s.BatchSize < 1 || s.BatchSize > 1000 {
		p.add("%s.batch_size: %d is outside 1..1000", at, s.BatchSize)
	}
	if s.Timeout <= 0 || s.Timeout > 5*time.Minute {
		p.add("%s.timeout: %s is outside (0, 5m]", at, s.Timeout)
	}
	positive(p, at+".backoff_min", s.BackoffMin)
	if s.BackoffMax < s.BackoffMin {
		p.add("%s.backoff_max: %s is shorter than backoff_min %s", at, s.BackoffMax, s.BackoffMin)
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		p.add("%s: cert_file and key_file go together", at)
	}
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// resolveEventSecrets reads the sinks' password and token files.
func (c *Config) resolveEventSecrets(p *Problems) {
	for i := range c.Events.Sinks {
		s := &c.Events.Sinks[i]
		at := fmt.Sprintf("events.sinks[%d]", i)
		if s.PasswordFile != "" {
			s.Password = c.readSecret(at+".password_file", s.PasswordFile, "", "", nil, false, p)
		}
		if s.TokenFile != "" {
			s.Token = c.readSecret(at+".token_file", s.TokenFile, "", "", nil, false, p)
		}
	}
}
