//go:build !linux

package qfile

import bolt "go.etcd.io/bbolt"

// ReleaseMapped is Linux-only (madvise).
func (q *File) ReleaseMapped(*bolt.DB) {}
