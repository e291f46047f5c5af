package incodesim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"io"
	"net/http"
	"strings"
	"time"
)

// Record is one request the emulator received, as GET /_sim/requests lists
// it. Secrets are redacted and image bytes are never kept: only their size,
// hash and dimensions.
type Record struct {
	Seq        uint64              `json:"seq"`
	Time       time.Time           `json:"time"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Endpoint   string              `json:"endpoint,omitempty"`
	Headers    map[string][]string `json:"headers"`
	RemoteAddr string              `json:"remoteAddr"`
	// APIKey is "valid", "invalid" or "missing"; HardwareID is "device",
	// "user", "invalid" or "missing" (empty when not checked).
	APIKey           string     `json:"apiKey,omitempty"`
	HardwareID       string     `json:"hardwareId,omitempty"`
	IdempotencyKey   string     `json:"idempotencyKey,omitempty"`
	BodyBytes        int64      `json:"bodyBytes"`
	Source           string     `json:"source,omitempty"`
	Image            *ImageInfo `json:"image,omitempty"`
	Script           string     `json:"script,omitempty"` // the script item played, if any
	Outcome          string     `json:"outcome"`
	Message          string     `json:"message,omitempty"`
	Status           int        `json:"status"` // 0 when no answer was sent
	Identity         string     `json:"identity,omitempty"`
	AuthenticationID string     `json:"authenticationId,omitempty"`
	DurationMs       int64      `json:"durationMs"`

	img image.Image // the decoded upload, until the decision
}

// ImageInfo describes an uploaded image without its bytes.
type ImageInfo struct {
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
	Format string `json:"format,omitempty"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
}

var secretHeaders = []string{"X-Api-Key", "X-Incode-Hardware-Id", "Authorization", "Proxy-Authorization", "Cookie"}

func (s *Sim) newRecord(r *http.Request) *Record {
	h := r.Header.Clone()
	for _, k := range secretHeaders {
		if vs, ok := h[k]; ok {
			for i := range vs {
				vs[i] = "REDACTED"
			}
		}
	}
	return &Record{
		Time:           s.now(),
		Method:         r.Method,
		Path:           r.URL.Path,
		Headers:        h,
		RemoteAddr:     r.RemoteAddr,
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
}

func (s *Sim) addRecord(rec *Record, start time.Time) {
	rec.img = nil
	rec.DurationMs = time.Since(start).Milliseconds()
	s.mu.Lock()
	s.seq++
	rec.Seq = s.seq
	s.records = append(s.records, *rec)
	if len(s.records) > s.opts.MaxRecords {
		s.records = s.records[len(s.records)-s.opts.MaxRecords:]
	}
	s.mu.Unlock()
	s.log.Info("request", "method", rec.Method, "path", rec.Path, "status", rec.Status,
		"outcome", rec.Outcome, "source", rec.Source, "duration_ms", rec.DurationMs)
}

// Requests returns what the emulator received, oldest first.
func (s *Sim) Requests() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record{}, s.records...)
}

// Webhooks returns the webhook delivery attempts, oldest first.
func (s *Sim) Webhooks() []WebhookDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WebhookDelivery{}, s.hooks...)
}

// SetScript replaces the script.
func (s *Sim) SetScript(items []string) error {
	sc, err := parseScript(items)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.script = sc
	s.mu.Unlock()
	return nil
}

// Reset forgets requests, the script, stored authentications, issued user
// tokens, idempotency keys and the webhook log. Enrollment stays.
func (s *Sim) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records, s.script, s.hooks = nil, script{}, nil
	s.tokens = map[string]*identity{}
	s.auths, s.authOrder = map[string]authRecord{}, nil
	s.idem, s.idemOrder = map[string]cachedAnswer{}, nil
}

// control serves the /_sim endpoints, which tests and integrators use to
// look inside the emulator and steer it.
func (s *Sim) control(w http.ResponseWriter, r *http.Request) {
	allow := func(m string) bool {
		if r.Method != m {
			w.Header().Set("Allow", m)
			s.writeError(w, r, nil, http.StatusMethodNotAllowed, "use "+m)
			return false
		}
		return true
	}
	switch r.URL.Path {
	case "/_sim/requests":
		if allow(http.MethodGet) {
			s.writeJSON(w, nil, http.StatusOK, s.Requests())
		}
	case "/_sim/webhooks":
		if allow(http.MethodGet) {
			s.writeJSON(w, nil, http.StatusOK, s.Webhooks())
		}
	case "/_sim/status":
		if allow(http.MethodGet) {
			s.mu.Lock()
			st := map[string]any{"inFlight": s.inFlight.Load(), "hanging": s.hanging.Load(),
				"enrolled": len(s.ids), "requests": len(s.records), "script": s.script.texts()}
			s.mu.Unlock()
			s.writeJSON(w, nil, http.StatusOK, st)
		}
	case "/_sim/identities":
		if allow(http.MethodGet) {
			s.writeJSON(w, nil, http.StatusOK, s.identities())
		}
	case "/_sim/reset":
		if allow(http.MethodPost) {
			s.Reset()
			w.WriteHeader(http.StatusNoContent)
		}
	case "/_sim/script":
		switch r.Method {
		case http.MethodGet:
			s.mu.Lock()
			t := s.script.texts()
			s.mu.Unlock()
			s.writeJSON(w, nil, http.StatusOK, map[string]any{"script": t})
		case http.MethodPost:
			items, err := readScriptBody(r)
			if err == nil {
				err = s.SetScript(items)
			}
			if err != nil {
				s.writeError(w, r, nil, http.StatusBadRequest, err.Error())
				return
			}
			s.mu.Lock()
			t := s.script.texts()
			s.mu.Unlock()
			s.writeJSON(w, nil, http.StatusOK, map[string]any{"script": t})
		default:
			w.Header().Set("Allow", "GET, POST")
			s.writeError(w, r, nil, http.StatusMethodNotAllowed, "use GET or POST")
		}
	case "/_sim/enroll":
		if allow(http.MethodPost) {
			s.enroll(w, r)
		}
	case "/_sim/revoke":
		// ?verificationId=ID revokes an identity, &restore=1 makes it ACTIVE again.
		if allow(http.MethodPost) {
			s.mu.Lock()
			id := s.findVerificationLocked(r.URL.Query().Get("verificationId"))
			if id != nil {
				id.Revoked.Store(r.URL.Query().Get("restore") == "")
			}
			s.mu.Unlock()
			if id == nil {
				s.writeError(w, r, nil, http.StatusNotFound, "no identity with that verificationId")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		s.writeError(w, r, nil, http.StatusNotFound, "no such control endpoint (see docs/incode-sim.md)")
	}
}

// readScriptBody accepts a JSON array of items, a JSON object
// {"script": [...]}, or plain text with comma-separated items.
func readScriptBody(r *http.Request) ([]string, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return nil, nil
	case data[0] == '[':
		var items []string
		err := json.Unmarshal(data, &items)
		return items, err
	case data[0] == '{':
		var v struct {
			Script []string `json:"script"`
		}
		err := json.Unmarshal(data, &v)
		return v.Script, err
	}
	return []string{string(data)}, nil
}

type identityInfo struct {
	Name           string `json:"name"`
	File           string `json:"file,omitempty"`
	VerificationID string `json:"verificationId"`
}

func (s *Sim) identities() []identityInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []identityInfo{}
	for _, id := range s.ids {
		out = append(out, identityInfo{Name: id.FullName, File: id.File, VerificationID: id.VerificationID})
	}
	return out
}

// enroll adds a person at run time: {"name": "...", "base64Image": "..."}.
// It answers with the verification id and sends verification.completed.
func (s *Sim) enroll(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name        string `json:"name"`
		Base64Image string `json:"base64Image"`
	}
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, int64(s.lim.maxBase64)+64<<10))
	if err == nil {
		err = json.Unmarshal(data, &req)
	}
	if err != nil || strings.TrimSpace(req.Name) == "" || req.Base64Image == "" {
		s.writeError(w, r, nil, http.StatusBadRequest, "want a JSON body with name and base64Image")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(req.Base64Image)
	if err != nil {
		s.writeError(w, r, nil, http.StatusBadRequest, "base64Image is not base64")
		return
	}
	img, _, err := decodeImage(raw, s.lim)
	if err != nil {
		s.writeError(w, r, nil, http.StatusBadRequest, "base64Image: "+err.Error())
		return
	}
	id, err := newIdentity(strings.Join(strings.Fields(req.Name), " "), raw, img, s.now())
	if err != nil {
		s.writeError(w, r, nil, http.StatusInternalServerError, err.Error())
		return
	}
	s.mu.Lock()
	if old := s.findVerificationLocked(id.VerificationID); old != nil {
		s.mu.Unlock()
		s.writeJSON(w, nil, http.StatusOK, identityInfo{Name: old.FullName, File: old.File, VerificationID: old.VerificationID})
		return
	}
	// Labels are positions in s.ids, so the face is added under s.mu.
	err = id.enrollFace(s.faces, len(s.ids))
	if err == nil {
		s.ids = append(s.ids, id)
	}
	s.mu.Unlock()
	if err != nil {
		s.writeError(w, r, nil, http.StatusInternalServerError, "enroll: "+err.Error())
		return
	}
	s.log.Info("enrolled", "name", id.FullName, "verification_id", id.VerificationID)
	s.notify(eventVerificationCompleted, "verification", id.VerificationID, id.Token)
	s.writeJSON(w, nil, http.StatusCreated, identityInfo{Name: id.FullName, VerificationID: id.VerificationID})
}

func (s *Sim) findVerificationLocked(vid string) *identity {
	for _, id := range s.ids {
		if id.VerificationID == vid {
			return id
		}
	}
	return nil
}

// The documents the GET endpoints answer with, in the API document's shape.

type nameDoc struct {
	FullName  string `json:"fullName"`
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
}

type checkDoc struct {
	Key    string `json:"key,omitempty"`
	Name   string `json:"name,omitempty"`
	Value  string `json:"value"`
	Status string `json:"status"`
}

func verificationDoc(id *identity) any {
	return map[string]any{
		"id":        id.VerificationID,
		"createdAt": id.CreatedAt.Unix(),
		"status":    "VERIFIED",
		"data": map[string]any{
			"name":        nameDoc{FullName: id.FullName},
			"email":       email(id.FullName),
			"phone":       "+15555550100",
			"dateOfBirth": "631152000000",
		},
	}
}

func userInfoDoc(id *identity) any {
	ok := func(key, name, value string) checkDoc { return checkDoc{key, name, value, "OK"} }
	status := "ACTIVE"
	if id.Revoked.Load() {
		status = "REVOKED"
	}
	return map[string]any{
		"status":          status,
		"identityId":      id.VerificationID,
		"name":            nameDoc{FullName: id.FullName, FirstName: id.FirstName, LastName: id.LastName},
		"dateOfBirth":     "631152000000",
		"phone":           "+15555550100",
		"sex":             "U",
		"email":           email(id.FullName),
		"city":            "Houston",
		"country":         "USA",
		"curp":            "",
		"emailPreference": false,
		"idImagesInfo": map[string]string{
			"frontIdImageUrl": "https://incode-sim.invalid/id/" + id.VerificationID + "/front.jpg",
			"backIdImageUrl":  "https://incode-sim.invalid/id/" + id.VerificationID + "/back.jpg",
		},
		"idAttestation": map[string]any{
			"idValidation": map[string]any{
				"photoSecurityAndQuality": []checkDoc{ok("tamperCheck", "Tamper check", "PASSED")},
				"idSpecific":              []checkDoc{ok("documentExpired", "Document expired", "NO")},
				"customFields":            []checkDoc{},
				"appliedRule":             checkDoc{Value: "default", Status: "OK"},
				"overall":                 checkDoc{Value: "100", Status: "OK"},
			},
			"overall": checkDoc{Value: "100", Status: "OK"},
		},
	}
}
