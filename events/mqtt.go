package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/kioskd/kioskd/config"
)

// MQTTSink publishes each event as one JSON message with QoS 1, and keeps a
// retained availability topic ("online", with "offline" as its last will)
// as Home Assistant and Frigate integrations expect.
type MQTTSink struct {
	client mqtt.Client
	topic  string
	avail  string
	log    *slog.Logger
}

// Availability payloads.
const (
	Online  = "online"
	Offline = "offline"
)

// NewMQTTSink connects in the background (retrying until Close) to the
// broker of cfg (defaults applied); sourceID fills {source_id} in topics
// and the client id.
func NewMQTTSink(cfg config.EventSink, sourceID string, log *slog.Logger) (*MQTTSink, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt sink %s: url: %w", cfg.Name, err)
	}
	broker := "tcp://" + u.Host
	if u.Scheme == "mqtts" {
		broker = "ssl://" + u.Host
	}
	fill := func(s string) string { return strings.ReplaceAll(s, "{source_id}", sourceID) }
	s := &MQTTSink{topic: fill(cfg.Topic), avail: fill(cfg.AvailabilityTopic), log: log.With("sink", cfg.Name)}
	o := mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fill(cfg.ClientID)).
		// Delivery state lives in the event log, not in the broker's
		// session: a clean session cannot replay stale messages.
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(cfg.BackoffMin).
		SetMaxReconnectInterval(cfg.BackoffMax).
		SetConnectTimeout(cfg.Timeout).
		SetKeepAlive(30*time.Second).
		SetOrderMatters(false).
		SetWill(s.avail, Offline, 1, true).
		SetOnConnectHandler(func(c mqtt.Client) {
			s.log.Info("mqtt connected", "broker", u.Host)
			c.Publish(s.avail, 1, true, Online)
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			s.log.Warn("mqtt connection lost", "broker", u.Host, "err", err)
		})
	if cfg.Username != "" {
		o.SetUsername(cfg.Username)
	}
	if cfg.Password != "" {
		o.SetPassword(cfg.Password)
	}
	if u.Scheme == "mqtts" {
		t, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(t)
	}
	s.client = mqtt.NewClient(o)
	s.client.Connect() // with ConnectRetry it completes only once connected
	return s, nil
}

// Deliver publishes the batch and waits for the broker to acknowledge
// every message.
func (s *MQTTSink) Deliver(ctx context.Context, batch []Event) error {
	if !s.client.IsConnectionOpen() {
		// paho would hold the messages until it reconnects; the log keeps
		// them better, and the forwarder backs off instead.
		return errors.New("mqtt sink: not connected")
	}
	tokens := make([]mqtt.Token, 0, len(batch))
	for _, e := range batch {
		payload, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("mqtt sink: encode: %w", err)
		}
		tokens = append(tokens, s.client.Publish(s.topic, 1, false, payload))
	}
	for _, t := range tokens {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				return fmt.Errorf("mqtt sink: publish: %w", err)
			}
		case <-ctx.Done():
			return fmt.Errorf("mqtt sink: publish: %w", ctx.Err())
		}
	}
	return nil
}

// Close says "offline" on the availability topic and disconnects.
func (s *MQTTSink) Close() error {
	if s.client.IsConnectionOpen() {
		t := s.client.Publish(s.avail, 1, true, Offline)
		t.WaitTimeout(time.Second)
	}
	s.client.Disconnect(250)
	return nil
}
