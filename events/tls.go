package events

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/kioskd/kioskd/config"
)

// tlsConfig builds the client TLS settings of a sink: the system roots
// unless ca_file names others, and a client certificate when given.
func tlsConfig(cfg config.EventSink) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("sink %s: ca_file: %w", cfg.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sink %s: ca_file %s: no PEM certificate in it", cfg.Name, cfg.CAFile)
		}
		t.RootCAs = pool
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, errors.New("cert_file and key_file go together")
		}
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			// The key's bytes never reach the message: LoadX509KeyPair
			// reports only what kind of problem it found.
			return nil, fmt.Errorf("sink %s: client certificate: %w", cfg.Name, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
