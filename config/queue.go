package config

import "time"

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

	Key string `yaml:"-"` // resolved secret; never logged
}

func (q *Queue) defaults() {
	q.Path = "/var/lib/kioskd/queue.db"
	q.MaxItems = 1000
	q.MaxBytes = 512 << 20
	q.TTL = 24 * time.Hour
	q.BackoffMin = time.Second
	q.BackoffMax = 5 * time.Minute
	q.MaxAttempts = 50
}

func (q *Queue) validate(p *Problems) {
	if q.Path == "" {
		p.add("queue.path: required")
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
	if q.MaxAttempts < 1 {
		p.add("queue.max_attempts: must be at least 1, got %d", q.MaxAttempts)
	}
}
