package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kioskd/kioskd/config"
)

// secretFixture is a directory with secret files and a credentials
// directory laid out as systemd's LoadCredential= leaves it.
type secretFixture struct {
	dir, creds string
}

func newSecretFixture(t *testing.T) secretFixture {
	t.Helper()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	return secretFixture{dir: dir, creds: creds}
}

func (f secretFixture) file(t *testing.T, name, content string, mode os.FileMode) string {
	return writeFile(t, f.dir, name, content, mode)
}

func (f secretFixture) credential(t *testing.T, name, content string) {
	writeFile(t, f.creds, name, content, 0o400)
}

// doc is a valid file apart from the secret settings given.
func secretDoc(extra string) string {
	return `
device:
  source_id: lobby-door-1
incode:
  base_url: https://api.incode.example
` + extra + `
camera:
  source: /dev/video0
`
}

func TestSecretSources(t *testing.T) {
	type result struct{ api, hw, queue string }
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f secretFixture) (incode, queue string, env map[string]string)
		want  result
	}{
		{
			name: "files",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				k := f.file(t, "k", apiKey+"\n", 0o600)
				h := f.file(t, "h", "  "+hardwareID+"\r\n", 0o600)
				return "  api_key_file: " + k + "\n  hardware_id_file: " + h, "", nil
			},
			want: result{apiKey, hardwareID, ""},
		},
		{
			name: "credentials directory",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				f.credential(t, "api-key", apiKey)
				f.credential(t, "hardware-id", hardwareID+"\n")
				f.credential(t, "queue-key", queueKey+"\n")
				return "", "queue:\n  encrypt: true", map[string]string{"CREDENTIALS_DIRECTORY": f.creds}
			},
			want: result{apiKey, hardwareID, queueKey},
		},
		{
			name: "environment",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				return "", "", map[string]string{"KIOSKD_API_KEY": " " + apiKey + "\n", "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: result{apiKey, hardwareID, ""},
		},
		{
			name: "file beats credential beats environment",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				k := f.file(t, "k", apiKey, 0o600)
				f.credential(t, "api-key", "credential-loses")
				f.credential(t, "hardware-id", hardwareID)
				return "  api_key_file: " + k, "", map[string]string{
					"CREDENTIALS_DIRECTORY": f.creds,
					"KIOSKD_API_KEY":        "env-loses",
					"KIOSKD_HARDWARE_ID":    "env-loses",
				}
			},
			want: result{apiKey, hardwareID, ""},
		},
		{
			name: "environment fills a credential that is absent",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				f.credential(t, "api-key", apiKey)
				return "", "", map[string]string{"CREDENTIALS_DIRECTORY": f.creds, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: result{apiKey, hardwareID, ""},
		},
		{
			name: "queue key from a file only when encryption is on",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				q := f.file(t, "q", queueKey, 0o600)
				return "", "queue:\n  encrypt: true\n  key_file: " + q, map[string]string{"KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: result{apiKey, hardwareID, queueKey},
		},
		{
			name: "queue key ignored when encryption is off",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				f.credential(t, "queue-key", queueKey)
				return "", "queue:\n  encrypt: false", map[string]string{"CREDENTIALS_DIRECTORY": f.creds, "KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: result{apiKey, hardwareID, ""},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSecretFixture(t)
			incode, queue, env := tc.setup(t, f)
			cfg, err := config.Parse([]byte(secretDoc(incode+"\n"+queue)), envOf(env))
			assertNoSecrets(t, cfg, err)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := result{cfg.Incode.APIKey, cfg.Incode.HardwareID, cfg.Queue.Key}
			if got != tc.want {
				// Say which one is wrong without printing values.
				t.Errorf("api key ok=%v, hardware id ok=%v, queue key ok=%v",
					got.api == tc.want.api, got.hw == tc.want.hw, got.queue == tc.want.queue)
			}
			if len(cfg.Warnings) != 0 {
				t.Errorf("unexpected warnings: %q", cfg.Warnings)
			}
		})
	}
}

func TestSecretProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the incode and queue settings and the environment.
		setup func(t *testing.T, f secretFixture) (string, string, map[string]string)
		want  []string // each must appear in one problem
	}{
		{
			name: "missing everywhere",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				return "", "", map[string]string{"CREDENTIALS_DIRECTORY": f.creds}
			},
			want: []string{"incode.api_key_file: not set", "incode.hardware_id_file: not set", "KIOSKD_API_KEY", "hardware-id"},
		},
		{
			name: "secret file is a directory",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				return "  api_key_file: " + f.creds, "", map[string]string{"KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: []string{"incode.api_key_file", "is a directory"},
		},
		{
			name: "credential is a directory",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				if err := os.Mkdir(filepath.Join(f.creds, "hardware-id"), 0o700); err != nil {
					t.Fatal(err)
				}
				return "", "", map[string]string{"CREDENTIALS_DIRECTORY": f.creds, "KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: []string{"incode.hardware_id_file", "credential hardware-id", "is a directory"},
		},
		{
			name: "empty secret file",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				k := f.file(t, "k", " \n\t\n", 0o600)
				return "  api_key_file: " + k, "", map[string]string{"KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: []string{"incode.api_key_file", "is empty"},
		},
		{
			// An empty placeholder left by install.sh: the credential must be
			// filled in, not silently replaced by the environment.
			name: "empty credential",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				f.credential(t, "api-key", "")
				return "", "", map[string]string{"CREDENTIALS_DIRECTORY": f.creds, "KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: []string{"incode.api_key_file", "credential api-key", "is empty"},
		},
		{
			name: "missing secret file",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				return "  hardware_id_file: " + filepath.Join(f.dir, "nope"), "", map[string]string{"KIOSKD_API_KEY": apiKey, "KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: []string{"incode.hardware_id_file", "no such file"},
		},
		{
			name: "secret file too large",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				k := f.file(t, "k", strings.Repeat(apiKey, 10000), 0o600)
				return "  api_key_file: " + k, "", map[string]string{"KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: []string{"incode.api_key_file", "larger than"},
		},
		{
			// A device would be read forever; a FIFO would block.
			name: "secret file is a device",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				return "  api_key_file: /dev/zero", "", map[string]string{"KIOSKD_HARDWARE_ID": hardwareID}
			},
			want: []string{"incode.api_key_file", "not a regular file"},
		},
		{
			// A key with a line break inside would be an invalid HTTP header.
			name: "secret with control characters",
			setup: func(t *testing.T, f secretFixture) (string, string, map[string]string) {
				k := f.file(t, "k", apiKey+"\n"+apiKey+"\n", 0o600)
				return "  api_key_file: " + k, "", map[string]string{"KIOSKD_HARDWARE_ID": hardwareID + "\x00"}
			},
			want: []string{"incode.api_key_file", "incode.hardware_id_file", "control character"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSecretFixture(t)
			incode, queue, env := tc.setup(t, f)
			cfg, err := config.Parse([]byte(secretDoc(incode+"\n"+queue)), envOf(env))
			assertNoSecrets(t, cfg, err)
			ps := problemsOf(t, err)
			if len(ps) == 0 {
				t.Fatal("no problem reported")
			}
			for _, w := range tc.want {
				if !containsProblem(ps, w) {
					t.Errorf("no problem mentions %q: %q", w, ps)
				}
			}
		})
	}
}

// TestWorldReadableSecretWarns: the documented behaviour is to warn and go
// on, so a box with a sloppy chmod still opens the door.
func TestWorldReadableSecretWarns(t *testing.T) {
	f := newSecretFixture(t)
	k := f.file(t, "k", apiKey, 0o644)
	h := f.file(t, "h", hardwareID, 0o640) // group-readable only: no warning
	doc := secretDoc("  api_key_file: " + k + "\n  hardware_id_file: " + h)
	cfg, err := config.Parse([]byte(doc), envOf(nil))
	assertNoSecrets(t, cfg, err)
	if err != nil {
		t.Fatalf("a world-readable secret must not stop kioskd: %v", err)
	}
	if len(cfg.Warnings) != 1 {
		t.Fatalf("got warnings %q, want exactly one", cfg.Warnings)
	}
	w := cfg.Warnings[0]
	if !strings.Contains(w, "incode.api_key_file") || !strings.Contains(w, k) || !strings.Contains(w, "0644") {
		t.Errorf("warning %q does not name the field, the file and its mode", w)
	}
	if cfg.Incode.APIKey != apiKey {
		t.Error("world-readable secret not used")
	}
}
