package credentials

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
)

// Identity is what the agent knows of who passed: Incode's ids, the
// identity's status and its custom fields (from userinfo, when fetched).
type Identity struct {
	VerificationID string
	IdentityID     string
	Status         string // ACTIVE, REVOKED, or "" when userinfo was not fetched
	Fields         map[string]string
}

// Why a credential was not found; bounded metric label values.
const (
	ReasonRevoked      = "revoked"
	ReasonNoCredential = "no_credential"
	ReasonBadField     = "bad_field"
)

// NotSentError says why no credential goes to the panel.
type NotSentError struct{ Reason string }

func (e *NotSentError) Error() string {
	switch e.Reason {
	case ReasonRevoked:
		return "credentials: the identity is revoked"
	case ReasonBadField:
		return "credentials: the userinfo field does not hold a valid card"
	}
	return "credentials: no credential for this identity"
}

// Resolver finds the credential of an identity: in the credentials file, or
// in a userinfo custom field. The file is swapped whole on Reload.
type Resolver struct {
	log *slog.Logger

	mu    sync.RWMutex
	cfg   config.Credentials
	table Table

	entries prometheus.Gauge
	reloads *prometheus.CounterVec
	lookups *prometheus.CounterVec
}

// NewResolver loads the credentials file, if any.
func NewResolver(cfg config.Credentials, log *slog.Logger, reg prometheus.Registerer) (*Resolver, error) {
	r := &Resolver{
		log: log,
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_credentials_entries", Help: "Identities in the credentials file.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_credentials_reloads_total", Help: "Reloads of the credentials file by result (ok, error).",
		}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_credentials_lookups_total", Help: "Credential lookups by result (found, revoked, no_credential, bad_field).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{r.entries, r.reloads, r.lookups} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("credentials: register metrics: %w", err)
		}
	}
	if err := r.Reload(cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the file again; on error the previous table stays in force.
func (r *Resolver) Reload(cfg config.Credentials) error {
	def, err := ParseFormat(cfg.Format)
	if err != nil {
		r.reloads.WithLabelValues("error").Inc()
		return fmt.Errorf("credentials: %w", err)
	}
	var t Table
	if cfg.File != "" {
		if t, err = LoadFile(cfg.File, def); err != nil {
			r.reloads.WithLabelValues("error").Inc()
			return fmt.Errorf("credentials: %w", err)
		}
	}
	r.mu.Lock()
	r.cfg, r.table = cfg, t
	r.mu.Unlock()
	r.entries.Set(float64(len(t)))
	r.reloads.WithLabelValues("ok").Inc()
	return nil
}

// NeedsUserInfo reports whether a lookup needs the identity's userinfo:
// for the card field, or for its identityId, its status is then checked too.
func (r *Resolver) NeedsUserInfo() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cfg.UserinfoField != "" || r.cfg.File != ""
}

// Resolve finds the credential of id. A REVOKED identity never gets one.
// The error is a *NotSentError.
func (r *Resolver) Resolve(id Identity) (Credential, error) {
	c, reason := r.resolve(id)
	if reason != "" {
		r.lookups.WithLabelValues(reason).Inc()
		return Credential{}, &NotSentError{Reason: reason}
	}
	r.lookups.WithLabelValues("found").Inc()
	return c, nil
}

func (r *Resolver) resolve(id Identity) (Credential, string) {
	if strings.EqualFold(id.Status, "REVOKED") {
		return Credential{}, ReasonRevoked
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, key := range []string{id.VerificationID, id.IdentityID} {
		if c, ok := r.table[key]; ok && key != "" {
			return c, ""
		}
	}
	if r.cfg.UserinfoField == "" {
		return Credential{}, ReasonNoCredential
	}
	v, ok := id.Fields[r.cfg.UserinfoField]
	if !ok || strings.TrimSpace(v) == "" {
		return Credential{}, ReasonNoCredential
	}
	def, _ := ParseFormat(r.cfg.Format)
	c, err := parseField(strings.TrimSpace(v), def)
	if err != nil {
		r.log.Warn("credentials: userinfo field does not hold a card", "field", r.cfg.UserinfoField, "err", err)
		return Credential{}, ReasonBadField
	}
	return c, ""
}

// parseField reads a card held in a userinfo field: "card" or
// "facility:card" in the configured format, or a raw bit string.
func parseField(v string, def Format) (Credential, error) {
	if def == Raw {
		return ParseCard("raw", "", v, "", def)
	}
	fac, card, ok := strings.Cut(v, ":")
	if !ok {
		fac, card = "", v
	}
	return ParseCard("", fac, card, "", def)
}
