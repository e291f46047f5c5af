package osdp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	linkUp, secureUp, lastCommand prometheus.Gauge
	commands, replies, errors     *prometheus.CounterVec
	sessions                      *prometheus.CounterVec
	cards                         prometheus.Counter
}

// Error kinds, the bounded label of kioskd_panel_osdp_errors_total.
const (
	errKindCRC        = "crc"
	errKindFormat     = "format"
	errKindTorn       = "torn"
	errKindSequence   = "sequence"
	errKindMAC        = "mac"
	errKindCryptogram = "cryptogram"
	errKindSecurity   = "security"
	errKindPlaintext  = "plaintext"
	errKindLength     = "length"
	errKindUnknown    = "unknown_command"
	errKindWrite      = "write"
	errKindKey        = "key"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		linkUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_panel_osdp_link_up", Help: "1 while the panel polls this reader (a valid command within panel.osdp.link_timeout).",
		}),
		secureUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_panel_osdp_secure_channel_up", Help: "1 while a Secure Channel session with the panel is established.",
		}),
		lastCommand: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kioskd_panel_osdp_last_command_timestamp_seconds", Help: "When the last valid command from the panel arrived.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_panel_osdp_commands_total", Help: "Valid commands received from the panel, by command.",
		}, []string{"command"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_panel_osdp_replies_total", Help: "Replies sent to the panel, by reply.",
		}, []string{"reply"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_panel_osdp_errors_total", Help: "Link and Secure Channel errors by kind (crc, format, torn, sequence, mac, cryptogram, security, plaintext, length, unknown_command, write, key).",
		}, []string{"kind"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_panel_osdp_secure_sessions_total", Help: "Secure Channel sessions established, by key (scbk, scbk_d).",
		}, []string{"key"}),
		cards: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_panel_osdp_card_reads_total", Help: "Card reads (osdp_RAW) delivered to the panel.",
		}),
	}
	for _, c := range []prometheus.Collector{m.linkUp, m.secureUp, m.lastCommand, m.commands, m.replies, m.errors, m.sessions, m.cards} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("osdp: register metrics: %w", err)
		}
	}
	return m, nil
}
