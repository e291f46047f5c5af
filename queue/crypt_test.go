package queue_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/queue"
)

var testKey = bytes.Repeat([]byte{0x5a, 0xc3, 0x17, 0x88}, 8)

func encrypted(cfg config.Queue, key []byte) config.Queue {
	cfg.Encrypt = true
	cfg.Key = hex.EncodeToString(key)
	return cfg
}

// jpegStarts counts places where a photo's own first bytes (the JPEG
// magic FF D8 FF and what follows it in that file) appear in data. The
// bare three magic bytes turn up in any 200 KB of ciphertext about once
// in a hundred runs, so the marker and header bytes after them are
// matched too.
func jpegStarts(data, photo []byte) int {
	return bytes.Count(data, photo[:12])
}

func TestEncryptionAtRest(t *testing.T) {
	photos := [][]byte{testJPEG(t, "chelsea.jpg"), testJPEG(t, "coffee.jpg"), testJPEG(t, "brick.jpg")}
	for _, tc := range []struct {
		name    string
		encrypt bool
	}{{"plain", false}, {"encrypted", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tc.encrypt {
				cfg = encrypted(cfg, testKey)
			}
			q, err := queue.Open(cfg, quiet(), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range photos {
				enqueue(t, q, queue.Item{JPEG: p, Source: "door"})
			}
			q.Close()
			data, err := os.ReadFile(cfg.Path)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range photos {
				starts := jpegStarts(data, p)
				middle := bytes.Contains(data, p[len(p)/2:len(p)/2+64])
				switch {
				case tc.encrypt && (starts > 0 || middle):
					t.Errorf("photo %d readable in the encrypted file (JPEG starts %d, middle found %v)", i, starts, middle)
				case !tc.encrypt && (starts == 0 || !middle):
					t.Errorf("photo %d not found in the plain file: the check above could not fail", i)
				}
			}

			q, _ = open(t, cfg)
			for i, p := range photos {
				it, err := q.Lease()
				if err != nil || it == nil || !bytes.Equal(it.JPEG, p) {
					t.Fatalf("photo %d did not come back intact: %v, %v", i, it, err)
				}
			}
		})
	}
}

func TestWrongKeyIsAClearError(t *testing.T) {
	cfg := encrypted(testConfig(t), testKey)
	filledQueue(t, cfg, 3, 1000)
	before, _ := os.ReadFile(cfg.Path)

	other := bytes.Repeat([]byte{1}, 32)
	_, err := queue.Open(encrypted(cfg, other), quiet(), prometheus.NewRegistry())
	if !errors.Is(err, queue.ErrKeyMismatch) || !contains(err.Error(), "queue key does not match the file") {
		t.Fatalf("Open with another key: %v", err)
	}
	plain := cfg
	plain.Encrypt, plain.Key = false, ""
	if _, err := queue.Open(plain, quiet(), prometheus.NewRegistry()); err == nil || !contains(err.Error(), "encrypted") {
		t.Fatalf("Open without a key: %v", err)
	}
	missing := cfg
	missing.Key = ""
	if _, err := queue.Open(missing, quiet(), prometheus.NewRegistry()); err == nil || !contains(err.Error(), "no key") {
		t.Fatalf("Open with encrypt on and no key: %v", err)
	}
	short := cfg
	short.Key = "too-short"
	if _, err := queue.Open(short, quiet(), prometheus.NewRegistry()); err == nil || contains(err.Error(), "too-short") {
		t.Fatalf("Open with a malformed key: %v (must fail without echoing the key)", err)
	}

	after, _ := os.ReadFile(cfg.Path)
	if !bytes.Equal(before, after) || len(corruptFiles(t, cfg.Path)) != 0 {
		t.Fatal("a key problem changed or moved the file")
	}
	// The same key in another notation opens it.
	b64 := cfg
	b64.Key = base64.StdEncoding.EncodeToString(testKey)
	q, _ := open(t, b64)
	if st, _ := q.Stats(); st.Depth != 3 {
		t.Fatalf("depth %d with the right key", st.Depth)
	}
}

func TestKeyChangeOnEmptyQueue(t *testing.T) {
	cfg := encrypted(testConfig(t), testKey)
	filledQueue(t, cfg, 0, 0)
	// Nothing is sealed with the old key: the new one is recorded.
	q, err := queue.Open(encrypted(cfg, bytes.Repeat([]byte{2}, 32)), quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("key change on an empty queue: %v", err)
	}
	enqueue(t, q, queue.Item{JPEG: fakeJPEG(100, 1)})
	q.Close()
	if _, err := queue.Open(cfg, quiet(), prometheus.NewRegistry()); !errors.Is(err, queue.ErrKeyMismatch) {
		t.Fatalf("old key after the change: %v", err)
	}
}

func TestEncryptionEnabledLater(t *testing.T) {
	cfg := testConfig(t)
	filledQueue(t, cfg, 1, 500)
	q, _ := open(t, encrypted(cfg, testKey))
	enqueue(t, q, queue.Item{JPEG: fakeJPEG(600, 9)})
	for _, want := range []int{500, 600} {
		it, err := q.Lease()
		if err != nil || it == nil || len(it.JPEG) != want {
			t.Fatalf("Lease: %v, %v; want a %d-byte image", it, err, want)
		}
	}
}

func TestMetadataOnly(t *testing.T) {
	cfg := encrypted(testConfig(t), testKey)
	filledQueue(t, cfg, 2, 1000)
	noKey := cfg
	noKey.Key = ""
	q, err := queue.Open(noKey, quiet(), prometheus.NewRegistry(), queue.WithMetadataOnly())
	if err != nil {
		t.Fatalf("metadata-only Open without the key: %v", err)
	}
	if st, _ := q.Stats(); st.Depth != 2 {
		t.Fatalf("depth %d", st.Depth)
	}
	if list, _ := q.List(false); len(list) != 2 {
		t.Fatalf("list %v", list)
	}
	if it, err := q.Lease(); err == nil || it != nil {
		t.Fatal("Lease worked without the key")
	}
	if _, err := q.Enqueue(t.Context(), queue.Item{JPEG: fakeJPEG(10, 1)}); err == nil {
		t.Fatal("Enqueue worked without the key")
	}
	q.Close()
	// Nothing was dead-lettered or re-keyed: the service opens it as before.
	q, _ = open(t, cfg)
	if st, _ := q.Stats(); st.Depth != 2 || st.DeadLetters != 0 {
		t.Fatalf("after a metadata-only session: %+v", st)
	}
}
