package swift

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

// tempURLKeyTTL is how long a Store trusts the Temp-URL key it read.
const tempURLKeyTTL = time.Minute

// The account metadata that holds the Temp-URL keys (Swift checks both).
const (
	hdrTempURLKey  = "X-Account-Meta-Temp-Url-Key"
	hdrTempURLKey2 = "X-Account-Meta-Temp-Url-Key-2"
)

// tempURLState caches the account's Temp-URL key.
type tempURLState struct {
	mu      sync.Mutex // serializes look-ups
	key     atomic.Pointer[string]
	fetched time.Time // guarded by mu
}

// current returns the cached key ("" if none), without locking: redact
// calls it while a look-up may hold mu.
func (t *tempURLState) current() string {
	if k := t.key.Load(); k != nil {
		return *k
	}
	return ""
}

// tempURLInfo is what /info says about the tempurl middleware.
type tempURLInfo struct {
	known   bool     // /info was read
	enabled bool     // the tempurl middleware is in the pipeline
	methods []string // methods a temporary URL may allow
	digests []string // allowed signature digests
}

// TempURL returns a URL that lets anyone who holds it make one kind of
// request, method, on object c/name without a token until ttl has passed
// (whole seconds, rounded up). method is GET (which allows HEAD too),
// HEAD, PUT, POST or DELETE, as far as the cluster's tempurl middleware
// allows it; with PUT the object need not exist yet.
//
// The URL is signed with the account's Temp-URL key
// (X-Account-Meta-Temp-URL-Key, or -Key-2 if only that is set). If the
// account has none, TempURL sets one made of 32 random bytes, which needs
// the rights of an account owner (tempauth's .admin, or a Keystone role
// that keystoneauth counts as operator, such as member); it then reads the
// key back and signs with what is stored. The key is never logged nor put
// in an error, and is cached for a minute. Changing or removing the key
// invalidates the URLs signed with it: two Stores that find no key at the
// same moment may both set one, and the URLs signed with the earlier key
// fail from then on. Set the key once up front (a first TempURL call) where
// that matters.
//
// A container-scoped key is preferred: TempURL signs with container c's
// Temp-URL key (X-Container-Meta-Temp-URL-Key), setting one of 32 random
// bytes if c has none, where the cluster lets this Store do so (an owner
// of the account); such a URL works for objects of c only, and neither the
// account key nor a key of another container is needed. Where setting it
// is refused (HTTP 401/403) or c does not exist, the account key is used.
//
// The signature is HMAC-SHA256 unless the cluster's /info lists allowed
// digests without it (then HMAC-SHA512, else HMAC-SHA1); HMAC-SHA256 when
// /info is unavailable or silent (Swift 2.22 and later accept it).
func (s *Store) TempURL(ctx context.Context, method, c, name string, ttl time.Duration) (string, error) {
	if err := s.checkObject(c, name); err != nil {
		return "", err
	}
	method = strings.ToUpper(method)
	ti := s.limits.tempURL
	if ti.known && !ti.enabled {
		return "", fmt.Errorf("swift: temp URL for %s/%s: the cluster has no tempurl middleware (not in /info): %w", c, name, backend.ErrInvalid)
	}
	methods := ti.methods
	if len(methods) == 0 {
		methods = []string{"GET", "HEAD", "PUT", "POST", "DELETE"}
	}
	if !slices.Contains(methods, method) {
		return "", fmt.Errorf("swift: temp URL for %s/%s: method %q is not one of %s: %w", c, name, method, strings.Join(methods, ", "), backend.ErrInvalid)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("swift: temp URL for %s/%s: ttl %v is not positive: %w", c, name, ttl, backend.ErrInvalid)
	}
	key, err := s.containerTempURLKey(ctx, c)
	if err != nil {
		return "", err
	}
	if key == "" {
		if key, err = s.tempURLKey(ctx); err != nil {
			return "", err
		}
	}
	storageURL, err := s.conn.GetStorageUrl(ctx)
	if err != nil {
		return "", s.authError(ctx, err)
	}
	exp := time.Now().Add(ttl)
	expires := exp.Unix()
	if exp.Nanosecond() > 0 {
		expires++
	}
	u, err := signTempURL(storageURL, method, c, name, key, pickDigest(ti), expires)
	if err != nil {
		return "", fmt.Errorf("swift: temp URL for %s/%s: %w", c, name, err)
	}
	return u, nil
}

// pickDigest prefers sha256, then sha512, then sha1; sha256 when /info
// lists no digests.
func pickDigest(ti tempURLInfo) string {
	if len(ti.digests) == 0 {
		return "sha256"
	}
	for _, d := range []string{"sha256", "sha512", "sha1"} {
		if slices.Contains(ti.digests, d) {
			return d
		}
	}
	return "sha256"
}

// The container metadata that holds a container's Temp-URL keys.
const (
	hdrContainerTempURLKey  = "X-Container-Meta-Temp-Url-Key"
	hdrContainerTempURLKey2 = "X-Container-Meta-Temp-Url-Key-2"
)

// containerKey is a cached container Temp-URL key.
type containerKey struct {
	key     string
	fetched time.Time
}

// containerTempURLKey returns container c's Temp-URL key, setting one if
// c has none; "" when this Store may not set it (401/403: not an owner)
// or c does not exist, for the account key to be used.
func (s *Store) containerTempURLKey(ctx context.Context, c string) (string, error) {
	s.tempURL.mu.Lock()
	defer s.tempURL.mu.Unlock()
	if v, ok := s.containerKeys.Load(c); ok {
		if ck := v.(containerKey); time.Since(ck.fetched) < tempURLKeyTTL {
			return ck.key, nil
		}
	}
	refused := func(err error) bool { return isStatus(err, 401) || isStatus(err, 403) || isStatus(err, 404) }
	read := func() (string, error) {
		_, h, err := s.call(retryable(ctx), sw.RequestOpts{Container: c, Operation: "HEAD", NoResponse: true})
		if err != nil {
			return "", err
		}
		return coalesce(h[hdrContainerTempURLKey], h[hdrContainerTempURLKey2]), nil
	}
	key, err := read()
	if err == nil && key == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("swift: temp URL key of %s: %w", c, err)
		}
		_, _, err = s.call(retryable(ctx), sw.RequestOpts{
			Container: c, Operation: "POST", NoResponse: true,
			Headers: sw.Headers{hdrContainerTempURLKey: hex.EncodeToString(b[:]), "Content-Length": "0"},
		})
		if err == nil {
			s.log.Debug("swift: set the container's Temp-URL key", "container", c)
			// Sign with what is stored: a concurrent writer may have won;
			// a cluster that does not show it to us leaves "" (account key).
			key, err = read()
		}
	}
	if refused(err) {
		return "", nil
	}
	if err != nil {
		return "", s.mapErr(ctx, err, "temp URL key: container", c, "")
	}
	s.containerKeys.Store(c, containerKey{key: key, fetched: time.Now()})
	return key, nil
}

// signTempURL builds the URL of c/name under storageURL signed for method
// until expires (Unix seconds). Swift signs the decoded path
// (/v1/AUTH_x/c/name); the URL carries it escaped.
func signTempURL(storageURL, method, c, name, key, digest string, expires int64) (string, error) {
	u, err := url.Parse(storageURL)
	if err != nil {
		return "", fmt.Errorf("storage URL %q: %w", storageURL, err)
	}
	path := strings.TrimSuffix(u.Path, "/") + "/" + c + "/" + name
	var h func() hash.Hash
	switch digest {
	case "sha256":
		h = sha256.New
	case "sha512":
		h = sha512.New
	default:
		h = sha1.New
	}
	mac := hmac.New(h, []byte(key))
	fmt.Fprintf(mac, "%s\n%d\n%s", method, expires, path)
	u.Path, u.RawPath, u.Fragment = path, "", ""
	u.RawQuery = "temp_url_sig=" + hex.EncodeToString(mac.Sum(nil)) + "&temp_url_expires=" + strconv.FormatInt(expires, 10)
	return u.String(), nil
}

// tempURLKey returns the account's Temp-URL key, setting one if there is
// none.
func (s *Store) tempURLKey(ctx context.Context) (string, error) {
	t := &s.tempURL
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := t.current(); k != "" && time.Since(t.fetched) < tempURLKeyTTL {
		return k, nil
	}
	read := func() (string, error) {
		_, h, err := s.call(retryable(ctx), sw.RequestOpts{Operation: "HEAD", NoResponse: true})
		if err != nil {
			return "", s.mapErr(ctx, err, "temp URL key: head", "", "")
		}
		return coalesce(h[hdrTempURLKey], h[hdrTempURLKey2]), nil
	}
	key, err := read()
	if err != nil {
		return "", err
	}
	if key == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("swift: temp URL key: %w", err)
		}
		// Setting the same value twice is harmless: retryable.
		_, _, err := s.call(retryable(ctx), sw.RequestOpts{
			Operation: "POST", NoResponse: true,
			Headers: sw.Headers{hdrTempURLKey: hex.EncodeToString(b[:]), "Content-Length": "0"},
		})
		if err != nil {
			return "", s.mapErr(ctx, err, "temp URL key: set on", "", "")
		}
		s.log.Debug("swift: set the account's Temp-URL key")
		// Sign with what is stored: a concurrent writer may have won.
		if key, err = read(); err != nil {
			return "", err
		}
		if key == "" {
			return "", fmt.Errorf("swift: temp URL key: set, but a HEAD of the account does not show it: %w", backend.ErrTransient)
		}
	}
	t.key.Store(&key)
	t.fetched = time.Now()
	return key, nil
}
