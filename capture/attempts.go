package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileAttemptStore keeps attempt times in a small JSON file, replaced
// atomically so a power cut leaves either the old or the new list.
type FileAttemptStore struct {
	path string
	mu   sync.Mutex
}

// NewFileAttemptStore stores attempts at path (mode 0600).
func NewFileAttemptStore(path string) *FileAttemptStore {
	return &FileAttemptStore{path: path}
}

type attemptFile struct {
	Attempts []time.Time `json:"attempts"`
}

// Load returns the stored attempts; a missing file is an empty list.
func (f *FileAttemptStore) Load() ([]time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load attempts: %w", err)
	}
	var af attemptFile
	if err := json.Unmarshal(b, &af); err != nil {
		return nil, fmt.Errorf("load attempts %s: %w", f.path, err)
	}
	return af.Attempts, nil
}

// Save replaces the stored attempts.
func (f *FileAttemptStore) Save(attempts []time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(attemptFile{Attempts: attempts})
	if err != nil {
		return fmt.Errorf("save attempts: %w", err)
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, ".attempts-*.tmp")
	if err != nil {
		return fmt.Errorf("save attempts: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save attempts: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save attempts: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save attempts: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save attempts: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("save attempts: %w", err)
	}
	return nil
}
