// Command queueformat raises the format version stored in a kioskd queue
// file by one, so that the package test can hand an older kioskd a queue
// file "from a newer version" without building a newer kioskd. It knows
// only where the queue package keeps that version (bucket "meta", key
// "format", one byte).
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: queueformat QUEUE_FILE")
		os.Exit(2)
	}
	if err := bump(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "queueformat:", err)
		os.Exit(1)
	}
}

func bump(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("meta"))
		if b == nil {
			return errors.New("no meta bucket: this queue file has no format version")
		}
		v := b.Get([]byte("format"))
		if len(v) != 1 {
			return fmt.Errorf("format version is %d bytes long, want 1", len(v))
		}
		fmt.Printf("queue format %d -> %d\n", v[0], v[0]+1)
		return b.Put([]byte("format"), []byte{v[0] + 1})
	})
}
