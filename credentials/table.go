package credentials

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxFileSize bounds the credentials file: a wrong path (a log, a device)
// must not be read into memory.
const maxFileSize = 32 << 20

// Table maps an identity (a verificationId or identityId) to its credential.
type Table map[string]Credential

// Problems is every problem found in a credentials file, one line each.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "\n") }

// LoadFile reads a credentials CSV: a header naming the columns identity,
// facility, card and optionally format and bits, then one row per identity.
// Lines starting with # are comments. Every bad row is reported, with its
// line number; nothing is returned unless the whole file is good.
func LoadFile(path string, def Format) (Table, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("credentials file %s is not a regular file", path)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("credentials file %s is larger than %d bytes", path, maxFileSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	t, err := Parse(io.LimitReader(f, maxFileSize), def)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return t, nil
}

// Parse reads a credentials CSV from r; see LoadFile.
func Parse(r io.Reader, def Format) (Table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty: a header identity,facility,card is needed")
	}
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	var p Problems
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch h {
		case "identity", "facility", "card", "format", "bits":
			if _, dup := col[h]; dup {
				p = append(p, fmt.Sprintf("header: column %q appears twice", h))
			}
			col[h] = i
		default:
			p = append(p, fmt.Sprintf("header: unknown column %q (want identity, facility, card, format, bits)", h))
		}
	}
	for _, need := range []string{"identity", "card"} {
		if _, ok := col[need]; !ok {
			p = append(p, fmt.Sprintf("header: no %q column", need))
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	t := Table{}
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				p = append(p, fmt.Sprintf("line %d: %v", pe.Line, pe.Err))
			} else {
				p = append(p, err.Error())
			}
			if len(p) > 100 || !errors.As(err, &pe) {
				break
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		id := get("identity")
		if id == "" {
			p = append(p, fmt.Sprintf("line %d: no identity", line))
			continue
		}
		if first, dup := seen[id]; dup {
			p = append(p, fmt.Sprintf("line %d: identity %q already on line %d", line, id, first))
			continue
		}
		seen[id] = line
		c, err := ParseCard(get("format"), get("facility"), get("card"), get("bits"), def)
		if err != nil {
			p = append(p, fmt.Sprintf("line %d: %v", line, err))
			continue
		}
		t[id] = c
		if len(p) > 100 {
			break
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	return t, nil
}

// ParseCard builds a credential from the text of a file row or a userinfo
// field. format empty means def. A raw card is a bit string, or a number
// with bits giving its width.
func ParseCard(format, facility, card, bits string, def Format) (Credential, error) {
	f := def
	if format != "" {
		var err error
		if f, err = ParseFormat(format); err != nil {
			return Credential{}, err
		}
	}
	if card == "" {
		return Credential{}, errors.New("no card number")
	}
	if f == Raw {
		return parseRaw(card, bits)
	}
	if bits != "" {
		if n, err := strconv.Atoi(bits); err != nil || n != layouts[f].bits {
			return Credential{}, fmt.Errorf("bits %q does not match %s (%d bits)", bits, f, layouts[f].bits)
		}
	}
	fac := uint64(0)
	if facility != "" {
		v, err := strconv.ParseUint(facility, 10, 64)
		if err != nil {
			return Credential{}, fmt.Errorf("facility %q is not a number", facility)
		}
		fac = v
	}
	cn, err := strconv.ParseUint(card, 10, 64)
	if err != nil {
		return Credential{}, errors.New("the card is not a decimal number")
	}
	return New(f, fac, cn)
}

func parseRaw(card, bits string) (Credential, error) {
	if strings.Trim(card, "01") == "" && (bits == "" || bits == strconv.Itoa(len(card))) {
		b, err := BitsFromString(card)
		if err != nil {
			return Credential{}, err
		}
		return Credential{Format: Raw, Raw: b}, nil
	}
	n, err := strconv.Atoi(bits)
	if err != nil || n < 1 || n > 64 {
		return Credential{}, errors.New("a raw card is a bit string of 0s and 1s, or a number with bits from 1 to 64")
	}
	v, err := strconv.ParseUint(card, 0, 64)
	if err != nil {
		return Credential{}, errors.New("a raw card is a bit string of 0s and 1s, or a number with bits from 1 to 64")
	}
	if n < 64 && v >= 1<<n {
		return Credential{}, fmt.Errorf("the raw card does not fit %d bits", n)
	}
	b := newBits(n)
	for i := 0; i < n; i++ {
		b.set(i, v&(1<<(n-1-i)) != 0)
	}
	return Credential{Format: Raw, Raw: b}, nil
}
