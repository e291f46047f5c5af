package uploader

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

func golden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The API document's examples decode into the types and encode back to the
// same fields.
func TestGolden(t *testing.T) {
	cases := map[string]func() any{
		"authenticate_request.json":   func() any { return new(AuthenticateRequest) },
		"authenticate_response.json":  func() any { return new(AuthenticateResponse) },
		"authenticate_fail.json":      func() any { return new(AuthenticateResponse) },
		"authentication.json":         func() any { return new(Authentication) },
		"verification.json":           func() any { return new(Verification) },
		"userinfo.json":               func() any { return new(UserInfo) },
		"error.json":                  func() any { return new(ErrorBody) },
		"webhook_verification.json":   func() any { return new(Webhook) },
		"webhook_authentication.json": func() any { return new(Webhook) },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			raw := golden(t, name)
			v := mk()
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields() // every field of the example has a home
			if err := dec.Decode(v); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("round trip differs:\n want %v\n got  %v", want, got)
			}
		})
	}

	// Spot checks that the values landed in the typed fields.
	// The document's example lists every field at once: a PASS that also
	// carries a failureReason and an error, which kioskd refuses as a
	// decision while still reading every field.
	a, err := decodeAuthenticate(golden(t, "authenticate_response.json"))
	if err == nil || !strings.Contains(err.Error(), "PASS with a failureReason") {
		t.Errorf("the all-fields example was accepted as a decision: %v", err)
	}
	if a == nil || a.Status != StatusPass || a.AuthenticationID != "196c69e0-5566-4f51-9432-dde8e225aAbc3" ||
		a.Error == nil || a.Error.Timestamp.String() != "1688044216480" {
		t.Fatalf("authenticate %+v", a)
	}
	if ms, ok := a.Error.Timestamp.Millis(); !ok || ms != 1688044216480 {
		t.Errorf("string timestamp as millis: %d %v", ms, ok)
	}
	eb := decodeErrorBody(golden(t, "error.json"))
	if eb == nil {
		t.Fatal("the error example is not an error body")
	}
	if ms, ok := eb.Timestamp.Millis(); !ok || ms != 1688044216480 || eb.Status != 500 || eb.Path != "/omni/incode-id/authenticate" {
		t.Errorf("error body %+v", eb)
	}
	u, err := decodeUserInfo(golden(t, "userinfo.json"))
	if err != nil || u.Status != IdentityActive || !u.Status.Known() || u.EmailPreference == nil || !*u.EmailPreference ||
		u.IDAttestation.IDValidation.CustomFields[0].Status != CheckManualPending || len(u.unknownValues()) != 0 {
		t.Errorf("userinfo %+v, %v", u, err)
	}
	f, err := decodeAuthenticate(golden(t, "authenticate_fail.json"))
	if err != nil || f.Status != StatusFail || f.FailureReason != ReasonHasFaceMask {
		t.Errorf("fail %+v, %v", f, err)
	}
}

func TestEnumsKeepUnknownValues(t *testing.T) {
	body := strings.Replace(string(golden(t, "userinfo.json")), `"MANUAL_PENDING"`, `"MANUAL_ESCALATED"`, 1)
	body = strings.Replace(body, `"ACTIVE"`, `"SUSPENDED"`, 1)
	u, err := decodeUserInfo([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != "SUSPENDED" || u.Status.Known() || u.IDAttestation.IDValidation.CustomFields[0].Status != "MANUAL_ESCALATED" {
		t.Errorf("unknown values not kept: %+v", u)
	}
	if got := u.unknownValues(); len(got) != 2 {
		t.Errorf("unknown values reported %v", got)
	}
	for _, r := range FailureReasons() {
		if !r.Known() {
			t.Errorf("%s not known", r)
		}
	}
	for _, s := range []CheckStatus{CheckOK, CheckWarn, CheckFail, CheckUnknown, CheckManual, CheckManualOK, CheckManualFail, CheckManualPending} {
		if !s.Known() {
			t.Errorf("%s not known", s)
		}
	}
	if FailureReason("").Known() || Status("pass").Known() || !AuthenticationStatus("PASS").Passed() {
		t.Error("Known/Passed")
	}
}

// fuzzSeeds are answers a server could plausibly send: the golden files and
// the emulator's scripted faults.
func fuzzSeeds(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "golden"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			f.Add(golden(f, e.Name()))
		}
	}
	for _, s := range []string{
		``, `null`, `[]`, `"PASS"`, `{}`, `{"status":"PASS"}`, `{"status":"PASS","authenticationId":""}`,
		`{"status":"FAIL","failureReason":"wearingHat"}`, `{"status":{"code":"PASS"},"id":["x"],"data":[1,2,3]}`,
		`{"status":"PASS","authenticationId":"a"} trailing`, `{"error":{"timestamp":true}}`,
		`{"error":{"timestamp":"12"},"status":"FAIL"}`, `{"token":"simtok.half","correlationId":"e7a`,
		"\x00\x1f\x8b garbage {\"status\":\"PA", `<!DOCTYPE html><html></html>`, `{"status":"pass"}`,
		`{"status":"ACTIVE","identityId":"x","idAttestation":{"idValidation":{"customFields":[{"status":"NEW"}]}}}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecodeAuthenticate: no body makes the decoder panic, and a body it
// accepts is always a clean PASS (with authenticationId) or FAIL that
// survives a round trip.
func FuzzDecodeAuthenticate(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeAuthenticate(body)
		if err != nil {
			return
		}
		if !r.Status.Known() || (r.Status == StatusPass && r.AuthenticationID == "") {
			t.Fatalf("accepted an untrustworthy decision: %+v", r)
		}
		roundTrip(t, r, decodeAuthenticate)
	})
}

func FuzzDecodeUserInfo(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeUserInfo(body)
		if err != nil {
			return
		}
		_ = r.unknownValues()
		roundTrip(t, r, decodeUserInfo)
	})
}

// FuzzAPIError: whatever a failing server sends, the error's text is short,
// printable and single-line.
func FuzzAPIError(f *testing.F) {
	fuzzSeeds(f)
	c := &Client{apiKey: testAPIKey, deviceToken: testDeviceToken}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, code := range []int{400, 429, 503} {
			resp := newTestResponse(code)
			e := c.apiError(call{method: "POST", path: "/omni/incode-id/authenticate"}, resp, body)
			msg := e.Error()
			if len(msg) > 1200 {
				t.Fatalf("error text of %d bytes", len(msg))
			}
			for _, r := range msg {
				if unicode.IsControl(r) {
					t.Fatalf("control character %q in %q", r, msg)
				}
			}
			if Reason(e) == "" || (len(body) > 0 && e.Body == nil && e.Raw == "") {
				t.Fatalf("body lost: %+v", e)
			}
		}
	})
}

// roundTrip checks that encoding a decoded answer and decoding it again is
// stable.
func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	b1, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	v2, err := decode(b1)
	if err != nil {
		t.Fatalf("decode of own encoding %s: %v", b1, err)
	}
	b2, err := json.Marshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("round trip unstable:\n%s\n%s", b1, b2)
	}
}
