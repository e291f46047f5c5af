// Package clockcheck tells when the system clock is plainly wrong: earlier
// than the time kioskd was built, or so far behind that the Incode API's
// TLS certificate is not valid yet. A box without a real-time clock that
// boots without network time fails every TLS handshake; without this check
// the only sign is every attempt being OFFLINE.
package clockcheck

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Checker watches the clock. It is safe for concurrent use.
type Checker struct {
	built time.Time
	now   func() time.Time
	log   *slog.Logger

	mu        sync.Mutex
	notBefore time.Time // of the certificate that was not yet valid; zero when none
	wasWrong  bool      // what was last logged
}

// Option configures a Checker.
type Option func(*Checker)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(c *Checker) { c.now = now } }

// New returns a checker for a binary built at built (zero: unknown, only
// certificates are checked) and registers kioskd_clock_wrong. It logs at
// once when the clock is already wrong.
func New(built time.Time, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Checker, error) {
	c := &Checker{built: built, now: time.Now, log: log}
	for _, o := range opts {
		o(c)
	}
	// Computed when scraped, so that a clock put right by NTP clears it
	// without waiting for the next request.
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kioskd_clock_wrong",
		Help: "1 while the system clock is plainly wrong (before the build date, or the API's certificate not yet valid); TLS fails until it is fixed.",
	}, func() float64 {
		if c.Err() != nil {
			return 1
		}
		return 0
	})
	if err := reg.Register(g); err != nil {
		return nil, fmt.Errorf("clockcheck: %w", err)
	}
	c.Err()
	return c, nil
}

// Err says what is wrong with the clock, or nil. It logs when the answer
// changes.
func (c *Checker) Err() error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	switch {
	case !c.built.IsZero() && now.Before(c.built):
		err = fmt.Errorf("system clock is wrong: %s is before this kioskd was built (%s); check time synchronisation (timedatectl)",
			now.UTC().Format(time.RFC3339), c.built.UTC().Format(time.RFC3339))
	case !c.notBefore.IsZero() && now.Before(c.notBefore):
		err = fmt.Errorf("system clock is wrong: the Incode API's TLS certificate is valid from %s, the clock says %s; check time synchronisation (timedatectl)",
			c.notBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	c.logChange(err)
	return err
}

func (c *Checker) logChange(err error) {
	switch {
	case err != nil && !c.wasWrong:
		c.log.Error("clock", "err", err)
	case err == nil && c.wasWrong:
		c.log.Info("clock: the system clock looks right again")
	}
	c.wasWrong = err != nil
}

// Observe looks at the outcome of a call to the API. A certificate that is
// not valid yet by the local clock means the clock is behind (certificates
// are issued for now, not for the future); a call that went through clears
// that.
func (c *Checker) Observe(err error) {
	var nb time.Time
	if err != nil {
		var ce x509.CertificateInvalidError
		if !errors.As(err, &ce) || ce.Reason != x509.Expired || ce.Cert == nil || !c.now().Before(ce.Cert.NotBefore) {
			return
		}
		nb = ce.Cert.NotBefore
	}
	c.mu.Lock()
	changed := !c.notBefore.Equal(nb)
	c.notBefore = nb
	c.mu.Unlock()
	if changed {
		c.Err()
	}
}
