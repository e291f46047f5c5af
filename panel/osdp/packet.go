// Package osdp makes kioskd an OSDP peripheral device (a card reader, in
// the panel's eyes) on a serial line: the packet layer, Secure Channel and
// the commands an access-control panel sends a reader.
package osdp

import (
	"errors"
	"fmt"
)

// Packet layer constants, as the OSDP specification defines them.
const (
	som          = 0x53
	markByte     = 0xff // OSDP 2.2 sends it before SOM
	addrReply    = 0x80 // set in the address of every PD reply
	addrBcast    = 0x7f
	ctrlSeqMask  = 0x03
	ctrlCRC      = 0x04
	ctrlSCB      = 0x08
	headerLen    = 5
	macLen       = 4
	maxPacketLen = 1440
)

// Security block types.
const (
	scs11 = 0x11 // CP→PD osdp_CHLNG
	scs12 = 0x12 // PD→CP osdp_CCRYPT
	scs13 = 0x13 // CP→PD osdp_SCRYPT
	scs14 = 0x14 // PD→CP osdp_RMAC_I
	scs15 = 0x15 // CP→PD, MAC, data in the clear
	scs16 = 0x16 // PD→CP, MAC, data in the clear
	scs17 = 0x17 // CP→PD, MAC, data encrypted
	scs18 = 0x18 // PD→CP, MAC, data encrypted
)

// Command codes (CP→PD).
const (
	cmdPOLL       = 0x60
	cmdID         = 0x61
	cmdCAP        = 0x62
	cmdLSTAT      = 0x64
	cmdISTAT      = 0x65
	cmdOSTAT      = 0x66
	cmdRSTAT      = 0x67
	cmdOUT        = 0x68
	cmdLED        = 0x69
	cmdBUZ        = 0x6a
	cmdTEXT       = 0x6b
	cmdCOMSET     = 0x6e
	cmdKEYSET     = 0x75
	cmdCHLNG      = 0x76
	cmdSCRYPT     = 0x77
	cmdACURXSIZE  = 0x7b
	cmdMFG        = 0x80
	cmdABORT      = 0xa2
	cmdKEEPACTIVE = 0xa7
)

// Reply codes (PD→CP).
const (
	replyACK    = 0x40
	replyNAK    = 0x41
	replyPDID   = 0x45
	replyPDCAP  = 0x46
	replyLSTATR = 0x48
	replyISTATR = 0x49
	replyOSTATR = 0x4a
	replyRSTATR = 0x4b
	replyRAW    = 0x50
	replyCOM    = 0x54
	replyCCRYPT = 0x76
	replyRMACI  = 0x78
)

// NAK error codes.
const (
	nakCheck      = 0x01 // CRC or checksum
	nakLength     = 0x02
	nakUnknown    = 0x03
	nakSequence   = 0x04
	nakSecurity   = 0x05 // security block unsupported or its conditions not met
	nakEncryption = 0x06 // encrypted communication required
	nakRecord     = 0x09 // unable to process the command record
)

var commandNames = map[byte]string{
	cmdPOLL: "poll", cmdID: "id", cmdCAP: "cap", cmdLSTAT: "lstat", cmdISTAT: "istat",
	cmdOSTAT: "ostat", cmdRSTAT: "rstat", cmdOUT: "out", cmdLED: "led", cmdBUZ: "buz",
	cmdTEXT: "text", cmdCOMSET: "comset", cmdKEYSET: "keyset", cmdCHLNG: "chlng",
	cmdSCRYPT: "scrypt", cmdACURXSIZE: "acurxsize", cmdMFG: "mfg", cmdABORT: "abort",
	cmdKEEPACTIVE: "keepactive",
}

var replyNames = map[byte]string{
	replyACK: "ack", replyNAK: "nak", replyPDID: "pdid", replyPDCAP: "pdcap",
	replyLSTATR: "lstatr", replyISTATR: "istatr", replyOSTATR: "ostatr",
	replyRSTATR: "rstatr", replyRAW: "raw", replyCOM: "com", replyCCRYPT: "ccrypt",
	replyRMACI: "rmac_i",
}

// name gives a bounded metric label for a code.
func name(names map[byte]string, code byte) string {
	if n, ok := names[code]; ok {
		return n
	}
	return "other"
}

// packet is one decoded OSDP message. Data is as it is on the wire
// (encrypted in an SCS_17/18 message) until the secure layer opens it.
type packet struct {
	addr byte
	seq  byte
	crc  bool
	scb  []byte // security block type and data, without its length byte; nil when absent
	code byte
	data []byte
	mac  []byte // 4 bytes in SCS_15..18 messages
	// raw is the whole message; macEnd is where the MAC (or the check) starts.
	raw    []byte
	macEnd int
}

// Errors of the packet layer.
var (
	errCheck  = errors.New("osdp: check character mismatch")
	errFormat = errors.New("osdp: malformed packet")
)

// crc16 is CRC-16/AUG-CCITT (polynomial 0x1021, initial value 0x1D0F, no
// reflection), the check OSDP uses; it is sent least significant byte first.
func crc16(b []byte) uint16 {
	crc := uint16(0x1d0f)
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// checksum is OSDP's 8-bit check: the two's complement of the byte sum.
func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// frameLen reports the length of the packet at the start of buf: 0 when
// more bytes are needed, -1 when buf does not start a plausible packet.
func frameLen(buf []byte) int {
	if len(buf) == 0 {
		return 0
	}
	if buf[0] != som {
		return -1
	}
	if len(buf) < headerLen {
		return 0
	}
	n := int(buf[2]) | int(buf[3])<<8
	if n < headerLen+2 || n > maxPacketLen {
		return -1
	}
	if len(buf) < n {
		return 0
	}
	return n
}

// decode parses one whole packet; b must be exactly frameLen bytes.
func decode(b []byte) (packet, error) {
	p := packet{raw: b, addr: b[1], seq: b[4] & ctrlSeqMask, crc: b[4]&ctrlCRC != 0}
	end := len(b)
	if p.crc {
		end -= 2
		if end < headerLen || crc16(b[:end]) != uint16(b[end])|uint16(b[end+1])<<8 {
			return p, errCheck
		}
	} else {
		end--
		if checksum(b[:end]) != b[end] {
			return p, errCheck
		}
	}
	i := headerLen
	if b[4]&ctrlSCB != 0 {
		if i >= end {
			return p, fmt.Errorf("%w: no room for the security block", errFormat)
		}
		n := int(b[i])
		if n < 2 || i+n > end {
			return p, fmt.Errorf("%w: security block length %d", errFormat, n)
		}
		p.scb = b[i+1 : i+n]
		i += n
		if t := p.scb[0]; t >= scs15 && t <= scs18 {
			if end-macLen <= i {
				return p, fmt.Errorf("%w: no room for the MAC", errFormat)
			}
			p.mac = b[end-macLen : end]
			end -= macLen
		}
	}
	if i >= end {
		return p, fmt.Errorf("%w: no command code", errFormat)
	}
	p.code = b[i]
	p.data = b[i+1 : end]
	p.macEnd = end
	return p, nil
}

// encode builds a packet. mac, when not nil, is called with the message up
// to the MAC and returns the 4 bytes to append.
func encode(addr, seq byte, crc bool, scb []byte, code byte, data []byte, mac func([]byte) []byte) []byte {
	n := headerLen + 1 + len(data) + 1
	ctrl := seq & ctrlSeqMask
	if crc {
		n++
		ctrl |= ctrlCRC
	}
	if scb != nil {
		n += 1 + len(scb)
		ctrl |= ctrlSCB
	}
	if mac != nil {
		n += macLen
	}
	b := make([]byte, 0, n)
	b = append(b, som, addr, byte(n), byte(n>>8), ctrl)
	if scb != nil {
		b = append(b, byte(1+len(scb)))
		b = append(b, scb...)
	}
	b = append(b, code)
	b = append(b, data...)
	if mac != nil {
		b = append(b, mac(b)...)
	}
	if crc {
		c := crc16(b)
		b = append(b, byte(c), byte(c>>8))
	} else {
		b = append(b, checksum(b))
	}
	return b
}
