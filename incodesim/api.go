package incodesim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const apiPrefix = "/omni/incode-id/"

// route is what a path resolves to.
type route struct {
	endpoint string
	method   string
	id       string // authentication/:id, verification/:id
}

func resolve(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, apiPrefix)
	if !ok {
		return route{}, false
	}
	switch rest {
	case "authenticate":
		return route{endpoint: epAuthenticate, method: http.MethodPost}, true
	case "userinfo":
		return route{endpoint: epUserInfo, method: http.MethodGet}, true
	}
	for _, ep := range []string{epAuthentication, epVerification} {
		if id, ok := strings.CutPrefix(rest, ep+"/"); ok && id != "" && !strings.Contains(id, "/") {
			return route{endpoint: ep, method: http.MethodGet, id: id}, true
		}
	}
	return route{}, false
}

// authRequest is the body of an authentication.
type authRequest struct {
	Face struct {
		Base64Image string `json:"base64Image"`
		ImageURL    string `json:"imageUrl"`
		Template    string `json:"template"`
	} `json:"face"`
	Source string `json:"source"`
}

// authResponse is the answer of an authentication.
type authResponse struct {
	Token            string `json:"token,omitempty"`
	CorrelationID    string `json:"correlationId,omitempty"`
	AuthenticationID string `json:"authenticationId,omitempty"`
	Status           string `json:"status"`
	Source           string `json:"source,omitempty"`
	FailureReason    string `json:"failureReason,omitempty"`
	VerificationID   string `json:"verificationId,omitempty"`
}

// authRecord is a stored authentication, as authentication/:id answers.
type authRecord struct {
	ID             string `json:"id"`
	CreatedAt      int64  `json:"createdAt"`
	Status         string `json:"status"`
	SourceID       string `json:"sourceId,omitempty"`
	VerificationID string `json:"verificationId,omitempty"`
}

// apiError is an answer decided before the endpoint's work.
type apiError struct {
	status int
	msg    string
}

func (s *Sim) api(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	rec := s.newRecord(r)
	defer func() { s.addRecord(rec, start) }()

	rt, ok := resolve(r.URL.Path)
	var aerr *apiError
	var req *authRequest
	switch {
	case !ok:
		aerr = &apiError{http.StatusNotFound, "no such endpoint"}
	case r.Method != rt.method:
		w.Header().Set("Allow", rt.method)
		aerr = &apiError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed here; use %s", r.Method, rt.method)}
	default:
		rec.Endpoint = rt.endpoint
		aerr = s.checkHeaders(r, rt, rec)
		if aerr == nil && rt.endpoint == epAuthenticate {
			req, aerr = s.readAuthenticate(r, rec)
		}
	}
	if !s.sleep(r.Context(), s.opts.Latency) {
		rec.Outcome = "client gone"
		return
	}
	if aerr != nil {
		s.writeError(w, r, rec, aerr.status, aerr.msg)
		return
	}

	if rt.endpoint == epAuthenticate && rec.IdempotencyKey != "" {
		if c, ok := s.replay(rec.IdempotencyKey); ok {
			rec.Outcome = "replay:" + c.outcome
			s.writeRaw(w, rec, http.StatusOK, "application/json", c.body)
			return
		}
	}
	it, scripted := s.pop(rt.endpoint)
	if scripted {
		rec.Script = it.text
		if it.kind == kindDelay {
			if !s.sleep(r.Context(), it.delay) {
				rec.Outcome = "client gone"
				return
			}
			scripted = false // then decide normally
		}
	}
	if scripted && s.fault(w, r, rec, it) {
		return
	}
	switch rt.endpoint {
	case epAuthenticate:
		var forced *item
		if scripted {
			forced = &it
		}
		s.authenticate(w, r, rec, req, forced)
	case epAuthentication:
		s.getAuthentication(w, r, rec, rt.id)
	case epVerification:
		s.getVerification(w, r, rec, rt.id)
	case epUserInfo:
		s.getUserInfo(w, r, rec)
	}
}

// checkHeaders applies the API document's header rules in order:
// api-version, x-api-key (403), X-Incode-Hardware-Id (401), Accept (406).
func (s *Sim) checkHeaders(r *http.Request, rt route, rec *Record) *apiError {
	if r.Header.Get("api-version") != "1.0" {
		return &apiError{http.StatusBadRequest, "api-version header must be 1.0"}
	}
	key := r.Header.Get("x-api-key")
	switch {
	case key == "":
		rec.APIKey = "missing"
		return &apiError{http.StatusForbidden, "missing x-api-key"}
	case !equalSecret(key, s.opts.APIKey):
		rec.APIKey = "invalid"
		return &apiError{http.StatusForbidden, "invalid x-api-key"}
	}
	rec.APIKey = "valid"
	tok := r.Header.Get("X-Incode-Hardware-Id")
	device := equalSecret(tok, s.opts.DeviceToken)
	user := s.userFor(tok) != nil
	switch {
	case tok == "":
		rec.HardwareID = "missing"
	case device:
		rec.HardwareID = "device"
	case user:
		rec.HardwareID = "user"
	default:
		rec.HardwareID = "invalid"
	}
	var ok bool
	switch rt.endpoint {
	case epAuthenticate:
		ok = device
	case epUserInfo:
		ok = user
	default:
		ok = device || user
	}
	if !ok {
		want := "the device token"
		if rt.endpoint == epUserInfo {
			want = "a user token from a PASS or a verification"
		}
		return &apiError{http.StatusUnauthorized, "missing or invalid X-Incode-Hardware-Id (want " + want + ")"}
	}
	if !acceptsJSON(r.Header.Values("Accept")) {
		return &apiError{http.StatusNotAcceptable, "only application/json can be served"}
	}
	return nil
}

// acceptsJSON reports whether the Accept headers allow application/json.
func acceptsJSON(values []string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(q, 64); err != nil || f <= 0 {
					continue
				}
			}
			switch mt {
			case "*/*", "application/*", "application/json":
				return true
			}
		}
	}
	return false
}

// readAuthenticate reads and checks an authentication body: JSON with a
// face whose base64Image is a decodable JPEG or PNG within the limits.
func (s *Sim) readAuthenticate(r *http.Request, rec *Record) (*authRequest, *apiError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &apiError{http.StatusBadRequest, "Content-Type must be application/json"}
	}
	limit := int64(s.lim.maxBase64) + 64<<10
	var body io.Reader = http.MaxBytesReader(nil, r.Body, limit)
	if s.opts.BandwidthBps > 0 {
		body = newRateReader(r.Context(), body, s.opts.BandwidthBps)
	}
	data, err := io.ReadAll(body)
	rec.BodyBytes = int64(len(data))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{http.StatusBadRequest, fmt.Sprintf("request body is larger than %d bytes", limit)}
		}
		return nil, &apiError{http.StatusBadRequest, "reading request body: " + err.Error()}
	}
	var req authRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&req); err != nil {
		return nil, &apiError{http.StatusBadRequest, "body is not a JSON authentication request: " + err.Error()}
	}
	if dec.More() {
		return nil, &apiError{http.StatusBadRequest, "body has data after the JSON object"}
	}
	rec.Source = req.Source
	f := req.Face
	switch {
	case f.Base64Image == "" && (f.ImageURL != "" || f.Template != ""):
		return nil, &apiError{http.StatusBadRequest, "incode-sim accepts face.base64Image only (imageUrl and template are not emulated)"}
	case f.Base64Image == "":
		return nil, &apiError{http.StatusBadRequest, "face.base64Image is required"}
	case len(f.Base64Image) > s.lim.maxBase64:
		return nil, &apiError{http.StatusBadRequest, fmt.Sprintf("face.base64Image is larger than %d bytes", s.lim.maxBase64)}
	}
	raw, err := base64.StdEncoding.DecodeString(f.Base64Image)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(f.Base64Image); err != nil {
			return nil, &apiError{http.StatusBadRequest, "face.base64Image is not base64"}
		}
	}
	sum := sha256.Sum256(raw)
	rec.Image = &ImageInfo{Bytes: len(raw), SHA256: hex.EncodeToString(sum[:])}
	img, format, err := decodeImage(raw, s.lim)
	if err != nil {
		return nil, &apiError{http.StatusBadRequest, "face.base64Image: " + err.Error()}
	}
	rec.Image.Format = format
	rec.Image.Width, rec.Image.Height = img.Bounds().Dx(), img.Bounds().Dy()
	rec.img = img
	return &req, nil
}

// authenticate decides and answers an authentication.
func (s *Sim) authenticate(w http.ResponseWriter, r *http.Request, rec *Record, req *authRequest, forced *item) {
	var who *identity
	reason := "faceMatchFailed"
	noAuthID := false
	switch {
	case forced == nil:
		who = s.match(rec.img)
	case forced.kind == kindPass:
		who = s.scriptedIdentity()
	case forced.kind == kindNoAuthID:
		who, noAuthID = s.scriptedIdentity(), true
	case forced.kind == kindFail:
		reason = forced.reason
	}
	rec.img = nil
	now := s.now()
	resp := authResponse{CorrelationID: newUUID(), Source: req.Source}
	if !noAuthID {
		resp.AuthenticationID = newUUID()
	}
	stored := authRecord{ID: resp.AuthenticationID, CreatedAt: now.Unix(), SourceID: req.Source}
	if who != nil {
		tok, err := randomToken()
		if err != nil {
			s.writeError(w, r, rec, http.StatusInternalServerError, "cannot issue a token")
			return
		}
		resp.Token, resp.Status, resp.VerificationID = tok, "PASS", who.VerificationID
		stored.Status, stored.VerificationID = "pass", who.VerificationID
		rec.Outcome, rec.Identity = "PASS", who.FullName
		if noAuthID {
			rec.Outcome = "noauthid"
		}
	} else {
		resp.Status, resp.FailureReason = "FAIL", reason
		stored.Status = "fail"
		rec.Outcome = "FAIL:" + reason
	}
	body, err := json.Marshal(resp)
	if err != nil {
		s.writeError(w, r, rec, http.StatusInternalServerError, "cannot encode the answer")
		return
	}
	s.mu.Lock()
	if who != nil {
		s.tokens[resp.Token] = who
	}
	if !noAuthID {
		s.auths[stored.ID] = stored
		s.authOrder = append(s.authOrder, stored.ID)
		if len(s.authOrder) > maxStored {
			delete(s.auths, s.authOrder[0])
			s.authOrder = s.authOrder[1:]
		}
	}
	if rec.IdempotencyKey != "" {
		s.idem[rec.IdempotencyKey] = cachedAnswer{body: body, outcome: rec.Outcome}
		s.idemOrder = append(s.idemOrder, rec.IdempotencyKey)
		if len(s.idemOrder) > maxStored {
			delete(s.idem, s.idemOrder[0])
			s.idemOrder = s.idemOrder[1:]
		}
	}
	s.mu.Unlock()
	rec.AuthenticationID = resp.AuthenticationID
	s.writeRaw(w, rec, http.StatusOK, "application/json", body)
	if !noAuthID {
		s.notify(eventAuthenticationCompleted, "authentication", resp.AuthenticationID, resp.Token)
	}
}

// match finds the enrolled person the image shows, or nil.
func (s *Sim) match(img image.Image) *identity {
	if img == nil {
		return nil
	}
	s.mu.Lock()
	ids := append([]*identity(nil), s.ids...)
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	q, qs := querySignature(img)
	var best *identity
	bestScore := -1.0
	for _, id := range ids {
		h, t := id.face.matchScore(q, qs)
		if h >= histThreshold && t >= thumbThreshold && h+t > bestScore {
			best, bestScore = id, h+t
		}
	}
	return best
}

// scriptedIdentity is who a scripted PASS is: the first enrolled person,
// or a stand-in when nobody is enrolled.
func (s *Sim) scriptedIdentity() *identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) > 0 {
		return s.ids[0]
	}
	tok, _ := randomToken()
	id := &identity{FullName: "Scripted Pass", FirstName: "Scripted", LastName: "Pass",
		VerificationID: "5c41b7a0e0c1a5d0f0000000", Token: tok, CreatedAt: s.now()}
	s.ids = append(s.ids, id)
	return id
}

func (s *Sim) getAuthentication(w http.ResponseWriter, r *http.Request, rec *Record, id string) {
	s.mu.Lock()
	a, ok := s.auths[id]
	s.mu.Unlock()
	if !ok {
		s.writeError(w, r, rec, http.StatusNotFound, "authentication not found")
		return
	}
	rec.Outcome = "ok"
	s.writeJSON(w, rec, http.StatusOK, a)
}

func (s *Sim) getVerification(w http.ResponseWriter, r *http.Request, rec *Record, vid string) {
	who := s.identityByVerification(vid)
	if who == nil {
		s.writeError(w, r, rec, http.StatusNotFound, "verification not found")
		return
	}
	rec.Outcome = "ok"
	s.writeJSON(w, rec, http.StatusOK, verificationDoc(who))
}

func (s *Sim) getUserInfo(w http.ResponseWriter, r *http.Request, rec *Record) {
	who := s.userFor(r.Header.Get("X-Incode-Hardware-Id"))
	if who == nil { // revoked by a reset between the header check and here
		s.writeError(w, r, rec, http.StatusUnauthorized, "missing or invalid X-Incode-Hardware-Id")
		return
	}
	rec.Outcome, rec.Identity = "ok", who.FullName
	s.writeJSON(w, rec, http.StatusOK, userInfoDoc(who))
}

func (s *Sim) identityByVerification(vid string) *identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.ids {
		if id.VerificationID == vid {
			return id
		}
	}
	return nil
}

// userFor returns the identity a user token belongs to: one issued with a
// PASS, or a verification's own token.
func (s *Sim) userFor(tok string) *identity {
	if tok == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.tokens[tok]; ok {
		return id
	}
	for _, id := range s.ids {
		if equalSecret(tok, id.Token) {
			return id
		}
	}
	return nil
}

func (s *Sim) replay(key string) (cachedAnswer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.idem[key]
	return c, ok
}

// pop takes the next script item for an endpoint.
func (s *Sim) pop(endpoint string) (item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.script[endpoint]
	if len(q) == 0 {
		return item{}, false
	}
	s.script[endpoint] = q[1:]
	return q[0], true
}

// fault plays a scripted fault and reports whether it answered.
func (s *Sim) fault(w http.ResponseWriter, r *http.Request, rec *Record, it item) bool {
	switch it.kind {
	case kindHTTP:
		if it.retryAfter >= 0 {
			w.Header().Set("Retry-After", strconv.Itoa(it.retryAfter))
		}
		rec.Outcome, rec.Message = "http:"+strconv.Itoa(it.code), "scripted"
		s.writeError(w, r, rec, it.code, "scripted failure (incode-sim)")
	case kindReset:
		rec.Outcome = "reset"
		abortConnection(w, nil)
	case kindHang:
		rec.Outcome = "hang"
		s.hanging.Add(1)
		defer s.hanging.Add(-1)
		select {
		case <-r.Context().Done():
		case <-s.ctx.Done():
			abortConnection(w, nil)
		}
	case kindHalf:
		rec.Outcome = "half"
		body, _ := json.Marshal(authResponse{Token: "simtok.half", CorrelationID: newUUID(),
			AuthenticationID: newUUID(), Status: "PASS", VerificationID: "5c41b7a0e0c1a5d0f0000000"})
		head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		rec.Status = http.StatusOK
		abortConnection(w, append([]byte(head), body[:len(body)/2]...))
	case kindHTML:
		rec.Outcome = "html"
		s.writeRaw(w, rec, http.StatusOK, "text/html; charset=utf-8",
			[]byte("<!DOCTYPE html>\n<html><head><title>Gateway</title></head><body><h1>Please sign in to the Wi-Fi</h1></body></html>\n"))
	case kindGarbage:
		rec.Outcome = "garbage"
		s.writeRaw(w, rec, http.StatusOK, "application/json", []byte("\x00\x1f\x8b garbage {\"status\":\"PA"))
	case kindWrongShape:
		rec.Outcome = "wrongshape"
		s.writeRaw(w, rec, http.StatusOK, "application/json", []byte(`{"status":{"code":"PASS"},"id":["not","a","string"],"data":[1,2,3]}`))
	case kindDupStatus:
		// A lenient parser keeps the last "status": a PASS.
		rec.Outcome = "dupstatus"
		s.writeRaw(w, rec, http.StatusOK, "application/json", []byte(fmt.Sprintf(
			`{"status":"FAIL","failureReason":"faceMatchFailed","authenticationId":%q,"correlationId":%q,"status":"PASS"}`, newUUID(), newUUID())))
	case kindUpperKeys:
		// A case-insensitive parser reads these as status and authenticationId.
		rec.Outcome = "upperkeys"
		s.writeRaw(w, rec, http.StatusOK, "application/json", []byte(fmt.Sprintf(`{"STATUS":"PASS","AUTHENTICATIONID":%q}`, newUUID())))
	case kindPassReason:
		rec.Outcome = "passreason"
		s.writeRaw(w, rec, http.StatusOK, "application/json", []byte(fmt.Sprintf(
			`{"status":"PASS","authenticationId":%q,"failureReason":"spoofAttempt"}`, newUUID())))
	case kindNoName:
		who := s.userFor(r.Header.Get("X-Incode-Hardware-Id"))
		if who == nil {
			return false
		}
		doc := userInfoDoc(who).(map[string]any)
		delete(doc, "name")
		rec.Outcome, rec.Identity = "noname", who.FullName
		s.writeJSON(w, rec, http.StatusOK, doc)
	default:
		return false
	}
	return true
}

// abortConnection closes the client's connection without a complete
// answer, after writing raw bytes when given. Over HTTP/1 it takes the
// connection and resets it; where that is impossible (HTTP/2) it aborts
// the stream.
func abortConnection(w http.ResponseWriter, raw []byte) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		if raw != nil {
			// Give the stream a head and half a body, then abort it.
			if _, body, ok := bytes.Cut(raw, []byte("\r\n\r\n")); ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(body)
				_ = http.NewResponseController(w).Flush()
			}
		}
		panic(http.ErrAbortHandler)
	}
	if raw != nil {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write(raw)
	}
	type netConner interface{ NetConn() net.Conn }
	nc := conn
	if t, ok := conn.(netConner); ok {
		nc = t.NetConn()
	}
	if tc, ok := nc.(*net.TCPConn); ok && raw == nil {
		// Linger 0 makes close send RST, a reset rather than an orderly
		// end. After a partial answer an orderly close is kept instead, so
		// that the client reliably reads the head and the half body.
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
