package osdp

// A small OSDP control panel for the tests. It shares no code with the PD
// on purpose: framing, CRC, key derivation, MAC and encryption are written
// again here, a second way, so that the two sides check each other.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
)

// crcTable is CRC-16/AUG-CCITT computed table-driven (the PD computes it
// bit by bit).
var crcTable = func() [256]uint16 {
	var t [256]uint16
	for i := range t {
		c := uint16(i) << 8
		for j := 0; j < 8; j++ {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func tcrc(b []byte) uint16 {
	c := uint16(0x1d0f)
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return c
}

func tAES(key, in []byte) []byte {
	c, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	out := make([]byte, 16)
	c.Encrypt(out, in)
	return out
}

// tMAC: CBC with S-MAC1 over the padded message, then the last block again
// by hand: XOR with the previous ciphertext block and S-MAC2.
func tMAC(mac1, mac2, iv, msg []byte) []byte {
	m := append([]byte{}, msg...)
	if len(m)%16 != 0 {
		m = append(m, 0x80)
		m = append(m, make([]byte, (16-len(m)%16)%16)...)
	}
	prev := iv
	if len(m) > 16 {
		c, _ := aes.NewCipher(mac1)
		ct := make([]byte, len(m)-16)
		cipher.NewCBCEncrypter(c, iv).CryptBlocks(ct, m[:len(m)-16])
		prev = ct[len(ct)-16:]
	}
	last := make([]byte, 16)
	for i := range last {
		last[i] = m[len(m)-16+i] ^ prev[i]
	}
	return tAES(mac2, last)
}

func tNot(b []byte) []byte {
	o := make([]byte, len(b))
	for i := range b {
		o[i] = ^b[i]
	}
	return o
}

// testCP drives a PD over the master side of a pty pair.
type testCP struct {
	t    *testing.T
	w    *os.File
	in   chan []byte
	buf  []byte
	addr byte
	seq  byte
	crc  bool
	mark bool

	sEnc, sMac1, sMac2 []byte
	cmac, rmac         []byte
	active             bool

	last []byte // the last command sent
}

type reply2 struct {
	code byte
	data []byte
	scb  byte
	raw  []byte
}

func newCP(t *testing.T, master *os.File) *testCP {
	cp := &testCP{t: t, w: master, in: make(chan []byte, 64), crc: true, seq: 0}
	go func() {
		for {
			b := make([]byte, 256)
			n, err := master.Read(b)
			if err != nil {
				close(cp.in)
				return
			}
			cp.in <- b[:n]
		}
	}()
	return cp
}

// frame builds a command with the CP's current sequence number and session.
func (c *testCP) frame(code byte, data []byte, scb []byte) []byte {
	secure := c.active && scb == nil
	if secure {
		scb = []byte{2, 0x15}
		if len(data) > 0 {
			scb[1] = 0x17
			p := append(append([]byte{}, data...), 0x80)
			p = append(p, make([]byte, (16-len(p)%16)%16)...)
			blk, _ := aes.NewCipher(c.sEnc)
			cipher.NewCBCEncrypter(blk, tNot(c.rmac)).CryptBlocks(p, p)
			data = p
		}
	}
	n := 5 + len(scb) + 1 + len(data) + 1
	if c.crc {
		n++
	}
	if secure {
		n += 4
	}
	ctrl := c.seq
	if c.crc {
		ctrl |= 0x04
	}
	if scb != nil {
		ctrl |= 0x08
	}
	b := []byte{0x53, c.addr, byte(n), byte(n >> 8), ctrl}
	b = append(b, scb...)
	b = append(b, code)
	b = append(b, data...)
	if secure {
		c.cmac = tMAC(c.sMac1, c.sMac2, c.rmac, b)
		b = append(b, c.cmac[:4]...)
	}
	if c.crc {
		v := tcrc(b)
		b = append(b, byte(v), byte(v>>8))
	} else {
		var s byte
		for _, x := range b {
			s += x
		}
		b = append(b, -s)
	}
	return b
}

func (c *testCP) bump() {
	if c.seq == 3 {
		c.seq = 1
	} else {
		c.seq++
	}
}

func (c *testCP) write(b []byte) {
	c.t.Helper()
	if c.mark {
		b = append([]byte{0xff}, b...)
	}
	if _, err := c.w.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next whole reply, or false after timeout.
func (c *testCP) read(timeout time.Duration) ([]byte, bool) {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		for len(c.buf) > 0 && c.buf[0] != 0x53 {
			c.buf = c.buf[1:]
		}
		if len(c.buf) >= 4 {
			n := int(c.buf[2]) | int(c.buf[3])<<8
			if len(c.buf) >= n {
				r := append([]byte(nil), c.buf[:n]...)
				c.buf = c.buf[n:]
				return r, true
			}
		}
		select {
		case b, ok := <-c.in:
			if !ok {
				return nil, false
			}
			c.buf = append(c.buf, b...)
		case <-deadline:
			return nil, false
		}
	}
}

// parse checks a reply's check characters, address and MAC and opens it.
func (c *testCP) parse(raw []byte) reply2 {
	c.t.Helper()
	end := len(raw) - 1
	if raw[4]&0x04 != 0 {
		end--
		if tcrc(raw[:end]) != uint16(raw[end])|uint16(raw[end+1])<<8 {
			c.t.Fatalf("reply CRC wrong: % x", raw)
		}
	}
	if raw[1] != c.addr|0x80 {
		c.t.Fatalf("reply address %#x, want %#x", raw[1], c.addr|0x80)
	}
	i := 5
	var typ byte
	if raw[4]&0x08 != 0 {
		typ = raw[6]
		i += int(raw[5])
	}
	r := reply2{code: raw[i], scb: typ, raw: raw}
	if typ == 0x16 || typ == 0x18 {
		mac := tMAC(c.sMac1, c.sMac2, c.cmac, raw[:end-4])
		if !bytes.Equal(mac[:4], raw[end-4:end]) {
			c.t.Fatalf("reply MAC wrong")
		}
		c.rmac = mac
		end -= 4
	} else if c.active {
		c.t.Logf("plain reply in a session: % x", raw)
		c.active = false
	}
	r.data = raw[i+1 : end]
	if typ == 0x18 {
		blk, _ := aes.NewCipher(c.sEnc)
		d := append([]byte{}, r.data...)
		cipher.NewCBCDecrypter(blk, tNot(c.cmac)).CryptBlocks(d, d)
		j := len(d) - 1
		for d[j] == 0 {
			j--
		}
		if d[j] != 0x80 {
			c.t.Fatalf("reply padding wrong: % x", d)
		}
		r.data = d[:j]
	}
	return r
}

// cmd sends one command and returns the opened reply.
func (c *testCP) cmd(code byte, data ...byte) reply2 {
	c.t.Helper()
	return c.send(c.frame(code, data, nil))
}

func (c *testCP) send(b []byte) reply2 {
	c.t.Helper()
	c.last = b
	c.write(b)
	raw, ok := c.read(2 * time.Second)
	if !ok {
		c.t.Fatalf("no reply to % x", b)
	}
	c.bump()
	return c.parse(raw)
}

// handshake opens a secure channel with scbk; it reports whether the PD's
// cryptogram matched and what the PD answered to SCRYPT.
func (c *testCP) handshake(scbk []byte, keyType byte) (bool, reply2) {
	c.t.Helper()
	c.active = false
	rndA := []byte{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}
	r := c.send(c.frame(cmdCHLNG, rndA, []byte{3, 0x11, keyType}))
	if r.code != replyCCRYPT {
		return false, r
	}
	if len(r.data) != 32 {
		c.t.Fatalf("CCRYPT of %d bytes", len(r.data))
	}
	rndB, client := r.data[8:16], r.data[16:32]
	tmpl := func(b byte) []byte {
		return append([]byte{0x01, b}, append(append([]byte{}, rndA[:6]...), make([]byte, 8)...)...)
	}
	c.sEnc, c.sMac1, c.sMac2 = tAES(scbk, tmpl(0x82)), tAES(scbk, tmpl(0x01)), tAES(scbk, tmpl(0x02))
	ok := bytes.Equal(client, tAES(c.sEnc, append(append([]byte{}, rndA...), rndB...)))
	server := tAES(c.sEnc, append(append([]byte{}, rndB...), rndA...))
	r = c.send(c.frame(cmdSCRYPT, server, []byte{3, 0x13, keyType}))
	if r.code == replyRMACI {
		want := tAES(c.sMac2, tAES(c.sMac1, server))
		if !bytes.Equal(r.data, want) {
			c.t.Fatalf("R-MAC-I % x, want % x", r.data, want)
		}
		c.rmac = want
		c.active = true
	}
	return ok, r
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type rig struct {
	pd    *PD
	cp    *testCP
	reg   *prometheus.Registry
	ind   chan Indication
	clk   *clock
	stop  func()
	dir   string
	errCh chan error
}

// startPD runs a PD on the slave side of a new pty pair, opened by path
// through the serial library, and a test CP on the master side.
func startPD(t *testing.T, cfg config.OSDP) *rig {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	dir := t.TempDir()
	if cfg.Baud == 0 {
		cfg.Baud = 9600
	}
	if cfg.LinkTimeout == 0 {
		cfg.LinkTimeout = 8 * time.Second
	}
	if cfg.VendorCode == "" {
		cfg.VendorCode = "0a0b0c"
	}
	cfg.Device = slave.Name()
	cfg.KeyPath = filepath.Join(dir, config.OSDPKeyFile)
	r := &rig{reg: prometheus.NewRegistry(), ind: make(chan Indication, 32), clk: &clock{t: time.Unix(1_800_000_000, 0)}, dir: dir, errCh: make(chan error, 1)}
	pd, err := New(cfg, slog.New(slog.DiscardHandler), r.reg, WithClock(r.clk.now),
		WithIndications(func(i Indication) { r.ind <- i }))
	if err != nil {
		t.Fatal(err)
	}
	r.pd = pd
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.errCh <- pd.Run(ctx) }()
	r.stop = func() {
		cancel()
		if err := <-r.errCh; err != nil {
			t.Errorf("Run: %v", err)
		}
		pd.Close()
	}
	t.Cleanup(func() {
		if r.stop != nil {
			r.stop()
		}
	})
	r.cp = newCP(t, master)
	r.cp.addr = byte(cfg.Address)
	return r
}

// waitFor waits for cond, checking it as the PD's loop goes round.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var discard = slog.New(slog.DiscardHandler)

func prometheusNewRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
