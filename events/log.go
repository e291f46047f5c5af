package events

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/kioskd/kioskd/config"
)

// ErrLocked is returned when another process held the log longer than the
// lock timeout.
var ErrLocked = errors.New("events: the log is locked by another process")

var (
	bucketEvents  = []byte("events")
	bucketMeta    = []byte("meta")
	bucketCursors = []byte("cursors")
	keyBytes      = []byte("bytes")
)

// Option changes how Open builds a Log (tests).
type Option func(*Log)

// WithClock replaces time.Now for retention by age and event times.
func WithClock(now func() time.Time) Option { return func(l *Log) { l.now = now } }

// WithLockTimeout sets how long an operation waits for another process
// (a reader) to release the file.
func WithLockTimeout(d time.Duration) Option { return func(l *Log) { l.lockTimeout = d } }

// Log is the durable event log. The file is opened for each operation and
// closed after it, never held: bbolt locks the whole file while it is
// open, and `kioskd events list` must be able to read it while the daemon
// runs. Readers take the file in short chunks, so a writer waits
// milliseconds at most. Its methods are safe for concurrent use.
type Log struct {
	path        string
	cfg         config.Events
	log         *slog.Logger
	now         func() time.Time
	lockTimeout time.Duration

	mu      sync.Mutex // one open of the file at a time in this process
	lastSeq atomic.Uint64
	count   atomic.Int64
	bytes   atomic.Int64

	wakeMu sync.Mutex
	wakes  []chan struct{}

	appended  *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	appendErr prometheus.Counter
}

// Open creates or opens the log at path, checks it and registers its
// metrics. The file is closed again before Open returns.
func Open(path string, cfg config.Events, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Log, error) {
	l := &Log{path: path, cfg: cfg, log: log, now: time.Now, lockTimeout: 2 * time.Second}
	for _, o := range opts {
		o(l)
	}
	if path == "" {
		return nil, errors.New("events: no log path (set events.path or device.state_dir)")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("events: state directory: %w", err)
	}
	err := l.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketMeta, bucketCursors} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		l.loadCounts(tx)
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.appended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kioskd_events_appended_total",
		Help: "Access events written to the log, by kind.",
	}, []string{"kind"})
	for _, k := range kinds {
		l.appended.WithLabelValues(string(k))
	}
	l.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kioskd_events_dropped_total",
		Help: "Events removed from the log by retention, by reason (age, count, size).",
	}, []string{"reason"})
	for _, r := range []string{"age", "count", "size"} {
		l.dropped.WithLabelValues(r)
	}
	l.appendErr = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kioskd_events_append_errors_total",
		Help: "Events that could not be written to the log.",
	})
	cs := []prometheus.Collector{l.appended, l.dropped, l.appendErr,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kioskd_events_log_bytes",
			Help: "Size of the event log file.",
		}, l.fileSize),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kioskd_events_log_events",
			Help: "Events kept in the log.",
		}, func() float64 { return float64(l.count.Load()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("events: register metrics: %w", err)
		}
	}
	return l, nil
}

func (l *Log) fileSize() float64 {
	fi, err := os.Stat(l.path)
	if err != nil {
		return 0
	}
	return float64(fi.Size())
}

func (l *Log) loadCounts(tx *bolt.Tx) {
	b := tx.Bucket(bucketEvents)
	l.count.Store(int64(b.Stats().KeyN))
	l.lastSeq.Store(b.Sequence())
	if v := tx.Bucket(bucketMeta).Get(keyBytes); len(v) == 8 {
		l.bytes.Store(int64(binary.BigEndian.Uint64(v)))
	}
}

// Path is the log file.
func (l *Log) Path() string { return l.path }

// LastSeq is the sequence number of the newest event appended.
func (l *Log) LastSeq() uint64 { return l.lastSeq.Load() }

// update runs fn in one write transaction on a freshly opened file and
// closes it; the commit is fsync'd before update returns.
func (l *Log) update(fn func(tx *bolt.Tx) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	db, err := bolt.Open(l.path, 0o600, &bolt.Options{Timeout: l.lockTimeout, FreelistType: bolt.FreelistMapType, OpenFile: openNoFollow})
	if err != nil {
		return openError(err)
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("events: close: %w", cerr)
	}
	return err
}

func (l *Log) view(fn func(tx *bolt.Tx) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return viewFile(l.path, l.lockTimeout, fn)
}

func viewFile(path string, timeout time.Duration, fn func(tx *bolt.Tx) error) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout, OpenFile: openNoFollow})
	if err != nil {
		return openError(err)
	}
	defer db.Close()
	return db.View(fn)
}

// openNoFollow refuses a symbolic link as the log file (ELOOP): kioskd
// writes its state directory only, never where a link points.
func openNoFollow(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag|syscall.O_NOFOLLOW, perm)
}

func openError(err error) error {
	if errors.Is(err, bolterrors.ErrTimeout) {
		return ErrLocked
	}
	return fmt.Errorf("events: open log: %w", err)
}

// Append writes ev durably (fsync'd) and returns it with its Seq, and its
// ID when it had none. The credential number is masked before it is
// stored. Retention runs in the same transaction.
func (l *Log) Append(ctx context.Context, ev Event) (Event, error) {
	if err := ctx.Err(); err != nil {
		return ev, fmt.Errorf("events: append: %w", err)
	}
	if ev.Time.IsZero() {
		ev.Time = l.now()
	}
	ev.Time = ev.Time.UTC()
	if ev.ID == "" {
		ev.ID = NewID(ev.Time)
	}
	if ev.Credential != nil {
		c := *ev.Credential
		c.Number = MaskNumber(c.Number)
		ev.Credential = &c
	}
	if err := ev.check(); err != nil {
		l.appendErr.Inc()
		return ev, fmt.Errorf("events: append: %w", err)
	}
	var drops map[string]int
	err := l.update(func(tx *bolt.Tx) error {
		// A file deleted under a running kioskd comes back empty: the
		// buckets are made again rather than the event refused.
		b, err := tx.CreateBucketIfNotExists(bucketEvents)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if b.Sequence() == 0 && l.lastSeq.Load() > 0 {
			l.log.Warn("the event log was removed; a new one is started", "path", l.path)
			l.count.Store(0)
			l.bytes.Store(0)
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		ev.Seq = seq
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), data); err != nil {
			return err
		}
		bytes := l.bytes.Load() + int64(len(data))
		count := l.count.Load() + 1
		drops, count, bytes, err = l.retain(b, count, bytes, 1)
		if err != nil {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(bytes))
		if err := meta.Put(keyBytes, v[:]); err != nil {
			return err
		}
		tx.OnCommit(func() {
			l.count.Store(count)
			l.bytes.Store(bytes)
			l.lastSeq.Store(seq)
		})
		return nil
	})
	if err != nil {
		l.appendErr.Inc()
		return ev, fmt.Errorf("events: append: %w", err)
	}
	l.appended.WithLabelValues(string(ev.Kind)).Inc()
	for r, n := range drops {
		l.dropped.WithLabelValues(r).Add(float64(n))
	}
	l.wake()
	return ev, nil
}

// retain deletes the oldest events while the log is over its bounds,
// keeping at least keep events (Append keeps the one it just wrote).
func (l *Log) retain(b *bolt.Bucket, count, bytes, keep int64) (map[string]int, int64, int64, error) {
	drops := map[string]int{}
	cutoff := l.now().Add(-l.cfg.Retention)
	c := b.Cursor()
	for k, v := c.First(); k != nil && count > keep; k, v = c.First() {
		reason := ""
		switch {
		case l.cfg.MaxEvents > 0 && count > int64(l.cfg.MaxEvents):
			reason = "count"
		case l.cfg.MaxBytes > 0 && bytes > int64(l.cfg.MaxBytes):
			reason = "size"
		case l.cfg.Retention > 0 && eventTime(v).Before(cutoff):
			reason = "age"
		}
		if reason == "" {
			break
		}
		if err := c.Delete(); err != nil {
			return nil, 0, 0, err
		}
		drops[reason]++
		count--
		bytes -= int64(len(v))
	}
	return drops, count, bytes, nil
}

// Expire applies retention without appending: a quiet door must still
// forget people on time.
func (l *Log) Expire() error {
	var drops map[string]int
	err := l.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return errors.New("the log has no events bucket")
		}
		var (
			count, bytes = l.count.Load(), l.bytes.Load()
			err          error
		)
		drops, count, bytes, err = l.retain(b, count, bytes, 0)
		if err != nil || len(drops) == 0 {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(max(bytes, 0)))
		if err := tx.Bucket(bucketMeta).Put(keyBytes, v[:]); err != nil {
			return err
		}
		tx.OnCommit(func() {
			l.count.Store(count)
			l.bytes.Store(bytes)
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("events: expire: %w", err)
	}
	for r, n := range drops {
		l.dropped.WithLabelValues(r).Add(float64(n))
	}
	return nil
}

func eventTime(v []byte) time.Time {
	var e struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(v, &e) != nil {
		// An unreadable record is not worth keeping past its neighbours.
		return time.Time{}
	}
	return e.Time
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Read returns up to limit events with Seq greater than after, oldest first.
func (l *Log) Read(after uint64, limit int) ([]Event, error) {
	var out []Event
	err := l.view(func(tx *bolt.Tx) error {
		var err error
		out, err = readTx(tx, after, limit)
		return err
	})
	return out, err
}

func readTx(tx *bolt.Tx, after uint64, limit int) ([]Event, error) {
	b := tx.Bucket(bucketEvents)
	if b == nil {
		return nil, nil
	}
	var out []Event
	c := b.Cursor()
	for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			// Skip, do not stop: one bad record must not hide the rest.
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// Cursor is the Seq of the last event the named sink has delivered.
func (l *Log) Cursor(name string) (uint64, error) {
	var seq uint64
	err := l.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketCursors); b != nil {
			if v := b.Get([]byte(name)); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return seq, err
}

// SetCursor records that the named sink has delivered every event up to seq.
func (l *Log) SetCursor(name string, seq uint64) error {
	return l.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCursors)
		if err != nil {
			return err
		}
		return b.Put([]byte(name), seqKey(seq))
	})
}

// subscribe returns a channel that receives a value after appends.
func (l *Log) subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	l.wakeMu.Lock()
	l.wakes = append(l.wakes, ch)
	l.wakeMu.Unlock()
	return ch
}

func (l *Log) wake() {
	l.wakeMu.Lock()
	defer l.wakeMu.Unlock()
	for _, ch := range l.wakes {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Reader reads a log that another process may be writing: it opens the
// file read-only for each chunk, so the writer is never held up for long.
type Reader struct {
	path    string
	timeout time.Duration
}

// NewReader reads the log at path; timeout bounds each wait for the lock.
func NewReader(path string, timeout time.Duration) (*Reader, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return &Reader{path: path, timeout: timeout}, nil
}

// readChunk is how many events one read-only open returns.
const readChunk = 500

// Each calls fn for every event from since (inclusive) to until
// (exclusive; zero times are open ends), oldest first, stopping at fn's
// first error.
func (r *Reader) Each(since, until time.Time, fn func(Event) error) error {
	var after uint64
	for {
		var chunk []Event
		err := viewFile(r.path, r.timeout, func(tx *bolt.Tx) error {
			var err error
			chunk, err = readTx(tx, after, readChunk)
			return err
		})
		if err != nil {
			return err
		}
		if len(chunk) == 0 {
			return nil
		}
		for _, e := range chunk {
			after = e.Seq
			if !since.IsZero() && e.Time.Before(since) {
				continue
			}
			if !until.IsZero() && !e.Time.Before(until) {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// RunRetention applies retention every interval until ctx ends, so that
// events age out even when nothing new is appended.
func (l *Log) RunRetention(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := l.Expire(); err != nil {
				l.log.Warn("event retention", "err", err)
			}
		}
	}
}
