// Package statefile writes the small files kioskd keeps in its state
// directory (the attempt counter, a key the panel set) so that a crash or a
// power cut leaves either the old file or the new one, readable only by
// kioskd.
package statefile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WritePrivate replaces path with data, mode 0600: written to a temporary
// file in the same directory, synced, then renamed over path.
func WritePrivate(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
