package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/kioskd/kioskd/config"
)

// HTTPSink posts batches as {"events": [...]} to one URL. Any answer but
// 2xx is a failure, and the forwarder sends the batch again later.
type HTTPSink struct {
	url    string
	token  string
	client *http.Client
}

// NewHTTPSink builds the sink for cfg (defaults applied); TLS settings
// come from ca_file, cert_file and key_file.
func NewHTTPSink(cfg config.EventSink) (*HTTPSink, error) {
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	return &HTTPSink{url: cfg.URL, token: cfg.Token, client: &http.Client{Transport: tr}}, nil
}

type httpBatch struct {
	Events []Event `json:"events"`
}

// Deliver posts one batch.
func (s *HTTPSink) Deliver(ctx context.Context, batch []Event) error {
	body, err := json.Marshal(httpBatch{Events: batch})
	if err != nil {
		return fmt.Errorf("http sink: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("http sink: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("http sink: post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("http sink: post: %s", resp.Status)
	}
	return nil
}

// Close releases idle connections.
func (s *HTTPSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
