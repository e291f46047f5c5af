package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/capture"
	"github.com/kioskd/kioskd/config"
	"github.com/kioskd/kioskd/display"
	"github.com/kioskd/kioskd/uploader"
)

// answerServer is a test Incode API whose authenticate and userinfo
// answers are whatever the test sets.
type answerServer struct {
	mu         sync.Mutex
	auth, info []byte
}

func (s *answerServer) set(auth, info []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth, s.info = auth, info
}

func (s *answerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body := s.info
	if strings.HasSuffix(r.URL.Path, "/authenticate") {
		body = s.auth
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// pathRig runs the whole decision path (the real client over HTTP, the
// policy, the door, the screen and the decision line) for arbitrary
// answers.
type pathRig struct {
	srv  *answerServer
	a    *Agent
	door *countingDoor
	scr  *screen
	logs *bytes.Buffer
}

func newPathRig(t testing.TB) *pathRig {
	t.Helper()
	srv := &answerServer{}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := config.Default()
	cfg.Device.SourceID = "door-1"
	cfg.Incode.BaseURL, cfg.Incode.APIKey, cfg.Incode.HardwareID = hs.URL, "key-123456", "device-123456"
	cfg.Incode.MaxRetries = 0
	cfg.Incode.LiveTimeout = 5 * time.Second
	cfg.Display.GreetByName = true
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	api, err := uploader.New(cfg.Incode, "kioskd/test", log, reg)
	if err != nil {
		t.Fatal(err)
	}
	r := &pathRig{srv: srv, door: &countingDoor{}, scr: &screen{}, logs: &logs}
	r.a, err = New(cfg, Deps{Camera: idleCamera{}, Selector: idleSelector{}, API: api, Door: r.door, Display: r.scr, Log: log, Reg: reg})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// attempt runs one live decision and returns its decision lines.
func (r *pathRig) attempt(t testing.TB, auth, info []byte) []map[string]any {
	t.Helper()
	r.srv.set(auth, info)
	r.logs.Reset()
	now := time.Now()
	r.a.decide(context.Background(), &capture.Shot{JPEG: []byte{0xFF, 0xD8, 0xFF, 0xD9}, FirstSeen: now, CapturedAt: now})
	var lines []map[string]any
	for _, l := range strings.Split(r.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "decision" {
			lines = append(lines, m)
		}
	}
	return lines
}

// fullValue builds a JSON value with every field of t set, from the Go
// response type itself, so that a field added to the type is covered.
func fullValue(t reflect.Type) any {
	if t == reflect.TypeFor[uploader.Timestamp]() {
		return "1688044216480"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return fullValue(t.Elem())
	case reflect.Struct:
		obj := map[string]any{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "-" && name != "" {
				obj[name] = fullValue(f.Type)
			}
		}
		return obj
	case reflect.Slice:
		return []any{fullValue(t.Elem())}
	case reflect.String:
		return "x"
	case reflect.Bool:
		return true
	case reflect.Int, reflect.Int64:
		return 7
	}
	panic("no value for " + t.String())
}

// wrongType is a JSON value of another type than v.
func wrongType(v any) any {
	switch v.(type) {
	case string:
		return 12
	case map[string]any:
		return []any{"x"}
	case []any:
		return map[string]any{"x": 1}
	default:
		return "x"
	}
}

// variant is one answer with one field absent, null or of the wrong type.
type variant struct {
	path string // dotted field path; [] for the first element
	how  string // absent, null, wrong type
	body []byte
}

// variants walks every field of base (recursively) and returns the
// answers with that field absent, null and of the wrong type.
func variants(t *testing.T, base map[string]any) []variant {
	var out []variant
	var walk func(path string, get func(root map[string]any) map[string]any)
	walk = func(path string, get func(root map[string]any) map[string]any) {
		for key, val := range get(base) {
			p := strings.TrimPrefix(path+"."+key, ".")
			for _, how := range []string{"absent", "null", "wrong type"} {
				root := deepCopy(t, base)
				obj := get(root)
				switch how {
				case "absent":
					delete(obj, key)
				case "null":
					obj[key] = nil
				default:
					obj[key] = wrongType(val)
				}
				b, err := json.Marshal(root)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, variant{p, how, b})
			}
			switch v := val.(type) {
			case map[string]any:
				walk(p, func(root map[string]any) map[string]any { return get(root)[key].(map[string]any) })
			case []any:
				if m, ok := v[0].(map[string]any); ok && m != nil {
					walk(p+"[]", func(root map[string]any) map[string]any { return get(root)[key].([]any)[0].(map[string]any) })
				}
			}
		}
	}
	walk("", func(root map[string]any) map[string]any { return root })
	return out
}

func deepCopy(t *testing.T, v map[string]any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEveryAnswerFieldAbsentNullOrWrong: for every field of the
// authenticate and userinfo answers, generated from their Go types, the
// field absent, null or of the wrong type never panics and gives exactly
// one decision line. The door opens only when the authenticate answer is
// still a well-formed PASS (status and authenticationId intact, nothing of
// the wrong type); a broken userinfo answer only loses the greeting.
func TestEveryAnswerFieldAbsentNullOrWrong(t *testing.T) {
	r := newPathRig(t)
	passBase := fullValue(reflect.TypeFor[uploader.AuthenticateResponse]()).(map[string]any)
	passBase["status"], passBase["authenticationId"] = "PASS", "auth-1"
	delete(passBase, "failureReason")
	delete(passBase, "error")
	failBase := fullValue(reflect.TypeFor[uploader.AuthenticateResponse]()).(map[string]any)
	failBase["status"], failBase["failureReason"] = "FAIL", "faceMatchFailed"
	infoBase := fullValue(reflect.TypeFor[uploader.UserInfo]()).(map[string]any)
	infoBase["status"] = "ACTIVE"
	infoBase["name"].(map[string]any)["firstName"] = "Ana"

	// The bases themselves.
	if ds := r.attempt(t, mustJSON(t, passBase), mustJSON(t, infoBase)); len(ds) != 1 || ds[0]["result"] != "PASS" || r.door.pass != 1 {
		t.Fatalf("base PASS: %v, door %d", ds, r.door.pass)
	}
	if got := r.scr.last(); got.State != display.StatePass || got.Name != "Ana" {
		t.Fatalf("base PASS screen %+v", got)
	}

	cases := 0
	for _, v := range variants(t, passBase) {
		cases++
		opened := r.door.pass
		ds := r.attempt(t, v.body, mustJSON(t, infoBase))
		if len(ds) != 1 {
			t.Fatalf("PASS with %s %s: %d decision lines", v.path, v.how, len(ds))
		}
		required := v.path == "status" || v.path == "authenticationId"
		wantOpen := !required && v.how != "wrong type"
		if got := r.door.pass - opened; got != map[bool]int{true: 1, false: 0}[wantOpen] {
			t.Errorf("PASS with %s %s: door opened %d times, decision %v", v.path, v.how, got, ds[0])
		}
		if !wantOpen && (ds[0]["result"] != "ERROR" || ds[0]["reason"] != "malformed") {
			t.Errorf("PASS with %s %s: decision %v, want ERROR malformed", v.path, v.how, ds[0])
		}
	}
	for _, v := range variants(t, failBase) {
		cases++
		opened := r.door.pass
		ds := r.attempt(t, v.body, mustJSON(t, infoBase))
		if len(ds) != 1 || r.door.pass != opened {
			t.Fatalf("FAIL with %s %s: %d decision lines, door opened %d", v.path, v.how, len(ds), r.door.pass-opened)
		}
	}
	for _, v := range variants(t, infoBase) {
		cases++
		opened := r.door.pass
		ds := r.attempt(t, mustJSON(t, passBase), v.body)
		if len(ds) != 1 || ds[0]["result"] != "PASS" || r.door.pass != opened+1 {
			t.Fatalf("userinfo with %s %s: %v, door opened %d", v.path, v.how, ds, r.door.pass-opened)
		}
		// The greeting is best effort: a broken name, or an answer of the
		// wrong shape, loses it; nothing else does.
		mayLose := strings.HasPrefix(v.path, "name") || v.how == "wrong type"
		if name := r.scr.last().Name; name != "Ana" && !mayLose {
			t.Errorf("userinfo with %s %s: greeted %q, want Ana", v.path, v.how, r.scr.last().Name)
		}
	}
	t.Logf("%d answers", cases)
}

// FuzzDecisionPath drives the whole decision path with arbitrary
// authenticate and userinfo bodies from a test server: no panic, exactly
// one decision line per attempt, and the door opens only for a
// well-formed PASS that the decision line calls PASS.
func FuzzDecisionPath(f *testing.F) {
	f.Add([]byte(`{"status":"PASS","authenticationId":"a","token":"t"}`), []byte(`{"status":"ACTIVE","name":{"firstName":"Ana"}}`))
	f.Add([]byte(`{"status":"PASS","authenticationId":"a","token":"t"}`), []byte(`{"status":"ACTIVE"}`))
	f.Add([]byte(`{"status":"PASS","authenticationId":"a","token":"t"}`), []byte(`{"status":"ACTIVE","name":null}`))
	f.Add([]byte(`{"status":"FAIL","authenticationId":"a","status":"PASS"}`), []byte(`{}`))
	f.Add([]byte(`{"STATUS":"PASS","AUTHENTICATIONID":"x"}`), []byte(`{}`))
	f.Add([]byte(`{"status":"PASS","authenticationId":"x","failureReason":"spoofAttempt"}`), []byte(`{}`))
	f.Add([]byte(`{"status":"FAIL","failureReason":"faceMatchFailed"}`), []byte(`{}`))
	f.Add([]byte(`not json`), []byte(`[]`))
	r := newPathRig(f)
	f.Fuzz(func(t *testing.T, auth, info []byte) {
		opened := r.door.pass
		ds := r.attempt(t, auth, info)
		if len(ds) != 1 {
			t.Fatalf("%d decision lines for %q", len(ds), auth)
		}
		if r.door.pass == opened {
			return
		}
		var m map[string]any
		if ds[0]["result"] != "PASS" || json.Unmarshal(auth, &m) != nil || m["status"] != "PASS" || m["authenticationId"] == "" ||
			m["failureReason"] != nil || m["error"] != nil {
			t.Fatalf("door opened for %q (decision %v)", auth, ds[0])
		}
	})
}
