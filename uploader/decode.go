package uploader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// maxResponseBytes bounds what is read of an answer: the API's answers are a
// few hundred bytes, and a proxy or a broken server must not fill memory.
const maxResponseBytes = 1 << 20

// errNotJSON and friends are the details wrapped under ErrMalformed.
var (
	errNotJSON  = errors.New("body is not a JSON object")
	errTooLarge = errors.New("body is larger than the limit")
	errEmpty    = errors.New("body is empty")
)

// decodeObject decodes exactly one JSON object into v.
func decodeObject(body []byte, v any) error {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return errEmpty
	}
	if t[0] != '{' {
		return errNotJSON
	}
	if err := checkMembers(t, reflect.TypeOf(v)); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%w: %v", errNotJSON, err)
		}
		return fmt.Errorf("wrong shape: %w", err)
	}
	if err := json.Unmarshal(t, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%w: %v", errNotJSON, err)
		}
		return fmt.Errorf("wrong shape: %w", err)
	}
	return nil
}

// decodeAuthenticate decodes a 2xx authenticate answer. When the body is
// JSON of the right types but not a trustworthy decision, the decoded
// response is returned with the error so that it can be logged.
func decodeAuthenticate(body []byte) (*AuthenticateResponse, error) {
	var r AuthenticateResponse
	if err := decodeObject(body, &r); err != nil {
		return nil, err
	}
	switch {
	case !r.Status.Known():
		// Not clipped here: the caller redacts secrets first, then clips.
		return &r, fmt.Errorf("status %q is not PASS or FAIL", r.Status)
	case r.Status == StatusPass && r.AuthenticationID == "":
		return &r, errors.New("PASS without authenticationId")
	case r.Status == StatusPass && r.FailureReason != "":
		// A PASS that also says why it failed is not a decision.
		return &r, errors.New("PASS with a failureReason")
	case r.Status == StatusPass && r.Error != nil:
		return &r, errors.New("PASS with an error")
	}
	return &r, nil
}

func decodeAuthentication(body []byte) (*Authentication, error) {
	var r Authentication
	if err := decodeObject(body, &r); err != nil {
		return nil, err
	}
	if r.ID == "" || r.Status == "" {
		return &r, errors.New("wrong shape: authentication without id or status")
	}
	return &r, nil
}

func decodeVerification(body []byte) (*Verification, error) {
	var r Verification
	if err := decodeObject(body, &r); err != nil {
		return nil, err
	}
	if r.ID == "" {
		return &r, errors.New("wrong shape: verification without id")
	}
	return &r, nil
}

func decodeUserInfo(body []byte) (*UserInfo, error) {
	var r UserInfo
	if err := decodeObject(body, &r); err != nil {
		return nil, err
	}
	if r.Status == "" && r.IdentityID == "" {
		return &r, errors.New("wrong shape: userinfo without status or identityId")
	}
	return &r, nil
}

// decodeErrorBody reads the Incode API documentation's error object from a non-2xx answer; it
// returns nil when the body is not one.
func decodeErrorBody(body []byte) *ErrorBody {
	var e ErrorBody
	if decodeObject(body, &e) != nil {
		return nil
	}
	if e.Status == 0 && e.Error == "" && e.Message == "" && e.Path == "" && e.Timestamp.IsZero() {
		return nil
	}
	return &e
}

// unknownValues lists the enum fields of an answer whose values are not in
// the Incode API documentation, as (field, value) pairs, so that they are reported rather than
// silently accepted or dropped.
func (r *AuthenticateResponse) unknownValues() [][2]string {
	var out [][2]string
	if r.Status != "" && !r.Status.Known() {
		out = append(out, [2]string{"status", string(r.Status)})
	}
	if r.Status == StatusFail && r.FailureReason != "" && !r.FailureReason.Known() {
		out = append(out, [2]string{"failure_reason", string(r.FailureReason)})
	}
	return out
}

func (r *Authentication) unknownValues() [][2]string {
	if !r.Status.Known() {
		return [][2]string{{"authentication_status", string(r.Status)}}
	}
	return nil
}

func (r *Verification) unknownValues() [][2]string {
	if r.Status != "" && !r.Status.Known() {
		return [][2]string{{"verification_status", string(r.Status)}}
	}
	return nil
}

func (r *UserInfo) unknownValues() [][2]string {
	var out [][2]string
	if r.Status != "" && !r.Status.Known() {
		out = append(out, [2]string{"identity_status", string(r.Status)})
	}
	check := func(c *Check) {
		if c != nil && c.Status != "" && !c.Status.Known() {
			out = append(out, [2]string{"check_status", string(c.Status)})
		}
	}
	if a := r.IDAttestation; a != nil {
		check(a.Overall)
		if v := a.IDValidation; v != nil {
			for _, list := range [][]Check{v.PhotoSecurityAndQuality, v.IDSpecific, v.CustomFields} {
				for i := range list {
					check(&list[i])
				}
			}
			check(v.AppliedRule)
			check(v.Overall)
		}
	}
	return out
}

// unknownFields lists the label values of kioskd_uploader_unknown_values_total.
func unknownFields() []string {
	return []string{"status", "failure_reason", "authentication_status", "verification_status", "identity_status", "check_status"}
}
