// Package credentials maps who Incode recognised to the card credential an
// access-control panel knows, and encodes that credential as the Wiegand bit
// image both OSDP (osdp_RAW) and a Wiegand line carry.
package credentials

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Format is a card format.
type Format string

// The formats kioskd can send.
const (
	H10301 Format = "h10301" // 26-bit: 8-bit facility, 16-bit card
	H10306 Format = "h10306" // 34-bit: 16-bit facility, 16-bit card
	H10304 Format = "h10304" // 37-bit: 16-bit facility, 19-bit card
	Raw    Format = "raw"    // a bit string sent as it is
)

// layout is where a format's fields and parity bits sit.
type layout struct {
	bits, facBits, cardBits int
	// evenEnd and oddStart bound the parity ranges over the whole image:
	// bit 0 makes bits [1, evenEnd) even, the last bit makes
	// [oddStart, bits-1) odd. H10304's ranges overlap by one bit.
	evenEnd, oddStart int
}

var layouts = map[Format]layout{
	H10301: {bits: 26, facBits: 8, cardBits: 16, evenEnd: 13, oddStart: 13},
	H10306: {bits: 34, facBits: 16, cardBits: 16, evenEnd: 17, oddStart: 17},
	H10304: {bits: 37, facBits: 16, cardBits: 19, evenEnd: 19, oddStart: 18},
}

// ParseFormat accepts a format name, or the bit count of a known format.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "h10301", "26", "26bit":
		return H10301, nil
	case "h10306", "34", "34bit":
		return H10306, nil
	case "h10304", "37", "37bit":
		return H10304, nil
	case "raw":
		return Raw, nil
	}
	return "", fmt.Errorf("unknown card format %q (want h10301, h10306, h10304 or raw)", s)
}

// Bits is a Wiegand bit image: Count bits, most significant first,
// left-aligned in Data (the last byte padded with zero bits), as osdp_RAW
// carries it.
type Bits struct {
	Data  []byte
	Count int
}

// Bit reports bit i, counting from the first bit sent.
func (b Bits) Bit(i int) bool { return b.Data[i/8]&(0x80>>(i%8)) != 0 }

// String is the bit image as 0s and 1s.
func (b Bits) String() string {
	var s strings.Builder
	for i := 0; i < b.Count; i++ {
		if b.Bit(i) {
			s.WriteByte('1')
		} else {
			s.WriteByte('0')
		}
	}
	return s.String()
}

func newBits(n int) Bits { return Bits{Data: make([]byte, (n+7)/8), Count: n} }

func (b Bits) set(i int, v bool) {
	if v {
		b.Data[i/8] |= 0x80 >> (i % 8)
	}
}

// BitsFromString parses a string of 0s and 1s.
func BitsFromString(s string) (Bits, error) {
	if s == "" || len(s) > 1024 {
		return Bits{}, errors.New("a bit string of 1 to 1024 bits is needed")
	}
	b := newBits(len(s))
	for i, c := range s {
		switch c {
		case '0':
		case '1':
			b.set(i, true)
		default:
			return Bits{}, fmt.Errorf("%q is not a bit string of 0s and 1s", s)
		}
	}
	return b, nil
}

// Credential is a card the panel knows.
type Credential struct {
	Format   Format
	Facility uint64
	Card     uint64
	// Raw is the bit image of a Raw credential.
	Raw Bits
}

// New checks facility and card against the format's field widths.
func New(f Format, facility, card uint64) (Credential, error) {
	l, ok := layouts[f]
	if !ok {
		return Credential{}, fmt.Errorf("format %q has no facility and card fields", f)
	}
	if facility >= 1<<l.facBits {
		return Credential{}, fmt.Errorf("facility %d does not fit %s (at most %d)", facility, f, 1<<l.facBits-1)
	}
	if card >= 1<<l.cardBits {
		return Credential{}, fmt.Errorf("the card number does not fit %s (at most %d)", f, 1<<l.cardBits-1)
	}
	return Credential{Format: f, Facility: facility, Card: card}, nil
}

// Encode gives the bit image, parity included.
func (c Credential) Encode() Bits {
	if c.Format == Raw {
		return Bits{Data: append([]byte(nil), c.Raw.Data...), Count: c.Raw.Count}
	}
	l := layouts[c.Format]
	b := newBits(l.bits)
	v := c.Facility<<l.cardBits | c.Card
	data := l.facBits + l.cardBits
	for i := 0; i < data; i++ {
		b.set(1+i, v&(1<<(data-1-i)) != 0)
	}
	ones := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			if b.Bit(i) {
				n++
			}
		}
		return n
	}
	b.set(0, ones(1, l.evenEnd)%2 == 1)
	b.set(l.bits-1, ones(l.oddStart, l.bits-1)%2 == 0)
	return b
}

// Decode reads a bit image of a known length back into a credential and
// checks its parity; an unknown length decodes as Raw.
func Decode(b Bits) (Credential, error) {
	for f, l := range layouts {
		if l.bits != b.Count {
			continue
		}
		var v uint64
		for i := 1; i < l.bits-1; i++ {
			v <<= 1
			if b.Bit(i) {
				v |= 1
			}
		}
		c := Credential{Format: f, Facility: v >> l.cardBits, Card: v & (1<<l.cardBits - 1)}
		if c.Encode().String() != b.String() {
			return c, fmt.Errorf("%s: parity error in %s", f, b)
		}
		return c, nil
	}
	return Credential{Format: Raw, Raw: b}, nil
}

// Masked names the credential for logs and screens without its number:
// the format, the facility and the last two digits of the card.
func (c Credential) Masked() string {
	if c.Format == Raw {
		return fmt.Sprintf("raw/%d bits", c.Raw.Count)
	}
	s := strconv.FormatUint(c.Card, 10)
	if len(s) > 2 {
		s = strings.Repeat("*", len(s)-2) + s[len(s)-2:]
	} else {
		s = strings.Repeat("*", len(s))
	}
	return fmt.Sprintf("%s/%d/%s", c.Format, c.Facility, s)
}
