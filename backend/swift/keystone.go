package swift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	tokens3 "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

func coalesce(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// appCred reports whether cfg authenticates with an application credential.
func (cfg *Config) appCred() bool {
	return cfg.ApplicationCredentialID != "" || cfg.ApplicationCredentialName != ""
}

// who names the identity cfg authenticates as, without secrets.
func (cfg *Config) who() string {
	u := cfg.User
	if u == "" {
		u = cfg.UserID
	}
	switch {
	case cfg.AuthVersion == AuthV3 && cfg.ApplicationCredentialID != "":
		return fmt.Sprintf("application credential %s", cfg.ApplicationCredentialID)
	case cfg.AuthVersion == AuthV3 && cfg.ApplicationCredentialName != "":
		return fmt.Sprintf("application credential %q of user %q", cfg.ApplicationCredentialName, u)
	}
	return fmt.Sprintf("user %q", u)
}

// describe is the secret-free description of a v3 Config.
func (cfg *Config) describe() string {
	var b strings.Builder
	if cfg.Cloud != "" {
		fmt.Fprintf(&b, "cloud %q ", cfg.Cloud)
	}
	fmt.Fprintf(&b, "auth %s %s", cfg.AuthURL, cfg.who())
	if !cfg.appCred() {
		if p := coalesce(cfg.Project, cfg.ProjectID); p != "" {
			fmt.Fprintf(&b, " project %q", p)
		}
	}
	if cfg.Region != "" {
		fmt.Fprintf(&b, " region %q", cfg.Region)
	}
	return b.String()
}

// availability maps Config.Interface to gophercloud's.
func (cfg *Config) availability() (gophercloud.Availability, error) {
	switch cfg.Interface {
	case "", "public", "publicURL":
		return gophercloud.AvailabilityPublic, nil
	case "internal", "internalURL":
		return gophercloud.AvailabilityInternal, nil
	case "admin", "adminURL":
		return gophercloud.AvailabilityAdmin, nil
	}
	return "", fmt.Errorf("swift: %s: interface %q is not public, internal or admin: %w", cfg.describe(), cfg.Interface, backend.ErrInvalid)
}

// Check validates a Keystone (AuthV3) Config before anything is sent:
// an error wrapping backend.ErrInvalid names what is missing or wrong,
// never a password or secret. New and IdentityClient check too.
func (cfg *Config) Check() error {
	if cfg.AuthVersion != AuthV3 {
		return fmt.Errorf("swift: Config is not Keystone (AuthV3): %w", backend.ErrInvalid)
	}
	return cfg.checkV3()
}

// checkV3 validates a Keystone Config before anything is sent.
func (cfg *Config) checkV3() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("swift: Keystone auth (%s): %s: %w", cfg.describe(), fmt.Sprintf(format, args...), backend.ErrInvalid)
	}
	if u, err := url.Parse(cfg.AuthURL); cfg.AuthURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("auth URL %q is not an http(s) URL", cfg.AuthURL)
	}
	if _, err := cfg.availability(); err != nil {
		return err
	}
	if cfg.appCred() {
		if cfg.ApplicationCredentialSecret == "" {
			return bad("application credential without a secret")
		}
		if cfg.ApplicationCredentialID == "" && cfg.User == "" && cfg.UserID == "" {
			return bad("an application credential given by name needs the user")
		}
		return nil
	}
	if cfg.User == "" && cfg.UserID == "" {
		return bad("no user and no application credential")
	}
	if cfg.Key == "" {
		return bad("no password")
	}
	if cfg.Project == "" && cfg.ProjectID == "" {
		return bad("no project (a password needs a project to get an object-store endpoint)")
	}
	return nil
}

// AuthOptions returns the gophercloud AuthOptions that authenticate as a
// checked Keystone Config (see Check), re-authenticating when a token
// expires: for clients of other OpenStack services logging in as the
// Store does.
func (cfg *Config) AuthOptions() gophercloud.AuthOptions { return cfg.authOptions() }

// authOptions builds gophercloud's AuthOptions from a checked Config.
func (cfg *Config) authOptions() gophercloud.AuthOptions {
	ao := gophercloud.AuthOptions{IdentityEndpoint: cfg.AuthURL, AllowReauth: true}
	if cfg.UserID != "" {
		ao.UserID = cfg.UserID
	} else if cfg.User != "" {
		ao.Username = cfg.User
		switch {
		case cfg.DomainID != "":
			ao.DomainID = cfg.DomainID
		case cfg.Domain != "":
			ao.DomainName = cfg.Domain
		default:
			ao.DomainID = "default"
		}
	}
	if cfg.appCred() {
		ao.ApplicationCredentialID = cfg.ApplicationCredentialID
		ao.ApplicationCredentialName = cfg.ApplicationCredentialName
		ao.ApplicationCredentialSecret = cfg.ApplicationCredentialSecret
		if cfg.ApplicationCredentialID != "" {
			ao.Username, ao.UserID, ao.DomainID, ao.DomainName = "", "", "", ""
		}
		// An application credential is bound to its project; Keystone
		// refuses a scope with it.
		ao.Scope = &gophercloud.AuthScope{}
		return ao
	}
	ao.Password = cfg.Key
	if cfg.ProjectID != "" {
		ao.Scope = &gophercloud.AuthScope{ProjectID: cfg.ProjectID}
		return ao
	}
	sc := &gophercloud.AuthScope{ProjectName: cfg.Project}
	switch {
	case cfg.ProjectDomainID != "":
		sc.DomainID = cfg.ProjectDomainID
	case cfg.ProjectDomain != "":
		sc.DomainName = cfg.ProjectDomain
	default: // the user's domain
		sc.DomainID, sc.DomainName = ao.DomainID, ao.DomainName
		if sc.DomainID == "" && sc.DomainName == "" {
			sc.DomainID = "default"
		}
	}
	ao.Scope = sc
	return ao
}

// minProactiveLifetime: tokens that live at least this long are renewed
// before they expire (ncw/swift renews one that expires within a minute);
// shorter-lived ones only after Swift refused them, which would otherwise
// mean authenticating before nearly every request.
const minProactiveLifetime = 5 * time.Minute

// keystoneAuth is an ncw/swift Authenticator that authenticates through
// gophercloud. ncw/swift calls Request (with its auth lock held) when it
// has no token, when the token expires within a minute, and after Swift
// answered 401; each call is one Keystone authentication.
type keystoneAuth struct {
	cfg *Config
	tr  http.RoundTripper
	log *slog.Logger

	mu         sync.Mutex
	login      *gophercloud.ProviderClient // Config.Login, until its token is taken
	provider   *gophercloud.ProviderClient
	token      string
	storageURL string
	expires    time.Time // zero: renew only after a 401

	// auths counts authentications (for tests).
	auths atomic.Int64
}

var (
	_ sw.Authenticator = (*keystoneAuth)(nil)
	_ sw.Expireser     = (*keystoneAuth)(nil)
)

func newKeystoneAuth(cfg *Config, tr http.RoundTripper, log *slog.Logger) *keystoneAuth {
	return &keystoneAuth{cfg: cfg, tr: tr, log: log, login: cfg.Login}
}

// Request authenticates with Keystone and finds the object-store
// endpoint; it returns no request, so ncw/swift sends nothing itself.
func (a *keystoneAuth) Request(ctx context.Context, _ *sw.Connection) (*http.Request, error) {
	return nil, a.authenticate(ctx)
}

// authenticate gets a new token with a fresh gophercloud ProviderClient
// (a fresh one never sends the old, refused token along, and never
// re-authenticates by itself: a wrong password costs one request).
func (a *keystoneAuth) authenticate(ctx context.Context) error {
	a.auths.Add(1)
	avail, err := a.cfg.availability()
	if err != nil {
		return err
	}
	start := time.Now()
	a.mu.Lock()
	pc := a.login // the first time, a login made already (Config.Login)
	a.login = nil
	a.mu.Unlock()
	if pc == nil || pc.Token() == "" {
		if pc, err = openstack.NewClient(a.cfg.AuthURL); err != nil {
			return a.fail(err)
		}
		pc.HTTPClient = http.Client{
			Transport: a.tr,
			// Never follow a redirect with credentials.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		pc.UserAgent.Prepend("rack-swift/1")
		if err := openstack.Authenticate(ctx, pc, a.cfg.authOptions()); err != nil {
			return a.fail(err)
		}
	}
	sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: a.cfg.Region, Availability: avail})
	if err != nil {
		return a.fail(err)
	}
	storageURL := strings.TrimSuffix(sc.Endpoint, "/")
	if u, err := url.Parse(storageURL); err != nil || u.Host == "" {
		return fmt.Errorf("swift: Keystone auth (%s): the catalog's object-store URL %q is not a URL: %w", a.cfg.describe(), storageURL, backend.ErrInvalid)
	}
	var expires time.Time
	if cr, ok := pc.GetAuthResult().(tokens3.CreateResult); ok {
		if t, err := cr.ExtractToken(); err == nil && time.Until(t.ExpiresAt) >= minProactiveLifetime {
			expires = t.ExpiresAt
		}
	}
	a.mu.Lock()
	a.provider, a.token, a.storageURL, a.expires = pc, pc.Token(), storageURL, expires
	a.mu.Unlock()
	a.log.Debug("swift: authenticated with Keystone", "auth", a.cfg.AuthURL, "as", a.cfg.who(),
		"storage", storageURL, "expires", expires, "took", time.Since(start))
	return nil
}

// Response is not called: Request sends nothing.
func (a *keystoneAuth) Response(context.Context, *http.Response) error { return nil }

// StorageUrl returns the object-store endpoint of Config.Region and
// Config.Interface (the argument is ncw/swift's and ignored).
func (a *keystoneAuth) StorageUrl(bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.storageURL
}

// Token returns the current token.
func (a *keystoneAuth) Token() string { return a.currentToken() }

func (a *keystoneAuth) currentToken() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token
}

// CdnUrl returns "": no CDN.
func (a *keystoneAuth) CdnUrl() string { return "" }

// Expires returns when the token expires, or zero for a short-lived one
// (see minProactiveLifetime).
func (a *keystoneAuth) Expires() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.expires
}

// wrap returns err if it already is one of fail's, else describes it.
func (a *keystoneAuth) wrap(err error) error {
	for _, k := range []error{errAuth, backend.ErrInvalid, backend.ErrTransient, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			return err
		}
	}
	return a.fail(err)
}

// fail describes a failed Keystone authentication: the auth URL, cloud,
// user and project, the HTTP status and Keystone's message, never a
// secret.
func (a *keystoneAuth) fail(err error) error {
	what := fmt.Sprintf("swift: Keystone auth (%s)", a.cfg.describe())
	secrets := []string{a.cfg.Key, a.cfg.ApplicationCredentialSecret, a.currentToken()}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var ue gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &ue) {
		msg := keystoneMessage(ue.Body)
		if msg != "" {
			msg = ": " + redact(msg, secrets...)
		}
		switch c := ue.Actual; {
		case c == 401 || c == 403:
			return fmt.Errorf("%s refused (HTTP %d)%s: wrong user, password, application credential or project: %w", what, c, msg, errAuth)
		case c == 429 || c >= 500:
			return fmt.Errorf("%s: HTTP %d%s: %w", what, c, msg, backend.ErrTransient)
		default:
			return fmt.Errorf("%s: HTTP %d%s: %w", what, c, msg, backend.ErrInvalid)
		}
	}
	var enf *gophercloud.ErrEndpointNotFound
	if errors.As(err, &enf) {
		iface := coalesce(a.cfg.Interface, "public")
		return fmt.Errorf("%s: the catalog has no object-store endpoint for interface %s in region %q: %w", what, iface, a.cfg.Region, backend.ErrInvalid)
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) || isTransportErr(err) {
		return fmt.Errorf("%s: %s: %w", what, redact(err.Error(), secrets...), backend.ErrTransient)
	}
	// gophercloud's own checks (missing input, conflicting options) and
	// anything unexpected.
	return fmt.Errorf("%s: %s: %w", what, redact(err.Error(), secrets...), backend.ErrInvalid)
}

// keystoneMessage extracts error.message from a Keystone error body.
func keystoneMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	m := strings.TrimSpace(e.Error.Message)
	if len(m) > 200 {
		m = m[:200] + "..."
	}
	return m
}
