package uploader

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The endpoint label values.
const (
	epAuthenticate   = "authenticate"
	epAuthentication = "authentication"
	epVerification   = "verification"
	epUserInfo       = "userinfo"
)

var endpoints = []string{epAuthenticate, epAuthentication, epVerification, epUserInfo}

// responseClasses are the class label values: one per HTTP status class and
// "error" for an attempt that got no answer.
var responseClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

type metrics struct {
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	responses *prometheus.CounterVec
	uploaded  prometheus.Counter
	unknown   *prometheus.CounterVec
	malformed *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kioskd_uploader_request_duration_seconds",
			Help:    "Duration of Incode API calls, all attempts included, by endpoint and outcome (ok or the error reason).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32},
		}, []string{"endpoint", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_uploader_retries_total",
			Help: "Retry attempts of Incode API calls (the first attempt is not counted).",
		}, []string{"endpoint"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_uploader_responses_total",
			Help: "Attempts by HTTP status class of the answer; class error means no answer (connection failure, timeout).",
		}, []string{"endpoint", "class"}),
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kioskd_uploader_uploaded_bytes_total",
			Help: "Request body bytes sent to the Incode API, retries included.",
		}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_uploader_unknown_values_total",
			Help: "Answers carrying an enum value the API document does not list, by field.",
		}, []string{"field"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kioskd_uploader_malformed_answers_total",
			Help: "2xx answers refused as untrustworthy (not JSON, duplicate or case-variant member names, unknown status, a PASS with a failureReason or an error, ...), by endpoint.",
		}, []string{"endpoint"}),
	}
	var err error
	m.duration, err = register(reg, m.duration)
	if err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.responses, err = register(reg, m.responses); err != nil {
		return nil, err
	}
	if m.uploaded, err = register(reg, m.uploaded); err != nil {
		return nil, err
	}
	if m.unknown, err = register(reg, m.unknown); err != nil {
		return nil, err
	}
	if m.malformed, err = register(reg, m.malformed); err != nil {
		return nil, err
	}
	outcomes := append([]string{"ok"}, Reasons()...)
	for _, ep := range endpoints {
		m.retries.WithLabelValues(ep)
		m.malformed.WithLabelValues(ep)
		for _, o := range outcomes {
			m.duration.WithLabelValues(ep, o)
		}
		for _, c := range responseClasses {
			m.responses.WithLabelValues(ep, c)
		}
	}
	for _, f := range unknownFields() {
		m.unknown.WithLabelValues(f)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description so that two clients can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func statusClass(code int) string {
	if code >= 100 && code < 600 {
		return responseClasses[code/100-1]
	}
	return "error"
}
