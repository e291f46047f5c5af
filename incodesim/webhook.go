package incodesim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

const (
	eventVerificationCompleted   = "verification.completed"
	eventAuthenticationCompleted = "authentication.completed"
)

// webhookBody is the API document's webhook notification.
type webhookBody struct {
	Token     string `json:"token"`
	Event     string `json:"event"`
	Object    string `json:"object"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"` // seconds, UTC
}

// WebhookDelivery is one delivery attempt, as GET /_sim/webhooks lists it.
type WebhookDelivery struct {
	Time      time.Time `json:"time"`
	URL       string    `json:"url"`
	Event     string    `json:"event"`
	ID        string    `json:"id"`
	Attempt   int       `json:"attempt"`
	Status    int       `json:"status,omitempty"`
	Error     string    `json:"error,omitempty"`
	Delivered bool      `json:"delivered"`
}

// maxWebhookBackoff caps the wait between delivery attempts.
const maxWebhookBackoff = 30 * time.Second

// notify sends an event to every webhook URL in the background; each
// delivery is retried with backoff until the receiver answers 204.
func (s *Sim) notify(event, object, id, token string) {
	if len(s.opts.WebhookURLs) == 0 {
		return
	}
	body, err := json.Marshal(webhookBody{Token: token, Event: event, Object: object, ID: id, Timestamp: s.now().Unix()})
	if err != nil {
		s.log.Error("encode webhook", "err", err)
		return
	}
	for _, u := range s.opts.WebhookURLs {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.mu.Unlock()
			s.log.Warn("webhook dropped: too many deliveries in flight", "url", u, "event", event, "id", id)
			continue
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.deliver(u, event, id, body)
		}()
	}
}

func (s *Sim) deliver(u, event, id string, body []byte) {
	wait := s.opts.WebhookBackoff
	for attempt := 1; ; attempt++ {
		status, err := s.post(u, body)
		d := WebhookDelivery{Time: s.now(), URL: u, Event: event, ID: id, Attempt: attempt, Status: status}
		switch {
		case err != nil:
			d.Error = err.Error()
		case status != http.StatusNoContent:
			d.Error = "receiver answered " + http.StatusText(status) + ", want 204 No Content"
		default:
			d.Delivered = true
		}
		s.mu.Lock()
		s.hooks = append(s.hooks, d)
		if len(s.hooks) > s.opts.MaxRecords {
			s.hooks = s.hooks[len(s.hooks)-s.opts.MaxRecords:]
		}
		s.mu.Unlock()
		if d.Delivered {
			s.log.Info("webhook delivered", "url", u, "event", event, "id", id, "attempt", attempt)
			return
		}
		if attempt >= s.opts.WebhookAttempts || s.ctx.Err() != nil {
			s.log.Warn("webhook not delivered", "url", u, "event", event, "id", id, "attempts", attempt, "err", d.Error)
			return
		}
		s.log.Debug("webhook failed, retrying", "url", u, "event", event, "attempt", attempt, "wait", wait, "err", d.Error)
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, maxWebhookBackoff)
	}
}

func (s *Sim) post(u string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "incode-sim")
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
