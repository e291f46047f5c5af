package agent

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHostGuard(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	cases := []struct {
		listen  string
		allowed []string
		host    string
		want    int
	}{
		// Port 0: clients use the port the OS chose, not "0".
		{"127.0.0.1:0", nil, "127.0.0.1:40123", 204},
		{"127.0.0.1:0", nil, "localhost:40123", 204},
		{"127.0.0.1:9108", nil, "127.0.0.1:9108", 204},
		{"127.0.0.1:9108", nil, "[::1]:9108", 204},
		{"127.0.0.1:9108", nil, "attacker.example:9108", 421},
		{"127.0.0.1:9108", nil, "attacker.example", 421},
		{"127.0.0.1:9108", nil, "", 421},
		{"0.0.0.0:9108", nil, "anything.example:9108", 204},
		{"0.0.0.0:9108", []string{"door1.lan"}, "door1.lan:9108", 204},
		{"0.0.0.0:9108", []string{"door1.lan"}, "DOOR1.LAN.:9108", 204},
		{"0.0.0.0:9108", []string{"door1.lan"}, "attacker.example:9108", 421},
		{"0.0.0.0:9108", []string{"door1.lan:9000"}, "door1.lan:9000", 204},
		{"0.0.0.0:9108", []string{"door1.lan:9000"}, "door1.lan:9108", 421},
	}
	for _, c := range cases {
		h := HostGuard(c.listen, c.allowed, ok)
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Host = c.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("listen %s allowed %v Host %q: %d, want %d", c.listen, c.allowed, c.host, rec.Code, c.want)
		}
	}
}
