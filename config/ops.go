package config

import (
	"net"
	"strings"
)

// Metrics is the Prometheus and health endpoint.
type Metrics struct {
	Listen       string   `yaml:"listen"` // empty: off
	AllowedHosts []string `yaml:"allowed_hosts"`
}

func (m *Metrics) defaults() { m.Listen = "127.0.0.1:9108" }

func (m *Metrics) validate(p *Problems) { checkListen(p, "metrics.listen", m.Listen) }

// Log sets the log level and format.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | text
}

func (l *Log) defaults() {
	l.Level = "info"
	l.Format = "json"
}

func (l *Log) validate(p *Problems) {
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level: %q is not debug, info, warn or error", l.Level)
	}
	if l.Format != "json" && l.Format != "text" {
		p.add("log.format: %q is not json or text", l.Format)
	}
}

func checkListen(p *Problems, name, addr string) {
	if addr == "" {
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		p.add("%s: %q is not host:port", name, addr)
	}
}
