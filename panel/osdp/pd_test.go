package osdp

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
	"github.com/kioskd/kioskd/internal/osdptest"
)

var testSCBK = []byte{0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f}

// TestPacketLayerPublishedVectors: the CRC's published check value, and a
// POLL and an ID as LibOSDP's own tests spell them out byte for byte.
func TestPacketLayerPublishedVectors(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0xe5cc {
		t.Fatalf("CRC-16/AUG-CCITT check value %#04x, want 0xe5cc", got)
	}
	poll := encode(0x65, 0, true, nil, cmdPOLL, nil, nil)
	if want := []byte{0x53, 0x65, 0x08, 0x00, 0x04, 0x60, 0x60, 0x90}; !bytes.Equal(poll, want) {
		t.Fatalf("POLL % x, want % x", poll, want)
	}
	id := encode(0x65, 1, true, nil, cmdID, []byte{0}, nil)
	if want := []byte{0x53, 0x65, 0x09, 0x00, 0x05, 0x61, 0x00, 0xe9, 0x4d}; !bytes.Equal(id, want) {
		t.Fatalf("ID % x, want % x", id, want)
	}
	for i := 0; i < 200; i++ {
		b := bytes.Repeat([]byte{byte(i), byte(i * 7)}, i)
		if crc16(b) != osdptest.CRC16(b) {
			t.Fatalf("CRC differs from the table-driven one at %d bytes", len(b))
		}
	}
}

// TestSecureChannelCrypto: key derivation, cryptograms, R-MAC-I, the MAC
// chain and data encryption against the test CP's own implementation. No
// published Secure Channel test vector could be verified, so the values come
// from this second code path, built from the specification's formulas.
func TestSecureChannelCrypto(t *testing.T) {
	rndA := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	rndB := []byte{9, 10, 11, 12, 13, 14, 15, 16}
	k := deriveKeys(scbkD, rndA)
	tmpl := func(b byte) []byte { return []byte{0x01, b, 1, 2, 3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0} }
	if !bytes.Equal(k.enc, osdptest.AES(scbkD, tmpl(0x82))) || !bytes.Equal(k.mac1, osdptest.AES(scbkD, tmpl(0x01))) || !bytes.Equal(k.mac2, osdptest.AES(scbkD, tmpl(0x02))) {
		t.Fatal("session keys differ")
	}
	if !bytes.Equal(clientCryptogram(k, rndA, rndB), osdptest.AES(k.enc, append(append([]byte{}, rndA...), rndB...))) {
		t.Fatal("client cryptogram")
	}
	sc := serverCryptogram(k, rndA, rndB)
	if !bytes.Equal(sc, osdptest.AES(k.enc, append(append([]byte{}, rndB...), rndA...))) {
		t.Fatal("server cryptogram")
	}
	if !bytes.Equal(initialRMAC(k, sc), osdptest.AES(k.mac2, osdptest.AES(k.mac1, sc))) {
		t.Fatal("R-MAC-I")
	}
	iv := bytes.Repeat([]byte{0x5a}, 16)
	for n := 1; n < 70; n++ {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if !bytes.Equal(computeMAC(k, iv, msg), osdptest.MAC(k.mac1, k.mac2, iv, msg)) {
			t.Fatalf("MAC of %d bytes differs", n)
		}
		enc := encryptData(k, iv, msg)
		if len(enc) != (n/16+1)*16 {
			t.Fatalf("%d bytes encrypt to %d: the 0x80 marker is always added", n, len(enc))
		}
		dec, err := decryptData(k, iv, enc)
		if err != nil || !bytes.Equal(dec, msg) {
			t.Fatalf("decrypt of %d bytes: %v", n, err)
		}
	}
	if _, err := decryptData(k, iv, make([]byte, 15)); err == nil {
		t.Fatal("a partial block decrypted")
	}
}

func TestPlainCommands(t *testing.T) {
	r := startPD(t, config.OSDP{Address: 5, SecureChannel: false, Serial: 0x01020304})
	cp := r.cp
	cp.Mark = true // OSDP 2.2 style: the PD must answer with a mark too
	raw := cp.Frame(cmdID, []byte{0}, nil)
	cp.Write(raw)
	got, ok := cp.Read(2 * time.Second)
	if !ok {
		t.Fatal("no reply to ID")
	}
	cp.Bump()
	rp := cp.Parse(got)
	if rp.Code != replyPDID || !bytes.Equal(rp.Data, []byte{0x0a, 0x0b, 0x0c, 1, 1, 4, 3, 2, 1, 1, 0, 0}) {
		t.Fatalf("PDID %#x % x", rp.Code, rp.Data)
	}
	cp.Mark = false
	if rp := cp.Cmd(cmdCAP, 0); rp.Code != replyPDCAP || len(rp.Data)%3 != 0 || !bytes.Contains(rp.Data, []byte{9, 1, 1}) {
		t.Fatalf("PDCAP % x", rp.Data)
	}
	if rp := cp.Cmd(cmdPOLL); rp.Code != replyACK {
		t.Fatalf("POLL %#x", rp.Code)
	}
	r.pd.SetTamper(true)
	if rp := cp.Cmd(cmdPOLL); rp.Code != replyLSTATR || !bytes.Equal(rp.Data, []byte{1, 0}) {
		t.Fatalf("POLL after tamper: %#x % x", rp.Code, rp.Data)
	}
	if rp := cp.Cmd(cmdLSTAT); rp.Code != replyLSTATR || !bytes.Equal(rp.Data, []byte{1, 0}) {
		t.Fatalf("LSTAT % x", rp.Data)
	}
	if rp := cp.Cmd(cmdISTAT); rp.Code != replyISTATR {
		t.Fatalf("ISTAT %#x", rp.Code)
	}
	if rp := cp.Cmd(cmdOSTAT); rp.Code != replyOSTATR {
		t.Fatalf("OSTAT %#x", rp.Code)
	}
	if rp := cp.Cmd(cmdRSTAT); rp.Code != replyRSTATR || !bytes.Equal(rp.Data, []byte{0}) {
		t.Fatalf("RSTAT % x", rp.Data)
	}
	if rp := cp.Cmd(cmdOUT, 0, 1, 0, 0); rp.Code != replyNAK || rp.Data[0] != nakRecord {
		t.Fatalf("OUT % x", rp.Data)
	}
	// LED: permanent red, then a temporary green for 3 s.
	led := []byte{0, 0, 2, 5, 5, byte(ColorGreen), byte(ColorBlack), 30, 0, 1, 1, 0, byte(ColorRed), byte(ColorRed)}
	if rp := cp.Cmd(cmdLED, led...); rp.Code != replyACK {
		t.Fatalf("LED %#x % x", rp.Code, rp.Data)
	}
	if i := <-r.ind; i.Kind != IndicationLED || i.Color != ColorRed || i.Temporary {
		t.Fatalf("first indication %+v", i)
	}
	if i := <-r.ind; i.Kind != IndicationLED || i.Color != ColorGreen || !i.Temporary || i.Duration != 3*time.Second {
		t.Fatalf("second indication %+v", i)
	}
	if rp := cp.Cmd(cmdLED, led[:13]...); rp.Code != replyNAK || rp.Data[0] != nakLength {
		t.Fatalf("short LED % x", rp.Data)
	}
	if rp := cp.Cmd(cmdBUZ, 0, 2, 2, 1, 3); rp.Code != replyACK {
		t.Fatalf("BUZ %#x", rp.Code)
	}
	if i := <-r.ind; i.Kind != IndicationBuzzer || !i.Tone || i.Count != 3 {
		t.Fatalf("buzzer %+v", i)
	}
	text := []byte("Access denied\x07")
	if rp := cp.Cmd(cmdTEXT, append([]byte{0, 3, 5, 1, 1, byte(len(text))}, text...)...); rp.Code != replyACK {
		t.Fatalf("TEXT %#x", rp.Code)
	}
	if i := <-r.ind; i.Kind != IndicationText || i.Text != "Access denied" || i.Duration != 5*time.Second {
		t.Fatalf("text %+v", i)
	}
	if rp := cp.Cmd(0x80, 1, 2, 3, 4); rp.Code != replyNAK || rp.Data[0] != nakUnknown {
		t.Fatalf("MFG % x", rp.Data)
	}
	// A card read goes out on the next poll as osdp_RAW, format 1.
	c, _ := credentials.New(credentials.H10301, 12, 34567)
	r.pd.SendCard(c.Encode())
	rp = cp.Cmd(cmdPOLL)
	if rp.Code != replyRAW || rp.Data[0] != 0 || rp.Data[1] != 1 || int(rp.Data[2])|int(rp.Data[3])<<8 != 26 {
		t.Fatalf("RAW % x", rp.Data)
	}
	back, err := credentials.Decode(credentials.Bits{Data: rp.Data[4:], Count: 26})
	if err != nil || back.Facility != 12 || back.Card != 34567 {
		t.Fatalf("card decoded %+v %v", back, err)
	}
	// Checksum mode works too, and the reply uses it.
	cp.CRC = false
	if rp := cp.Cmd(cmdPOLL); rp.Code != replyACK || rp.Raw[4]&0x04 != 0 {
		t.Fatalf("checksum POLL % x", rp.Raw)
	}
	cp.CRC = true
	// COMSET: the reply confirms, then the PD answers at the new address.
	if rp := cp.Cmd(cmdCOMSET, 9, 0x00, 0x4b, 0, 0); rp.Code != replyCOM || !bytes.Equal(rp.Data, []byte{9, 0x00, 0x4b, 0, 0}) {
		t.Fatalf("COMSET % x", rp.Data)
	}
	cp.Addr = 9
	if rp := cp.Cmd(cmdPOLL); rp.Code != replyACK {
		t.Fatalf("POLL at the new address %#x", rp.Code)
	}
	// Traffic for another reader is ignored.
	cp.Addr = 3
	cp.Write(cp.Frame(cmdPOLL, nil, nil))
	if b, ok := cp.Read(300 * time.Millisecond); ok {
		t.Fatalf("answered another reader's poll: % x", b)
	}
	if got := testutil.ToFloat64(r.pd.m.commands.WithLabelValues("poll")); got < 4 {
		t.Fatalf("poll count %v", got)
	}
}

func TestSecureChannel(t *testing.T) {
	r := startPD(t, config.OSDP{SecureChannel: true, SCBK: testSCBK})
	cp := r.cp
	if rp := cp.Cmd(cmdID, 0); rp.Code != replyPDID {
		t.Fatalf("plain ID before the session: %#x", rp.Code)
	}
	if rp := cp.Cmd(cmdLED, make([]byte, 14)...); rp.Code != replyNAK || rp.Data[0] != nakEncryption {
		t.Fatalf("plain LED: % x", rp.Data)
	}
	ok, rp := cp.Handshake(testSCBK, 1)
	if !ok || rp.Code != replyRMACI || !cp.Active {
		t.Fatalf("handshake: cryptogram ok %v, reply %#x", ok, rp.Code)
	}
	if !r.pd.SecureUp() || testutil.ToFloat64(r.pd.m.secureUp) != 1 {
		t.Fatal("secure channel not up")
	}
	if rp := cp.Cmd(cmdPOLL); rp.Code != replyACK || rp.SCB != 0x16 {
		t.Fatalf("secure POLL %#x scb %#x", rp.Code, rp.SCB)
	}
	c, _ := credentials.New(credentials.H10304, 4660, 500000)
	r.pd.SendCard(c.Encode())
	rp = cp.Cmd(cmdPOLL)
	if rp.Code != replyRAW || rp.SCB != 0x18 {
		t.Fatalf("card reply %#x scb %#x", rp.Code, rp.SCB)
	}
	if bytes.Contains(rp.Raw, c.Encode().Data) {
		t.Fatal("the card bits are visible on the wire")
	}
	back, err := credentials.Decode(credentials.Bits{Data: rp.Data[4:], Count: int(rp.Data[2])})
	if err != nil || back.Card != 500000 || back.Format != credentials.H10304 {
		t.Fatalf("card %+v %v", back, err)
	}
	// Commands with data go encrypted (SCS_17).
	led := []byte{0, 0, 2, 5, 5, byte(ColorGreen), 0, 10, 0, 0, 0, 0, 0, 0}
	if rp := cp.Cmd(cmdLED, led...); rp.Code != replyACK {
		t.Fatalf("secure LED %#x", rp.Code)
	}
	if i := <-r.ind; i.Color != ColorGreen {
		t.Fatalf("indication %+v", i)
	}
	// The panel sets a new key; it is stored 0600 and the next session uses it.
	newKey := bytes.Repeat([]byte{0x77}, 16)
	if rp := cp.Cmd(cmdKEYSET, append([]byte{1, 16}, newKey...)...); rp.Code != replyACK {
		t.Fatalf("KEYSET %#x % x", rp.Code, rp.Data)
	}
	fi, err := os.Stat(r.pd.cfg.KeyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored key: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(r.pd.cfg.KeyPath); string(b) != hex.EncodeToString(newKey)+"\n" {
		t.Fatalf("stored key content")
	}
	if ok, rp := cp.Handshake(newKey, 1); !ok || rp.Code != replyRMACI {
		t.Fatal("no session with the new key")
	}
	// A command in the clear ends the session.
	cp.Active = false
	if rp := cp.Cmd(cmdLSTAT); rp.Code != replyNAK || rp.Data[0] != nakEncryption {
		t.Fatalf("plain LSTAT in a session: % x", rp.Data)
	}
	if r.pd.SecureUp() {
		t.Fatal("session survived a plaintext command")
	}
}

func TestWrongSCBKNeverPlaintext(t *testing.T) {
	r := startPD(t, config.OSDP{SecureChannel: true, SCBK: testSCBK})
	cp := r.cp
	wrong := bytes.Repeat([]byte{0x11}, 16)
	ok, rp := cp.Handshake(wrong, 1)
	if ok {
		t.Fatal("the PD's cryptogram matched a wrong key")
	}
	if rp.Code != replyNAK || rp.Data[0] != nakSecurity {
		t.Fatalf("SCRYPT with a wrong key: %#x % x", rp.Code, rp.Data)
	}
	if r.pd.SecureUp() || testutil.ToFloat64(r.pd.m.errors.WithLabelValues(errKindCryptogram)) != 1 {
		t.Fatal("no cryptogram error counted, or a session")
	}
	c, _ := credentials.New(credentials.H10301, 1, 2)
	r.pd.SendCard(c.Encode())
	if rp := cp.Cmd(cmdPOLL); rp.Code != replyACK {
		t.Fatalf("plain POLL with a card waiting: %#x — a card in the clear", rp.Code)
	}
	// Install key refused outside install mode.
	if _, rp := cp.Handshake(scbkD, 0); rp.Code != replyNAK {
		t.Fatalf("SCBK-D accepted outside install mode: %#x", rp.Code)
	}
}

func TestInstallMode(t *testing.T) {
	r := startPD(t, config.OSDP{SecureChannel: true, InstallMode: true})
	cp := r.cp
	if _, rp := cp.Handshake(testSCBK, 1); rp.Code != replyNAK {
		t.Fatalf("SCBK session without a key: %#x", rp.Code)
	}
	ok, rp := cp.Handshake(scbkD, 0)
	if !ok || rp.Code != replyRMACI {
		t.Fatal("no session with SCBK-D in install mode")
	}
	if rp := cp.Cmd(cmdKEYSET, append([]byte{1, 16}, testSCBK...)...); rp.Code != replyACK {
		t.Fatalf("KEYSET %#x", rp.Code)
	}
	if ok, rp := cp.Handshake(testSCBK, 1); !ok || rp.Code != replyRMACI {
		t.Fatal("no session with the key just set")
	}
	if got := testutil.ToFloat64(r.pd.m.sessions.WithLabelValues("scbk_d")); got != 1 {
		t.Fatalf("scbk_d sessions %v", got)
	}
}

func TestLinkFaults(t *testing.T) {
	r := startPD(t, config.OSDP{SecureChannel: true, SCBK: testSCBK, LinkTimeout: 2 * time.Second})
	cp := r.cp
	errs := func(kind string) float64 { return testutil.ToFloat64(r.pd.m.errors.WithLabelValues(kind)) }

	// CRC error: NAK 0x01.
	b := cp.Frame(cmdPOLL, nil, nil)
	b[len(b)-1] ^= 0xff
	cp.Write(b)
	raw, ok := cp.Read(2 * time.Second)
	if !ok {
		t.Fatal("no NAK for a CRC error")
	}
	if rp := cp.Parse(raw); rp.Code != replyNAK || rp.Data[0] != nakCheck || errs(errKindCRC) != 1 {
		t.Fatalf("CRC error: % x", rp.Data)
	}
	// A torn packet: half a POLL, then the line goes quiet.
	cp.Write(cp.Frame(cmdPOLL, nil, nil)[:4])
	waitFor(t, "the torn packet to be dropped", func() bool { return errs(errKindTorn) == 1 })
	if rp := cp.Cmd(cmdPOLL); rp.Code != replyACK {
		t.Fatalf("POLL after a torn packet: %#x", rp.Code)
	}

	if ok, _ := cp.Handshake(testSCBK, 1); !ok || !cp.Active {
		t.Fatal("handshake")
	}
	// A repeated command (same sequence number, same bytes) gets the same
	// reply again, not a second execution.
	rp := cp.Cmd(cmdPOLL)
	first := rp.Raw
	cp.Write(cp.Last)
	again, ok := cp.Read(2 * time.Second)
	if !ok || !bytes.Equal(again, first) {
		t.Fatalf("repeat: % x, want % x", again, first)
	}
	// A replayed older command: wrong sequence number, NAK 0x04, session over.
	old := cp.Last
	cp.Cmd(cmdPOLL)
	cp.Write(old)
	raw, ok = cp.Read(2 * time.Second)
	if !ok {
		t.Fatal("no reply to a replay")
	}
	cp.Active = false
	if rp := cp.Parse(raw); rp.Code != replyNAK || rp.Data[0] != nakSequence || errs(errKindSequence) != 1 || r.pd.SecureUp() {
		t.Fatalf("replay: %#x % x", rp.Code, rp.Data)
	}

	// A bad MAC: NAK, counted, no session.
	cp.Seq = 0
	if ok, _ := cp.Handshake(testSCBK, 1); !ok {
		t.Fatal("handshake")
	}
	b = cp.Frame(cmdPOLL, nil, nil)
	b[len(b)-3] ^= 0x01 // last MAC byte
	v := osdptest.CRC16(b[:len(b)-2])
	b[len(b)-2], b[len(b)-1] = byte(v), byte(v>>8)
	cp.Write(b)
	raw, ok = cp.Read(2 * time.Second)
	if !ok {
		t.Fatal("no reply to a bad MAC")
	}
	cp.Bump()
	cp.Active = false
	if rp := cp.Parse(raw); rp.Code != replyNAK || rp.Data[0] != nakSecurity || errs(errKindMAC) != 1 || r.pd.SecureUp() {
		t.Fatalf("bad MAC: %#x % x", rp.Code, rp.Data)
	}

	// The panel goes silent: the PD notices after link_timeout.
	if !r.pd.LinkUp() || testutil.ToFloat64(r.pd.m.linkUp) != 1 {
		t.Fatal("link not up")
	}
	r.clk.add(3 * time.Second)
	waitFor(t, "the link to be reported down", func() bool { return !r.pd.LinkUp() })
	if testutil.ToFloat64(r.pd.m.linkUp) != 0 {
		t.Fatal("link_up metric still 1")
	}
	// The PD goes silent: the panel notices (no reply within its timeout).
	r.stop()
	r.stop = nil
	cp.Write(cp.Frame(cmdPOLL, nil, nil))
	if b, ok := cp.Read(300 * time.Millisecond); ok {
		t.Fatalf("a stopped PD answered: % x", b)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(encode(0, 0, true, nil, cmdPOLL, nil, nil))
	f.Add(encode(0, 1, true, []byte{0x11, 1}, cmdCHLNG, make([]byte, 8), nil))
	f.Add(encode(0, 2, false, []byte{0x17}, cmdLED, make([]byte, 16), func([]byte) []byte { return make([]byte, 4) }))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _ := newMetrics(prometheus.NewRegistry())
		p := &PD{cfg: config.OSDP{SecureChannel: true, SCBK: testSCBK, InstallMode: true}, log: slog.New(slog.DiscardHandler), m: m, now: time.Now,
			rand: bytes.NewReader(make([]byte, 1<<16)), indicate: func(Indication) {}, vendor: []byte{0, 0, 0}, lastSeq: -1, scbk: testSCBK}
		if l := frameLen(b); l > 0 {
			p.handle(b[:l])
		}
	})
}
