package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// counts is the queue's bookkeeping: how many items are pending and dead,
// and what they cost on disk. Changes go through change, inside the
// transaction that makes them, on a copy that becomes q.n only once the
// transaction committed; removeItem and moveItem do both the bbolt work
// and the bookkeeping, so that the two cannot disagree.
type counts struct {
	pending, dead           int
	pendingBytes, deadBytes int64
}

// change adds items and bytes to the pending side, or the dead side.
func (n *counts) change(dead bool, items int, bytes int64) {
	if dead {
		n.dead += items
		n.deadBytes += bytes
		return
	}
	n.pending += items
	n.pendingBytes += bytes
}

func (n *counts) items() int   { return n.pending + n.dead }
func (n *counts) bytes() int64 { return n.pendingBytes + n.deadBytes }

// itemCost is what an item counts against max_bytes: header, stored
// image and the two keys.
func itemCost(hdr, blob []byte) int64 { return int64(len(hdr) + len(blob) + 2*8) }

// bucketOf is the bucket of the pending items, or of the dead letters.
func bucketOf(tx *bolt.Tx, dead bool) *bolt.Bucket {
	if dead {
		return tx.Bucket(bucketDead)
	}
	return tx.Bucket(bucketPending)
}

// removeItem deletes item k's header and image and takes it off n. An item
// that is not there is ErrNotFound.
func removeItem(tx *bolt.Tx, n *counts, dead bool, k []byte) error {
	b, blobs := bucketOf(tx, dead), blobsOf(tx)
	hv := b.Get(k)
	if hv == nil {
		seq, _ := keySeq(k)
		return fmt.Errorf("%w: seq %d", ErrNotFound, seq)
	}
	cost := itemCost(hv, blobs.Get(k))
	k = append([]byte(nil), k...) // k may point into a page the delete frees
	if err := b.Delete(k); err != nil {
		return err
	}
	if err := blobs.Delete(k); err != nil {
		return err
	}
	n.change(dead, -1, -cost)
	return nil
}

// moveItem replaces item k's header (on the from side) by nv on the to
// side, which may be the same, and moves its cost in n. The image stays.
func moveItem(tx *bolt.Tx, n *counts, k []byte, from, to bool, nv []byte) error {
	src := bucketOf(tx, from)
	hv := src.Get(k)
	if hv == nil {
		seq, _ := keySeq(k)
		return fmt.Errorf("%w: seq %d", ErrNotFound, seq)
	}
	blob := blobsOf(tx).Get(k)
	oldCost, newCost := itemCost(hv, blob), itemCost(nv, blob)
	if from != to {
		if err := src.Delete(k); err != nil {
			return err
		}
	}
	if err := bucketOf(tx, to).Put(k, nv); err != nil {
		return err
	}
	n.change(from, -1, -oldCost)
	n.change(to, 1, newCost)
	return nil
}
