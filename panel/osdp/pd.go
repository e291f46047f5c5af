package osdp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/internal/statefile"
)

// Port is the serial line. Read returns 0, nil when nothing arrived within
// its read timeout, so that the loop notices silence and cancellation.
type Port interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	SetBaud(baud int) error
	Close() error
}

// IndicationKind says what the panel asked the reader to show.
type IndicationKind int

// What a panel drives on a reader.
const (
	IndicationLED IndicationKind = iota + 1
	IndicationBuzzer
	IndicationText
)

// Color is an OSDP LED colour.
type Color byte

// OSDP LED colours.
const (
	ColorBlack Color = iota
	ColorRed
	ColorGreen
	ColorAmber
	ColorBlue
	ColorMagenta
	ColorCyan
	ColorWhite
)

func (c Color) String() string {
	names := []string{"black", "red", "green", "amber", "blue", "magenta", "cyan", "white"}
	if int(c) < len(names) {
		return names[c]
	}
	return "unknown"
}

// Indication is one LED, buzzer or text command from the panel.
type Indication struct {
	Kind      IndicationKind
	Color     Color // LED: the "on" colour
	Temporary bool  // LED or text: for Duration, then back to the permanent state
	Duration  time.Duration
	Tone      bool // buzzer: sounding
	Count     int  // buzzer: repetitions
	Text      string
}

// Option adjusts a PD, for tests mostly.
type Option func(*PD)

// WithClock replaces time.Now.
func WithClock(now func() time.Time) Option { return func(p *PD) { p.now = now } }

// WithRand replaces crypto/rand for RND.B.
func WithRand(r io.Reader) Option { return func(p *PD) { p.rand = r } }

// WithIndications is called, on the PD's goroutine, for every LED, buzzer
// and text command; it must not block.
func WithIndications(f func(Indication)) Option { return func(p *PD) { p.indicate = f } }

// WithPort uses an already open port instead of opening cfg.Device.
func WithPort(port Port) Option { return func(p *PD) { p.port = port } }

// PD is kioskd as an OSDP peripheral device.
type PD struct {
	cfg      config.OSDP
	log      *slog.Logger
	m        *metrics
	now      func() time.Time
	rand     io.Reader
	indicate func(Indication)
	port     Port
	vendor   []byte

	mu     sync.Mutex
	scbk   []byte
	cards  []credentials.Bits
	tamper bool
	power  bool
	dirty  bool // local status changed since the panel last heard it

	linkUp   atomic.Bool
	secureUp atomic.Bool

	// Owned by Run's goroutine.
	addr       byte
	sess       session
	lastSeq    int // -1: no command yet, or the panel restarted the sequence
	lastCmd    []byte
	lastReply  []byte
	lastRx     time.Time
	warnedSC   bool
	afterReply func()
}

// New builds a PD on cfg.Device (opened with the serial library) or on the
// port given by WithPort.
func New(cfg config.OSDP, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*PD, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	vendor, err := hex.DecodeString(cfg.VendorCode)
	if err != nil || len(vendor) != 3 {
		vendor = []byte{0, 0, 0}
	}
	p := &PD{cfg: cfg, log: log, m: m, now: time.Now, rand: rand.Reader, indicate: func(Indication) {},
		vendor: vendor, addr: byte(cfg.Address), lastSeq: -1, scbk: cfg.SCBK}
	for _, o := range opts {
		o(p)
	}
	if p.port == nil {
		if p.port, err = OpenSerial(cfg.Device, cfg.Baud); err != nil {
			return nil, err
		}
	}
	if cfg.SecureChannel && p.scbk == nil && !cfg.InstallMode {
		p.port.Close()
		return nil, errors.New("osdp: Secure Channel needs an SCBK (panel.osdp.scbk_file) or install_mode")
	}
	if cfg.InstallMode {
		log.Warn("osdp: install mode: the panel may open Secure Channel with the well-known key SCBK-D; turn install_mode off once the panel has set its key")
	}
	if !cfg.SecureChannel {
		log.Warn("osdp: Secure Channel is off: card numbers cross the wire in the clear")
	}
	return p, nil
}

// LinkUp reports whether the panel is polling.
func (p *PD) LinkUp() bool { return p.linkUp.Load() }

// SecureUp reports whether a Secure Channel session is established.
func (p *PD) SecureUp() bool { return p.secureUp.Load() }

// SendCard queues a card read for the panel's next poll. With Secure
// Channel required it waits for a session: never sent in the clear.
func (p *PD) SendCard(b credentials.Bits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// A card that has waited longer than the next one is stale: keep one.
	p.cards = append(p.cards[:0], b)
}

// DropCards forgets a card the panel did not collect in time.
func (p *PD) DropCards() {
	p.mu.Lock()
	p.cards = nil
	p.mu.Unlock()
}

// SetTamper and SetPower report the reader's local status (osdp_LSTATR);
// the panel hears a change in the reply to its next poll.
func (p *PD) SetTamper(on bool) { p.setStatus(&p.tamper, on) }

// SetPower reports a power failure when on.
func (p *PD) SetPower(failed bool) { p.setStatus(&p.power, failed) }

func (p *PD) setStatus(f *bool, v bool) {
	p.mu.Lock()
	if *f != v {
		*f, p.dirty = v, true
	}
	p.mu.Unlock()
}

// Close releases the serial port.
func (p *PD) Close() error { return p.port.Close() }

// Run answers the panel until ctx is done.
func (p *PD) Run(ctx context.Context) error {
	buf := make([]byte, 0, 2*maxPacketLen)
	tmp := make([]byte, 512)
	mark := false
	for ctx.Err() == nil {
		n, err := p.port.Read(tmp)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("osdp: read: %w", err)
		}
		p.checkLink()
		if n == 0 {
			if len(buf) > 0 && buf[0] == som {
				// The line went quiet in the middle of a packet.
				p.m.errors.WithLabelValues(errKindTorn).Inc()
				p.log.Debug("osdp: dropped a torn packet", "bytes", len(buf))
				buf, mark = buf[:0], false
			}
			continue
		}
		buf = append(buf, tmp[:n]...)
		for {
			l := frameLen(buf)
			if l == 0 {
				break
			}
			if l < 0 {
				// Not the start of a packet: resynchronise on the next SOM,
				// noting the 0xFF mark byte OSDP 2.2 puts before it.
				i := bytes.IndexByte(buf[1:], som)
				if i < 0 {
					if buf[len(buf)-1] == markByte {
						buf = append(buf[:0], markByte)
					} else {
						buf = buf[:0]
					}
					break
				}
				mark = buf[i] == markByte
				buf = buf[1+i:]
				continue
			}
			pkt := append([]byte(nil), buf[:l]...)
			buf = append(buf[:0], buf[l:]...)
			reply := p.handle(pkt)
			hadMark := mark
			mark = false
			if reply == nil {
				continue
			}
			if hadMark {
				// Answer the way the panel speaks.
				reply = append([]byte{markByte}, reply...)
			}
			if _, err := p.port.Write(reply); err != nil {
				p.m.errors.WithLabelValues(errKindWrite).Inc()
				p.log.Warn("osdp: write", "err", err)
			}
			p.m.replies.WithLabelValues(name(replyNames, replyCode(reply))).Inc()
			if f := p.afterReply; f != nil {
				p.afterReply = nil
				f()
			}
		}
	}
	return nil
}

// replyCode finds the reply code in an encoded reply.
func replyCode(b []byte) byte {
	if b[0] == markByte {
		b = b[1:]
	}
	i := headerLen
	if b[4]&ctrlSCB != 0 {
		i += int(b[i])
	}
	return b[i]
}

func (p *PD) checkLink() {
	if p.linkUp.Load() && p.now().Sub(p.lastRx) > p.cfg.LinkTimeout {
		p.linkUp.Store(false)
		p.m.linkUp.Set(0)
		p.teardown("link down")
		p.lastSeq = -1
		p.log.Warn("osdp: panel link down: no poll", "for", p.cfg.LinkTimeout.String())
	}
}

func (p *PD) teardown(why string) {
	if p.sess.active {
		p.log.Info("osdp: secure channel closed", "why", why)
	}
	p.sess = session{}
	p.secureUp.Store(false)
	p.m.secureUp.Set(0)
}

func nextSeq(s int) int { return s%3 + 1 }

// reply is what a command produces.
type reply struct {
	code byte
	data []byte
	scb  []byte // a handshake reply's security block
}

func nak(code byte) reply { return reply{code: replyNAK, data: []byte{code}} }

// handle processes one framed packet and returns the bytes to send, or nil.
func (p *PD) handle(raw []byte) []byte {
	addr := raw[1]
	if addr&addrReply != 0 || (addr != p.addr && addr != addrBcast) {
		return nil // another reader's traffic on a shared bus
	}
	pkt, err := decode(raw)
	seq := raw[4] & ctrlSeqMask
	crc := raw[4]&ctrlCRC != 0
	if errors.Is(err, errCheck) {
		p.m.errors.WithLabelValues(errKindCRC).Inc()
		return p.plain(seq, crc, nak(nakCheck))
	}
	if err != nil {
		p.m.errors.WithLabelValues(errKindFormat).Inc()
		return p.plain(seq, crc, nak(nakLength))
	}
	p.lastRx = p.now()
	p.m.lastCommand.Set(float64(p.lastRx.UnixNano()) / 1e9)
	if !p.linkUp.Swap(true) {
		p.m.linkUp.Set(1)
		p.log.Info("osdp: panel link up", "address", p.addr)
	}
	p.m.commands.WithLabelValues(name(commandNames, pkt.code)).Inc()

	switch {
	case seq == 0:
		if p.lastSeq > 0 {
			p.teardown("the panel restarted the sequence")
		}
	case p.lastSeq >= 0 && int(seq) == p.lastSeq && bytes.Equal(raw, p.lastCmd):
		// The panel did not get our reply: send the same one again.
		return p.lastReply
	case p.lastSeq >= 0 && int(seq) != nextSeq(p.lastSeq):
		p.m.errors.WithLabelValues(errKindSequence).Inc()
		p.log.Debug("osdp: unexpected sequence number", "got", seq, "want", nextSeq(p.lastSeq))
		p.teardown("sequence error")
		return p.plain(seq, crc, nak(nakSequence))
	}
	p.lastSeq = int(seq)
	out := p.process(pkt, seq, crc)
	p.lastCmd, p.lastReply = raw, out
	return out
}

// process checks the security of a command, runs it and encodes the reply.
func (p *PD) process(pkt packet, seq byte, crc bool) []byte {
	data := pkt.data
	if pkt.scb != nil {
		switch pkt.scb[0] {
		case scs11, scs13:
			if (pkt.scb[0] == scs11) != (pkt.code == cmdCHLNG) || (pkt.scb[0] == scs13) != (pkt.code == cmdSCRYPT) {
				p.m.errors.WithLabelValues(errKindSecurity).Inc()
				return p.plain(seq, crc, nak(nakSecurity))
			}
			return p.plain(seq, crc, p.handshake(pkt))
		case scs15, scs17:
			if !p.sess.active {
				p.m.errors.WithLabelValues(errKindSecurity).Inc()
				return p.plain(seq, crc, nak(nakSecurity))
			}
			mac := computeMAC(p.sess.keys, p.sess.rmac, pkt.raw[:pkt.macEnd])
			if !macEqual(mac[:macLen], pkt.mac) {
				p.m.errors.WithLabelValues(errKindMAC).Inc()
				p.log.Warn("osdp: a command failed its MAC check; secure channel closed")
				p.teardown("bad MAC")
				return p.plain(seq, crc, nak(nakSecurity))
			}
			if pkt.scb[0] == scs17 {
				d, err := decryptData(p.sess.keys, p.sess.rmac, pkt.data)
				if err != nil {
					p.m.errors.WithLabelValues(errKindMAC).Inc()
					p.teardown("bad encrypted data")
					return p.plain(seq, crc, nak(nakSecurity))
				}
				data = d
			}
			p.sess.cmac = mac
			r := p.command(pkt.code, data, true)
			return p.secured(seq, crc, r)
		default:
			p.m.errors.WithLabelValues(errKindSecurity).Inc()
			return p.plain(seq, crc, nak(nakSecurity))
		}
	}
	if p.sess.active {
		p.m.errors.WithLabelValues(errKindPlaintext).Inc()
		p.teardown("a command in the clear during a secure session")
	}
	if p.cfg.SecureChannel {
		switch pkt.code {
		case cmdPOLL, cmdID, cmdCAP:
		default:
			p.m.errors.WithLabelValues(errKindPlaintext).Inc()
			if !p.warnedSC {
				p.warnedSC = true
				p.log.Error("osdp: the panel sends commands without Secure Channel; set this reader's SCBK on the panel (or panel.osdp.secure_channel: false)", "command", name(commandNames, pkt.code))
			}
			return p.plain(seq, crc, nak(nakEncryption))
		}
	}
	return p.plain(seq, crc, p.command(pkt.code, data, false))
}

func (p *PD) plain(seq byte, crc bool, r reply) []byte {
	return encode(p.addr|addrReply, seq, crc, r.scb, r.code, r.data, nil)
}

func (p *PD) secured(seq byte, crc bool, r reply) []byte {
	typ, data := byte(scs16), r.data
	if len(data) > 0 {
		typ, data = scs18, encryptData(p.sess.keys, p.sess.cmac, data)
	}
	return encode(p.addr|addrReply, seq, crc, []byte{typ}, r.code, data, func(msg []byte) []byte {
		p.sess.rmac = computeMAC(p.sess.keys, p.sess.cmac, msg)
		return p.sess.rmac[:macLen]
	})
}

// handshake runs osdp_CHLNG and osdp_SCRYPT.
func (p *PD) handshake(pkt packet) reply {
	keyType := byte(1)
	if len(pkt.scb) > 1 {
		keyType = pkt.scb[1]
	}
	switch pkt.code {
	case cmdCHLNG:
		p.teardown("new challenge")
		if len(pkt.data) != 8 {
			p.m.errors.WithLabelValues(errKindLength).Inc()
			return nak(nakLength)
		}
		key := p.key(keyType)
		if key == nil {
			p.m.errors.WithLabelValues(errKindSecurity).Inc()
			if keyType == 0 {
				p.log.Error("osdp: the panel asks for the install key SCBK-D; this reader is not in install mode")
			} else {
				p.log.Error("osdp: the panel asks for the SCBK; this reader has none (install mode only)")
			}
			return nak(nakSecurity)
		}
		rndB := make([]byte, 8)
		if _, err := io.ReadFull(p.rand, rndB); err != nil {
			return nak(nakRecord)
		}
		rndA := append([]byte(nil), pkt.data...)
		k := deriveKeys(key, rndA)
		p.sess = session{keys: k, rndA: rndA, rndB: rndB, keyType: keyType, challenged: true}
		cuid := append(append(append([]byte{}, p.vendor...), 0x01), le32(p.cfg.Serial)...)
		data := append(append(cuid, rndB...), clientCryptogram(k, rndA, rndB)...)
		return reply{code: replyCCRYPT, data: data, scb: []byte{scs12, keyType}}
	default: // SCRYPT
		if !p.sess.challenged || len(pkt.data) != 16 {
			p.m.errors.WithLabelValues(errKindSecurity).Inc()
			p.teardown("SCRYPT out of order")
			return nak(nakSecurity)
		}
		s := p.sess
		if !macEqual(serverCryptogram(s.keys, s.rndA, s.rndB), pkt.data) {
			p.m.errors.WithLabelValues(errKindCryptogram).Inc()
			p.log.Error("osdp: secure channel refused: the panel's cryptogram does not match; the SCBK on the panel differs from this reader's")
			p.teardown("cryptogram mismatch")
			return nak(nakSecurity)
		}
		rmac := initialRMAC(s.keys, pkt.data)
		p.sess.challenged, p.sess.active, p.sess.rmac = false, true, rmac
		p.secureUp.Store(true)
		p.m.secureUp.Set(1)
		label := "scbk"
		if s.keyType == 0 {
			label = "scbk_d"
			p.log.Warn("osdp: secure channel open with the install key SCBK-D; the panel should now set its own key")
		} else {
			p.log.Info("osdp: secure channel open")
		}
		p.m.sessions.WithLabelValues(label).Inc()
		return reply{code: replyRMACI, data: rmac, scb: []byte{scs14, 0x01}}
	}
}

// key is the SCBK for a CHLNG key type, nil when that key may not be used.
func (p *PD) key(keyType byte) []byte {
	if keyType == 0 {
		if p.cfg.InstallMode {
			return scbkD
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.scbk
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

// command runs a command that passed the security checks.
func (p *PD) command(code byte, data []byte, secure bool) reply {
	switch code {
	case cmdPOLL:
		return p.poll(secure)
	case cmdID:
		d := append(append([]byte{}, p.vendor...), 0x01, 0x01)
		d = append(d, le32(p.cfg.Serial)...)
		return reply{code: replyPDID, data: append(d, 1, 0, 0)}
	case cmdCAP:
		return reply{code: replyPDCAP, data: []byte{
			3, 1, 0, // card data format: bit array
			4, 4, 1, // one LED, tri-colour
			5, 1, 1, // one buzzer, on/off
			6, 1, 1, // one text row
			8, 1, 0, // CRC-16
			9, 1, 1, // AES-128 Secure Channel, SCBK-D supported
			10, maxPacketLen & 0xff, maxPacketLen >> 8, // receive buffer
			11, maxPacketLen & 0xff, maxPacketLen >> 8, // largest combined message
			16, 2, 0, // OSDP 2.1.7 and later
		}}
	case cmdLSTAT:
		return p.lstat()
	case cmdISTAT:
		return reply{code: replyISTATR}
	case cmdOSTAT:
		return reply{code: replyOSTATR}
	case cmdRSTAT:
		return reply{code: replyRSTATR, data: []byte{0}}
	case cmdOUT:
		if len(data) == 0 || len(data)%4 != 0 {
			return p.lengthNAK()
		}
		// This reader has no outputs of the panel's to drive.
		return nak(nakRecord)
	case cmdLED:
		return p.led(data)
	case cmdBUZ:
		if len(data) == 0 || len(data)%5 != 0 {
			return p.lengthNAK()
		}
		for i := 0; i < len(data); i += 5 {
			r := data[i : i+5]
			p.indicate(Indication{Kind: IndicationBuzzer, Tone: r[1] == 2, Duration: time.Duration(r[2]) * 100 * time.Millisecond, Count: int(r[4])})
		}
		return reply{code: replyACK}
	case cmdTEXT:
		if len(data) < 6 || len(data) != 6+int(data[5]) {
			return p.lengthNAK()
		}
		p.indicate(Indication{Kind: IndicationText, Temporary: data[1] >= 3, Duration: time.Duration(data[2]) * time.Second, Text: printable(data[6:])})
		return reply{code: replyACK}
	case cmdCOMSET:
		return p.comset(data)
	case cmdKEYSET:
		return p.keyset(data, secure)
	case cmdACURXSIZE, cmdKEEPACTIVE, cmdABORT:
		return reply{code: replyACK}
	case cmdCHLNG, cmdSCRYPT:
		p.m.errors.WithLabelValues(errKindSecurity).Inc()
		return nak(nakSecurity)
	}
	p.m.errors.WithLabelValues(errKindUnknown).Inc()
	return nak(nakUnknown)
}

func (p *PD) lengthNAK() reply {
	p.m.errors.WithLabelValues(errKindLength).Inc()
	return nak(nakLength)
}

func (p *PD) poll(secure bool) reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Card numbers go only through a secure session, unless Secure Channel
	// is off by configuration.
	if len(p.cards) > 0 && (secure || !p.cfg.SecureChannel) {
		b := p.cards[0]
		p.cards = p.cards[1:]
		p.m.cards.Inc()
		d := []byte{0, 1, byte(b.Count), byte(b.Count >> 8)}
		return reply{code: replyRAW, data: append(d, b.Data...)}
	}
	if p.dirty && (secure || !p.cfg.SecureChannel) {
		p.dirty = false
		return reply{code: replyLSTATR, data: []byte{b2i(p.tamper), b2i(p.power)}}
	}
	return reply{code: replyACK}
}

func (p *PD) lstat() reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirty = false
	return reply{code: replyLSTATR, data: []byte{b2i(p.tamper), b2i(p.power)}}
}

func b2i(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (p *PD) led(data []byte) reply {
	if len(data) == 0 || len(data)%14 != 0 {
		return p.lengthNAK()
	}
	for i := 0; i < len(data); i += 14 {
		r := data[i : i+14]
		if r[9] == 1 {
			p.indicate(Indication{Kind: IndicationLED, Color: Color(r[12])})
		}
		if r[2] == 2 {
			timer := time.Duration(int(r[7])|int(r[8])<<8) * 100 * time.Millisecond
			p.indicate(Indication{Kind: IndicationLED, Color: Color(r[5]), Temporary: true, Duration: timer})
		}
	}
	return reply{code: replyACK}
}

func (p *PD) comset(data []byte) reply {
	if len(data) != 5 {
		return p.lengthNAK()
	}
	addr := data[0]
	baud := int(data[1]) | int(data[2])<<8 | int(data[3])<<16 | int(data[4])<<24
	switch baud {
	case 9600, 19200, 38400, 57600, 115200:
	default:
		baud = 0
	}
	if addr > 126 || baud == 0 {
		// Say what stays in force.
		b := p.cfg.Baud
		return reply{code: replyCOM, data: []byte{p.addr, byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)}}
	}
	p.afterReply = func() {
		p.log.Warn("osdp: the panel changed the address and speed; set panel.osdp.address and baud to match before the next restart", "address", addr, "baud", baud)
		p.addr, p.cfg.Address, p.cfg.Baud = addr, int(addr), baud
		if err := p.port.SetBaud(baud); err != nil {
			p.log.Error("osdp: could not change the speed", "err", err)
		}
	}
	return reply{code: replyCOM, data: append([]byte{addr}, data[1:5]...)}
}

func (p *PD) keyset(data []byte, secure bool) reply {
	if !secure {
		p.m.errors.WithLabelValues(errKindPlaintext).Inc()
		return nak(nakEncryption)
	}
	if len(data) != 18 || data[0] != 1 || data[1] != 16 {
		return p.lengthNAK()
	}
	key := append([]byte(nil), data[2:18]...)
	if err := writeKey(p.cfg.KeyPath, key); err != nil {
		p.m.errors.WithLabelValues(errKindKey).Inc()
		p.log.Error("osdp: the key the panel set could not be stored", "err", err)
		return nak(nakRecord)
	}
	p.mu.Lock()
	p.scbk = key
	p.mu.Unlock()
	p.log.Info("osdp: the panel set a new Secure Channel key", "stored", p.cfg.KeyPath)
	return reply{code: replyACK}
}

// writeKey stores a key as hex, 0600, replacing the old one atomically.
func writeKey(path string, key []byte) error {
	if path == "" {
		return errors.New("no state directory to keep the key in")
	}
	return statefile.WritePrivate(path, []byte(hex.EncodeToString(key)+"\n"))
}

func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, string(b))
}
