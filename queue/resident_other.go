//go:build !linux

package queue

func (q *Queue) releaseMappedLocked() {}
