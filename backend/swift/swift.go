// Package swift is a backend.Store on OpenStack Swift, built on
// github.com/ncw/swift/v2 with an HTTP transport from
// github.com/hashicorp/go-retryablehttp.
//
// # Requests and retries
//
// Store operations are single-shot, as package backend's contract asks:
// each sends its requests once and reports a failure a retry may fix (5xx
// but 501, 429, a reset, a timeout) as backend.ErrTransient; rack's
// internal/retry layer, which wraps every store the kernel uses, owns the
// attempts, the backoff and the writer token of create-only Puts. So a
// GET, HEAD or listing against a failing Swift costs exactly the retrying
// layer's attempts. 401, 403 and 404 fail at once. The one request an
// operation repeats is one refused with a 401 (an expired or revoked
// token): the Store authenticates again and resends it, once, from a fresh
// reader if its body is an io.ReaderAt and io.Seeker; a second 401 is an
// ErrAuth. A request whose body cannot be read afresh (a large Put's
// segment) is not resent: it fails with ErrTransient, and the next attempt
// authenticates first.
//
// The transport (go-retryablehttp) retries only requests without a body
// made outside any store operation, which no other layer retries: New's
// v1 authentication (a GET) and its /info request, TempURL's account
// requests, and the clean-up of the segments of a failed large Put. It
// retries them with jittered backoff (Config.Retries, RetryWaitMin,
// RetryWaitMax), honouring Retry-After. Keystone's token request is a POST
// with a body and is sent once: New reports its failure (a 5xx, no reply)
// as backend.ErrTransient, for the caller to call New again.
// A user of this package outside rack who wants store operations retried
// wraps the Store in a layer of their own.
//
// # Authentication
//
// AuthV1 is Swift's own auth (tempauth, swauth). AuthV3 is Keystone v3,
// with a password or an application credential; openstack.CloudConfig builds such a
// Config from a clouds.yaml entry or the OS_* variables. Keystone is
// reached through gophercloud (github.com/gophercloud/gophercloud/v2), which
// authenticates and picks the object-store endpoint of Config.Region and
// Config.Interface from the catalog; a 401 from Swift (an expired or
// revoked token) makes the Store authenticate again, once, and retry. A
// refused authentication (HTTP 401 or 403 from Keystone) is never retried.
// Errors and logs name the auth URL, cloud, user and project, but never a
// password, application credential secret, token or Temp-URL key.
//
// # Temporary URLs
//
// TempURL signs a URL that allows one method on one object until it
// expires, without a token: the account's Temp-URL key is created on first
// use (see TempURL).
//
// # Create-only Puts
//
// Swift checks If-None-Match: * when a PUT arrives, not when it commits, so
// two concurrent create-only PUTs can both get 201 (the later timestamp
// wins). Put with CreateOnly therefore stores a writer token in the
// backend.WriterTokenKey metadata key (the caller's, if it set one) and,
// after a 201, HEADs the object: if the stored token is not its own, it
// reports backend.ErrExist. Bodies of create-only Puts up to Config.LookAhead bytes
// are read into memory before the PUT is sent, which keeps the window
// between a PUT's arrival and its commit short. See the package tests.
//
// # Metadata
//
// Metadata keys map to X-Object-Meta-<key> headers; Swift title-cases header
// names, and Head and Get map them back to lower case. Values are sent as
// printable ASCII: a value is percent-encoded (RFC 3986 style, "%XX" per
// byte) when it contains '%', a byte outside 0x20-0x7E, or leading or
// trailing spaces (which HTTP would strip); on the way back every value that
// percent-decodes cleanly is decoded. Values written by other Swift clients
// that contain a valid "%XX" sequence are therefore decoded too. Swift
// enforces its limits (256 bytes a value, 4096 in all) on the encoded form.
//
// # Content types
//
// Swift's container listings rebuild an object's content type from its
// parsed parameters (dropping spaces, and cutting values that are not
// RFC 7230 tokens), so a content type that a listing would change is
// stored percent-encoded in a "rack-ct" parameter after its media type and
// decoded by Head, Get and List (see contenttype.go).
//
// # Large objects
//
// A Put streams its body. A body larger than Config.SegmentSize (default
// 64 MiB) is written as a Static Large Object: segments of SegmentSize in
// container "<container>_segments" (created as needed), then the manifest
// with ?multipart-manifest=put, so memory stays bounded. Delete removes the
// segments with the manifest (?multipart-manifest=delete). The ETag of an
// SLO is Swift's (the MD5 of the segments' ETags), not the content's MD5.
// Each attempt of a large Put writes its segments under a prefix of its
// own and commits with the manifest, so retrying the whole Put (the
// retrying layer does, when the body can be read again) never mixes two
// attempts' segments; a segment PUT is sent once, and the segments of a
// failed attempt are deleted. When the manifest PUT fails without a
// definite refusal (a 5xx, no reply, the context ending), the stored
// manifest is read back once: if it is this attempt's, the Put succeeded;
// if not, the segments are deleted; if it cannot be read, they are kept (a
// leak rather than an object without its content).
package swift

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

// Defaults for Config.
const (
	DefaultSegmentSize    = 64 << 20
	DefaultLookAhead      = 8 << 20
	DefaultRequestTimeout = 60 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultRetries        = 4
)

// AuthVersion selects how a Store authenticates.
type AuthVersion int

const (
	// AuthV1 is Swift's own v1 auth (tempauth, swauth): AuthURL, User, Key.
	AuthV1 AuthVersion = 1
	// AuthV3 is Keystone v3 (see Config's Keystone fields and openstack.CloudConfig).
	AuthV3 AuthVersion = 3
)

// Config says where Swift is and how to reach it.
type Config struct {
	// AuthVersion defaults to AuthV1.
	AuthVersion AuthVersion
	// AuthURL is the auth endpoint: http://127.0.0.1:8080/auth/v1.0 for
	// v1, Keystone's identity URL (http://127.0.0.1:5000/v3; a URL without
	// a version is discovered) for v3.
	AuthURL string
	// User and Key are the user name and key (password): "account:user"
	// for tempauth; for Keystone, leave them empty to use an application
	// credential.
	User string
	Key  string

	// Keystone v3 (AuthV3) only.

	// Cloud names the clouds.yaml entry the Config came from ("" for the
	// OS_* variables). Errors name it; nothing else reads it.
	Cloud string
	// UserID names the user by ID instead of by User and domain.
	UserID string
	// Domain or DomainID name the user's domain (default: ID "default").
	Domain, DomainID string
	// Project or ProjectID name the project the token is scoped to; a
	// password needs one (an application credential carries its own).
	Project, ProjectID string
	// ProjectDomain or ProjectDomainID name the project's domain (default:
	// the user's domain).
	ProjectDomain, ProjectDomainID string
	// Region selects the object-store endpoint in the catalog ("" accepts
	// any region).
	Region string
	// Interface is the endpoint interface: "public" (default), "internal"
	// or "admin".
	Interface string
	// ApplicationCredentialID, or ApplicationCredentialName with User (or
	// UserID) and the user's domain, together with
	// ApplicationCredentialSecret authenticate instead of a password.
	ApplicationCredentialID, ApplicationCredentialName string
	ApplicationCredentialSecret                        string
	// TLSConfig, if not nil, is used for Keystone and Swift (clouds.yaml's
	// cacert, cert, key and verify, or OS_CACERT and OS_INSECURE). It is
	// ignored when Transport is set.
	TLSConfig *tls.Config

	// SegmentSize is the size above which a Put becomes a Static Large
	// Object, and the size of its segments (default 64 MiB; at least 1 MiB,
	// Swift's minimum segment size).
	SegmentSize int64
	// LookAhead is how much of a body of unknown length Put reads into
	// memory to learn its size before sending it (default 8 MiB, at most
	// SegmentSize).
	LookAhead int
	// RequestTimeout bounds waiting for a response's headers and each idle
	// period of a body (default 60 s). ConnectTimeout bounds dialing.
	RequestTimeout, ConnectTimeout time.Duration
	// Retries is how often the transport retries a request without a body
	// that no other layer retries: New's v1 authentication (not
	// Keystone's, a POST with a body) and /info, TempURL's account
	// requests, segment clean-up (default 4; negative for none). Store
	// operations are never retried here (see "Requests and retries").
	Retries int
	// RetryWaitMin and RetryWaitMax bound the jittered backoff (default
	// 50 ms and 2 s).
	RetryWaitMin, RetryWaitMax time.Duration
	// Transport is the base HTTP transport (default: a tuned
	// http.Transport). Tests put fault injectors here.
	Transport http.RoundTripper
	// Logger receives debug logs of requests and retries (default: none).
	// It never sees the key or the token.
	Logger *slog.Logger
	// Login, for AuthV3, is a Keystone login already made as this Config
	// says (IdentityClient's ProviderClient; openstack.Login shares it
	// with Nova and the credentials): New takes its token and
	// object-store endpoint instead of authenticating again. Later
	// authentications (a token refused or about to expire) are the
	// Store's own.
	Login *gophercloud.ProviderClient
}

// FromEnv reads SWIFT_AUTH_URL, SWIFT_USER and SWIFT_KEY.
func FromEnv() (Config, error) {
	cfg := Config{
		AuthVersion: AuthV1,
		AuthURL:     os.Getenv("SWIFT_AUTH_URL"),
		User:        os.Getenv("SWIFT_USER"),
		Key:         os.Getenv("SWIFT_KEY"),
	}
	var missing []string
	for _, v := range []struct{ name, val string }{
		{"SWIFT_AUTH_URL", cfg.AuthURL}, {"SWIFT_USER", cfg.User}, {"SWIFT_KEY", cfg.Key},
	} {
		if v.val == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("swift: %s unset: %w", strings.Join(missing, ", "), backend.ErrInvalid)
	}
	return cfg, nil
}

// String describes cfg without its secrets: no key, password or
// application credential secret.
func (cfg Config) String() string {
	if cfg.AuthVersion != AuthV3 {
		return fmt.Sprintf("swift v%d auth %s user %q", max(cfg.AuthVersion, AuthV1), cfg.AuthURL, cfg.User)
	}
	return "swift v3 " + cfg.describe()
}

// GoString is String, so that %#v does not print the secrets either.
func (cfg Config) GoString() string { return cfg.String() }

// Store is a backend.Store on Swift. It is safe for concurrent use.
type Store struct {
	conn   *sw.Connection
	cfg    Config
	tr     *transport
	limits limits
	// listCap and accountCap lower limits' listing limits once a listing
	// was refused for its limit (see list): /info may have been
	// unavailable when the Store was made.
	listCap, accountCap atomic.Int64
	log                 *slog.Logger
	// ks authenticates with Keystone (AuthV3), else nil.
	ks *keystoneAuth
	// segConts caches the segment containers known to exist.
	segConts sync.Map
	// tempURL caches the account's Temp-URL key (see TempURL).
	tempURL tempURLState
	// containerKeys caches containers' Temp-URL keys (containerKey), under tempURL.mu.
	containerKeys sync.Map
}

var _ backend.Store = (*Store)(nil)
var _ backend.SegmentSweeper = (*Store)(nil)

// New authenticates against Swift and returns a Store.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.AuthVersion == 0 {
		cfg.AuthVersion = AuthV1
	}
	switch cfg.AuthVersion {
	case AuthV1:
		if cfg.AuthURL == "" || cfg.User == "" || cfg.Key == "" {
			return nil, fmt.Errorf("swift: v1 auth needs AuthURL, User and Key: %w", backend.ErrInvalid)
		}
	case AuthV3:
		if err := cfg.checkV3(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("swift: unknown auth version %d: %w", cfg.AuthVersion, backend.ErrInvalid)
	}
	if u, err := url.Parse(cfg.AuthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("swift: auth URL %q is not an http(s) URL: %w", cfg.AuthURL, backend.ErrInvalid)
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if cfg.SegmentSize < 1<<20 {
		return nil, fmt.Errorf("swift: SegmentSize %d is below Swift's 1 MiB minimum: %w", cfg.SegmentSize, backend.ErrInvalid)
	}
	if cfg.LookAhead <= 0 {
		cfg.LookAhead = DefaultLookAhead
	}
	if int64(cfg.LookAhead) > cfg.SegmentSize {
		cfg.LookAhead = int(cfg.SegmentSize)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.RetryWaitMin <= 0 {
		cfg.RetryWaitMin = 50 * time.Millisecond
	}
	if cfg.RetryWaitMax <= 0 {
		cfg.RetryWaitMax = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(discardHandler{})
	}
	tr := newTransport(cfg, log)
	conn := &sw.Connection{
		UserName:       cfg.User,
		ApiKey:         cfg.Key,
		AuthUrl:        cfg.AuthURL,
		AuthVersion:    int(cfg.AuthVersion),
		Transport:      tr,
		ConnectTimeout: cfg.ConnectTimeout,
		Timeout:        cfg.RequestTimeout,
		// call sets each request's own Retries to -1, so that ncw/swift
		// sends it once, and re-authenticates on a 401 itself.
		Retries:   1,
		UserAgent: "rack-swift/1",
	}
	s := &Store{conn: conn, cfg: cfg, tr: tr, limits: defaultLimits, log: log}
	if cfg.AuthVersion == AuthV3 {
		conn.ApiKey = ""
		s.ks = newKeystoneAuth(&s.cfg, tr, log)
		conn.Auth = s.ks
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("swift: authenticating: %w", context.Cause(ctx))
	}
	if err := conn.Authenticate(retryable(ctx)); err != nil {
		return nil, s.authError(ctx, err)
	}
	// The cluster's constraints (listing limit, name and metadata limits).
	if err := s.loadLimits(ctx); err != nil {
		log.Debug("swift: /info unavailable, using default constraints", "err", err)
	}
	return s, nil
}

// authError describes a failed authentication without credentials.
func (s *Store) authError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("swift: authenticating at %s: %w", s.cfg.AuthURL, context.Cause(ctx))
	}
	if s.ks != nil {
		return s.ks.wrap(err) // already described by the Keystone authenticator
	}
	var se *sw.Error
	if errors.As(err, &se) {
		switch se.StatusCode {
		case 401, 403:
			return fmt.Errorf("swift: authentication of user %q at %s refused (HTTP %d): wrong user or key: %w",
				s.cfg.User, s.cfg.AuthURL, se.StatusCode, errAuth)
		case 400, 404, 405:
			return fmt.Errorf("swift: auth URL %s refused the request (HTTP %d): %w", s.cfg.AuthURL, se.StatusCode, backend.ErrInvalid)
		}
		if se.StatusCode >= 500 || se.StatusCode == 429 {
			return fmt.Errorf("swift: authenticating at %s: HTTP %d: %w", s.cfg.AuthURL, se.StatusCode, backend.ErrTransient)
		}
	}
	return fmt.Errorf("swift: authenticating at %s: %s: %w", s.cfg.AuthURL, s.redact(err.Error()), backend.ErrTransient)
}

// errAuth marks credential failures.
var errAuth = errors.New("authentication failed")

// ErrAuth is wrapped by errors that a refused authentication or
// authorization (HTTP 401, 403) caused.
var ErrAuth = errAuth

// LooseCreate reports true: Swift checks If-None-Match when a PUT arrives,
// so two create-only PUTs of one name in flight together may both succeed
// (the later one's content stays).
func (s *Store) LooseCreate() bool { return true }

// Close releases idle connections.
func (s *Store) Close() error {
	s.tr.closeIdle()
	return nil
}

// call runs one storage request through ncw/swift, which authenticates
// as needed. The request is sent once: ncw/swift's own retry (of a GET or
// HEAD that failed without a response) is off, since the retrying layer
// above owns the attempts. A 401 (an expired or revoked token) is not a
// failure of the service: call authenticates again and resends the
// request, once, if its body can be read afresh (an io.ReaderAt and
// io.Seeker: each send reads it through a reader of its own, since the
// transport may still be reading the previous send's body after the
// response came). A request whose body cannot be read afresh is not resent:
// the 401 is reported wrapping backend.ErrTransient, the token forgotten,
// so that the layer above sends it again, authenticating first (a refused
// authentication is then an auth error, not a transient one).
func (s *Store) call(ctx context.Context, p sw.RequestOpts) (*http.Response, sw.Headers, error) {
	p.Retries = -1
	p.OnReAuth = func() (string, error) { return s.conn.StorageUrl, nil } // called with ncw's auth lock held
	fresh := freshBody(p.Body)
	for reauth := true; ; reauth = false {
		if err := ctx.Err(); err != nil {
			return nil, nil, context.Cause(ctx)
		}
		u, err := s.conn.GetStorageUrl(ctx)
		if err != nil {
			return nil, nil, s.authError(ctx, err)
		}
		if fresh != nil {
			p.Body = fresh()
		}
		resp, h, err := s.conn.Call(ctx, u, p)
		if reauth && isStatus(err, 401) && ctx.Err() == nil {
			s.conn.UnAuthenticate()
			if fresh == nil {
				return resp, h, fmt.Errorf("%w (the token was refused; the body cannot be sent again here): %w", err, backend.ErrTransient)
			}
			continue
		}
		return resp, h, err
	}
}

// freshBody returns a function giving, for each send, a new reader of what
// is left in body, or nil if body cannot be read afresh (it is not an
// io.ReaderAt and io.Seeker). A nil body is sent as nil each time.
func freshBody(body io.Reader) func() io.Reader {
	if body == nil {
		return func() io.Reader { return nil }
	}
	ra, ok := body.(io.ReaderAt)
	sk, ok2 := body.(io.Seeker)
	if !ok || !ok2 {
		return nil
	}
	start, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return nil
	}
	if _, err := sk.Seek(start, io.SeekStart); err != nil {
		return nil
	}
	return func() io.Reader { return io.NewSectionReader(ra, start, end-start) }
}

// CreateContainer creates c; it succeeds if c exists.
func (s *Store) CreateContainer(ctx context.Context, c string) error {
	if err := s.checkContainer(c); err != nil {
		return err
	}
	_, _, err := s.call(ctx, sw.RequestOpts{
		Container: c, Operation: "PUT", NoResponse: true,
		Headers: sw.Headers{"Content-Length": "0"},
	})
	return s.mapErr(ctx, err, "create container", c, "")
}

// DeleteContainer deletes the empty container c.
func (s *Store) DeleteContainer(ctx context.Context, c string) error {
	if err := s.checkContainer(c); err != nil {
		return err
	}
	_, _, err := s.call(ctx, sw.RequestOpts{Container: c, Operation: "DELETE", NoResponse: true})
	return s.mapErr(ctx, err, "delete container", c, "")
}

// listEntry is one entry of a JSON listing.
type listEntry struct {
	Name         string `json:"name"`
	Bytes        int64  `json:"bytes"`
	Hash         string `json:"hash"`
	SLOEtag      string `json:"slo_etag"`
	ContentType  string `json:"content_type"`
	LastModified string `json:"last_modified"`
	Subdir       string `json:"subdir"`
}

// list runs one listing request (container "" lists the account).
func (s *Store) list(ctx context.Context, c string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("swift: list %q: negative limit %d: %w", c, opts.Limit, backend.ErrInvalid)
	}
	max, capped := s.limits.containerListing, &s.listCap
	if c == "" {
		max, capped = s.limits.accountListing, &s.accountCap
	}
	if n := capped.Load(); n > 0 && int(n) < max {
		max = int(n)
	}
	limit := opts.Limit
	if limit == 0 || limit > max {
		limit = max
	}
	v := url.Values{"format": {"json"}, "limit": {strconv.Itoa(limit)}}
	if opts.Prefix != "" {
		v.Set("prefix", opts.Prefix)
	}
	if opts.Delimiter != "" {
		v.Set("delimiter", opts.Delimiter)
	}
	if opts.Marker != "" {
		v.Set("marker", opts.Marker)
	}
	resp, _, err := s.call(ctx, sw.RequestOpts{Container: c, Operation: "GET", Parameters: v})
	what := "list container"
	if c == "" {
		what = "list containers"
	}
	if isStatus(err, http.StatusPreconditionFailed) {
		// Swift refuses a limit above its listing limit with 412
		// (swift/common/request_helpers.py, constrain_req_limit): this
		// Store did not know the cluster's limit (/info was unavailable
		// when it was made). Learn it, and list again with it.
		if n, lerr := s.listingLimit(ctx, c == ""); lerr != nil {
			return nil, fmt.Errorf("swift: %s %s: the cluster refused a page of %d (HTTP 412), and its listing limit is unknown: %v: %w", what, c, limit, lerr, backend.ErrTransient)
		} else if n < limit {
			capped.Store(int64(n))
			return s.list(ctx, c, opts)
		}
	}
	if err != nil {
		return nil, s.mapErr(ctx, err, what, c, "")
	}
	defer resp.Body.Close()
	var raw []listEntry
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil && err != io.EOF {
			return nil, s.mapErr(ctx, fmt.Errorf("decoding listing: %w", err), what, c, "")
		}
	}
	out := make([]backend.ObjectInfo, 0, len(raw))
	for _, e := range raw {
		if e.Subdir != "" {
			out = append(out, backend.ObjectInfo{Name: e.Subdir, Subdir: true})
			continue
		}
		info := backend.ObjectInfo{Name: e.Name, Size: e.Bytes, ETag: strings.Trim(e.Hash, `"`), ContentType: loadedContentType(e.ContentType)}
		if e.SLOEtag != "" {
			info.ETag = strings.Trim(e.SLOEtag, `"`)
		}
		if e.LastModified != "" {
			info.LastModified, _ = time.Parse("2006-01-02T15:04:05.999999", strings.TrimSuffix(e.LastModified, "Z"))
		}
		out = append(out, info)
	}
	// A server with a lower limit than asked for may return a full page
	// of its own size: that is not the last page, but the contract says a
	// short page is. Fetch the rest when the caller asked for more.
	if opts.Limit > 0 && len(out) == limit && limit < opts.Limit && len(out) > 0 {
		next := opts
		next.Limit = opts.Limit - len(out)
		next.Marker = out[len(out)-1].Name
		more, err := s.list(ctx, c, next)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	} else if opts.Limit == 0 && len(out) == limit && limit < s.limits.maxListing {
		// Limit 0 means the driver's maximum (10,000): fill the page.
		next := opts
		next.Limit = s.limits.maxListing - len(out)
		next.Marker = out[len(out)-1].Name
		more, err := s.list(ctx, c, next)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

// ListContainers lists the account's containers.
func (s *Store) ListContainers(ctx context.Context, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	if opts.Limit > maxListLimit {
		opts.Limit = maxListLimit
	}
	return s.list(ctx, "", opts)
}

// List lists one page of container c.
func (s *Store) List(ctx context.Context, c string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	if err := s.checkContainer(c); err != nil {
		return nil, err
	}
	if opts.Limit > maxListLimit {
		opts.Limit = maxListLimit
	}
	return s.list(ctx, c, opts)
}

// Head returns c/name's info and metadata.
func (s *Store) Head(ctx context.Context, c, name string) (backend.ObjectInfo, error) {
	if err := s.checkObject(c, name); err != nil {
		return backend.ObjectInfo{}, err
	}
	_, h, err := s.call(ctx, sw.RequestOpts{
		Container: c, ObjectName: name, Operation: "HEAD", NoResponse: true,
	})
	if err != nil {
		return backend.ObjectInfo{}, s.mapErr(ctx, err, "head", c, name)
	}
	return infoFromHeaders(name, h, -1), nil
}

// Get opens c/name, or the range opts selects.
func (s *Store) Get(ctx context.Context, c, name string, opts *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	if err := s.checkObject(c, name); err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	h := sw.Headers{}
	if opts != nil {
		if opts.Offset < 0 || opts.Length < 0 {
			return nil, backend.ObjectInfo{}, fmt.Errorf("swift: get %s/%s: negative range %+v: %w", c, name, *opts, backend.ErrInvalid)
		}
		switch {
		case opts.Length > 0:
			h["Range"] = fmt.Sprintf("bytes=%d-%d", opts.Offset, opts.Offset+opts.Length-1)
		case opts.Offset > 0:
			h["Range"] = fmt.Sprintf("bytes=%d-", opts.Offset)
		}
	}
	resp, rh, err := s.call(ctx, sw.RequestOpts{
		Container: c, ObjectName: name, Operation: "GET", Headers: h,
	})
	if err != nil {
		return nil, backend.ObjectInfo{}, s.mapErr(ctx, err, "get", c, name)
	}
	size := int64(-1)
	if resp.StatusCode == http.StatusPartialContent {
		// Content-Range: bytes a-b/size
		if cr := rh["Content-Range"]; cr != "" {
			if i := strings.LastIndexByte(cr, '/'); i >= 0 {
				size, _ = strconv.ParseInt(cr[i+1:], 10, 64)
			}
		}
		if size < 0 {
			size = 0
		}
	}
	info := infoFromHeaders(name, rh, size)
	return &body{rc: resp.Body, s: s, ctx: ctx, c: c, name: name}, info, nil
}

// body maps read errors of a response body.
type body struct {
	rc      io.ReadCloser
	s       *Store
	ctx     context.Context
	c, name string
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.mapErr(b.ctx, err, "reading", b.c, b.name)
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

// Delete removes c/name, with its segments if it is a Static Large Object
// whose segments are in c's segment container (SegmentContainer).
//
// It never asks Swift to follow the object: ?multipart-manifest=delete
// follows a symlink and deletes whatever segments a manifest names, in
// any container of the account, so a symlink or manifest that someone
// with write access to c planted would make the kernel's own clean-up
// delete objects of other containers (and a dangling symlink answered 404
// for ever). Delete instead looks at the object itself (HEAD
// ?multipart-manifest=get&symlink=get); a manifest's segments are read
// from it (GET, the same) and deleted one by one, only those in
// SegmentContainer(c), before the manifest; segments it names elsewhere
// are left alone. Everything else (a plain object, a symlink, a Dynamic
// Large Object manifest) is deleted as the object it is.
func (s *Store) Delete(ctx context.Context, c, name string) error {
	if err := s.checkObject(c, name); err != nil {
		return err
	}
	raw := url.Values{"multipart-manifest": {"get"}, "symlink": {"get"}}
	_, h, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "HEAD", Parameters: raw, NoResponse: true})
	if err != nil {
		return s.mapErr(ctx, err, "delete", c, name)
	}
	if strings.EqualFold(h["X-Static-Large-Object"], "true") {
		if err := s.deleteOwnSegments(ctx, c, name); err != nil {
			return err
		}
	}
	_, _, err = s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "DELETE", NoResponse: true})
	return s.mapErr(ctx, err, "delete", c, name)
}

// DeleteSmall deletes an object written whole by one Put of at most
// backend.SmallObjectMax bytes, which is never a Static Large Object here
// (SegmentSize is at least 1 MiB): one DELETE, no HEAD first
// (backend.SmallDeleter).
func (s *Store) DeleteSmall(ctx context.Context, c, name string) error {
	if err := s.checkObject(c, name); err != nil {
		return err
	}
	_, _, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "DELETE", NoResponse: true})
	return s.mapErr(ctx, err, "delete", c, name)
}

var _ backend.SmallDeleter = (*Store)(nil)

// maxManifestSize bounds the manifest Delete reads (Swift's own limit,
// max_manifest_size, is 8 MiB by default).
const maxManifestSize = 16 << 20

// deleteOwnSegments deletes the segments the manifest c/name names that
// are in c's segment container; a segment already gone is no error.
func (s *Store) deleteOwnSegments(ctx context.Context, c, name string) error {
	resp, h, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "GET",
		Parameters: url.Values{"multipart-manifest": {"get"}, "symlink": {"get"}}})
	if err != nil {
		return s.mapErr(ctx, err, "delete: reading the manifest of", c, name)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	resp.Body.Close()
	if err != nil {
		return s.mapErr(ctx, err, "delete: reading the manifest of", c, name)
	}
	if !strings.EqualFold(h["X-Static-Large-Object"], "true") {
		return nil // replaced by a plain object meanwhile
	}
	if len(data) > maxManifestSize {
		return fmt.Errorf("swift: delete %s/%s: its manifest is larger than %d bytes: %w", c, name, maxManifestSize, backend.ErrInvalid)
	}
	var segs []struct {
		Name string `json:"name"` // what Swift returns
		Path string `json:"path"` // the form it was put in
	}
	if err := json.Unmarshal(data, &segs); err != nil {
		return fmt.Errorf("swift: delete %s/%s: its manifest is not a JSON list of segments: %v: %w", c, name, err, backend.ErrInvalid)
	}
	segc := segmentContainer(c)
	for _, sg := range segs {
		p := strings.TrimPrefix(coalesce(sg.Name, sg.Path), "/")
		sc, obj, ok := strings.Cut(p, "/")
		if !ok || sc != segc || obj == "" {
			s.log.Debug("swift: delete: leaving a segment the manifest names outside its segment container",
				"container", c, "object", name, "segment", p)
			continue
		}
		_, _, err := s.call(ctx, sw.RequestOpts{Container: segc, ObjectName: obj, Operation: "DELETE", NoResponse: true})
		if err != nil && !isStatus(err, 404) {
			return s.mapErr(ctx, err, "delete: deleting segment", segc, obj)
		}
	}
	return nil
}

// infoFromHeaders builds an ObjectInfo from a HEAD or GET response. size
// overrides Content-Length when not negative (for ranges).
// parseTimestamp reads an X-Timestamp ("1764477616.22150") exactly, to the
// microsecond, as Swift's listings show it: through a float it would come
// out a few hundred nanoseconds off the listing's time.
func parseTimestamp(s string) (time.Time, bool) {
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || sec <= 0 || len(frac) > 9 {
		return time.Time{}, false
	}
	frac = (frac + "000000")[:6]
	usec, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, usec*1000).UTC(), true
}

func infoFromHeaders(name string, h sw.Headers, size int64) backend.ObjectInfo {
	info := backend.ObjectInfo{Name: name, ETag: strings.Trim(h["Etag"], `"`)}
	if size >= 0 {
		info.Size = size
	} else {
		info.Size, _ = strconv.ParseInt(h["Content-Length"], 10, 64)
	}
	if lm := h["Last-Modified"]; lm != "" {
		info.LastModified, _ = http.ParseTime(lm)
	}
	if t, ok := parseTimestamp(h["X-Timestamp"]); ok {
		info.LastModified = t
	}
	info.Metadata = decodeMeta(h)
	info.ContentType = loadedContentType(h["Content-Type"])
	return info
}
