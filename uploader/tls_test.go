package uploader

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/incodesim"
)

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	caFile, clientCert, clientKey string
	caPool                        *x509.CertPool
	server                        tls.Certificate
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kioskd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	srvDER, srvKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	cliDER, cliKey := issue(3, "door-1", x509.ExtKeyUsageClientAuth, nil)
	p := pki{
		caFile:     write("ca.pem", "CERTIFICATE", caDER),
		clientCert: write("client.pem", "CERTIFICATE", cliDER),
		clientKey:  write("client-key.pem", "EC PRIVATE KEY", keyDER(cliKey)),
		caPool:     x509.NewCertPool(),
		server:     tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}
	p.caPool.AddCert(ca)
	return p
}

// tlsSim serves the emulator over TLS with the given server settings.
func tlsSim(t *testing.T, p pki, mod func(*tls.Config)) *httptest.Server {
	t.Helper()
	sim, err := incodesim.New(incodesim.Options{APIKey: testAPIKey, DeviceToken: testDeviceToken, Script: []string{"pass", "pass", "pass"}}, discard())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}}
	if mod != nil {
		mod(srv.TLS)
	}
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	srv.StartTLS()
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return srv
}

func TestTLS(t *testing.T) {
	p := newPKI(t)
	mtls := func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.caPool
	}
	cases := []struct {
		name    string
		server  func(*tls.Config)
		client  func(*config.Incode)
		wantErr string
	}{
		{"ca file", nil, func(c *config.Incode) { c.CAFile = p.caFile }, ""},
		{"mutual TLS", mtls, func(c *config.Incode) {
			c.CAFile, c.ClientCertFile, c.ClientKeyFile = p.caFile, p.clientCert, p.clientKey
		}, ""},
		// With TLS 1.3 the server refuses after the client's handshake ends,
		// so the client sees either the alert or a closed connection.
		{"mutual TLS without a client certificate", mtls, func(c *config.Incode) { c.CAFile = p.caFile }, "any"},
		{"system roots do not know the test CA", nil, nil, "certificate"},
		{"server offering only TLS 1.1", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS11 }, func(c *config.Incode) { c.CAFile = p.caFile }, "version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := tlsSim(t, p, c.server)
			cfg := testConfig(srv.URL)
			cfg.MaxRetries = 2
			if c.client != nil {
				c.client(&cfg)
			}
			cl, err := New(cfg, "kioskd/test", discard(), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := cl.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"))
			if c.wantErr == "" {
				if err != nil || resp.Status != StatusPass {
					t.Fatalf("%+v, %v", resp, err)
				}
				return
			}
			if err == nil || (c.wantErr != "any" && !strings.Contains(err.Error(), c.wantErr)) || Reason(err) != "transport" {
				t.Fatalf("want a transport error about %q, got %v", c.wantErr, err)
			}
			if c.name == "system roots do not know the test CA" {
				// A certificate that does not verify is not retried.
				if got := testutil.ToFloat64(cl.m.retries.WithLabelValues("authenticate")); got != 0 {
					t.Errorf("retried %v times", got)
				}
			}
		})
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	p := newPKI(t)
	bad := t.TempDir() + "/bad.pem"
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*config.Incode){
		"http to a remote host":  func(c *config.Incode) { c.BaseURL = "http://incode.example.com" },
		"ftp":                    func(c *config.Incode) { c.BaseURL = "ftp://127.0.0.1" },
		"credentials in the URL": func(c *config.Incode) { c.BaseURL = "https://user:pw@incode.example.com" },
		"no api key":             func(c *config.Incode) { c.APIKey = "" },
		"no device token":        func(c *config.Incode) { c.HardwareID = "" },
		"newline in the key":     func(c *config.Incode) { c.APIKey = "abc\ndef" },
		"missing ca file":        func(c *config.Incode) { c.CAFile = "/nonexistent/ca.pem" },
		"ca file without PEM":    func(c *config.Incode) { c.CAFile = bad },
		"cert without key":       func(c *config.Incode) { c.ClientCertFile = p.clientCert },
		"negative retries":       func(c *config.Incode) { c.MaxRetries = -1 },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig("https://incode.example.com")
			mod(&cfg)
			_, err := New(cfg, "kioskd/test", discard(), prometheus.NewRegistry())
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "abc") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	cfg := testConfig("http://incode.example.com")
	cfg.AllowInsecureHTTP = true
	if _, err := New(cfg, "kioskd/test", discard(), prometheus.NewRegistry()); err != nil {
		t.Errorf("allow_insecure_http: %v", err)
	}
	// Two clients share one registry.
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := New(testConfig("https://incode.example.com"), "kioskd/test", discard(), reg); err != nil {
			t.Fatalf("second client on one registry: %v", err)
		}
	}
}

// Plain httptest handlers play servers the emulator cannot be: a redirect
// and an answer over the size limit.
func TestRedirectAndOversizedAnswer(t *testing.T) {
	hit := make(chan struct{}, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- struct{}{} }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/omni/incode-id/userinfo" {
			http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"PASS","authenticationId":"a","token":"`))
		_, _ = w.Write([]byte(strings.Repeat("x", 2<<20)))
		_, _ = w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	c, err := New(testConfig(srv.URL), "kioskd/test", discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UserInfo(ctxTimeout(t, 5*time.Second), "user-token")
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusFound {
		t.Errorf("redirect: %v", err)
	}
	select {
	case <-hit:
		t.Error("the redirect was followed")
	default:
	}
	_, err = c.Authenticate(ctxTimeout(t, 5*time.Second), faceRequest(t, "coffee.jpg"))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "larger than the limit") || !strings.Contains(err.Error(), "HTTP 200") {
		t.Errorf("oversized answer: %v", err)
	}
}
