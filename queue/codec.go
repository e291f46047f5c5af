package queue

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The file holds four buckets. Metadata and image bytes live apart so that
// listing, retry bookkeeping and dead-lettering rewrite a few hundred bytes,
// not the whole image, and never touch the image pages at all.
var (
	bucketPending = []byte("pending") // seq -> header
	bucketDead    = []byte("dead")    // seq -> header
	bucketBlobs   = []byte("blobs")   // seq -> bucket {"d": raw JPEG, or nonce+AES-GCM ciphertext}
	bucketMeta    = []byte("meta")    // format version, key check value; its sequence numbers items

	keyFormat   = []byte("format")
	keyKeyCheck = []byte("keycheck")
)

// blobStore keeps each image in a bucket of its own. bbolt writes a leaf
// node whole and keeps up to four values in one, so images stored side by
// side would be rewritten whenever a neighbour is added or removed; in
// their own bucket they are written once and only freed afterwards.
type blobStore struct{ b *bolt.Bucket }

var keyData = []byte("d")

func blobsOf(tx *bolt.Tx) blobStore { return blobStore{tx.Bucket(bucketBlobs)} }

func (s blobStore) Get(k []byte) []byte {
	if b := s.b.Bucket(k); b != nil {
		return b.Get(keyData)
	}
	return nil
}

func (s blobStore) Put(k, blob []byte) error {
	if s.b.Bucket(k) != nil {
		if err := s.b.DeleteBucket(k); err != nil {
			return err
		}
	}
	b, err := s.b.CreateBucket(k)
	if err != nil {
		return err
	}
	return b.Put(keyData, blob)
}

func (s blobStore) Delete(k []byte) error {
	if s.b.Bucket(k) == nil {
		return s.b.Delete(k) // not a bucket: a stray value, if anything
	}
	return s.b.DeleteBucket(k)
}

// ForEach visits every image key.
func (s blobStore) ForEach(fn func(k []byte) error) error {
	return s.b.ForEach(func(k, _ []byte) error { return fn(k) })
}

// formatVersion is written to the meta bucket and to every header. Raise
// it whenever a kioskd of this version could misread a file written by the
// next: an older kioskd then refuses the newer file (checkFormat) instead of
// dropping or mangling its items, which matters when a package is
// downgraded.
const formatVersion = 1

// checkFormat compares the file's stored format version with this build's.
func checkFormat(v []byte) error {
	if len(v) != 1 {
		return fmt.Errorf("%w: the format version is %d bytes long, want 1: move the file aside", ErrFormat, len(v))
	}
	if v[0] > formatVersion {
		return fmt.Errorf("%w: queue file format %d is newer than this kioskd supports (%d): upgrade kioskd, or move the file aside",
			ErrFormat, v[0], formatVersion)
	}
	if v[0] < formatVersion {
		return fmt.Errorf("%w: queue file format %d is older than any this kioskd reads (%d): move the file aside", ErrFormat, v[0], formatVersion)
	}
	return nil
}

// maxErrorLen bounds the last error kept with an item.
const maxErrorLen = 512

// header is an item's metadata as stored: a version byte then JSON.
type header struct {
	ID          string    `json:"id"`
	CapturedAt  time.Time `json:"captured_at"`
	EnqueuedAt  time.Time `json:"enqueued_at"`
	Source      string    `json:"source,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
	DeadAt      time.Time `json:"dead_at,omitzero"`
	Size        int       `json:"size"`   // JPEG bytes
	Stored      int       `json:"stored"` // blob bytes on disk
	CRC         uint32    `json:"crc"`    // CRC-32C of the stored blob
	Encrypted   bool      `json:"enc,omitempty"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (h *header) encode() ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	return append([]byte{formatVersion}, b...), nil
}

func decodeHeader(v []byte) (header, error) {
	var h header
	if len(v) < 2 {
		return h, errors.New("decode header: too short")
	}
	if v[0] != formatVersion {
		return h, fmt.Errorf("decode header: unknown version %d", v[0])
	}
	if err := json.Unmarshal(v[1:], &h); err != nil {
		return h, fmt.Errorf("decode header: %w", err)
	}
	return h, nil
}

// expiry is when TTL removes the item. The earlier of capture and enqueue
// time counts, so that a capture time from a clock running ahead cannot
// keep a face on disk longer than the TTL.
func (h *header) expiry(ttl time.Duration) time.Time {
	t := h.CapturedAt
	if h.EnqueuedAt.Before(t) {
		t = h.EnqueuedAt
	}
	return t.Add(ttl)
}

func (h *header) item(seq uint64) Item {
	return Item{
		Seq: seq, ID: h.ID, CapturedAt: h.CapturedAt, Source: h.Source, Attempts: h.Attempts,
		NextAttempt: h.NextAttempt, LastError: h.LastError,
		EnqueuedAt: h.EnqueuedAt, DeadAt: h.DeadAt, Size: h.Size,
	}
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func keySeq(k []byte) (uint64, bool) {
	if len(k) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// sealer encrypts image bytes with AES-256-GCM. The additional data binds
// a ciphertext to its key and item ID, so blobs cannot be swapped between
// items unnoticed.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("queue key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("queue key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain, ad []byte) ([]byte, error) {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return s.aead.Seal(out, out, plain, ad), nil
}

func (s *sealer) open(blob, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(blob) < n+s.aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	return s.aead.Open(nil, blob[:n], blob[n:], ad)
}

// keyCheckPlain is sealed under the key and kept in the meta bucket: opening
// it proves that the configured key is the one the items were sealed with.
var keyCheckPlain = []byte("kioskd queue key check v1")

func blobAD(seq uint64, id string) []byte { return append(seqKey(seq), id...) }

// validID accepts what can travel as an Idempotency-Key header value.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so the stored JSON stays valid UTF-8.
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
