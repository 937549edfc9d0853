// Package faults is a seeded, deterministic fault-injecting
// http.RoundTripper, for proving that a client stays exact when its HTTP
// requests fail the ways a real object store's do.
//
// Wrap a base transport with New and hand the result to the client (for
// Swift: swift.Config.Transport). A fraction Config.Rate of the requests
// is faulted; each faulted request gets one of the enabled Kinds:
//
//   - Status503, Status500: a 503 or 500 response made up here; the request
//     is not forwarded (the server never sees it).
//   - ResetBefore: a connection reset before the request was sent; not
//     forwarded.
//   - ResetAfter: the request is forwarded and its body sent, the server's
//     response is read and discarded, and the client gets a connection
//     reset: the ambiguous case, where the request took effect but the
//     client cannot know.
//   - Slow: the request is forwarded (a slow server usually does act on
//     it), but its response is held back until the request's context is
//     done (or Config.SlowMax passed), then discarded: the client sees its
//     own timeout. It never waits beyond the context.
//   - ListDelay: a container or account listing (a GET whose query has
//     "format", or of a path /v1/ACCOUNT[/CONTAINER] with no object part)
//     is held 50-200 ms before it is forwarded. This models a slow
//     listing, nothing more: the listing reflects the store at the moment
//     it is forwarded, so it is never staler than a real one; it does not
//     make recent objects missing (Swift's eventual consistency) - that
//     would need the listing rewritten.
//   - BodyCut: an object GET is forwarded and its response returned, but
//     its body fails with a connection reset half way through (a truncated
//     download).
//
// # Determinism
//
// Requests are numbered 0, 1, 2... in the order they reach RoundTrip
// (exempt requests, by default authentication, are not numbered). Whether
// request n is faulted, with which kind, and how long a ListDelay lasts are
// a function of (Seed, n) and of whether the request is a listing or an
// object GET (which restricts the kinds that apply): see Decide. With a
// single client issuing requests one at a time the faults are therefore
// reproducible. With concurrent requests the order in which they reach
// RoundTrip varies from run to run, so which request gets which fault
// varies too; the rate and the mix of kinds do not.
//
// Errors are those a real http.Transport returns: a reset is a
// *net.OpError wrapping syscall.ECONNRESET (an http.Client wraps it in a
// *url.Error, as it does a real one), a timeout is the context's error or
// a net.Error whose Timeout() is true. All injected errors are *Error, so
// tests can tell them from real ones.
package faults

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Kind is a kind of fault.
type Kind int

// The kinds of faults.
const (
	Status503 Kind = iota
	Status500
	ResetBefore
	ResetAfter
	Slow
	ListDelay
	BodyCut
	numKinds
)

var kindNames = [numKinds]string{"503", "500", "reset-before", "reset-after", "slow", "list-delay", "body-cut"}

func (k Kind) String() string {
	if k >= 0 && k < numKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// AllKinds returns every kind, the default.
func AllKinds() []Kind {
	out := make([]Kind, numKinds)
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

// ParseKinds reads a comma-separated list of kind names ("503,reset-after"),
// or "all".
func ParseKinds(list string) ([]Kind, error) {
	if strings.TrimSpace(list) == "all" {
		return AllKinds(), nil
	}
	var out []Kind
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for k, n := range kindNames {
			if n == name {
				out = append(out, Kind(k))
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("faults: unknown kind %q (known: %s)", name, strings.Join(kindNames[:], ", "))
		}
	}
	return out, nil
}

// Config sets what is faulted.
type Config struct {
	// Seed makes the faults reproducible (see the package documentation).
	Seed int64
	// Rate is the fraction (0 to 1) of the numbered requests that are
	// faulted. A request to which no enabled kind applies (a
	// non-listing when only ListDelay is enabled) is never faulted.
	Rate float64
	// Kinds are the faults to inject; nil or empty means AllKinds.
	Kinds []Kind
	// Exempt says which requests pass untouched and unnumbered; nil
	// means IsAuth.
	Exempt func(*http.Request) bool
	// SlowMax, if positive, bounds how long a Slow fault holds a
	// response when the request's context has no deadline the client
	// enforces: after it, the client gets a timeout error. Zero means
	// until the context is done. Clients that time requests out
	// without cancelling their context (ncw/swift does so) leave a
	// goroutine blocked for up to SlowMax.
	SlowMax time.Duration
	// ListDelayMin and ListDelayMax bound a ListDelay (defaults 50 ms
	// and 200 ms).
	ListDelayMin, ListDelayMax time.Duration
}

// IsAuth reports authentication requests: Swift v1 (/auth/v1.0, /v1.0),
// Keystone v3 (/v3/auth/tokens) and v2 (/v2.0/tokens).
func IsAuth(req *http.Request) bool {
	p := strings.TrimSuffix(req.URL.Path, "/")
	return strings.HasSuffix(p, "/auth/v1.0") || p == "/v1.0" || strings.HasSuffix(p, "/auth/tokens") ||
		strings.HasSuffix(p, "/v2.0/tokens")
}

// Transport is the fault-injecting http.RoundTripper. It is safe for
// concurrent use.
type Transport struct {
	base     http.RoundTripper
	cfg      Config
	enabled  [numKinds]bool
	seq      atomic.Uint64
	exempt   atomic.Int64
	counts   [numKinds]atomic.Int64
	disabled atomic.Bool
}

// New wraps base (http.DefaultTransport if nil).
func New(base http.RoundTripper, cfg Config) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	if cfg.Rate < 0 {
		cfg.Rate = 0
	} else if cfg.Rate > 1 {
		cfg.Rate = 1
	}
	if cfg.Exempt == nil {
		cfg.Exempt = IsAuth
	}
	if cfg.ListDelayMin <= 0 {
		cfg.ListDelayMin = 50 * time.Millisecond
	}
	if cfg.ListDelayMax < cfg.ListDelayMin {
		cfg.ListDelayMax = max(200*time.Millisecond, cfg.ListDelayMin)
	}
	t := &Transport{base: base, cfg: cfg}
	kinds := cfg.Kinds
	if len(kinds) == 0 {
		kinds = AllKinds()
	}
	for _, k := range kinds {
		if k >= 0 && k < numKinds {
			t.enabled[k] = true
		}
	}
	return t
}

// SetEnabled turns injection on or off (it is on after New). Requests
// are numbered either way, so turning it back on resumes the same plan.
func (t *Transport) SetEnabled(on bool) { t.disabled.Store(!on) }

// Counts returns how many faults of each kind were injected.
func (t *Transport) Counts() map[Kind]int64 {
	out := make(map[Kind]int64, numKinds)
	for k := range t.counts {
		if n := t.counts[k].Load(); n > 0 {
			out[Kind(k)] = n
		}
	}
	return out
}

// Injected returns the number of faults injected in all.
func (t *Transport) Injected() int64 {
	var n int64
	for k := range t.counts {
		n += t.counts[k].Load()
	}
	return n
}

// Requests returns how many requests were numbered (could be faulted)
// and how many passed as exempt.
func (t *Transport) Requests() (numbered, exempt int64) {
	return int64(t.seq.Load()), t.exempt.Load()
}

// String summarises the counts: "1234 requests, 120 faults: 503=20 ...".
func (t *Transport) String() string {
	n, _ := t.Requests()
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests, %d faults:", n, t.Injected())
	for k := range t.counts {
		fmt.Fprintf(&b, " %s=%d", Kind(k), t.counts[k].Load())
	}
	return b.String()
}

// CloseIdleConnections passes on to the base transport.
func (t *Transport) CloseIdleConnections() {
	if ci, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Class is what a request is, as far as the kinds that apply go.
type Class int

// Request classes.
const (
	Other     Class = iota // any other request
	Listing                // ListDelay applies
	ObjectGet              // BodyCut applies
)

// Classify returns req's class.
func Classify(req *http.Request) Class {
	if req.Method != http.MethodGet {
		return Other
	}
	if req.URL.Query().Has("format") {
		return Listing
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if len(parts) >= 1 && len(parts) <= 3 && parts[0] == "v1" {
		return Listing // /v1/ACCOUNT or /v1/ACCOUNT/CONTAINER
	}
	return ObjectGet
}

// Decide returns the fault planned for the n-th numbered request of
// class c, if any, and a number in [0, 1) that sizes it (a ListDelay's
// length).
func (t *Transport) Decide(n uint64, c Class) (k Kind, frac float64, ok bool) {
	h := mix(uint64(t.cfg.Seed) ^ mix(n+0x9e3779b97f4a7c15))
	if unit(h) >= t.cfg.Rate {
		return 0, 0, false
	}
	var cand [numKinds]Kind
	m := 0
	for k := Kind(0); k < numKinds; k++ {
		if !t.enabled[k] || (k == ListDelay && c != Listing) || (k == BodyCut && c != ObjectGet) {
			continue
		}
		cand[m] = k
		m++
	}
	if m == 0 {
		return 0, 0, false
	}
	h2 := mix(h)
	return cand[h2%uint64(m)], unit(mix(h2)), true
}

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// Error is an injected failure. It unwraps to what a real transport would
// return (a *net.OpError wrapping syscall.ECONNRESET, a timeout net.Error,
// or the context's error).
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() + " (injected " + e.Kind.String() + ")" }
func (e *Error) Unwrap() error { return e.Err }

// Timeout and Temporary make *Error a net.Error like the one it wraps.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Temporary is true: every injected fault is transient.
func (e *Error) Temporary() bool { return true }

// IsInjected reports whether err comes from this package.
func IsInjected(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// resetErr is what reading from or writing to a reset TCP connection
// returns.
func resetErr(req *http.Request, op string) error {
	var addr net.Addr
	if a, err := net.ResolveTCPAddr("tcp", hostPort(req)); err == nil {
		addr = a
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: addr, Err: os.NewSyscallError(op, syscall.ECONNRESET)}
}

func hostPort(req *http.Request) string {
	h := req.URL.Host
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	if req.URL.Scheme == "https" {
		return h + ":443"
	}
	return h + ":80"
}

// timeoutErr is a response-header timeout.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "net/http: timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.cfg.Exempt(req) {
		t.exempt.Add(1)
		return t.base.RoundTrip(req)
	}
	n := t.seq.Add(1) - 1
	kind, frac, ok := t.Decide(n, Classify(req))
	if !ok || t.disabled.Load() {
		return t.base.RoundTrip(req)
	}
	t.counts[kind].Add(1)
	ctx := req.Context()
	switch kind {
	case Status503, Status500:
		closeBody(req)
		code := http.StatusServiceUnavailable
		if kind == Status500 {
			code = http.StatusInternalServerError
		}
		return madeUp(req, code), nil
	case ResetBefore:
		closeBody(req)
		return nil, &Error{kind, resetErr(req, "write")}
	case ResetAfter:
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, &Error{kind, resetErr(req, "read")}
	case Slow:
		resp, err := t.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		var expire <-chan time.Time
		if t.cfg.SlowMax > 0 {
			tm := time.NewTimer(t.cfg.SlowMax)
			defer tm.Stop()
			expire = tm.C
		}
		select {
		case <-ctx.Done():
			return nil, &Error{kind, ctx.Err()}
		case <-expire:
			return nil, &Error{kind, timeoutErr{}}
		}
	case ListDelay:
		d := t.cfg.ListDelayMin + time.Duration(frac*float64(t.cfg.ListDelayMax-t.cfg.ListDelayMin))
		tm := time.NewTimer(d)
		select {
		case <-ctx.Done():
			tm.Stop()
			closeBody(req)
			return nil, &Error{kind, ctx.Err()}
		case <-tm.C:
		}
		return t.base.RoundTrip(req)
	case BodyCut:
		resp, err := t.base.RoundTrip(req)
		if err != nil || resp.StatusCode/100 != 2 || resp.ContentLength == 0 {
			return resp, err // nothing to cut
		}
		keep := resp.ContentLength / 2
		if keep < 0 { // unknown length
			keep = 512
		}
		resp.Body = &cutBody{rc: resp.Body, left: keep, err: &Error{kind, resetErr(req, "read")}}
		return resp, nil
	}
	return t.base.RoundTrip(req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// madeUp is a response the way Swift's proxy writes one.
func madeUp(req *http.Request, code int) *http.Response {
	text := http.StatusText(code)
	body := "<html><h1>" + text + "</h1><p>injected fault</p></html>"
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + text,
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/html; charset=UTF-8"}, "Content-Length": {strconv.Itoa(len(body))}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// cutBody returns err after left bytes.
type cutBody struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		return n, b.err // shorter than announced: still a reset
	}
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

var _ http.RoundTripper = (*Transport)(nil)
