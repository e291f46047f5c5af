package actuator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/backoff"
	"github.com/kioskd/kioskd/internal/clock"
)

// httpDriver POSTs each activation as JSON to a door controller.
type httpDriver struct {
	url     string
	where   string // the URL without credentials or query, for errors
	timeout time.Duration
	retries int
	clock   clock.Clock
	client  *http.Client
}

func newHTTPDriver(o config.Output, clk clock.Clock) *httpDriver {
	where := o.URL
	if u, err := url.Parse(o.URL); err == nil {
		where = u.Scheme + "://" + u.Host + u.Path
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &httpDriver{
		url:     o.URL,
		where:   where,
		timeout: o.Timeout,
		retries: o.RetryCount(),
		clock:   clk,
		client: &http.Client{
			Transport: tr,
			// A redirected POST is a misconfiguration, not something to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

type httpEvent struct {
	Output           string `json:"output"`
	Role             string `json:"role"`
	State            string `json:"state"`
	Result           string `json:"result,omitempty"`
	Reason           string `json:"reason,omitempty"`
	Source           string `json:"source,omitempty"`
	AuthenticationID string `json:"authentication_id,omitempty"`
	PulseMS          int64  `json:"pulse_ms,omitempty"`
	Time             string `json:"time"`
}

// errPermanent marks an answer that a retry would not change.
var errPermanent = errors.New("not retried")

func (d *httpDriver) fire(ctx context.Context, n notice) error {
	body, err := json.Marshal(httpEvent{
		Output: n.Output, Role: n.Role, State: n.State,
		Result: n.Result, Reason: n.Reason, Source: n.Source, AuthenticationID: n.AuthenticationID,
		PulseMS: n.Pulse.Milliseconds(), Time: n.Time.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return fmt.Errorf("http: encode event: %w", err)
	}
	// No jitter: one box's outputs do not retry in step with a fleet.
	retry := backoff.Policy{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt := 0; ; attempt++ {
		err = d.post(ctx, body)
		if err == nil || errors.Is(err, errPermanent) || attempt >= d.retries || ctx.Err() != nil {
			break
		}
		if werr := d.wait(ctx, retry.Delay(attempt+1, nil)); werr != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("http POST %s: %w", d.where, err)
	}
	return nil
}

func (d *httpDriver) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kioskd")
	resp, err := d.client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL, which may carry credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("status %d", resp.StatusCode)
	default:
		return fmt.Errorf("%w: status %d", errPermanent, resp.StatusCode)
	}
}

func (d *httpDriver) wait(ctx context.Context, dur time.Duration) error {
	done := make(chan struct{})
	t := d.clock.AfterFunc(dur, func() { close(done) })
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
