package uploader

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// AuthenticateRequest is the body of POST /omni/incode-id/authenticate.
type AuthenticateRequest struct {
	Face   FaceObject `json:"face"`
	Source string     `json:"source,omitempty"`
}

// FaceObject is the face to authenticate. The Incode API documentation allows any one of the
// three representations; kioskd sends base64Image.
type FaceObject struct {
	Base64Image string `json:"base64Image,omitempty"`
	ImageURL    string `json:"imageUrl,omitempty"`
	Template    string `json:"template,omitempty"`
}

// AuthenticateResponse is the answer to an authentication. Only Status PASS
// with an AuthenticationID may ever open a door; the client returns
// ErrMalformed for anything else that is not a clean PASS or FAIL.
type AuthenticateResponse struct {
	Token            string        `json:"token,omitempty"`
	CorrelationID    string        `json:"correlationId,omitempty"`
	AuthenticationID string        `json:"authenticationId,omitempty"`
	Error            *ErrorBody    `json:"error,omitempty"`
	Status           Status        `json:"status"`
	Source           string        `json:"source,omitempty"`
	FailureReason    FailureReason `json:"failureReason,omitempty"`
	VerificationID   string        `json:"verificationId,omitempty"`
}

// ErrorBody is the Incode API documentation's error object, found in non-2xx answers and in the
// authenticate response's "error" field.
type ErrorBody struct {
	Timestamp Timestamp `json:"timestamp,omitzero"`
	Status    int       `json:"status"`
	Error     string    `json:"error,omitempty"`
	Message   string    `json:"message,omitempty"`
	Path      string    `json:"path,omitempty"`
}

// Timestamp keeps the error timestamp as sent. The Incode API documentation gives it as a number
// of milliseconds in error answers but as a string inside the authenticate
// response, so both are accepted and re-encoded in their original form.
type Timestamp struct {
	raw json.RawMessage
}

// UnmarshalJSON accepts a JSON number or string.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		t.raw = nil
		return nil
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("timestamp: want a number or a string, got %.32s", b)
		}
	}
	t.raw = append(json.RawMessage(nil), b...)
	return nil
}

// MarshalJSON writes the timestamp back in the form it was read.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.raw == nil {
		return []byte("null"), nil
	}
	return t.raw, nil
}

// IsZero reports whether no timestamp was given.
func (t Timestamp) IsZero() bool { return t.raw == nil }

// Millis returns the timestamp in milliseconds when it is numeric (as a JSON
// number or a numeric string).
func (t Timestamp) Millis() (int64, bool) {
	s := strings.Trim(string(t.raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// String returns the timestamp's text.
func (t Timestamp) String() string { return strings.Trim(string(t.raw), `"`) }

// MillisTimestamp builds a numeric millisecond timestamp.
func MillisTimestamp(ms int64) Timestamp {
	return Timestamp{raw: json.RawMessage(strconv.FormatInt(ms, 10))}
}

// Status is the outcome of an authentication as the authenticate endpoint
// spells it.
type Status string

// The two outcomes the Incode API documentation defines.
const (
	StatusPass Status = "PASS"
	StatusFail Status = "FAIL"
)

// Known reports whether s is PASS or FAIL.
func (s Status) Known() bool { return s == StatusPass || s == StatusFail }

// FailureReason says why an authentication failed. Values other than the
// five below are kept as sent; Known reports them.
type FailureReason string

// The failure reasons the Incode API documentation lists.
const (
	ReasonHasFaceMask     FailureReason = "hasFaceMask"
	ReasonHasLenses       FailureReason = "hasLenses"
	ReasonSpoofAttempt    FailureReason = "spoofAttempt"
	ReasonFaceMatchFailed FailureReason = "faceMatchFailed"
	ReasonOtherError      FailureReason = "otherError"
)

// FailureReasons returns the failure reasons the Incode API documentation defines.
func FailureReasons() []FailureReason {
	return []FailureReason{ReasonHasFaceMask, ReasonHasLenses, ReasonSpoofAttempt, ReasonFaceMatchFailed, ReasonOtherError}
}

// Known reports whether r is one of the Incode API documentation's five values (an empty reason
// is not known).
func (r FailureReason) Known() bool {
	switch r {
	case ReasonHasFaceMask, ReasonHasLenses, ReasonSpoofAttempt, ReasonFaceMatchFailed, ReasonOtherError:
		return true
	}
	return false
}

// Authentication is the answer of GET /omni/incode-id/authentication/:id.
type Authentication struct {
	ID             string               `json:"id"`
	CreatedAt      int64                `json:"createdAt,omitempty"` // seconds, UTC
	Status         AuthenticationStatus `json:"status"`
	SourceID       string               `json:"sourceId,omitempty"`
	VerificationID string               `json:"verificationId,omitempty"`
}

// AuthenticationStatus is the lowercase status of a stored authentication.
type AuthenticationStatus string

// The statuses the Incode API documentation shows for a stored authentication.
const (
	AuthenticationPass AuthenticationStatus = "pass"
	AuthenticationFail AuthenticationStatus = "fail"
)

// Known reports whether s is pass or fail (in any case).
func (s AuthenticationStatus) Known() bool {
	return strings.EqualFold(string(s), "pass") || strings.EqualFold(string(s), "fail")
}

// Passed reports whether the stored authentication passed.
func (s AuthenticationStatus) Passed() bool { return strings.EqualFold(string(s), "pass") }

// Verification is the answer of GET /omni/incode-id/verification/:id.
type Verification struct {
	ID        string             `json:"id"`
	CreatedAt int64              `json:"createdAt,omitempty"` // seconds, UTC
	Status    VerificationStatus `json:"status"`
	Data      *VerificationData  `json:"data,omitempty"`
}

// VerificationStatus is the status of an identity verification.
type VerificationStatus string

// StatusVerified is the only verification status the Incode API documentation shows.
const StatusVerified VerificationStatus = "VERIFIED"

// Known reports whether s is a status the Incode API documentation shows.
func (s VerificationStatus) Known() bool { return s == StatusVerified }

// VerificationData is the personal data of a verification.
type VerificationData struct {
	Name        *Name  `json:"name,omitempty"`
	Email       string `json:"email,omitempty"`
	Phone       string `json:"phone,omitempty"`
	DateOfBirth string `json:"dateOfBirth,omitempty"` // milliseconds as a string in the Incode API documentation
}

// Name is a person's name.
type Name struct {
	FullName  string `json:"fullName,omitempty"`
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
}

// First is the first name to greet someone by: firstName, else the first
// word of fullName, else "". It is safe on a nil *Name (the object is
// optional in the Incode API documentation).
func (n *Name) First() string {
	if n == nil {
		return ""
	}
	if first := strings.TrimSpace(n.FirstName); first != "" {
		return first
	}
	first, _, _ := strings.Cut(strings.TrimSpace(n.FullName), " ")
	return first
}

// UserInfo is the answer of GET /omni/incode-id/userinfo.
type UserInfo struct {
	Status          IdentityStatus `json:"status"`
	IdentityID      string         `json:"identityId,omitempty"`
	Name            *Name          `json:"name,omitempty"`
	DateOfBirth     string         `json:"dateOfBirth,omitempty"`
	Phone           string         `json:"phone,omitempty"`
	Sex             string         `json:"sex,omitempty"`
	Email           string         `json:"email,omitempty"`
	City            string         `json:"city,omitempty"`
	Country         string         `json:"country,omitempty"`
	Curp            string         `json:"curp,omitempty"`
	EmailPreference *bool          `json:"emailPreference,omitempty"`
	IDImagesInfo    *IDImagesInfo  `json:"idImagesInfo,omitempty"`
	IDAttestation   *IDAttestation `json:"idAttestation,omitempty"`
}

// IdentityStatus is the state of an identity.
type IdentityStatus string

// The identity states the Incode API documentation lists.
const (
	IdentityActive  IdentityStatus = "ACTIVE"
	IdentityRevoked IdentityStatus = "REVOKED"
)

// Known reports whether s is ACTIVE or REVOKED.
func (s IdentityStatus) Known() bool { return s == IdentityActive || s == IdentityRevoked }

// IDImagesInfo points at the identity document's images.
type IDImagesInfo struct {
	FrontIDImageURL string `json:"frontIdImageUrl,omitempty"`
	BackIDImageURL  string `json:"backIdImageUrl,omitempty"`
}

// IDAttestation is the result of the identity document checks.
type IDAttestation struct {
	IDValidation *IDValidation `json:"idValidation,omitempty"`
	Overall      *Check        `json:"overall,omitempty"`
}

// IDValidation groups the document checks.
type IDValidation struct {
	PhotoSecurityAndQuality []Check `json:"photoSecurityAndQuality,omitempty"`
	IDSpecific              []Check `json:"idSpecific,omitempty"`
	CustomFields            []Check `json:"customFields,omitempty"`
	AppliedRule             *Check  `json:"appliedRule,omitempty"`
	Overall                 *Check  `json:"overall,omitempty"`
}

// Check is one attestation result.
type Check struct {
	Key    string      `json:"key,omitempty"`
	Name   string      `json:"name,omitempty"`
	Value  string      `json:"value,omitempty"`
	Status CheckStatus `json:"status,omitempty"`
}

// CheckStatus is the status of one attestation check.
type CheckStatus string

// The check statuses the Incode API documentation lists.
const (
	CheckOK            CheckStatus = "OK"
	CheckWarn          CheckStatus = "WARN"
	CheckFail          CheckStatus = "FAIL"
	CheckUnknown       CheckStatus = "UNKNOWN"
	CheckManual        CheckStatus = "MANUAL"
	CheckManualOK      CheckStatus = "MANUAL_OK"
	CheckManualFail    CheckStatus = "MANUAL_FAIL"
	CheckManualPending CheckStatus = "MANUAL_PENDING"
)

// Known reports whether s is one of the Incode API documentation's eight values.
func (s CheckStatus) Known() bool {
	switch s {
	case CheckOK, CheckWarn, CheckFail, CheckUnknown, CheckManual, CheckManualOK, CheckManualFail, CheckManualPending:
		return true
	}
	return false
}

// Webhook is the body Incode POSTs to a webhook receiver for the
// verification.completed and authentication.completed events.
type Webhook struct {
	Token     string `json:"token"`
	Event     string `json:"event"`
	Object    string `json:"object"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"` // seconds, UTC
}

// The webhook event names.
const (
	EventVerificationCompleted   = "verification.completed"
	EventAuthenticationCompleted = "authentication.completed"
)

// FaceRequest is the authenticate request for a JPEG face taken at the
// device source.
func FaceRequest(jpeg []byte, source string) AuthenticateRequest {
	return AuthenticateRequest{Face: FaceObject{Base64Image: base64.StdEncoding.EncodeToString(jpeg)}, Source: source}
}
