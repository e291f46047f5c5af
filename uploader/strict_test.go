package uploader

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStrictAnswers: answers that encoding/json would read as a PASS, or
// that are a PASS and something else at once, are malformed: never a
// decision, counted by endpoint. Clean answers still pass through.
func TestStrictAnswers(t *testing.T) {
	cases := []struct {
		name, body string
		problem    string // "" for a clean answer
	}{
		{"clean PASS", `{"status":"PASS","authenticationId":"a1","correlationId":"c1"}`, ""},
		{"clean FAIL", `{"status":"FAIL","failureReason":"faceMatchFailed"}`, ""},
		{"unknown member", `{"status":"PASS","authenticationId":"a1","newField":{"x":[1,2]}}`, ""},
		{"duplicate status", `{"status":"FAIL","authenticationId":"a1","status":"PASS"}`, `member "status" appears twice`},
		{"duplicate inside error", `{"status":"FAIL","error":{"status":1,"status":2}}`, `member "status" appears twice`},
		{"upper-case names", `{"STATUS":"PASS","AUTHENTICATIONID":"x"}`, `member "STATUS": the API document spells it "status"`},
		{"names differing in case", `{"status":"FAIL","Status":"PASS","authenticationId":"x"}`, `members "status" and "Status" differ only in case`},
		{"unknown members differing in case", `{"status":"FAIL","foo":1,"FOO":2}`, "differ only in case"},
		{"unknown status", `{"status":"OK","authenticationId":"x"}`, `status "OK" is not PASS or FAIL`},
		{"lower-case pass", `{"status":"pass","authenticationId":"x"}`, `is not PASS or FAIL`},
		{"PASS with failureReason", `{"status":"PASS","authenticationId":"x","failureReason":"spoofAttempt"}`, "PASS with a failureReason"},
		{"PASS with error", `{"status":"PASS","authenticationId":"x","error":{"status":500}}`, "PASS with an error"},
		{"status of the wrong type", `{"status":1,"authenticationId":"x"}`, "wrong shape"},
		{"nested too deep", `{"status":"FAIL","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "nested deeper"},
	}
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	c, err := New(testConfig(srv.URL), "kioskd/test", discard(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	malformed := 0
	for _, tc := range cases {
		body = tc.body
		resp, err := c.Authenticate(ctxTimeout(t, 5*time.Second), tinyFace(t))
		if tc.problem == "" {
			if err != nil || resp == nil || !resp.Status.Known() {
				t.Errorf("%s: %+v, %v; want accepted", tc.name, resp, err)
			}
			continue
		}
		malformed++
		if !errors.Is(err, ErrMalformed) || Retryable(err) || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("%s: err %v, want ErrMalformed mentioning %q", tc.name, err, tc.problem)
		}
	}
	if got := testutil.ToFloat64(c.m.malformed.WithLabelValues("authenticate")); got != float64(malformed) {
		t.Errorf("kioskd_uploader_malformed_answers_total{authenticate} = %v, want %d", got, malformed)
	}
}
