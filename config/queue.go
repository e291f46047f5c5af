package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Queue is the durable retry queue.
type Queue struct {
	Path        string        `yaml:"path"`
	MaxItems    int           `yaml:"max_items"`
	MaxBytes    ByteSize      `yaml:"max_bytes"`
	TTL         time.Duration `yaml:"ttl"`
	Encrypt     bool          `yaml:"encrypt"`  // AES-256-GCM at rest
	KeyFile     string        `yaml:"key_file"` // 32 bytes, raw, hex or base64
	BackoffMin  time.Duration `yaml:"backoff_min"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	MaxAttempts int           `yaml:"max_attempts"` // then dead-letter
	// RetryAfterMax caps how long the drainer honours a server's
	// Retry-After before trying again.
	RetryAfterMax time.Duration `yaml:"retry_after_max"`

	Key string `yaml:"-"` // resolved secret; never logged
	// KeySource says where Key comes from (a file, a credential, the
	// environment or the generated per-device key); check-config prints it.
	KeySource string `yaml:"-"`
	// GeneratedKey is the per-device key file in device.state_dir used when
	// no key is configured; `kioskd run` creates it at first start.
	GeneratedKey string `yaml:"-"`
}

const generatedKeySource = "generated per-device key "

// UseGeneratedKey records the per-device key that kioskd run has just
// made, as a later load of the configuration (a reload) reads it.
func (q *Queue) UseGeneratedKey(key string) {
	q.Key, q.KeySource = key, generatedKeySource+q.GeneratedKey
}

// GeneratedKeyName is the per-device queue key's file in device.state_dir.
const GeneratedKeyName = "queue.key"

// QueueFileName is the queue file in device.state_dir when queue.path is
// not set.
const QueueFileName = "queue.db"

func (q *Queue) defaults() {
	// Path is empty: it resolves to <device.state_dir>/queue.db.
	// Faces are biometric data: sealed at rest unless turned off.
	q.Encrypt = true
	q.MaxItems = 1000
	q.MaxBytes = 512 << 20
	q.TTL = 24 * time.Hour
	q.BackoffMin = time.Second
	q.BackoffMax = 5 * time.Minute
	// Enough retries at backoff_max to outlast the TTL: an outage ends in
	// delivery or a counted ttl drop, not in a dead letter nobody drains.
	q.MaxAttempts = 1000
	q.RetryAfterMax = 15 * time.Minute
}

func (q *Queue) validate(p *Problems) {
	if q.Path == "" {
		p.add("queue.path: required (or set device.state_dir)")
	} else if strings.HasSuffix(q.Path, "/") {
		p.add("queue.path: %q is a directory; name the file, e.g. %squeue.db", q.Path, q.Path)
	}
	if q.MaxItems < 1 {
		p.add("queue.max_items: must be at least 1, got %d", q.MaxItems)
	}
	if q.MaxBytes < 1<<20 {
		p.add("queue.max_bytes: must be at least 1MiB, got %d", int64(q.MaxBytes))
	}
	positive(p, "queue.ttl", q.TTL)
	positive(p, "queue.backoff_min", q.BackoffMin)
	positive(p, "queue.backoff_max", q.BackoffMax)
	if q.BackoffMin > 0 && q.BackoffMax > 0 && q.BackoffMax < q.BackoffMin {
		p.add("queue.backoff_max: %s is shorter than queue.backoff_min %s", q.BackoffMax, q.BackoffMin)
	}
	if q.MaxAttempts < 1 {
		p.add("queue.max_attempts: must be at least 1, got %d", q.MaxAttempts)
	}
	positive(p, "queue.retry_after_max", q.RetryAfterMax)
	// A missing key was reported when secrets were resolved; a key of the
	// wrong shape is reported here, without its value.
	if q.Encrypt && q.Key != "" {
		if _, err := ParseQueueKey(q.Key); err != nil {
			p.add("queue.key_file: %v", err)
		}
	}
}

// QueueKeySize is the AES-256 key size.
const QueueKeySize = 32

// ParseQueueKey decodes the queue encryption key: 64 hex characters, the
// base64 (standard or URL alphabet, padded or not) of 32 bytes, or 32 raw
// bytes. The error never contains the key.
func ParseQueueKey(s string) ([]byte, error) {
	if len(s) == 2*QueueKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == QueueKeySize {
			return b, nil
		}
	}
	if len(s) == QueueKeySize {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("the queue key must be 32 bytes: 64 hex characters, base64 of 32 bytes, or 32 raw bytes (got %d characters)", len(s))
}

// resolveStatePaths puts the files that device.state_dir holds there
// unless their own setting names another place.
func (c *Config) resolveStatePaths() {
	if c.Queue.Path == "" && c.Device.StateDir != "" {
		c.Queue.Path = filepath.Join(c.Device.StateDir, QueueFileName)
	}
}

// resolveQueueKey finds the queue key like readSecret does, but keeps a
// secret file of exactly 32 bytes as it is: a raw binary key may begin or
// end with bytes that look like white space.
func (c *Config) resolveQueueKey(env Env, p *Problems) {
	q := &c.Queue
	if !q.Encrypt {
		return
	}
	path, field := q.KeyFile, "queue.key_file"
	q.KeySource = "queue.key_file " + path
	if path == "" {
		if dir := env("CREDENTIALS_DIRECTORY"); dir != "" {
			cred := filepath.Join(dir, "queue-key")
			// An empty credential is the unit's placeholder: no key given.
			if fi, err := os.Stat(cred); err == nil && fi.Size() > 1 {
				path, field = cred, "queue.key_file: credential queue-key"
				q.KeySource = "systemd credential queue-key"
			}
		}
	}
	if path == "" {
		if v := strings.TrimSpace(env("KIOSKD_QUEUE_KEY")); v != "" {
			q.Key, q.KeySource = v, "$KIOSKD_QUEUE_KEY"
			return
		}
		if c.Device.StateDir == "" {
			p.add("queue.key_file: not set (give queue.key_file, a systemd credential \"queue-key\", $KIOSKD_QUEUE_KEY, or device.state_dir for a generated key)")
			return
		}
		// The per-device key: made by `kioskd run` at first start (0600),
		// read here when it exists. Never a link: it is a secret.
		q.GeneratedKey = filepath.Join(c.Device.StateDir, GeneratedKeyName)
		q.KeySource = generatedKeySource + q.GeneratedKey
		fi, err := os.Lstat(q.GeneratedKey)
		switch {
		case err != nil:
			// Missing, or the state directory is: kioskd run makes the
			// key, or reports why it cannot (and runs without a queue).
			q.KeySource += " (created by kioskd run at first start)"
			return
		case !fi.Mode().IsRegular():
			p.add("queue.key_file: generated key %s is not a regular file", q.GeneratedKey)
			return
		}
		path, field = q.GeneratedKey, "queue.key_file: generated key"
	}
	if _, err := readSecretFile(path); err != nil { // existence, size, emptiness
		p.add("%s: %v", field, err)
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		p.add("%s: secret file: %v", field, err)
		return
	}
	if q.KeyFile != "" {
		if w := worldReadable(path); w != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: %s", field, w))
		}
	}
	if len(raw) == QueueKeySize {
		q.Key = string(raw)
		return
	}
	q.Key = strings.TrimSpace(string(raw))
}
