package decision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/kioskd/kioskd/internal/promtest"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/decision"
	"github.com/kioskd/kioskd/uploader"
)

// orderSink notes what the log held when it was called: a sink must be
// done before the decision line is written.
type orderSink struct {
	logs    *bytes.Buffer
	got     []decision.Record
	logSeen []string
	err     error
}

func (s *orderSink) Record(_ context.Context, r decision.Record) error {
	s.got = append(s.got, r)
	s.logSeen = append(s.logSeen, s.logs.String())
	return s.err
}

func TestRecorderSinksFirstThenOneLine(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	first := &orderSink{logs: &logs, err: errors.New("disk full")}
	second := &orderSink{logs: &logs}
	rec := decision.NewRecorder(slog.New(slog.NewJSONHandler(&logs, nil)), reg, first)
	rec.AddSink(second)

	dev := config.Device{SourceID: "door-1", Mode: config.ModeDoor}
	answer := &uploader.AuthenticateResponse{Status: uploader.StatusPass, AuthenticationID: "auth-9", CorrelationID: "corr-9", VerificationID: "ver-9", Token: "secret-token"}
	out := decision.Decide(decision.Input{Answer: answer, InTime: true, Mode: dev.Mode})
	r := decision.NewRecord(time.Unix(100, 0), dev, decision.KindLive, out, answer)
	r.CaptureID, r.Latency, r.Name, r.IdentityID = "cap-1", 1500*time.Millisecond, "Ana", "id-7"
	rec.Record(context.Background(), r, "upload_ms", 12.5)

	for _, s := range []*orderSink{first, second} {
		if len(s.got) != 1 || s.got[0].CorrelationID != "corr-9" || s.got[0].VerificationID != "ver-9" || !s.got[0].Unlocked {
			t.Fatalf("sink got %+v", s.got)
		}
		if strings.Contains(s.logSeen[0], `"msg":"decision"`) {
			t.Errorf("the decision line was written before a sink had the record")
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] == "decision" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d decision lines in %s", len(lines), logs.String())
	}
	d := lines[0]
	for k, want := range map[string]any{"result": "PASS", "reason": "", "source": "door-1", "deferred": false, "latency_ms": 1500.0,
		"authentication_id": "auth-9", "correlation_id": "corr-9", "verification_id": "ver-9", "identity_id": "id-7", "capture_id": "cap-1", "upload_ms": 12.5} {
		if d[k] != want {
			t.Errorf("decision line %s = %v, want %v", k, d[k], want)
		}
	}
	if strings.Contains(logs.String(), "secret-token") || strings.Contains(logs.String(), "Ana") {
		t.Errorf("token or name logged: %s", logs.String())
	}
	if got := promtest.Value(t, reg, "kioskd_decision_sink_errors_total"); got != 1 {
		t.Errorf("sink errors %v, want 1", got)
	}
}
