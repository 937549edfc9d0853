package swift

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	retryablehttp "github.com/hashicorp/go-retryablehttp"
)

// ctxKey marks request contexts.
type ctxKey int

const keyRetry ctxKey = iota // the transport may retry the request

// retryable marks ctx's requests as ones the transport may retry: requests
// made outside any store operation, which no other layer retries (New's
// authentication and /info, TempURL's account requests, the clean-up of a
// failed large Put's segments). The transport retries only those without a
// body: so v1 authentication (a GET) is retried, but not Keystone's token
// request (a POST with a body), which is sent once. A store operation's
// requests are never marked: the kernel's retrying layer owns their
// attempts (see package backend).
func retryable(ctx context.Context) context.Context {
	return context.WithValue(ctx, keyRetry, true)
}

// transport sends requests marked retryable (and without a body) through
// go-retryablehttp, which retries them with jittered backoff and honours
// Retry-After, and all others straight to the base, once.
type transport struct {
	base  http.RoundTripper
	retry *retryablehttp.RoundTripper
	log   *slog.Logger
}

func newTransport(cfg Config, log *slog.Logger) *transport {
	base := cfg.Transport
	if base == nil {
		base = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.ConnectTimeout,
			ResponseHeaderTimeout: cfg.RequestTimeout,
			ExpectContinueTimeout: time.Second,
			// Swift sends plain bodies; let Go not ask for gzip.
			DisableCompression: true,
			TLSClientConfig:    cfg.TLSConfig,
		}
	}
	rc := &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport: base,
			// Swift does not redirect; never follow one with a token.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		RetryWaitMin: cfg.RetryWaitMin,
		RetryWaitMax: cfg.RetryWaitMax,
		RetryMax:     cfg.Retries,
		CheckRetry:   checkRetry,
		Backoff:      jitterBackoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
		RequestLogHook: func(_ retryablehttp.Logger, req *http.Request, attempt int) {
			if attempt > 0 {
				log.Debug("swift: retrying", "method", req.Method, "path", req.URL.Path, "attempt", attempt)
			}
		},
	}
	return &transport{base: base, retry: &retryablehttp.RoundTripper{Client: rc}, log: log}
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if v, _ := req.Context().Value(keyRetry).(bool); v && (req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0) {
		return t.retry.RoundTrip(req)
	}
	return t.base.RoundTrip(req)
}

func (t *transport) closeIdle() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// checkRetry retries 5xx (but 501), 429, 498 and transport failures; never
// a cancelled context, a 4xx or a certificate error.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	if err != nil {
		var ue x509.UnknownAuthorityError
		var ce *tlsCertErr
		if errors.As(err, &ue) || errors.As(err, &ce) {
			return false, err
		}
		return true, nil
	}
	switch c := resp.StatusCode; {
	case c == http.StatusTooManyRequests || c == 498:
		return true, nil
	case c >= 500 && c != http.StatusNotImplemented && c != http.StatusHTTPVersionNotSupported:
		return true, nil
	}
	return false, nil
}

// tlsCertErr stands for certificate verification errors.
type tlsCertErr = x509.CertificateInvalidError

// jitterBackoff is full-jitter exponential backoff, honouring a
// Retry-After (capped at max) on 429 and 503.
func jitterBackoff(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			return minDur(time.Duration(s)*time.Second, max)
		}
	}
	ceil := min << uint(attempt)
	if ceil <= 0 || ceil > max {
		ceil = max
	}
	return time.Duration(rand.Int64N(int64(ceil))) + 1
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// discardHandler is a slog.Handler that drops everything.
type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }
