package incodesim

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"
)

var bandwidthRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(?:([kKmMgG])(i?))?(bit/s|bit|bps|b/s|b|B/s|B|Bps)?$`)

// ParseBandwidth reads a rate such as "2Mbit/s", "2Mbps", "500kbit",
// "250KB/s" or "1000000" (bits per second) and returns bits per second.
// A lowercase b or "bit" means bits, an uppercase B bytes; k, M and G are
// powers of 1000 and Ki, Mi, Gi powers of 1024. Zero means unlimited.
func ParseBandwidth(s string) (int64, error) {
	m := bandwidthRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("bandwidth %q: want e.g. 2Mbit/s, 500kbps, 250KB/s or a number of bits per second", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("bandwidth %q: %w", s, err)
	}
	mult := 1.0
	if m[2] != "" {
		base := 1000.0
		if m[3] == "i" {
			base = 1024
		}
		switch m[2] {
		case "k", "K":
			mult = base
		case "m", "M":
			mult = base * base
		case "g", "G":
			mult = base * base * base
		}
	}
	switch m[4] {
	case "B", "B/s", "Bps":
		mult *= 8
	}
	bps := v * mult
	if bps > 1e12 {
		return 0, fmt.Errorf("bandwidth %q: larger than 1 Tbit/s", s)
	}
	if bps > 0 && bps < 8 {
		return 0, fmt.Errorf("bandwidth %q: below 1 byte per second", s)
	}
	return int64(bps), nil
}

// rateReader reads no faster than bps bits per second, as a slow uplink
// would deliver an upload.
type rateReader struct {
	ctx   context.Context
	r     io.Reader
	bps   int64
	start time.Time
	n     int64
}

func newRateReader(ctx context.Context, r io.Reader, bps int64) *rateReader {
	return &rateReader{ctx: ctx, r: r, bps: bps, start: time.Now()}
}

func (rr *rateReader) Read(p []byte) (int, error) {
	// Small reads keep the pacing smooth: about 20 ms of data at a time.
	chunk := int(max(512, rr.bps/8/50))
	if len(p) > chunk {
		p = p[:chunk]
	}
	n, err := rr.r.Read(p)
	rr.n += int64(n)
	due := rr.start.Add(time.Duration(float64(rr.n*8) / float64(rr.bps) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-rr.ctx.Done():
			return n, rr.ctx.Err()
		case <-t.C:
		}
	}
	return n, err
}
