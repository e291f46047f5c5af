package qfile

import (
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// ReleaseMapped drops the file pages bbolt has mapped from the process's
// resident set; the queue calls it after every delete. bbolt reads through
// a shared read-only mmap, so every capture read during a drain stayed in
// kioskd's resident memory as mapped page cache until the kernel wanted the
// memory back: 30 MB after a backlog of 300 captures, enough to take a
// 1280x720 door past its 150 MB budget. The pages stay in the page cache
// (nothing is written or lost); the next read maps them again, and the
// kernel's walk of the range costs microseconds.
func (q *File) ReleaseMapped(db *bolt.DB) {
	if db == nil {
		return
	}
	info := db.Info()
	size := q.Size()
	if info == nil || info.Data == 0 || size <= 0 {
		return
	}
	// The address is bbolt's mapping, passed to the kernel as a number:
	// no Go pointer is made from it.
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, info.Data, uintptr(size), syscall.MADV_DONTNEED); errno != 0 {
		q.o.Log.Debug("queue: madvise on the mapped file failed", "err", errno)
	}
}
