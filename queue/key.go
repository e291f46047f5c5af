package queue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kioskd/kioskd/config"
)

// CreateKey returns the per-device queue key kept at path, making it
// first when there is none: 32 random bytes written as 64 hex characters,
// mode 0600, in a directory created 0700. It never follows a symbolic link
// and never replaces a file, so two starts racing agree on one key. Only
// `kioskd run` calls it: an operator command run as root must not leave a
// key the service user cannot read.
func CreateKey(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("queue key: %w", err)
	}
	raw := make([]byte, config.QueueKeySize)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("queue key: %w", err)
	}
	key := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, os.ErrExist) {
		return readKey(path)
	}
	if err != nil {
		return "", fmt.Errorf("queue key: %w", err)
	}
	_, werr := f.WriteString(key + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("queue key: write %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("queue key: %w", err)
	}
	return key, nil
}

func readKey(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("queue key: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 4*config.QueueKeySize)
	n, err := f.Read(buf)
	if err != nil {
		return "", fmt.Errorf("queue key: read %s: %w", path, err)
	}
	key := strings.TrimSpace(string(buf[:n]))
	if _, err := config.ParseQueueKey(key); err != nil {
		return "", fmt.Errorf("queue key %s: %w", path, err)
	}
	return key, nil
}
