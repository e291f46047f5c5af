// Package queue is kioskd's durable retry queue: a capture whose live upload
// failed for a retryable reason is kept in a bbolt file until a Drainer
// delivers it, bounded by item count, bytes and age, optionally sealed with
// AES-256-GCM.
//
// Delivery is at-least-once. An item leaves the queue only after the
// service answered it and the removal was committed; if kioskd dies between
// the answer and the commit, the item is sent again after the restart. Every
// item carries a random ID that is sent as the Idempotency-Key header on each
// attempt (the agent reuses the live attempt's key), so a backend can drop
// the duplicate by remembering the keys it answered.
package queue

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/internal/backoff"
	"github.com/kioskd/kioskd/internal/idkey"
	"github.com/kioskd/kioskd/queue/qfile"
)

// Item is one queued capture. Seq orders the queue; ID is the idempotency
// key sent with every delivery attempt.
type Item struct {
	Seq         uint64
	ID          string
	CapturedAt  time.Time
	Source      string
	Attempts    int
	NextAttempt time.Time
	LastError   string
	JPEG        []byte

	EnqueuedAt time.Time // when the item was made durable
	DeadAt     time.Time // when it was dead-lettered; zero while pending
	Size       int       // JPEG bytes, also set when JPEG is not loaded (List)
}

// String describes the item without its image, so that printing an Item
// never dumps biometric data.
func (it Item) String() string {
	return fmt.Sprintf("item seq=%d id=%s source=%q captured=%s attempts=%d next=%s size=%d last_error=%q",
		it.Seq, it.ID, it.Source, it.CapturedAt.UTC().Format(time.RFC3339), it.Attempts,
		it.NextAttempt.UTC().Format(time.RFC3339), max(it.Size, len(it.JPEG)), it.LastError)
}

// LogValue keeps the image out of structured logs.
func (it Item) LogValue() slog.Value {
	return slog.GroupValue(slog.Uint64("seq", it.Seq), slog.String("id", it.ID), slog.String("source", it.Source),
		slog.Int("attempts", it.Attempts), slog.Int("size", max(it.Size, len(it.JPEG))))
}

// Stats summarises the queue. Bytes and DeadBytes are what the items cost
// on disk (headers, images as stored, keys); the two together are bounded
// by queue.max_bytes.
type Stats struct {
	Depth       int
	Bytes       int64
	OldestAge   time.Duration
	DeadLetters int

	DeadBytes int64
	FileBytes int64 // size of the bbolt file, which includes free pages
}

var (
	// ErrLocked is matched (errors.Is) by the error Open returns when
	// another process, usually a running kioskd, holds the file.
	ErrLocked = qfile.ErrLocked
	// ErrKeyMismatch is returned by Open when queue.encrypt's key is not the
	// one the file was written with.
	ErrKeyMismatch = errors.New("queue key does not match the file")
	// ErrCorrupt wraps damage found in the file.
	ErrCorrupt = qfile.ErrCorrupt
	// ErrNoFile is returned by Open with WithReadOnly or WithExisting when
	// there is no queue file yet: nothing was ever queued.
	ErrNoFile = qfile.ErrNoFile
	// ErrUnsafePath is returned by Open when the queue file or its directory
	// is a symbolic link or not a regular file: kioskd never follows a link
	// to write biometric data, nor changes the mode of a file it did not
	// create.
	ErrUnsafePath = qfile.ErrUnsafePath
	// ErrFormat is matched by the error Open returns for a file written by
	// a newer kioskd (or in a format this one does not know).
	ErrFormat = errors.New("unsupported queue file format")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("queue is closed")
	// ErrNotFound is returned for a sequence number no longer pending, for
	// example an item dropped by a bound while it was being delivered.
	ErrNotFound = errors.New("no such pending item")
	// ErrTooLarge is returned by Enqueue for an item that alone exceeds
	// queue.max_bytes.
	ErrTooLarge = errors.New("item is larger than queue.max_bytes")
	// ErrExpired is returned by Enqueue for an item already older than
	// queue.ttl.
	ErrExpired = errors.New("item is older than queue.ttl")
)

// LockedError names the file another process holds; it matches ErrLocked.
type LockedError = qfile.LockedError

// Queue is a durable FIFO of captures in one bbolt file. It is safe for
// concurrent use; the file is held exclusively while the Queue is open.
type Queue struct {
	cfg    config.Queue
	log    *slog.Logger
	opt    options
	m      *metrics
	path   string
	file   *qfile.File
	seal   *sealer
	notify chan struct{} // an item became pending: a waiting drainer looks again

	down atomic.Bool // closed, readable without the lock

	mu         lock
	db         *bolt.DB
	closed     bool
	leased     map[uint64]struct{}
	n          counts
	nextExpiry time.Time // no item expires before this; zero: the queue is empty
	// deletedAt is when an image was first deleted since the file was last
	// rewritten: until it is, the image's bytes may remain in free pages.
	deletedAt time.Time
}

// Open opens or creates the queue file at cfg.Path (mode 0600, its
// directory 0700 when missing). A file that is not a readable queue is
// moved aside to "<path>.corrupt-<UTC time>" and replaced by an empty one;
// a file held by another process is an error that matches ErrLocked, after
// about a second. With cfg.Encrypt, cfg.Key must be the file's key.
func Open(cfg config.Queue, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Queue, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	opt := buildOptions(opts)
	q := &Queue{
		cfg:    cfg,
		log:    log.With("component", "queue"),
		opt:    opt,
		m:      newMetrics(filepath.Clean(cfg.Path), opt.now),
		path:   filepath.Clean(cfg.Path),
		notify: make(chan struct{}, 1),
		leased: map[uint64]struct{}{},
		mu:     newLock(),
	}
	if cfg.Encrypt && !q.opt.metaOnly {
		key, err := config.ParseQueueKey(cfg.Key)
		if cfg.Key == "" {
			err = errors.New("queue.encrypt is on but no key is set")
		}
		if err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
		if q.seal, err = newSealer(key); err != nil {
			return nil, fmt.Errorf("open queue: %w", err)
		}
	}
	m := q.m
	q.file = qfile.New(qfile.Options{
		Path: q.path, LockTimeout: opt.lockTimeout, ReadOnly: opt.readOnly, Existing: opt.existing,
		Now: opt.now, Log: q.log, MovedAside: func() { m.recovered.Inc() },
	})
	db, err := q.file.Open()
	if err != nil {
		return nil, err
	}
	q.db = db
	if err := q.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if !q.opt.existing {
		// Only the service's lock holder may remove a compaction left
		// half-done, or old damaged files.
		q.file.RemoveLeftovers(q.cfg.TTL)
	}
	if err := q.m.register(reg); err != nil {
		q.m.unregister(reg)
		_ = db.Close()
		return nil, err
	}
	q.publishLocked()
	q.log.Info("queue open", "path", q.path, "depth", q.n.pending, "dead_letters", q.n.dead,
		"bytes", q.n.bytes(), "encrypted", q.seal != nil)
	return q, nil
}

func checkConfig(cfg config.Queue) error {
	var p []string
	if cfg.Path == "" {
		p = append(p, "path is empty")
	}
	if cfg.MaxItems < 1 || cfg.MaxBytes < 1 || cfg.TTL <= 0 || cfg.BackoffMin <= 0 || cfg.BackoffMax < cfg.BackoffMin || cfg.MaxAttempts < 1 {
		p = append(p, "bounds, ttl, backoff and max_attempts must be positive (use config defaults)")
	}
	if len(p) > 0 {
		return fmt.Errorf("open queue: invalid configuration: %v", p)
	}
	return nil
}

// load creates the buckets, checks the format and the key, and counts the
// items. Items that cannot be decoded are removed and logged: one damaged
// header must not cost the rest of the queue.
func (q *Queue) load() error {
	var n counts
	var next time.Time
	var items int
	// A read-only open looks without repairing: damaged items are
	// counted out of the figures but stay in the file.
	run := q.db.Update
	if q.opt.readOnly {
		run = q.db.View
	}
	err := guard(func() error {
		return run(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketPending, bucketDead, bucketBlobs, bucketMeta} {
				if q.opt.readOnly {
					if tx.Bucket(name) == nil {
						return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, name)
					}
					continue
				}
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("create bucket %s: %w", name, err)
				}
			}
			meta := tx.Bucket(bucketMeta)
			if v := meta.Get(keyFormat); v == nil {
				if q.opt.readOnly {
					return nil
				}
				if err := meta.Put(keyFormat, []byte{formatVersion}); err != nil {
					return err
				}
			} else if err := checkFormat(v); err != nil {
				return err
			}
			blobs := blobsOf(tx)
			seen := map[uint64]bool{}
			for _, bn := range [][]byte{bucketPending, bucketDead} {
				b := tx.Bucket(bn)
				var bad [][]byte
				err := b.ForEach(func(k, v []byte) error {
					seq, ok := keySeq(k)
					h, err := decodeHeader(v)
					blob := blobs.Get(k)
					if !ok || err != nil || blob == nil || len(blob) != h.Stored {
						bad = append(bad, append([]byte(nil), k...))
						return nil
					}
					seen[seq] = true
					n.change(string(bn) == string(bucketDead), 1, itemCost(v, blob))
					if e := h.expiry(q.cfg.TTL); next.IsZero() || e.Before(next) {
						next = e
					}
					return nil
				})
				if err != nil {
					return err
				}
				for _, k := range bad {
					if q.opt.readOnly {
						q.log.Warn("unreadable queue item: kioskd run removes it", "bucket", string(bn), "key", fmt.Sprintf("%x", k))
						continue
					}
					q.log.Error("removing an unreadable queue item", "bucket", string(bn), "key", fmt.Sprintf("%x", k))
					q.m.errors.WithLabelValues("open").Inc()
					if err := b.Delete(k); err != nil {
						return err
					}
					if err := blobs.Delete(k); err != nil {
						return err
					}
				}
			}
			if q.opt.readOnly {
				return nil
			}
			// Images whose header is gone cannot be delivered.
			var orphans [][]byte
			_ = blobs.ForEach(func(k []byte) error {
				if seq, ok := keySeq(k); !ok || !seen[seq] {
					orphans = append(orphans, append([]byte(nil), k...))
				}
				return nil
			})
			for _, k := range orphans {
				if err := blobs.Delete(k); err != nil {
					return err
				}
			}
			items = n.items()
			if q.opt.metaOnly {
				return nil
			}
			return q.checkKey(meta, items)
		})
	})
	if err != nil {
		return fmt.Errorf("open queue: %w", err)
	}
	q.n = n
	q.nextExpiry = next
	return nil
}

// checkKey compares the configured key with the file's key check value.
// A mismatch is an error, never a reason to drop items; with no item at
// stake a new key (or no key) is simply recorded.
func (q *Queue) checkKey(meta *bolt.Bucket, items int) error {
	kc := meta.Get(keyKeyCheck)
	switch {
	case kc != nil && q.seal == nil:
		if items > 0 {
			return fmt.Errorf("%w: queue file %s is encrypted and holds %d items: set queue.encrypt and its key, or move the file aside", ErrKeyMismatch, q.path, items)
		}
		return meta.Delete(keyKeyCheck)
	case kc != nil:
		if plain, err := q.seal.open(kc, keyKeyCheck); err == nil && string(plain) == string(keyCheckPlain) {
			return nil
		}
		if items > 0 {
			return fmt.Errorf("%w %s (%d items are sealed with another key)", ErrKeyMismatch, q.path, items)
		}
		q.log.Info("queue key changed while the queue was empty: recording the new key")
	case q.seal == nil:
		return nil
	case items > 0:
		q.log.Warn("encryption enabled on a queue that already holds items: those stay unencrypted until delivered", "items", items)
	}
	v, err := q.seal.seal(keyCheckPlain, keyKeyCheck)
	if err != nil {
		return err
	}
	return meta.Put(keyKeyCheck, v)
}

// Enqueue makes a copy of it durable: when Enqueue returns nil the item is
// on disk and fsync'd. It assigns Seq, and an ID unless it.ID is already
// set (pass the live attempt's idempotency key, so that the backend can
// recognise a live attempt that did arrive). Zero CapturedAt and
// NextAttempt mean now. Past max_items or max_bytes the oldest pending
// items are dropped, then the oldest dead letters.
func (q *Queue) Enqueue(ctx context.Context, it Item) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, fmt.Errorf("enqueue: %w", err)
	}
	if len(it.JPEG) == 0 {
		return Item{}, errors.New("enqueue: empty image")
	}
	if it.ID == "" {
		it.ID = idkey.New()
	} else if !validID(it.ID) {
		return Item{}, errors.New("enqueue: item id must be 1 to 128 printable ASCII characters without spaces")
	}
	if q.opt.metaOnly {
		return Item{}, errors.New("enqueue: the queue was opened for metadata only")
	}
	if err := q.mu.LockContext(ctx); err != nil {
		return Item{}, fmt.Errorf("enqueue: waiting for the queue: %w", err)
	}
	defer q.mu.Unlock()
	if q.closed {
		return Item{}, fmt.Errorf("enqueue: %w", ErrClosed)
	}
	now := q.opt.now()
	if it.CapturedAt.IsZero() {
		it.CapturedAt = now
	}
	if it.NextAttempt.IsZero() {
		it.NextAttempt = now
	}
	it.Attempts = max(it.Attempts, 0)
	it.LastError = clip(it.LastError, maxErrorLen)
	it.EnqueuedAt, it.DeadAt, it.Size = now, time.Time{}, len(it.JPEG)
	h := header{
		ID: it.ID, CapturedAt: it.CapturedAt, EnqueuedAt: now, Source: it.Source, Attempts: it.Attempts,
		NextAttempt: it.NextAttempt, LastError: it.LastError, Size: len(it.JPEG),
	}
	if !h.expiry(q.cfg.TTL).After(now) {
		q.m.drops.WithLabelValues(DropTTL).Inc()
		return Item{}, fmt.Errorf("enqueue: captured %s: %w", it.CapturedAt.UTC().Format(time.RFC3339), ErrExpired)
	}

	var (
		n       = q.n
		dropped []dropped
		cost    int64
	)
	err := q.update("enqueue", func(tx *bolt.Tx) error {
		seq, err := tx.Bucket(bucketMeta).NextSequence()
		if err != nil {
			return err
		}
		blob := it.JPEG
		if q.seal != nil {
			if blob, err = q.seal.seal(it.JPEG, blobAD(seq, it.ID)); err != nil {
				return err
			}
			h.Encrypted = true
		}
		h.Stored, h.CRC = len(blob), crc32.Checksum(blob, castagnoli)
		hb, err := h.encode()
		if err != nil {
			return err
		}
		if cost = itemCost(hb, blob); cost > int64(q.cfg.MaxBytes) {
			return fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, cost, int64(q.cfg.MaxBytes))
		}
		k := seqKey(seq)
		if err := tx.Bucket(bucketPending).Put(k, hb); err != nil {
			return err
		}
		if err := blobsOf(tx).Put(k, blob); err != nil {
			return err
		}
		it.Seq = seq
		n.change(false, 1, cost)
		dropped, err = q.enforceBounds(tx, &n, seq)
		return err
	})
	if err != nil {
		return Item{}, fmt.Errorf("enqueue: %w", err)
	}
	q.n = n
	for _, d := range dropped {
		delete(q.leased, d.seq)
		q.m.drops.WithLabelValues(DropOverflow).Inc()
		q.log.Warn("queue full: dropped the oldest item", "seq", d.seq, "id", d.id, "dead_letter", d.dead,
			"max_items", q.cfg.MaxItems, "max_bytes", int64(q.cfg.MaxBytes))
	}
	if len(dropped) > 0 && q.deletedAt.IsZero() {
		// The dropped images wait in free pages for Maintain's rewrite:
		// not here, where a rewrite would hold the live decision.
		q.deletedAt = now
	}
	if e := h.expiry(q.cfg.TTL); q.nextExpiry.IsZero() || e.Before(q.nextExpiry) {
		q.nextExpiry = e
	}
	q.m.enqueued.Inc()
	q.publishLocked()
	q.signal()
	return it, nil
}

type dropped struct {
	seq  uint64
	id   string
	dead bool
}

// enforceBounds drops the oldest pending items other than keep, then the
// oldest dead letters, until the queue is within max_items and max_bytes.
func (q *Queue) enforceBounds(tx *bolt.Tx, n *counts, keep uint64) ([]dropped, error) {
	var out []dropped
	for n.items() > q.cfg.MaxItems || n.bytes() > int64(q.cfg.MaxBytes) {
		victim, dead := []byte(nil), false
		if k, _ := tx.Bucket(bucketPending).Cursor().First(); k != nil {
			if seq, _ := keySeq(k); seq != keep {
				victim = k
			}
		}
		if victim == nil {
			victim, _ = tx.Bucket(bucketDead).Cursor().First()
			dead = true
		}
		if victim == nil {
			return out, errors.New("bounds cannot be met") // the new item alone fits: unreachable
		}
		h, _ := decodeHeader(bucketOf(tx, dead).Get(victim))
		seq, _ := keySeq(victim)
		if err := removeItem(tx, n, dead, victim); err != nil {
			return out, err
		}
		out = append(out, dropped{seq: seq, id: h.ID, dead: dead})
	}
	return out, nil
}

// Lease returns the oldest pending item that is due, with its image, or
// nil when none is. A leased item is not leased again until Ack,
// RetryLater or DeadLetter settles it. Items past the TTL are dropped
// first.
func (q *Queue) Lease() (*Item, error) { return q.lease(false) }

// LeaseOldest is Lease ignoring due times: the oldest pending item not
// already leased. `kioskd queue drain` and a drainer woken by a successful
// live attempt use it.
func (q *Queue) LeaseOldest() (*Item, error) { return q.lease(true) }

func (q *Queue) lease(ignoreDue bool) (*Item, error) {
	if q.opt.metaOnly {
		return nil, errors.New("lease: the queue was opened for metadata only")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, fmt.Errorf("lease: %w", ErrClosed)
	}
	now := q.opt.now()
	q.expireLocked(now)
	for {
		var (
			found *Item
			bad   uint64
			why   string
		)
		err := q.view("lease", func(tx *bolt.Tx) error {
			blobs := blobsOf(tx)
			c := tx.Bucket(bucketPending).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				seq, _ := keySeq(k)
				if _, busy := q.leased[seq]; busy {
					continue
				}
				h, err := decodeHeader(v)
				if err != nil {
					bad, why = seq, err.Error()
					return nil
				}
				if !ignoreDue && h.NextAttempt.After(now) {
					continue
				}
				jpeg, err := q.openBlob(seq, &h, blobs.Get(k))
				if err != nil {
					bad, why = seq, err.Error()
					return nil
				}
				it := h.item(seq)
				it.JPEG = jpeg
				found = &it
				return nil
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("lease: %w", err)
		}
		if bad != 0 {
			// The bytes on disk are damaged: set the item aside where an
			// operator sees it, and look at the next one.
			q.m.errors.WithLabelValues("lease").Inc()
			q.log.Error("queued item is unreadable: dead-lettered", "seq", bad, "err", why)
			if err := q.deadLetterLocked(bad, "unreadable on disk: "+why, DropPermanent); err != nil {
				return nil, fmt.Errorf("lease: %w", err)
			}
			continue
		}
		if found != nil {
			q.leased[found.Seq] = struct{}{}
		}
		return found, nil
	}
}

// openBlob checks the stored image against its header and decrypts it. The
// result never aliases bbolt's memory map.
func (q *Queue) openBlob(seq uint64, h *header, blob []byte) ([]byte, error) {
	if blob == nil {
		return nil, errors.New("image missing")
	}
	if len(blob) != h.Stored || crc32.Checksum(blob, castagnoli) != h.CRC {
		return nil, errors.New("image checksum mismatch")
	}
	if !h.Encrypted {
		return append([]byte(nil), blob...), nil
	}
	if q.seal == nil {
		return nil, errors.New("image is encrypted and queue.encrypt is off")
	}
	plain, err := q.seal.open(blob, blobAD(seq, h.ID))
	if err != nil {
		return nil, errors.New("image does not decrypt with the queue key")
	}
	return plain, nil
}

// Ack removes a delivered item.
func (q *Queue) Ack(seq uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return fmt.Errorf("ack: %w", ErrClosed)
	}
	delete(q.leased, seq)
	n := q.n
	err := q.update("ack", func(tx *bolt.Tx) error { return removeItem(tx, &n, false, seqKey(seq)) })
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	q.n = n
	q.afterDeleteLocked()
	return nil
}

// RetryLater records a failed attempt: attempts+1, the reason as the last
// error, and the next attempt after a capped, jittered exponential backoff
// between queue.backoff_min and queue.backoff_max. An item that reaches
// queue.max_attempts is dead-lettered instead.
func (q *Queue) RetryLater(seq uint64, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return fmt.Errorf("retry later: %w", ErrClosed)
	}
	delete(q.leased, seq)
	now := q.opt.now()
	var (
		h    header
		dead bool
		n    = q.n
	)
	err := q.update("retry_later", func(tx *bolt.Tx) error {
		k := seqKey(seq)
		b := tx.Bucket(bucketPending)
		hv := b.Get(k)
		if hv == nil {
			return fmt.Errorf("%w: seq %d", ErrNotFound, seq)
		}
		var err error
		if h, err = decodeHeader(hv); err != nil {
			return err
		}
		h.Attempts++
		h.LastError = clip(reason, maxErrorLen)
		if h.Attempts >= q.cfg.MaxAttempts {
			dead = true
			h.DeadAt = now
			h.LastError = clip(fmt.Sprintf("gave up after %d attempts: %s", h.Attempts, reason), maxErrorLen)
		} else {
			h.NextAttempt = now.Add(q.backoff(h.Attempts))
		}
		nv, err := h.encode()
		if err != nil {
			return err
		}
		return moveItem(tx, &n, k, false, dead, nv)
	})
	if err != nil {
		return fmt.Errorf("retry later: %w", err)
	}
	q.n = n
	if dead {
		q.m.drops.WithLabelValues(DropMaxAttempts).Inc()
		q.log.Warn("queued item dead-lettered: too many attempts", "seq", seq, "id", h.ID, "attempts", h.Attempts, "reason", reason)
	}
	q.publishLocked()
	return nil
}

// enqueued is signalled (without blocking, one pending signal at most)
// when an item becomes pending: a waiting drainer looks again.
func (q *Queue) enqueued() <-chan struct{} { return q.notify }

// signal tells a waiting drainer that an item became pending.
func (q *Queue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// drainerOptions are the queue's clock, timers, jitter and heartbeat, which
// a drainer uses unless given its own.
func (q *Queue) drainerOptions() options { return q.opt }

// backoff is the delay before an item's next attempt: equal jitter, so
// between half and all of the capped exponential step.
func (q *Queue) backoff(attempts int) time.Duration {
	return q.retryPolicy().Delay(attempts, q.opt.rand.Float64)
}

// retryPolicy is queue.backoff_min..backoff_max with equal jitter; the
// drainer waits by it too after a delivery failure.
func (q *Queue) retryPolicy() backoff.Policy {
	return backoff.Policy{Min: q.cfg.BackoffMin, Max: q.cfg.BackoffMax, Jitter: 0.5}
}

// DeadLetter moves an item to the dead letters with reason as its last
// error: the service refused it for good. It counts as a drop with reason
// "permanent".
func (q *Queue) DeadLetter(seq uint64, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return fmt.Errorf("dead letter: %w", ErrClosed)
	}
	if err := q.deadLetterLocked(seq, reason, DropPermanent); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	return nil
}

func (q *Queue) deadLetterLocked(seq uint64, reason, drop string) error {
	delete(q.leased, seq)
	now := q.opt.now()
	n := q.n
	err := q.update("dead_letter", func(tx *bolt.Tx) error {
		k := seqKey(seq)
		b := tx.Bucket(bucketPending)
		hv := b.Get(k)
		if hv == nil {
			return fmt.Errorf("%w: seq %d", ErrNotFound, seq)
		}
		h, err := decodeHeader(hv)
		if err != nil {
			// Keep what can be kept: the header is rebuilt around the key.
			h = header{ID: fmt.Sprintf("unreadable-%d", seq), CapturedAt: now, EnqueuedAt: now, Stored: len(blobsOf(tx).Get(k))}
		}
		h.DeadAt = now
		h.LastError = clip(reason, maxErrorLen)
		nv, err := h.encode()
		if err != nil {
			return err
		}
		return moveItem(tx, &n, k, false, true, nv)
	})
	if err != nil {
		return err
	}
	q.n = n
	q.m.drops.WithLabelValues(drop).Inc()
	q.publishLocked()
	return nil
}

// Stats reports depth, bytes, the age of the oldest pending capture and
// the dead letters.
func (q *Queue) Stats() (Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return Stats{}, fmt.Errorf("stats: %w", ErrClosed)
	}
	age, err := q.oldestAgeLocked()
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	return Stats{
		Depth: q.n.pending, Bytes: q.n.pendingBytes, OldestAge: age, DeadLetters: q.n.dead,
		DeadBytes: q.n.deadBytes, FileBytes: q.file.Size(),
	}, nil
}

// oldestAgeLocked is the age of the first pending item, the oldest by
// enqueue order.
func (q *Queue) oldestAgeLocked() (time.Duration, error) {
	h, ok, err := q.oldestLocked()
	if err != nil || !ok {
		return 0, err
	}
	return max(q.opt.now().Sub(h.CapturedAt), 0), nil
}

// oldestLocked is the header of the first pending item, if any.
func (q *Queue) oldestLocked() (h header, ok bool, err error) {
	err = q.view("stats", func(tx *bolt.Tx) error {
		_, v := tx.Bucket(bucketPending).Cursor().First()
		if v == nil {
			return nil
		}
		var derr error
		h, derr = decodeHeader(v)
		ok = derr == nil
		return nil
	})
	return h, ok, err
}

// List returns the pending items, or the dead letters, oldest first,
// without their images (JPEG is nil; Size says how large it is).
func (q *Queue) List(dead bool) ([]Item, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, fmt.Errorf("list: %w", ErrClosed)
	}
	name := bucketPending
	if dead {
		name = bucketDead
	}
	var out []Item
	err := q.view("list", func(tx *bolt.Tx) error {
		return tx.Bucket(name).ForEach(func(k, v []byte) error {
			seq, _ := keySeq(k)
			h, err := decodeHeader(v)
			if err != nil {
				return fmt.Errorf("seq %d: %w", seq, err)
			}
			out = append(out, h.item(seq))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	return out, nil
}

// RetryDead moves every dead letter back to the pending items, due now
// with its attempts reset. They keep their place: they are older than
// anything enqueued since.
func (q *Queue) RetryDead() (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, fmt.Errorf("retry dead letters: %w", ErrClosed)
	}
	now := q.opt.now()
	n := q.n
	moved := 0
	err := q.update("retry_dead", func(tx *bolt.Tx) error {
		dead := tx.Bucket(bucketDead)
		var keys [][]byte
		_ = dead.ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil })
		for _, k := range keys {
			h, err := decodeHeader(dead.Get(k))
			if err != nil {
				return err
			}
			h.Attempts, h.NextAttempt, h.DeadAt = 0, now, time.Time{}
			nv, err := h.encode()
			if err != nil {
				return err
			}
			if err := moveItem(tx, &n, k, true, false, nv); err != nil {
				return err
			}
			moved++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("retry dead letters: %w", err)
	}
	q.n = n
	q.publishLocked()
	if moved > 0 {
		q.log.Info("dead letters moved back to the queue", "items", moved)
		q.signal()
	}
	return moved, nil
}

// Purge deletes every pending item and returns how many there were.
func (q *Queue) Purge() (int, error) { return q.purge(false) }

// PurgeDead deletes every dead letter and returns how many there were.
func (q *Queue) PurgeDead() (int, error) { return q.purge(true) }

func (q *Queue) purge(dead bool) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, fmt.Errorf("purge: %w", ErrClosed)
	}
	removed := 0
	n := q.n
	err := q.update("purge", func(tx *bolt.Tx) error {
		var keys [][]byte
		_ = bucketOf(tx, dead).ForEach(func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil })
		for _, k := range keys {
			if err := removeItem(tx, &n, dead, k); err != nil {
				return err
			}
		}
		removed = len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge: %w", err)
	}
	q.n = n
	if !dead {
		clear(q.leased)
	}
	q.log.Info("queue purged", "dead_letters", dead, "items", removed)
	q.afterDeleteLocked()
	return removed, nil
}

// Expire drops every item, pending or dead, that is older than the TTL,
// except one being delivered, and returns how many it dropped. Lease and
// the drainer call it as they go.
func (q *Queue) Expire() (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, fmt.Errorf("expire: %w", ErrClosed)
	}
	return q.expireLocked(q.opt.now())
}

func (q *Queue) expireLocked(now time.Time) (int, error) {
	if q.nextExpiry.IsZero() || now.Before(q.nextExpiry) {
		return 0, nil
	}
	n := q.n
	var next time.Time
	var gone []dropped
	err := q.update("expire", func(tx *bolt.Tx) error {
		for _, dead := range []bool{false, true} {
			var keys [][]byte
			err := bucketOf(tx, dead).ForEach(func(k, v []byte) error {
				seq, _ := keySeq(k)
				h, err := decodeHeader(v)
				if err != nil {
					return nil // Lease deals with it
				}
				e := h.expiry(q.cfg.TTL)
				_, busy := q.leased[seq]
				if e.After(now) || busy {
					if next.IsZero() || e.Before(next) {
						next = e
					}
					return nil
				}
				keys = append(keys, append([]byte(nil), k...))
				gone = append(gone, dropped{seq: seq, id: h.ID, dead: dead})
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := removeItem(tx, &n, dead, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	q.n = n
	// A leased item past its expiry is looked at again soon rather than
	// at its (past) expiry time.
	if !next.IsZero() && !next.After(now) {
		next = now.Add(time.Second)
	}
	q.nextExpiry = next
	if len(gone) > 0 {
		q.m.drops.WithLabelValues(DropTTL).Add(float64(len(gone)))
		q.log.Warn("queued captures older than the TTL were deleted undelivered", "items", len(gone), "ttl", q.cfg.TTL,
			"first_seq", gone[0].seq)
		q.afterDeleteLocked()
	}
	return len(gone), nil
}

// release gives back a lease without recording an attempt (the delivery
// was interrupted by shutdown).
func (q *Queue) release(seq uint64) {
	q.mu.Lock()
	delete(q.leased, seq)
	q.mu.Unlock()
}

// head reports the due time of the oldest pending item not being
// delivered, and the earliest TTL expiry.
func (q *Queue) head() (due time.Time, ok bool, expiry time.Time, err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return due, false, expiry, ErrClosed
	}
	err = q.view("lease", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq, _ := keySeq(k)
			if _, busy := q.leased[seq]; busy {
				continue
			}
			h, err := decodeHeader(v)
			if err != nil {
				due, ok = time.Time{}, true // Lease sets it aside
				return nil
			}
			due, ok = h.NextAttempt, true
			return nil
		}
		return nil
	})
	return due, ok, q.nextExpiry, err
}

// Maintain brings the gauges up to date and rewrites the file when
// deleted images have stayed in its free pages for the wipe interval. The
// drainer calls it on its heartbeat.
func (q *Queue) Maintain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		if !q.deletedAt.IsZero() {
			q.maybeCompactLocked()
		}
		q.publishLocked()
	}
}

func (q *Queue) afterDeleteLocked() {
	if q.deletedAt.IsZero() {
		q.deletedAt = q.opt.now()
	}
	q.maybeCompactLocked()
	q.publishLocked()
	q.file.ReleaseMapped(q.db)
}

// publishLocked stores what the gauges show; the collector computes the
// age and the file size at scrape time.
func (q *Queue) publishLocked() {
	s := &gaugeSnapshot{pending: q.n.pending, dead: q.n.dead, pendingBytes: q.n.pendingBytes, deadBytes: q.n.deadBytes}
	if h, ok, err := q.oldestLocked(); err == nil && ok {
		s.oldest = h.CapturedAt
	}
	q.m.gauges.snap.Store(s)
}

// Close closes the file. Items stay on disk for the next Open.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	q.down.Store(true)
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("close queue: %w", err)
	}
	return nil
}

// Err is nil while the queue is usable, and ErrClosed once it was closed
// or had to give up on a damaged file. It never waits for the queue's
// lock, so that /readyz answers while a compaction or an fsync runs.
func (q *Queue) Err() error {
	if q.down.Load() {
		return ErrClosed
	}
	return nil
}

// Path is the queue file.
func (q *Queue) Path() string { return q.path }

func (q *Queue) update(op string, fn func(tx *bolt.Tx) error) error {
	err := guard(func() error { return q.db.Update(fn) })
	if err != nil && !errors.Is(err, ErrNotFound) {
		q.failedLocked(op, err)
	}
	return err
}

func (q *Queue) view(op string, fn func(tx *bolt.Tx) error) error {
	err := guard(func() error { return q.db.View(fn) })
	if err != nil {
		q.failedLocked(op, err)
	}
	return err
}

func (q *Queue) failedLocked(op string, err error) {
	q.m.errors.WithLabelValues(op).Inc()
	if errors.Is(err, ErrCorrupt) {
		q.recoverLocked(err)
	}
}
