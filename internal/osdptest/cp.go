// Package osdptest is a small OSDP control panel for kioskd's tests. It
// shares no code with the PD on purpose: framing, CRC, key derivation, MAC
// and encryption are written again here, a second way, so that the two sides
// check each other.
package osdptest

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/creack/pty"
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

func CRC16(b []byte) uint16 {
	c := uint16(0x1d0f)
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>8)^x]
	}
	return c
}

func AES(key, in []byte) []byte {
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
func MAC(mac1, mac2, iv, msg []byte) []byte {
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
	return AES(mac2, last)
}

func not(b []byte) []byte {
	o := make([]byte, len(b))
	for i := range b {
		o[i] = ^b[i]
	}
	return o
}

// CP drives a PD over the master side of a pty pair.
type CP struct {
	t   testing.TB
	w   io.Writer
	in  chan []byte
	buf []byte

	Addr   byte
	Seq    byte // the sequence number of the next command
	CRC    bool // CRC-16 (true) or the 8-bit checksum
	Mark   bool // send the 0xFF mark byte before each command
	Active bool // a secure session is open

	sEnc, sMac1, sMac2 []byte
	cmac, rmac         []byte

	Last []byte // the last command sent
}

// Reply is one reply, checked and opened.
type Reply struct {
	Code byte
	Data []byte
	SCB  byte // security block type, 0 when none
	Raw  []byte
}

// Command and reply codes the CP uses itself.
const (
	cmdCHLNG    = 0x76
	cmdSCRYPT   = 0x77
	replyCCRYPT = 0x76
	replyRMACI  = 0x78
)

// New starts a CP on the master side of a pty (or any byte stream).
func New(t testing.TB, master io.ReadWriter) *CP {
	cp := &CP{t: t, w: master, in: make(chan []byte, 64), CRC: true}
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
func (c *CP) Frame(code byte, data []byte, scb []byte) []byte {
	secure := c.Active && scb == nil
	if secure {
		scb = []byte{2, 0x15}
		if len(data) > 0 {
			scb[1] = 0x17
			p := append(append([]byte{}, data...), 0x80)
			p = append(p, make([]byte, (16-len(p)%16)%16)...)
			blk, _ := aes.NewCipher(c.sEnc)
			cipher.NewCBCEncrypter(blk, not(c.rmac)).CryptBlocks(p, p)
			data = p
		}
	}
	n := 5 + len(scb) + 1 + len(data) + 1
	if c.CRC {
		n++
	}
	if secure {
		n += 4
	}
	ctrl := c.Seq
	if c.CRC {
		ctrl |= 0x04
	}
	if scb != nil {
		ctrl |= 0x08
	}
	b := []byte{0x53, c.Addr, byte(n), byte(n >> 8), ctrl}
	b = append(b, scb...)
	b = append(b, code)
	b = append(b, data...)
	if secure {
		c.cmac = MAC(c.sMac1, c.sMac2, c.rmac, b)
		b = append(b, c.cmac[:4]...)
	}
	if c.CRC {
		v := CRC16(b)
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

func (c *CP) Bump() {
	if c.Seq == 3 {
		c.Seq = 1
	} else {
		c.Seq++
	}
}

func (c *CP) Write(b []byte) {
	c.t.Helper()
	if c.Mark {
		b = append([]byte{0xff}, b...)
	}
	if _, err := c.w.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next whole reply, or false after timeout.
func (c *CP) Read(timeout time.Duration) ([]byte, bool) {
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
func (c *CP) parse(raw []byte) (Reply, error) {
	end := len(raw) - 1
	if raw[4]&0x04 != 0 {
		end--
		if CRC16(raw[:end]) != uint16(raw[end])|uint16(raw[end+1])<<8 {
			return Reply{}, fmt.Errorf("reply CRC wrong: % x", raw)
		}
	}
	if raw[1] != c.Addr|0x80 {
		return Reply{}, fmt.Errorf("reply address %#x, want %#x", raw[1], c.Addr|0x80)
	}
	i := 5
	var typ byte
	if raw[4]&0x08 != 0 {
		typ = raw[6]
		i += int(raw[5])
	}
	r := Reply{Code: raw[i], SCB: typ, Raw: raw}
	if typ == 0x16 || typ == 0x18 {
		mac := MAC(c.sMac1, c.sMac2, c.cmac, raw[:end-4])
		if !bytes.Equal(mac[:4], raw[end-4:end]) {
			return Reply{}, fmt.Errorf("reply MAC wrong")
		}
		c.rmac = mac
		end -= 4
	} else if c.Active {
		c.Active = false
	}
	r.Data = raw[i+1 : end]
	if typ == 0x18 {
		blk, _ := aes.NewCipher(c.sEnc)
		d := append([]byte{}, r.Data...)
		cipher.NewCBCDecrypter(blk, not(c.cmac)).CryptBlocks(d, d)
		j := len(d) - 1
		for j > 0 && d[j] == 0 {
			j--
		}
		if d[j] != 0x80 {
			return Reply{}, fmt.Errorf("reply padding wrong: % x", d)
		}
		r.Data = d[:j]
	}
	return r, nil
}

// Parse is parse for the test goroutine: a bad reply fails the test.
func (c *CP) Parse(raw []byte) Reply {
	c.t.Helper()
	r, err := c.parse(raw)
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// cmd sends one command and returns the opened reply.
func (c *CP) Cmd(code byte, data ...byte) Reply {
	c.t.Helper()
	return c.Send(c.Frame(code, data, nil))
}

func (c *CP) Send(b []byte) Reply {
	c.t.Helper()
	c.Last = b
	c.Write(b)
	raw, ok := c.Read(2 * time.Second)
	if !ok {
		c.t.Fatalf("no reply to % x", b)
	}
	c.Bump()
	return c.Parse(raw)
}

// Handshake opens a secure channel with scbk; it reports whether the PD's
// cryptogram matched and what the PD answered to SCRYPT.
func (c *CP) Handshake(scbk []byte, keyType byte) (bool, Reply) {
	c.t.Helper()
	ok, r, err := c.handshake(scbk, keyType)
	if err != nil {
		c.t.Fatal(err)
	}
	return ok, r
}

func (c *CP) handshake(scbk []byte, keyType byte) (bool, Reply, error) {
	c.Active = false
	rndA := []byte{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}
	r, err := c.exchange(c.Frame(cmdCHLNG, rndA, []byte{3, 0x11, keyType}), 2*time.Second)
	if err != nil || r.Code != replyCCRYPT {
		return false, r, err
	}
	if len(r.Data) != 32 {
		return false, r, fmt.Errorf("CCRYPT of %d bytes", len(r.Data))
	}
	rndB, client := r.Data[8:16], r.Data[16:32]
	tmpl := func(b byte) []byte {
		return append([]byte{0x01, b}, append(append([]byte{}, rndA[:6]...), make([]byte, 8)...)...)
	}
	c.sEnc, c.sMac1, c.sMac2 = AES(scbk, tmpl(0x82)), AES(scbk, tmpl(0x01)), AES(scbk, tmpl(0x02))
	ok := bytes.Equal(client, AES(c.sEnc, append(append([]byte{}, rndA...), rndB...)))
	server := AES(c.sEnc, append(append([]byte{}, rndB...), rndA...))
	r, err = c.exchange(c.Frame(cmdSCRYPT, server, []byte{3, 0x13, keyType}), 2*time.Second)
	if err != nil {
		return ok, r, err
	}
	if r.Code == replyRMACI {
		want := AES(c.sMac2, AES(c.sMac1, server))
		if !bytes.Equal(r.Data, want) {
			return ok, r, fmt.Errorf("R-MAC-I % x, want % x", r.Data, want)
		}
		c.rmac = want
		c.Active = true
	}
	return ok, r, nil
}

// OpenPTY opens a pty pair: the CP talks on the master, the PD opens the
// slave by its path like a serial adapter (the serial library makes it raw).
func OpenPTY(t testing.TB) (*os.File, string) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	// The slave stays open here too: with no slave open, reads on the
	// master fail with EIO between two opens by the PD.
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave.Name()
}

// LED colours a panel answers with.
const (
	Red   = 1
	Green = 2
)

// Serve polls like an access-control panel every interval (through a
// secure channel when scbk is set) and answers each card read with a
// temporary LED of the colour decide returns (0: no answer). It returns
// when ctx is done.
func (c *CP) Serve(ctx context.Context, interval time.Duration, scbk []byte, decide func(count int, data []byte) byte) {
	wait := func() {
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	c.Seq = 0
	for ctx.Err() == nil {
		if scbk != nil && !c.Active {
			if ok, _, err := c.handshake(scbk, 1); err != nil || !ok {
				c.Seq = 0
				wait()
				continue
			}
		}
		r, err := c.exchange(c.Frame(0x60, nil, nil), 10*interval)
		if err != nil {
			c.Active, c.Seq = false, 0
			wait()
			continue
		}
		if r.Code == 0x50 && len(r.Data) >= 4 && decide != nil {
			count := int(r.Data[2]) | int(r.Data[3])<<8
			if color := decide(count, r.Data[4:]); color != 0 {
				led := []byte{0, 0, 2, 5, 5, color, 0, 30, 0, 0, 0, 0, 0, 0}
				if _, err := c.exchange(c.Frame(0x69, led, nil), 10*interval); err != nil {
					c.Active, c.Seq = false, 0
				}
			}
		}
		wait()
	}
}

// exchange sends b and waits for its reply, without failing the test.
func (c *CP) exchange(b []byte, timeout time.Duration) (Reply, error) {
	c.Last = b
	if c.Mark {
		b = append([]byte{0xff}, b...)
	}
	if _, err := c.w.Write(b); err != nil {
		return Reply{}, err
	}
	raw, ok := c.Read(timeout)
	if !ok {
		return Reply{}, fmt.Errorf("no reply")
	}
	c.Bump()
	return c.parse(raw)
}
