package qfile

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

const compactSuffix = ".compact"

// Compact copies src's live items into a new file and renames it over the
// old one; the caller then uses the returned database and closes src. The
// new file is locked before the rename, so no other process can slip in
// between, and it is complete before it replaces the old one: a crash
// leaves one or the other, whole. Rewriting is also how deleted images
// leave the file: bbolt keeps a deleted value's bytes in its free pages.
// A non-nil database with an error means the rename happened but the
// directory could not be synced.
func (q *File) Compact(src *bolt.DB) (*bolt.DB, error) {
	tmp := q.o.Path + compactSuffix
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("compact: %w", err)
	}
	var dst *bolt.DB
	err := Guard(func() error {
		var err error
		if dst, err = bolt.Open(tmp, 0o600, q.boltOptions()); err != nil {
			return err
		}
		// Bounded transactions keep memory flat on a large queue.
		return bolt.Compact(dst, src, 32<<20)
	})
	if err != nil {
		if dst != nil {
			_ = dst.Close()
		}
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := keepOwner(q.o.Path, tmp); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := os.Rename(tmp, q.o.Path); err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("compact: %w", err)
	}
	if err := SyncDir(filepath.Dir(q.o.Path)); err != nil {
		return dst, fmt.Errorf("compact: %w", err)
	}
	return dst, nil
}

// keepOwner gives the new file (which kioskd just created) the owner of the
// file it replaces, so that `sudo kioskd queue purge` never leaves a file
// the service user cannot open. Only root can, and needs to, change it.
func keepOwner(old, created string) error {
	fi, err := os.Lstat(old)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || (int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid()) {
		return nil
	}
	return os.Lchown(created, int(st.Uid), int(st.Gid))
}
