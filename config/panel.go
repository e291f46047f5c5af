package config

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Panel protocols.
const (
	PanelNone    = "none"
	PanelOSDP    = "osdp"
	PanelWiegand = "wiegand"
)

// Panel is the link to the building's access-control panel. With a panel
// configured kioskd sends the credential of who passed and shows what the
// panel answered; it does not drive the strike itself.
type Panel struct {
	Protocol        string        `yaml:"protocol"` // none | osdp | wiegand
	DecisionTimeout time.Duration `yaml:"decision_timeout"`
	OSDP            OSDP          `yaml:"osdp"`
	Wiegand         Wiegand       `yaml:"wiegand"`
}

// OSDP makes kioskd an OSDP peripheral device (a reader) on a serial port.
type OSDP struct {
	Device      string `yaml:"device"`
	Baud        int    `yaml:"baud"`
	Address     int    `yaml:"address"`
	SCBKFile    string `yaml:"scbk_file"`
	InstallMode bool   `yaml:"install_mode"`
	// SecureChannel false accepts a panel that cannot do Secure Channel:
	// card numbers then cross the wire in the clear.
	SecureChannel bool          `yaml:"secure_channel"`
	LinkTimeout   time.Duration `yaml:"link_timeout"`
	// VendorCode, Model and Serial are what osdp_PDID reports.
	VendorCode string `yaml:"vendor_code"` // 6 hex digits (an IEEE OUI)
	Serial     uint32 `yaml:"serial"`

	// SCBK is the resolved Secure Channel Base Key (16 bytes), nil when
	// none was given (install mode only).
	SCBK []byte `yaml:"-"`
	// KeyPath is where a key set by the panel (osdp_KEYSET) is kept.
	KeyPath string `yaml:"-"`
}

// Wiegand drives a Wiegand reader interface on two GPIO lines.
type Wiegand struct {
	Chip     string        `yaml:"chip"`
	D0       int           `yaml:"d0"`
	D1       int           `yaml:"d1"`
	Pulse    time.Duration `yaml:"pulse"`
	Interval time.Duration `yaml:"interval"`
	// LEDLine and BeeperLine are the panel's LED and beeper outputs wired
	// to GPIO inputs; -1 when not wired.
	LEDLine    int `yaml:"led_line"`
	BeeperLine int `yaml:"beeper_line"`
}

// Credentials maps who passed to the credential the panel knows.
type Credentials struct {
	File          string `yaml:"file"`           // CSV: identity,facility,card[,format][,bits]
	UserinfoField string `yaml:"userinfo_field"` // or a userinfo customFields key holding the card number
	Format        string `yaml:"format"`         // the format of a card number without one
}

// OSDPKeyFile is the name of the key a panel set with osdp_KEYSET, in
// device.state_dir.
const OSDPKeyFile = "osdp-scbk"

func (p *Panel) defaults() {
	p.Protocol = PanelNone
	p.DecisionTimeout = time.Second
	p.OSDP.Baud = 9600
	p.OSDP.SecureChannel = true
	p.OSDP.LinkTimeout = 8 * time.Second
	p.OSDP.VendorCode = "000000"
	p.Wiegand.Chip = "gpiochip0"
	p.Wiegand.D0, p.Wiegand.D1 = -1, -1
	p.Wiegand.Pulse = 50 * time.Microsecond
	p.Wiegand.Interval = 2 * time.Millisecond
	p.Wiegand.LEDLine, p.Wiegand.BeeperLine = -1, -1
}

func (c *Credentials) defaults() { c.Format = "h10301" }

// CredentialFormats are the card formats kioskd can send.
var credentialFormats = []string{"h10301", "h10306", "h10304", "raw"}

func (c *Credentials) validate(p *Problems, panel string) {
	ok := false
	for _, f := range credentialFormats {
		ok = ok || c.Format == f
	}
	if !ok {
		p.add("credentials.format: %q is not one of %s", c.Format, strings.Join(credentialFormats, ", "))
	}
	if panel != PanelNone && c.File == "" && c.UserinfoField == "" {
		p.add("credentials: panel.protocol %s needs credentials.file or credentials.userinfo_field", panel)
	}
}

func (p *Panel) validate(pr *Problems) {
	switch p.Protocol {
	case PanelNone, PanelOSDP, PanelWiegand:
	default:
		pr.add("panel.protocol: %q is not none, osdp or wiegand", p.Protocol)
	}
	if p.DecisionTimeout <= 0 || p.DecisionTimeout > 30*time.Second {
		pr.add("panel.decision_timeout: %s is not between 0 and 30s", p.DecisionTimeout)
	}
	switch p.Protocol {
	case PanelOSDP:
		o := p.OSDP
		if o.Device == "" {
			pr.add("panel.osdp.device: not set (the RS-485 adapter, e.g. /dev/ttyUSB0)")
		}
		switch o.Baud {
		case 9600, 19200, 38400, 57600, 115200:
		default:
			pr.add("panel.osdp.baud: %d is not 9600, 19200, 38400, 57600 or 115200", o.Baud)
		}
		if o.Address < 0 || o.Address > 126 {
			pr.add("panel.osdp.address: %d is not between 0 and 126", o.Address)
		}
		if o.LinkTimeout < time.Second {
			pr.add("panel.osdp.link_timeout: %s is shorter than 1s", o.LinkTimeout)
		}
		if b, err := hex.DecodeString(o.VendorCode); err != nil || len(b) != 3 {
			pr.add("panel.osdp.vendor_code: %q is not 6 hex digits", o.VendorCode)
		}
	case PanelWiegand:
		w := p.Wiegand
		if w.Chip == "" {
			pr.add("panel.wiegand.chip: not set")
		}
		if w.D0 < 0 || w.D1 < 0 || w.D0 == w.D1 {
			pr.add("panel.wiegand.d0/d1: two different GPIO lines are needed (got %d and %d)", w.D0, w.D1)
		}
		if w.Pulse < 20*time.Microsecond || w.Pulse > 2*time.Millisecond {
			pr.add("panel.wiegand.pulse: %s is not between 20µs and 2ms", w.Pulse)
		}
		if w.Interval < 200*time.Microsecond || w.Interval > 20*time.Millisecond || w.Interval <= w.Pulse {
			pr.add("panel.wiegand.interval: %s is not between 200µs and 20ms and longer than the pulse", w.Interval)
		}
	}
}

// resolveSCBK reads the Secure Channel Base Key: the key a panel set with
// osdp_KEYSET (in the state directory) wins over panel.osdp.scbk_file,
// since the panel rotated it; without either only install mode can work.
func (c *Config) resolveSCBK(env Env, p *Problems) {
	o := &c.Panel.OSDP
	if c.Panel.Protocol != PanelOSDP || !o.SecureChannel {
		return
	}
	o.KeyPath = filepath.Join(c.Device.StateDir, OSDPKeyFile)
	if _, err := os.Stat(o.KeyPath); err == nil {
		o.SCBK = c.scbkFrom("panel.osdp: key set by the panel", o.KeyPath, p)
		return
	}
	v := c.readSecret("panel.osdp.scbk_file", o.SCBKFile, "osdp-scbk", "KIOSKD_OSDP_SCBK", env, !o.InstallMode, p)
	if v == "" {
		return
	}
	o.SCBK = parseSCBK("panel.osdp.scbk_file", v, p)
}

func (c *Config) scbkFrom(field, path string, p *Problems) []byte {
	v, err := readSecretFile(path)
	if err != nil {
		p.add("%s: %v", field, err)
		return nil
	}
	return parseSCBK(field, v, p)
}

// ParseSCBK decodes a key written as 32 hex digits.
func parseSCBK(field, v string, p *Problems) []byte {
	b, err := hex.DecodeString(strings.TrimSpace(v))
	if err != nil || len(b) != 16 {
		p.add("%s: the key is not 32 hex digits", field)
		return nil
	}
	return b
}

// warnPanel says that unlock outputs stay idle while a panel decides, so
// that an installer who wired both is not surprised.
func (c *Config) warnPanel() {
	if c.Panel.Protocol == PanelNone || c.Panel.Protocol == "" {
		return
	}
	for _, o := range c.Actuator.Outputs {
		if o.Role == "unlock" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("actuator.outputs %s: with panel.protocol %s the panel drives the strike; this unlock output is never pulsed", o.Name, c.Panel.Protocol))
		}
	}
}
