package osdp

import (
	"bytes"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/credentials"
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
		if crc16(b) != tcrc(b) {
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
	if !bytes.Equal(k.enc, tAES(scbkD, tmpl(0x82))) || !bytes.Equal(k.mac1, tAES(scbkD, tmpl(0x01))) || !bytes.Equal(k.mac2, tAES(scbkD, tmpl(0x02))) {
		t.Fatal("session keys differ")
	}
	if !bytes.Equal(clientCryptogram(k, rndA, rndB), tAES(k.enc, append(append([]byte{}, rndA...), rndB...))) {
		t.Fatal("client cryptogram")
	}
	sc := serverCryptogram(k, rndA, rndB)
	if !bytes.Equal(sc, tAES(k.enc, append(append([]byte{}, rndB...), rndA...))) {
		t.Fatal("server cryptogram")
	}
	if !bytes.Equal(initialRMAC(k, sc), tAES(k.mac2, tAES(k.mac1, sc))) {
		t.Fatal("R-MAC-I")
	}
	iv := bytes.Repeat([]byte{0x5a}, 16)
	for n := 1; n < 70; n++ {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if !bytes.Equal(computeMAC(k, iv, msg), tMAC(k.mac1, k.mac2, iv, msg)) {
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
	cp.mark = true // OSDP 2.2 style: the PD must answer with a mark too
	raw := cp.frame(cmdID, []byte{0}, nil)
	cp.write(raw)
	got, ok := cp.read(2 * time.Second)
	if !ok {
		t.Fatal("no reply to ID")
	}
	cp.bump()
	rp := cp.parse(got)
	if rp.code != replyPDID || !bytes.Equal(rp.data, []byte{0x0a, 0x0b, 0x0c, 1, 1, 4, 3, 2, 1, 1, 0, 0}) {
		t.Fatalf("PDID %#x % x", rp.code, rp.data)
	}
	cp.mark = false
	if rp := cp.cmd(cmdCAP, 0); rp.code != replyPDCAP || len(rp.data)%3 != 0 || !bytes.Contains(rp.data, []byte{9, 1, 1}) {
		t.Fatalf("PDCAP % x", rp.data)
	}
	if rp := cp.cmd(cmdPOLL); rp.code != replyACK {
		t.Fatalf("POLL %#x", rp.code)
	}
	r.pd.SetTamper(true)
	if rp := cp.cmd(cmdPOLL); rp.code != replyLSTATR || !bytes.Equal(rp.data, []byte{1, 0}) {
		t.Fatalf("POLL after tamper: %#x % x", rp.code, rp.data)
	}
	if rp := cp.cmd(cmdLSTAT); rp.code != replyLSTATR || !bytes.Equal(rp.data, []byte{1, 0}) {
		t.Fatalf("LSTAT % x", rp.data)
	}
	if rp := cp.cmd(cmdISTAT); rp.code != replyISTATR {
		t.Fatalf("ISTAT %#x", rp.code)
	}
	if rp := cp.cmd(cmdOSTAT); rp.code != replyOSTATR {
		t.Fatalf("OSTAT %#x", rp.code)
	}
	if rp := cp.cmd(cmdRSTAT); rp.code != replyRSTATR || !bytes.Equal(rp.data, []byte{0}) {
		t.Fatalf("RSTAT % x", rp.data)
	}
	if rp := cp.cmd(cmdOUT, 0, 1, 0, 0); rp.code != replyNAK || rp.data[0] != nakRecord {
		t.Fatalf("OUT % x", rp.data)
	}
	// LED: permanent red, then a temporary green for 3 s.
	led := []byte{0, 0, 2, 5, 5, byte(ColorGreen), byte(ColorBlack), 30, 0, 1, 1, 0, byte(ColorRed), byte(ColorRed)}
	if rp := cp.cmd(cmdLED, led...); rp.code != replyACK {
		t.Fatalf("LED %#x % x", rp.code, rp.data)
	}
	if i := <-r.ind; i.Kind != IndicationLED || i.Color != ColorRed || i.Temporary {
		t.Fatalf("first indication %+v", i)
	}
	if i := <-r.ind; i.Kind != IndicationLED || i.Color != ColorGreen || !i.Temporary || i.Duration != 3*time.Second {
		t.Fatalf("second indication %+v", i)
	}
	if rp := cp.cmd(cmdLED, led[:13]...); rp.code != replyNAK || rp.data[0] != nakLength {
		t.Fatalf("short LED % x", rp.data)
	}
	if rp := cp.cmd(cmdBUZ, 0, 2, 2, 1, 3); rp.code != replyACK {
		t.Fatalf("BUZ %#x", rp.code)
	}
	if i := <-r.ind; i.Kind != IndicationBuzzer || !i.Tone || i.Count != 3 {
		t.Fatalf("buzzer %+v", i)
	}
	text := []byte("Access denied\x07")
	if rp := cp.cmd(cmdTEXT, append([]byte{0, 3, 5, 1, 1, byte(len(text))}, text...)...); rp.code != replyACK {
		t.Fatalf("TEXT %#x", rp.code)
	}
	if i := <-r.ind; i.Kind != IndicationText || i.Text != "Access denied" || i.Duration != 5*time.Second {
		t.Fatalf("text %+v", i)
	}
	if rp := cp.cmd(0x80, 1, 2, 3, 4); rp.code != replyNAK || rp.data[0] != nakUnknown {
		t.Fatalf("MFG % x", rp.data)
	}
	// A card read goes out on the next poll as osdp_RAW, format 1.
	c, _ := credentials.New(credentials.H10301, 12, 34567)
	r.pd.SendCard(c.Encode())
	rp = cp.cmd(cmdPOLL)
	if rp.code != replyRAW || rp.data[0] != 0 || rp.data[1] != 1 || int(rp.data[2])|int(rp.data[3])<<8 != 26 {
		t.Fatalf("RAW % x", rp.data)
	}
	back, err := credentials.Decode(credentials.Bits{Data: rp.data[4:], Count: 26})
	if err != nil || back.Facility != 12 || back.Card != 34567 {
		t.Fatalf("card decoded %+v %v", back, err)
	}
	// Checksum mode works too, and the reply uses it.
	cp.crc = false
	if rp := cp.cmd(cmdPOLL); rp.code != replyACK || rp.raw[4]&0x04 != 0 {
		t.Fatalf("checksum POLL % x", rp.raw)
	}
	cp.crc = true
	// COMSET: the reply confirms, then the PD answers at the new address.
	if rp := cp.cmd(cmdCOMSET, 9, 0x00, 0x4b, 0, 0); rp.code != replyCOM || !bytes.Equal(rp.data, []byte{9, 0x00, 0x4b, 0, 0}) {
		t.Fatalf("COMSET % x", rp.data)
	}
	cp.addr = 9
	if rp := cp.cmd(cmdPOLL); rp.code != replyACK {
		t.Fatalf("POLL at the new address %#x", rp.code)
	}
	// Traffic for another reader is ignored.
	cp.addr = 3
	cp.write(cp.frame(cmdPOLL, nil, nil))
	if b, ok := cp.read(300 * time.Millisecond); ok {
		t.Fatalf("answered another reader's poll: % x", b)
	}
	if got := testutil.ToFloat64(r.pd.m.commands.WithLabelValues("poll")); got < 4 {
		t.Fatalf("poll count %v", got)
	}
}

func TestSecureChannel(t *testing.T) {
	r := startPD(t, config.OSDP{SecureChannel: true, SCBK: testSCBK})
	cp := r.cp
	if rp := cp.cmd(cmdID, 0); rp.code != replyPDID {
		t.Fatalf("plain ID before the session: %#x", rp.code)
	}
	if rp := cp.cmd(cmdLED, make([]byte, 14)...); rp.code != replyNAK || rp.data[0] != nakEncryption {
		t.Fatalf("plain LED: % x", rp.data)
	}
	ok, rp := cp.handshake(testSCBK, 1)
	if !ok || rp.code != replyRMACI || !cp.active {
		t.Fatalf("handshake: cryptogram ok %v, reply %#x", ok, rp.code)
	}
	if !r.pd.SecureUp() || testutil.ToFloat64(r.pd.m.secureUp) != 1 {
		t.Fatal("secure channel not up")
	}
	if rp := cp.cmd(cmdPOLL); rp.code != replyACK || rp.scb != 0x16 {
		t.Fatalf("secure POLL %#x scb %#x", rp.code, rp.scb)
	}
	c, _ := credentials.New(credentials.H10304, 4660, 500000)
	r.pd.SendCard(c.Encode())
	rp = cp.cmd(cmdPOLL)
	if rp.code != replyRAW || rp.scb != 0x18 {
		t.Fatalf("card reply %#x scb %#x", rp.code, rp.scb)
	}
	if bytes.Contains(rp.raw, c.Encode().Data) {
		t.Fatal("the card bits are visible on the wire")
	}
	back, err := credentials.Decode(credentials.Bits{Data: rp.data[4:], Count: int(rp.data[2])})
	if err != nil || back.Card != 500000 || back.Format != credentials.H10304 {
		t.Fatalf("card %+v %v", back, err)
	}
	// Commands with data go encrypted (SCS_17).
	led := []byte{0, 0, 2, 5, 5, byte(ColorGreen), 0, 10, 0, 0, 0, 0, 0, 0}
	if rp := cp.cmd(cmdLED, led...); rp.code != replyACK {
		t.Fatalf("secure LED %#x", rp.code)
	}
	if i := <-r.ind; i.Color != ColorGreen {
		t.Fatalf("indication %+v", i)
	}
	// The panel sets a new key; it is stored 0600 and the next session uses it.
	newKey := bytes.Repeat([]byte{0x77}, 16)
	if rp := cp.cmd(cmdKEYSET, append([]byte{1, 16}, newKey...)...); rp.code != replyACK {
		t.Fatalf("KEYSET %#x % x", rp.code, rp.data)
	}
	fi, err := os.Stat(r.pd.cfg.KeyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored key: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(r.pd.cfg.KeyPath); string(b) != hex.EncodeToString(newKey)+"\n" {
		t.Fatalf("stored key content")
	}
	if ok, rp := cp.handshake(newKey, 1); !ok || rp.code != replyRMACI {
		t.Fatal("no session with the new key")
	}
	// A command in the clear ends the session.
	cp.active = false
	if rp := cp.cmd(cmdLSTAT); rp.code != replyNAK || rp.data[0] != nakEncryption {
		t.Fatalf("plain LSTAT in a session: % x", rp.data)
	}
	if r.pd.SecureUp() {
		t.Fatal("session survived a plaintext command")
	}
}

func TestWrongSCBKNeverPlaintext(t *testing.T) {
	r := startPD(t, config.OSDP{SecureChannel: true, SCBK: testSCBK})
	cp := r.cp
	wrong := bytes.Repeat([]byte{0x11}, 16)
	ok, rp := cp.handshake(wrong, 1)
	if ok {
		t.Fatal("the PD's cryptogram matched a wrong key")
	}
	if rp.code != replyNAK || rp.data[0] != nakSecurity {
		t.Fatalf("SCRYPT with a wrong key: %#x % x", rp.code, rp.data)
	}
	if r.pd.SecureUp() || testutil.ToFloat64(r.pd.m.errors.WithLabelValues(errKindCryptogram)) != 1 {
		t.Fatal("no cryptogram error counted, or a session")
	}
	c, _ := credentials.New(credentials.H10301, 1, 2)
	r.pd.SendCard(c.Encode())
	if rp := cp.cmd(cmdPOLL); rp.code != replyACK {
		t.Fatalf("plain POLL with a card waiting: %#x — a card in the clear", rp.code)
	}
	// Install key refused outside install mode.
	if _, rp := cp.handshake(scbkD, 0); rp.code != replyNAK {
		t.Fatalf("SCBK-D accepted outside install mode: %#x", rp.code)
	}
}

func TestInstallMode(t *testing.T) {
	r := startPD(t, config.OSDP{SecureChannel: true, InstallMode: true})
	cp := r.cp
	if _, rp := cp.handshake(testSCBK, 1); rp.code != replyNAK {
		t.Fatalf("SCBK session without a key: %#x", rp.code)
	}
	ok, rp := cp.handshake(scbkD, 0)
	if !ok || rp.code != replyRMACI {
		t.Fatal("no session with SCBK-D in install mode")
	}
	if rp := cp.cmd(cmdKEYSET, append([]byte{1, 16}, testSCBK...)...); rp.code != replyACK {
		t.Fatalf("KEYSET %#x", rp.code)
	}
	if ok, rp := cp.handshake(testSCBK, 1); !ok || rp.code != replyRMACI {
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
	b := cp.frame(cmdPOLL, nil, nil)
	b[len(b)-1] ^= 0xff
	cp.write(b)
	raw, ok := cp.read(2 * time.Second)
	if !ok {
		t.Fatal("no NAK for a CRC error")
	}
	if rp := cp.parse(raw); rp.code != replyNAK || rp.data[0] != nakCheck || errs(errKindCRC) != 1 {
		t.Fatalf("CRC error: % x", rp.data)
	}
	// A torn packet: half a POLL, then the line goes quiet.
	cp.write(cp.frame(cmdPOLL, nil, nil)[:4])
	waitFor(t, "the torn packet to be dropped", func() bool { return errs(errKindTorn) == 1 })
	if rp := cp.cmd(cmdPOLL); rp.code != replyACK {
		t.Fatalf("POLL after a torn packet: %#x", rp.code)
	}

	if ok, _ := cp.handshake(testSCBK, 1); !ok || !cp.active {
		t.Fatal("handshake")
	}
	// A repeated command (same sequence number, same bytes) gets the same
	// reply again, not a second execution.
	rp := cp.cmd(cmdPOLL)
	first := rp.raw
	cp.write(cp.last)
	again, ok := cp.read(2 * time.Second)
	if !ok || !bytes.Equal(again, first) {
		t.Fatalf("repeat: % x, want % x", again, first)
	}
	// A replayed older command: wrong sequence number, NAK 0x04, session over.
	old := cp.last
	cp.cmd(cmdPOLL)
	cp.write(old)
	raw, ok = cp.read(2 * time.Second)
	if !ok {
		t.Fatal("no reply to a replay")
	}
	cp.active = false
	if rp := cp.parse(raw); rp.code != replyNAK || rp.data[0] != nakSequence || errs(errKindSequence) != 1 || r.pd.SecureUp() {
		t.Fatalf("replay: %#x % x", rp.code, rp.data)
	}

	// A bad MAC: NAK, counted, no session.
	cp.seq = 0
	if ok, _ := cp.handshake(testSCBK, 1); !ok {
		t.Fatal("handshake")
	}
	b = cp.frame(cmdPOLL, nil, nil)
	b[len(b)-3] ^= 0x01 // last MAC byte
	v := tcrc(b[:len(b)-2])
	b[len(b)-2], b[len(b)-1] = byte(v), byte(v>>8)
	cp.write(b)
	raw, ok = cp.read(2 * time.Second)
	if !ok {
		t.Fatal("no reply to a bad MAC")
	}
	cp.bump()
	cp.active = false
	if rp := cp.parse(raw); rp.code != replyNAK || rp.data[0] != nakSecurity || errs(errKindMAC) != 1 || r.pd.SecureUp() {
		t.Fatalf("bad MAC: %#x % x", rp.code, rp.data)
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
	cp.write(cp.frame(cmdPOLL, nil, nil))
	if b, ok := cp.read(300 * time.Millisecond); ok {
		t.Fatalf("a stopped PD answered: % x", b)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(encode(0, 0, true, nil, cmdPOLL, nil, nil))
	f.Add(encode(0, 1, true, []byte{0x11, 1}, cmdCHLNG, make([]byte, 8), nil))
	f.Add(encode(0, 2, false, []byte{0x17}, cmdLED, make([]byte, 16), func([]byte) []byte { return make([]byte, 4) }))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _ := newMetrics(prometheusNewRegistry())
		p := &PD{cfg: config.OSDP{SecureChannel: true, SCBK: testSCBK, InstallMode: true}, log: discard, m: m, now: time.Now,
			rand: bytes.NewReader(make([]byte, 1<<16)), indicate: func(Indication) {}, vendor: []byte{0, 0, 0}, lastSeq: -1, scbk: testSCBK}
		if l := frameLen(b); l > 0 {
			p.handle(b[:l])
		}
	})
}
