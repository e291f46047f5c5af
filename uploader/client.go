// Package uploader is kioskd's client of the Incode ID API: the Incode API documentation's
// request and answer types, its headers, retries through go-retryablehttp,
// and typed errors that tell a retryable failure from a permanent one and a
// trustworthy decision from an answer that must never open a door.
package uploader

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kioskd/kioskd/config"
)

// The API's paths, relative to the base URL.
const (
	pathAuthenticate   = "omni/incode-id/authenticate"
	pathAuthentication = "omni/incode-id/authentication"
	pathVerification   = "omni/incode-id/verification"
	pathUserInfo       = "omni/incode-id/userinfo"
)

// Client calls the Incode ID API. It is safe for concurrent use.
type Client struct {
	base          *url.URL
	apiKey        string
	deviceToken   string
	userAgent     string
	maxRetries    int
	waitMin       time.Duration
	waitMax       time.Duration
	retryAfterMax time.Duration
	timeout       time.Duration
	maxBody       int64

	log    *slog.Logger
	hc     *http.Client
	rc     *retryablehttp.Client // one for every call; the policy is in its hooks
	now    func() time.Time
	jitter func() float64
	m      *metrics
}

type options struct {
	hc      *http.Client
	now     func() time.Time
	jitter  func() float64
	maxBody int64
}

// Option configures a Client.
type Option func(*options)

// WithHTTPClient replaces the HTTP client built from the configuration (for
// tests with their own TLS roots). Redirects are refused whatever hc says:
// following one would resend the API key to another place.
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// WithClock injects the clock used to read Retry-After dates.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithJitter injects the random source of the backoff jitter; f returns a
// value in [0, 1).
func WithJitter(f func() float64) Option { return func(o *options) { o.jitter = f } }

// WithMaxResponseBytes changes the 1 MiB limit on an answer's body.
func WithMaxResponseBytes(n int64) Option { return func(o *options) { o.maxBody = n } }

// CallOption configures one call.
type CallOption func(*callOptions)

type callOptions struct {
	idempotencyKey string
	noRetries      bool
}

// WithoutRetries makes one attempt only. A queued capture is retried by
// the drainer on its own schedule, so a retry inside the call would only
// multiply the requests to a service that is already failing.
func WithoutRetries() CallOption {
	return func(o *callOptions) { o.noRetries = true }
}

// WithIdempotencyKey sends key as the Idempotency-Key header, so that a
// retried or re-queued authentication is recognised as the same attempt.
func WithIdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idempotencyKey = key }
}

// New builds a client from the incode section. userAgent names kioskd and
// its version.
func New(cfg config.Incode, userAgent string, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Client, error) {
	if err := config.CheckBaseURL(cfg.BaseURL, cfg.AllowInsecureHTTP); err != nil {
		return nil, fmt.Errorf("uploader: base_url: %w", err)
	}
	base, _ := url.Parse(cfg.BaseURL) // CheckBaseURL parsed it
	if base.User != nil {
		return nil, errors.New("uploader: base_url: credentials in the URL are not supported")
	}
	if err := checkSecret("api key", cfg.APIKey); err != nil {
		return nil, err
	}
	if err := checkSecret("device token", cfg.HardwareID); err != nil {
		return nil, err
	}
	if userAgent == "" || !headerSafe(userAgent) {
		return nil, errors.New("uploader: user agent is empty or not a valid header value")
	}
	if cfg.MaxRetries < 0 {
		return nil, fmt.Errorf("uploader: max_retries %d is negative", cfg.MaxRetries)
	}
	// Defaults live in config alone.
	if cfg.RetryWaitMin <= 0 || cfg.RetryWaitMax <= 0 || cfg.RetryAfterMax <= 0 || cfg.RequestTimeout <= 0 {
		return nil, errors.New("uploader: configuration without defaults (use config.Default or config.Load)")
	}
	o := options{now: time.Now, jitter: rand.Float64, maxBody: maxResponseBytes}
	for _, opt := range opts {
		opt(&o)
	}
	hc := o.hc
	if hc == nil {
		var err error
		if hc, err = newHTTPClient(cfg); err != nil {
			return nil, err
		}
	} else {
		cp := *hc
		hc = &cp
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("uploader: metrics: %w", err)
	}
	c := &Client{
		base:          base,
		apiKey:        cfg.APIKey,
		deviceToken:   cfg.HardwareID,
		userAgent:     userAgent,
		maxRetries:    cfg.MaxRetries,
		waitMin:       cfg.RetryWaitMin,
		waitMax:       cfg.RetryWaitMax,
		retryAfterMax: cfg.RetryAfterMax,
		timeout:       cfg.RequestTimeout,
		maxBody:       o.maxBody,
		log:           log,
		hc:            hc,
		now:           o.now,
		jitter:        o.jitter,
		m:             m,
	}
	c.rc = &retryablehttp.Client{
		HTTPClient:   hc,
		RetryMax:     c.maxRetries,
		RetryWaitMin: c.waitMin,
		RetryWaitMax: c.waitMax,
		CheckRetry:   c.checkRetry,
		Backoff: func(_, _ time.Duration, n int, resp *http.Response) time.Duration {
			return c.backoff(n, resp)
		},
		RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, i int) {
			if st := stateOf(req.Context()); st != nil && i > 0 {
				c.m.retries.WithLabelValues(st.endpoint).Inc()
			}
		},
		// Hand back the last answer or error as is: a final 503 becomes an
		// *APIError rather than an opaque "giving up" string.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return c, nil
}

func checkSecret(what, v string) error {
	if v == "" {
		return fmt.Errorf("uploader: %s is empty", what)
	}
	if !headerSafe(v) {
		// The value itself is never part of the message.
		return fmt.Errorf("uploader: %s contains characters not allowed in a header", what)
	}
	return nil
}

func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// newHTTPClient builds the TLS transport: system roots unless a CA file is
// given (then only that file's CAs are trusted), TLS 1.2 or later, and an
// optional client certificate for mutual TLS.
func newHTTPClient(cfg config.Incode) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("uploader: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("uploader: ca_file %s: no PEM certificate found", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.ClientCertFile != "" || cfg.ClientKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClientCertFile, cfg.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("uploader: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// Authenticate posts a face and returns the decision. A PASS comes back
// only with an authenticationId; any 2xx answer that is not a clean PASS or
// FAIL returns an error wrapping ErrMalformed together with the decoded
// response (for logging). Non-2xx answers are *APIError.
func (c *Client) Authenticate(ctx context.Context, req AuthenticateRequest, opts ...CallOption) (*AuthenticateResponse, error) {
	var co callOptions
	for _, o := range opts {
		o(&co)
	}
	const method = http.MethodPost
	path := c.path(pathAuthenticate)
	start := time.Now()
	resp, err := func() (*AuthenticateResponse, error) {
		if req.Face.Base64Image == "" && req.Face.ImageURL == "" && req.Face.Template == "" {
			return nil, fmt.Errorf("incode %s %s: %w: face has no base64Image, imageUrl or template", method, path, ErrInvalidRequest)
		}
		if co.idempotencyKey != "" && (len(co.idempotencyKey) > 255 || !headerSafe(co.idempotencyKey)) {
			return nil, fmt.Errorf("incode %s %s: %w: idempotency key is longer than 255 bytes or not a valid header value", method, path, ErrInvalidRequest)
		}
		body, err := json.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("incode %s %s: %w: %v", method, path, ErrInvalidRequest, err)
		}
		code, rb, err := c.do(ctx, call{endpoint: epAuthenticate, method: method, path: path,
			body: body, token: c.deviceToken, idempotencyKey: co.idempotencyKey, noRetries: co.noRetries})
		if err != nil {
			return nil, err
		}
		r, derr := decodeAuthenticate(rb)
		if r != nil {
			c.reportUnknown(epAuthenticate, r.unknownValues(), c.deviceToken)
		}
		if derr != nil {
			return r, c.malformed(method, path, code, derr)
		}
		return r, nil
	}()
	c.observe(epAuthenticate, start, err)
	return resp, err
}

// idPattern keeps an id to one safe path segment.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_~:-][A-Za-z0-9._~:-]{0,255}$`)

// Authentication fetches a stored authentication by its id.
func (c *Client) Authentication(ctx context.Context, id string) (*Authentication, error) {
	start := time.Now()
	r, err := getJSON(c, ctx, epAuthentication, pathAuthentication, id, c.deviceToken, decodeAuthentication)
	c.observe(epAuthentication, start, err)
	return r, err
}

// Verification fetches an identity verification by its id.
func (c *Client) Verification(ctx context.Context, id string) (*Verification, error) {
	start := time.Now()
	r, err := getJSON(c, ctx, epVerification, pathVerification, id, c.deviceToken, decodeVerification)
	c.observe(epVerification, start, err)
	return r, err
}

// UserInfo fetches the identity behind a user token (the token of a PASS or
// of a verification webhook).
func (c *Client) UserInfo(ctx context.Context, userToken string) (*UserInfo, error) {
	start := time.Now()
	var r *UserInfo
	var err error
	if userToken == "" || !headerSafe(userToken) {
		err = fmt.Errorf("incode GET %s: %w: user token is empty or not a valid header value", c.path(pathUserInfo), ErrInvalidRequest)
	} else {
		r, err = getJSON(c, ctx, epUserInfo, pathUserInfo, "", userToken, decodeUserInfo)
	}
	c.observe(epUserInfo, start, err)
	return r, err
}

type unknownReporter interface{ unknownValues() [][2]string }

func getJSON[T unknownReporter](c *Client, ctx context.Context, endpoint, rel, id, token string, decode func([]byte) (T, error)) (T, error) {
	var zero T
	const method = http.MethodGet
	if rel != pathUserInfo {
		if !idPattern.MatchString(id) {
			return zero, fmt.Errorf("incode %s %s/:id: %w: id is empty, too long or has characters outside [A-Za-z0-9._~:-]", method, c.path(rel), ErrInvalidRequest)
		}
		rel += "/" + id
	}
	path := c.path(rel)
	code, body, err := c.do(ctx, call{endpoint: endpoint, method: method, path: path, token: token})
	if err != nil {
		return zero, err
	}
	r, derr := decode(body)
	if derr != nil {
		return r, c.malformed(method, path, code, derr, token)
	}
	c.reportUnknown(endpoint, r.unknownValues(), token)
	return r, nil
}

func (c *Client) path(rel string) string {
	return strings.TrimSuffix(c.base.EscapedPath(), "/") + "/" + rel
}

func (c *Client) malformed(method, path string, code int, detail error, userToken ...string) error {
	secrets := append([]string{c.apiKey, c.deviceToken}, userToken...)
	return fmt.Errorf("incode %s %s: HTTP %d: %w: %s", method, path, code, ErrMalformed,
		clip(redact(detail.Error(), secrets...), 200))
}

func (c *Client) reportUnknown(endpoint string, vals [][2]string, token string) {
	for _, v := range vals {
		c.m.unknown.WithLabelValues(v[0]).Inc()
		c.log.Warn("incode answer has a value the API document does not list",
			"endpoint", endpoint, "field", v[0], "value", clip(redact(v[1], c.apiKey, c.deviceToken, token), 64))
	}
}

func (c *Client) observe(endpoint string, start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = Reason(err)
	}
	if errors.Is(err, ErrMalformed) {
		c.m.malformed.WithLabelValues(endpoint).Inc()
	}
	c.m.duration.WithLabelValues(endpoint, outcome).Observe(time.Since(start).Seconds())
}

// call is one API call, all its attempts included.
type call struct {
	endpoint       string
	method         string
	path           string // URL path, for errors and logs
	body           []byte
	token          string // X-Incode-Hardware-Id
	idempotencyKey string
	noRetries      bool
}

// do performs c with retries and returns a 2xx answer's status and body, or
// an *APIError, or a transport error.
func (c *Client) do(ctx context.Context, cl call) (int, []byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		// Every call ends: a deferred delivery without its own deadline
		// still must not hang on a server that never answers.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := *c.base
	u.Path, u.RawPath, u.RawQuery, u.Fragment = "", "", "", ""
	target := u.String()
	target = strings.TrimSuffix(target, "/") + cl.path

	var rawBody any
	if cl.body != nil {
		rawBody = retryablehttp.ReaderFunc(func() (io.Reader, error) {
			return &countingReader{r: bytes.NewReader(cl.body), add: c.m.uploaded.Add}, nil
		})
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, cl.method, target, rawBody)
	if err != nil {
		return 0, nil, fmt.Errorf("incode %s %s: %w: %v", cl.method, cl.path, ErrInvalidRequest, err)
	}
	h := req.Header
	h.Set("api-version", "1.0")
	h.Set("x-api-key", c.apiKey)
	h.Set("X-Incode-Hardware-Id", cl.token)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	h.Set("User-Agent", c.userAgent)
	if cl.idempotencyKey != "" {
		h.Set("Idempotency-Key", cl.idempotencyKey)
	}

	st := &attemptState{call: cl}
	req = req.WithContext(context.WithValue(ctx, callKey{}, st))
	resp, err := c.rc.Do(req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return 0, nil, fmt.Errorf("incode %s %s: %w: %w", cl.method, cl.path, cerr, err)
		}
		return 0, nil, fmt.Errorf("incode %s %s: %w", cl.method, cl.path, err)
	}
	defer resp.Body.Close()

	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := c.maxBody
	if !ok {
		limit = min(limit, 64<<10) // only the error object and a head are kept
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if rerr != nil {
		if cerr := ctx.Err(); cerr != nil {
			return 0, nil, fmt.Errorf("incode %s %s: HTTP %d: reading body: %w", cl.method, cl.path, resp.StatusCode, cerr)
		}
		if ok {
			// The connection broke mid-answer: a transport failure, so the
			// capture is kept and resent under the same Idempotency-Key
			// (which gets the stored answer back) rather than dropped. A
			// partial body is never decoded, so it cannot open a door.
			return 0, nil, fmt.Errorf("incode %s %s: HTTP %d: body truncated after %d bytes: %w", cl.method, cl.path, resp.StatusCode, len(body), &truncatedError{rerr})
		}
		// An error answer cut short is still that error answer.
	}
	c.log.Debug("incode call", "endpoint", cl.endpoint, "method", cl.method, "path", cl.path,
		"status", resp.StatusCode, "attempts", st.attempts, "bytes", len(body))
	if ok {
		if int64(len(body)) > c.maxBody {
			return 0, nil, c.malformed(cl.method, cl.path, resp.StatusCode, fmt.Errorf("%w (%d bytes)", errTooLarge, c.maxBody))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
			if _, err := decodeAny(body); err != nil {
				return 0, nil, c.malformed(cl.method, cl.path, resp.StatusCode, fmt.Errorf("%w (content-type %s)", errNotJSON, clip(ct, 64)))
			}
		}
		return resp.StatusCode, body, nil
	}
	return 0, nil, c.apiError(cl, resp, body)
}

func decodeAny(body []byte) (any, error) {
	var v any
	err := json.Unmarshal(body, &v)
	return v, err
}

func (c *Client) apiError(cl call, resp *http.Response, body []byte) *APIError {
	if len(body) > 64<<10 {
		body = body[:64<<10]
	}
	e := &APIError{StatusCode: resp.StatusCode, Method: cl.method, Path: cl.path}
	if d, ok := c.retryAfter(resp); ok {
		e.RetryAfter = d
	}
	secrets := []string{c.apiKey, c.deviceToken, cl.token}
	if eb := decodeErrorBody(body); eb != nil {
		eb.Error = clip(redact(eb.Error, secrets...), 512)
		eb.Message = clip(redact(eb.Message, secrets...), 512)
		eb.Path = clip(redact(eb.Path, secrets...), 512)
		e.Body = eb
	} else if len(body) > 0 {
		e.Raw = clip(redact(string(body), secrets...), 256)
	}
	return e
}

// attemptState is one call's own state, carried in its request's context
// to the shared client's hooks.
type attemptState struct {
	call
	attempts int
}

type callKey struct{}

func stateOf(ctx context.Context) *attemptState {
	st, _ := ctx.Value(callKey{}).(*attemptState)
	return st
}

// checkRetry decides, after each attempt, whether to try again: connection
// errors, 429 and 500/502/503/504 are retried while retries and the
// context's deadline allow the wait; nothing is retried once ctx is done.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	st := stateOf(ctx)
	if st == nil {
		return false, nil
	}
	cl := st.call
	st.attempts++
	code := 0
	if resp != nil {
		code = resp.StatusCode
		c.m.responses.WithLabelValues(cl.endpoint, statusClass(code)).Inc()
	} else {
		c.m.responses.WithLabelValues(cl.endpoint, "error").Inc()
	}
	if ctx.Err() != nil {
		return false, nil
	}
	var why string
	switch {
	case err != nil && isCertError(err):
		return false, nil
	case err != nil:
		why = "transport"
	case retryableStatus(code):
		why = "status"
	default:
		return false, nil
	}
	if st.attempts > c.maxRetries || cl.noRetries {
		return false, nil
	}
	// The longest the backoff may wait: a retry that cannot be made
	// before the deadline is not started.
	wait := c.waitBound(st.attempts-1, resp)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		c.log.Debug("incode call not retried: the deadline comes first", "endpoint", cl.endpoint,
			"attempt", st.attempts, "status", code, "wait", wait)
		return false, nil
	}
	level := slog.LevelDebug
	if st.attempts > 1 {
		level = slog.LevelWarn
	}
	args := []any{"endpoint", cl.endpoint, "method", cl.method, "path", cl.path,
		"attempt", st.attempts, "reason", why, "wait", wait}
	if code != 0 {
		args = append(args, "status", code)
	}
	if err != nil {
		args = append(args, "error", redact(err.Error(), c.apiKey, c.deviceToken, cl.token))
	}
	c.log.Log(ctx, level, "incode call retrying", args...)
	return true, nil
}

// backoff is the wait before retry n (0-based): the server's Retry-After
// when it gave one (capped), else jittered exponential between the
// configured bounds.
func (c *Client) backoff(n int, resp *http.Response) time.Duration {
	d, hinted := c.wait(n, resp)
	if hinted {
		return d
	}
	// Jitter in [d/2, d): 200 doors retrying after one outage must not
	// arrive in lockstep.
	return d/2 + time.Duration(c.jitter()*float64(d/2))
}

// waitBound is the longest backoff(n, resp) can return.
func (c *Client) waitBound(n int, resp *http.Response) time.Duration {
	d, _ := c.wait(n, resp)
	return d
}

func (c *Client) wait(n int, resp *http.Response) (time.Duration, bool) {
	if resp != nil {
		if d, ok := c.retryAfter(resp); ok {
			return min(d, c.retryAfterMax), true
		}
	}
	d := c.waitMin
	for i := 0; i < n && d < c.waitMax; i++ {
		d *= 2
	}
	return min(d, c.waitMax), false
}

// retryAfter reads Retry-After as seconds or as an HTTP date.
func (c *Client) retryAfter(resp *http.Response) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var secs int64
	if _, err := fmt.Sscanf(v, "%d", &secs); err == nil && fmt.Sprint(secs) == v {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, 1<<20)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(c.now()), 0), true
}

// countingReader counts the request bytes actually read by the transport.
type countingReader struct {
	r   *bytes.Reader
	add func(float64)
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.add(float64(n))
	}
	return n, err
}

// Len lets retryablehttp set Content-Length.
func (r *countingReader) Len() int { return r.r.Len() }
