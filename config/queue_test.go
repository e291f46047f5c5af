package config_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskd/kioskd/config"
)

func TestParseQueueKey(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF")
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"hex", hex.EncodeToString(key), true},
		{"HEX", strings.ToUpper(hex.EncodeToString(key)), true},
		{"base64", base64.StdEncoding.EncodeToString(key), true},
		{"base64 unpadded", base64.RawStdEncoding.EncodeToString(key), true},
		{"base64 url", base64.URLEncoding.EncodeToString(key), true},
		{"raw", string(key), true},
		{"short", "abc", false},
		{"31 bytes of base64", base64.StdEncoding.EncodeToString(key[:31]), false},
		{"63 hex", hex.EncodeToString(key)[:63], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := config.ParseQueueKey(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !bytes.Equal(got, key) {
				t.Fatal("decoded to a different key")
			}
			if err != nil && strings.Contains(err.Error(), tc.in) {
				t.Fatal("the error echoes the key")
			}
		})
	}
}

const queueKeyDoc = `
device:
  source_id: lobby-door-1
incode:
  base_url: https://api.incode.example
camera:
  source: /dev/video0
queue:
  encrypt: true
`

func queueKeyEnv(kv map[string]string) config.Env {
	return func(k string) string {
		switch k {
		case "KIOSKD_API_KEY":
			return "test-api-key-1"
		case "KIOSKD_HARDWARE_ID":
			return "test-hardware-id-1"
		}
		return kv[k]
	}
}

func TestQueueKeySources(t *testing.T) {
	// A raw binary key that starts and ends with bytes that look like
	// white space must be kept byte for byte.
	raw := []byte("\n\t key bytes 0123456789abcdef \r\n")
	if len(raw) != 32 {
		t.Fatalf("fixture is %d bytes", len(raw))
	}
	dir := t.TempDir()
	rawFile := filepath.Join(dir, "raw.key")
	if err := os.WriteFile(rawFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	hexFile := filepath.Join(dir, "hex.key")
	if err := os.WriteFile(hexFile, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "queue-key"), raw, 0o400); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, extra string
		env         map[string]string
	}{
		{"raw file", "  key_file: " + rawFile + "\n", nil},
		{"hex file", "  key_file: " + hexFile + "\n", nil},
		{"credential", "", map[string]string{"CREDENTIALS_DIRECTORY": creds}},
		{"environment", "", map[string]string{"KIOSKD_QUEUE_KEY": base64.StdEncoding.EncodeToString(raw)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(queueKeyDoc+tc.extra), queueKeyEnv(tc.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			key, err := config.ParseQueueKey(cfg.Queue.Key)
			if err != nil || !bytes.Equal(key, raw) {
				t.Fatalf("resolved key differs (err %v)", err)
			}
		})
	}
}

func TestQueueKeyProblems(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("secret-but-not-32-bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, extra string
		want        string
	}{
		{"malformed", "  key_file: " + bad + "\n", "must be 32 bytes"},
		{"backoff order", "  key_file: " + bad + "\n  backoff_min: 1m\n  backoff_max: 1s\n", "queue.backoff_max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(queueKeyDoc+tc.extra), queueKeyEnv(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a problem mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-but-not") {
				t.Fatal("a problem echoes the key")
			}
		})
	}
}

// TestQueueKeyGenerated: with no key configured, encryption (on by
// default) uses the per-device key in device.state_dir, which check-config
// names; without a state directory there is no key to use.
func TestQueueKeyGenerated(t *testing.T) {
	doc := func(stateDir string) []byte {
		return []byte("device:\n  source_id: d\n  state_dir: \"" + stateDir + "\"\nincode:\n  base_url: https://api.incode.example\ncamera:\n  source: /dev/video0\n")
	}
	env := queueKeyEnv(nil)
	if _, err := config.Parse(doc(""), env); err == nil || !strings.Contains(err.Error(), "queue.key_file: not set") {
		t.Fatalf("no state dir, no key: err = %v", err)
	}
	dir := t.TempDir()
	cfg, err := config.Parse(doc(dir), env)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, config.GeneratedKeyName)
	if !cfg.Queue.Encrypt || cfg.Queue.Key != "" || cfg.Queue.GeneratedKey != keyPath ||
		!strings.Contains(cfg.Queue.KeySource, keyPath) || !strings.Contains(cfg.Queue.KeySource, "first start") {
		t.Fatalf("before the first start: encrypt %v, key set %v, generated %q, source %q",
			cfg.Queue.Encrypt, cfg.Queue.Key != "", cfg.Queue.GeneratedKey, cfg.Queue.KeySource)
	}
	if cfg.Queue.Path != filepath.Join(dir, config.QueueFileName) {
		t.Errorf("queue.path %q, want it in the state directory", cfg.Queue.Path)
	}
	hexKey := strings.Repeat("ab", config.QueueKeySize)
	if err := os.WriteFile(keyPath, []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Parse(doc(dir), env); err != nil || cfg.Queue.Key != hexKey {
		t.Fatalf("after the first start: err %v, key read %v", err, cfg != nil && cfg.Queue.Key == hexKey)
	}
	// A link in place of the key is refused, not followed.
	other := t.TempDir()
	if err := os.Rename(keyPath, filepath.Join(other, "k")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "k"), keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(doc(dir), env); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("symlinked key: err = %v", err)
	}
}
