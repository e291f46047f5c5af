package uploader

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// ErrMalformed is wrapped by every error about a 2xx answer that cannot be
// trusted: not JSON, larger than the limit, of the wrong shape, a
// status that is neither PASS nor FAIL, or a PASS without authenticationId.
// Such an answer must never open a door.
var ErrMalformed = errors.New("malformed response")

// ErrInvalidRequest is wrapped when a call is refused before anything is
// sent (no face, an empty or unsafe id or token).
var ErrInvalidRequest = errors.New("invalid request")

// APIError is a non-2xx answer from the API.
type APIError struct {
	StatusCode int
	Method     string
	Path       string
	// Body is the Incode API documentation's error object when the answer carried one.
	Body *ErrorBody
	// Raw is the head of the answer's body when it was not an error object
	// (an HTML page from a proxy, say), printable characters only.
	Raw string
	// RetryAfter is the server's Retry-After hint, zero when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "incode %s %s: HTTP %d", e.Method, e.Path, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		fmt.Fprintf(&b, " %s", t)
	}
	switch {
	case e.Body != nil && e.Body.Message != "":
		fmt.Fprintf(&b, ": %s", clip(e.Body.Message, 200))
	case e.Body != nil && e.Body.Error != "":
		fmt.Fprintf(&b, ": %s", clip(e.Body.Error, 200))
	case e.Raw != "":
		fmt.Fprintf(&b, ": body %q", clip(e.Raw, 120))
	}
	return b.String()
}

// RetryAfter returns the wait the server asked for with Retry-After (in
// seconds or as an HTTP date, uncapped) on the answer behind err; false when
// it asked for none.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// Retryable reports whether err is worth another try later: transport
// errors, timeouts, 429 and 500/502/503/504. A canceled call, any other
// HTTP status, a malformed answer and an invalid request are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		return retryableStatus(ae.StatusCode)
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrInvalidRequest):
		return false
	case errors.Is(err, context.Canceled):
		return false
	}
	return true
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Reasons lists every value Reason can return, for initialising metrics.
func Reasons() []string {
	return []string{"timeout", "transport", "rate_limited", "server_error", "unauthorized",
		"forbidden", "bad_request", "malformed", "client_error", "canceled"}
}

// Reason classifies err into a bounded label: "timeout", "transport",
// "rate_limited", "server_error", "unauthorized" (401: bad device or user
// token), "forbidden" (403: bad API key), "bad_request" (400, or refused
// before sending), "malformed", "client_error" (any other non-2xx) or
// "canceled". It returns "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch c := ae.StatusCode; {
		case c == http.StatusTooManyRequests:
			return "rate_limited"
		case c >= 500:
			return "server_error"
		case c == http.StatusUnauthorized:
			return "unauthorized"
		case c == http.StatusForbidden:
			return "forbidden"
		case c == http.StatusBadRequest:
			return "bad_request"
		default:
			return "client_error"
		}
	}
	switch {
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrInvalidRequest):
		return "bad_request"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "transport"
}

// truncatedError is a 2xx answer whose body ended early: the connection
// failed, not the service, so it is retryable like any transport error.
type truncatedError struct{ err error }

func (e *truncatedError) Error() string {
	return "connection failed while reading the answer: " + e.err.Error()
}
func (e *truncatedError) Unwrap() error { return e.err }

// isCertError reports TLS verification failures, which another attempt
// within the same call cannot fix.
func isCertError(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		rec tls.RecordHeaderError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) ||
		errors.As(err, &ci) || errors.As(err, &rec)
}

// clip shortens s to n runes and replaces control characters, so that a
// server's answer cannot forge log lines.
func clip(s string, n int) string {
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			r = ' '
		}
		b.WriteRune(r)
		i++
	}
	return b.String()
}

// redact removes every secret from s: a server could echo a header back in
// an error message, which would otherwise end up in logs.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	return s
}
