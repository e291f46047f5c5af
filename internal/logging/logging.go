// Package logging builds kioskd's slog logger: JSON or text lines, every
// duration in milliseconds, and under systemd a syslog priority prefix on
// each line so that journald can filter by priority.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options says how lines are written.
type Options struct {
	Level  slog.Leveler
	Format string // json | text
	// Journal prefixes each line with its syslog priority, "<3>" … "<7>",
	// which journald strips and stores as PRIORITY (SyslogLevelPrefix=yes,
	// systemd's default). Set it from JournalStream, never on a terminal or
	// file: there the line stays plain JSON.
	Journal bool
}

// New returns a logger writing to w.
func New(w io.Writer, o Options) *slog.Logger {
	if !o.Journal {
		return slog.New(newHandler(w, o))
	}
	// One inner handler per priority, each writing through its own prefix,
	// so that a line is formatted once and written in one call.
	mu := &sync.Mutex{}
	h := &journalHandler{}
	for i, p := range priorities {
		h.hs[i] = newHandler(&prefixWriter{w: w, mu: mu, prefix: []byte(fmt.Sprintf("<%d>", p.prio))}, o)
	}
	return slog.New(h)
}

func newHandler(w io.Writer, o Options) slog.Handler {
	opts := &slog.HandlerOptions{Level: o.Level, ReplaceAttr: Milliseconds}
	if o.Format == "text" {
		return slog.NewTextHandler(w, opts)
	}
	return slog.NewJSONHandler(w, opts)
}

// ParseLevel reads a log.level value; anything unknown is info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Milliseconds rewrites a time.Duration attribute as a number of
// milliseconds under the key with "_ms" appended: {"retry_in_ms":400}
// instead of {"retry_in":400000000}, which no one reads right. It is a
// slog ReplaceAttr function, so a duration logged anywhere is covered.
func Milliseconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	d := a.Value.Duration()
	key := a.Key
	if !strings.HasSuffix(key, "_ms") {
		key += "_ms"
	}
	if d%time.Millisecond == 0 {
		return slog.Int64(key, d.Milliseconds())
	}
	return slog.Float64(key, float64(d)/float64(time.Millisecond))
}

// priorities maps slog levels to syslog priorities, most severe first.
var priorities = [...]struct {
	min  slog.Level
	prio int
}{
	{slog.LevelError, 3}, // err
	{slog.LevelWarn, 4},  // warning
	{slog.LevelInfo, 6},  // info
	{slog.Level(-1 << 31), 7},
}

type journalHandler struct {
	hs [len(priorities)]slog.Handler
}

func (h *journalHandler) pick(l slog.Level) slog.Handler {
	for i, p := range priorities {
		if l >= p.min {
			return h.hs[i]
		}
	}
	return h.hs[len(h.hs)-1]
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.pick(l).Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.pick(r.Level).Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &journalHandler{}
	for i := range h.hs {
		n.hs[i] = h.hs[i].WithAttrs(as)
	}
	return n
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	n := &journalHandler{}
	for i := range h.hs {
		n.hs[i] = h.hs[i].WithGroup(name)
	}
	return n
}

// prefixWriter writes prefix and line in one call, under a lock shared by
// all priorities, so that journald never sees two lines interleaved.
type prefixWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix []byte
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// JournalStream reports whether f is the stream systemd connected to the
// journal: $JOURNAL_STREAM names its device and inode. A process started
// from a shell inherits the variable with another stderr, so the device and
// inode must match, not just be present.
func JournalStream(f *os.File, getenv func(string) string) bool {
	v := getenv("JOURNAL_STREAM")
	if v == "" || f == nil {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(v, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}
