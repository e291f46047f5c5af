package config

import (
	"net"
	"os"
	"strings"
)

// Metrics is the Prometheus and health endpoint.
type Metrics struct {
	Listen       string   `yaml:"listen"` // empty: off
	AllowedHosts []string `yaml:"allowed_hosts"`
	// WebConfigFile is a Prometheus exporter-toolkit web configuration
	// (TLS certificate and key, basic-auth users), as node_exporter reads.
	WebConfigFile string `yaml:"web_config_file"`
	// MaxConnections caps open connections; kioskd lowers it further to
	// keep file descriptors for the door path.
	MaxConnections int `yaml:"max_connections"`
}

func (m *Metrics) defaults() {
	m.Listen = "127.0.0.1:9108"
	m.MaxConnections = 64
}

func (m *Metrics) validate(p *Problems) {
	checkListen(p, "metrics.listen", m.Listen)
	checkConnections(p, "metrics.max_connections", m.MaxConnections)
	checkAllowedHosts(p, "metrics.allowed_hosts", m.AllowedHosts)
	// Reachable from the network, the endpoint must say which names it
	// answers to (DNS rebinding), unless TLS and basic auth guard it.
	if m.Listen != "" && !loopbackListen(m.Listen) && len(m.AllowedHosts) == 0 && m.WebConfigFile == "" {
		p.add("metrics.listen: %s is reachable from the network: set metrics.allowed_hosts to the names Prometheus scrapes this box by (IP addresses are always accepted), or metrics.web_config_file for TLS and basic auth", m.Listen)
	}
	if m.WebConfigFile != "" {
		if fi, err := os.Stat(m.WebConfigFile); err != nil {
			p.add("metrics.web_config_file: %v", err)
		} else if !fi.Mode().IsRegular() {
			p.add("metrics.web_config_file: %s is not a regular file", m.WebConfigFile)
		}
	}
}

func checkConnections(p *Problems, name string, n int) {
	if n < 1 || n > 65536 {
		p.add("%s: %d is outside 1..65536", name, n)
	}
}

func checkAllowedHosts(p *Problems, name string, hosts []string) {
	for i, h := range hosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			p.add("%s[%d]: %q is not a host or host:port", name, i, h)
		}
	}
}

// loopbackListen reports whether a listen address is loopback only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return isLoopback(strings.Trim(host, "[]"))
}

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
