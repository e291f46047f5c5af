package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/statefile"
)

// AttemptState is what the brute-force guard keeps across restarts: the
// counted failures still inside the window, and the end of a running
// lockout.
type AttemptState struct {
	Failures    []time.Time `json:"failures,omitempty"`
	LockedUntil time.Time   `json:"locked_until,omitzero"`
}

// AttemptStore persists the guard's state so that a restart does not lift
// a lockout or forget failures.
type AttemptStore interface {
	Load() (AttemptState, error)
	Save(AttemptState) error
}

// FileAttemptStore keeps the guard's state in a small JSON file, replaced
// atomically so a power cut leaves either the old or the new state.
type FileAttemptStore struct {
	path string
	mu   sync.Mutex
}

// NewFileAttemptStore stores the state at path (mode 0600).
func NewFileAttemptStore(path string) *FileAttemptStore {
	return &FileAttemptStore{path: path}
}

// Load returns the stored state; a missing file is an empty state. A file
// of the earlier cap (every attempt's time) holds no failures and loads
// as empty.
func (f *FileAttemptStore) Load() (AttemptState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return AttemptState{}, nil
	}
	if err != nil {
		return AttemptState{}, fmt.Errorf("load attempts: %w", err)
	}
	var st AttemptState
	if err := json.Unmarshal(b, &st); err != nil {
		return AttemptState{}, fmt.Errorf("load attempts %s: %w", f.path, err)
	}
	return st, nil
}

// Save replaces the stored state.
func (f *FileAttemptStore) Save(st AttemptState) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save attempts: %w", err)
	}
	if err := statefile.WritePrivate(f.path, b); err != nil {
		return fmt.Errorf("save attempts: %w", err)
	}
	return nil
}

// guard is the brute-force guard: max counted failures within the window
// lock the device for a fixed period. It belongs to the frame loop.
type guard struct {
	max     int
	window  time.Duration
	lockout time.Duration
	store   AttemptStore
	log     *slog.Logger
	st      AttemptState
}

func newGuard(cfg config.Capture, store AttemptStore, log *slog.Logger, now time.Time) *guard {
	g := &guard{store: store, log: log}
	g.configure(cfg)
	if store != nil {
		st, err := store.Load()
		if err != nil {
			// A damaged file must not keep the door from working; the
			// guard restarts empty and says so.
			log.Warn("capture: attempt history unreadable, starting empty", "err", err)
		}
		g.st = st
	}
	// A clock set back must not turn a lockout into a very long one.
	if limit := now.Add(g.lockout); g.st.LockedUntil.After(limit) {
		g.st.LockedUntil = limit
	}
	g.prune(now)
	return g
}

func (g *guard) configure(cfg config.Capture) {
	g.max, g.window, g.lockout = cfg.MaxFailures, cfg.FailureWindow, cfg.Lockout
}

// prune drops failures outside the window (and any from the future).
func (g *guard) prune(now time.Time) {
	g.st.Failures = slices.DeleteFunc(g.st.Failures, func(t time.Time) bool {
		return now.Sub(t) >= g.window || t.After(now.Add(time.Minute))
	})
}

// lockedUntil reports a running lockout.
func (g *guard) lockedUntil(now time.Time) (time.Time, bool) {
	if g.max <= 0 || !now.Before(g.st.LockedUntil) {
		return time.Time{}, false
	}
	return g.st.LockedUntil, true
}

// fail counts one failure and reports whether it started a lockout.
func (g *guard) fail(now time.Time) (time.Time, bool) {
	if g.max <= 0 {
		return time.Time{}, false
	}
	g.prune(now)
	g.st.Failures = append(g.st.Failures, now)
	locked := len(g.st.Failures) >= g.max
	if locked {
		// The lockout replaces the count: after it, a fresh start.
		g.st = AttemptState{LockedUntil: now.Add(g.lockout)}
	}
	if g.store != nil {
		if err := g.store.Save(AttemptState{Failures: slices.Clone(g.st.Failures), LockedUntil: g.st.LockedUntil}); err != nil {
			g.log.Warn("capture: cannot persist attempt history", "err", err)
		}
	}
	return g.st.LockedUntil, locked
}
