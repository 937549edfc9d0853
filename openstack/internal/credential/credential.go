package credential

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/applicationcredentials"
	tokens3 "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/rackfork/rack/backend"
)

// Services named by access rules (catalog service types).
const (
	ServiceObjectStore = "object-store"
	ServiceCompute     = "compute"
)

// maxRulePath is the longest path Keystone accepts in an access rule.
const maxRulePath = 225

// Rule is one access rule: the credential may send Method requests whose
// path matches Path to the service of type Service. In Path, "*" matches
// one path segment and "**" any rest (keystonemiddleware's syntax).
type Rule struct {
	Service string `json:"service"`
	Method  string `json:"method"`
	Path    string `json:"path"`
}

// Credential is an application credential made by Issue, or read by Fetch.
// Its Secret is never shown by String, fmt's verbs, slog or
// encoding/json: pass it on explicitly.
type Credential struct {
	// ID and Secret authenticate (Keystone method application_credential).
	ID     string
	Secret string `json:"-"`
	// Name is "rack-<namespace>-<random>" (Issue; Fetch reads it too).
	Name string
	// ProjectID is the project the credential is bound to (Issue only).
	ProjectID string
	// ExpiresAt is when Keystone stops accepting it.
	ExpiresAt time.Time
	// AuthURL is Keystone's URL; Region and Interface select the
	// endpoints in the catalog. The child authenticates with these.
	AuthURL, Region, Interface string
	// Rules are the access rules it was created with (Issue only).
	Rules []Rule
}

// String describes c without its secret.
func (c Credential) String() string {
	s := fmt.Sprintf("application credential %s", c.ID)
	if c.Name != "" {
		s += fmt.Sprintf(" (%s)", c.Name)
	}
	if c.ProjectID != "" {
		s += " of project " + c.ProjectID
	}
	if !c.ExpiresAt.IsZero() {
		s += " expiring " + c.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return s
}

// GoString is String: %#v must not show the secret either.
func (c Credential) GoString() string { return c.String() }

// Format makes every fmt verb print String (a struct printed field by
// field, e.g. with %d or %+v, would show the secret).
func (c Credential) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue is what slog logs: no secret.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", c.ID), slog.String("name", c.Name),
		slog.String("project", c.ProjectID), slog.Time("expires", c.ExpiresAt))
}

// IssueOptions say what an application credential may do.
type IssueOptions struct {
	// Namespace names the credential "rack-<Namespace>-<random>" (required).
	Namespace string
	// Container is the namespace container: its objects may be read,
	// written and deleted, it may be listed and HEADed (required).
	Container string
	// SegmentContainer holds Container's large-object segments, with
	// Container's object rights and HEAD on itself (Grant creates it; the
	// child may not). "" means none. (A Swift store names it
	// swift.SegmentContainer.)
	SegmentContainer string
	// ReadOnlyContainers' objects may be read (GET, HEAD), e.g. the
	// container of the program's binaries. Not listed.
	ReadOnlyContainers []string
	// AllowServerDelete adds DELETE <compute>/servers/* (any server of the
	// project: access rules cannot pin the id of a server not yet made).
	AllowServerDelete bool
	// Expires is when the credential stops working (required, future).
	Expires time.Time
	// Roles names the roles it carries on the project (each must be one
	// the user holds there), none of them a Swift operator role (Issue
	// refuses admin, member, _member_, swiftoperator and ResellerAdmin).
	// Nil: the first of DefaultChildRoles the identity client's token
	// holds; an error if it holds none.
	Roles []string
	// Region and Interface ("public" by default) select the object-store
	// and compute endpoints in the token's catalog, whose paths the rules
	// use; they are recorded in the Credential for the child.
	Region, Interface string
	// AccountPath overrides the object-store account path the rules use
	// ("/v1/AUTH_<project>"; default: the catalog endpoint's path).
	AccountPath string
	// ComputePath overrides the compute API path ("/v2.1"; default: the
	// catalog endpoint's path).
	ComputePath string
}

// DefaultChildRoles are the roles Issue gives when IssueOptions.Roles is
// nil: the first of them that the identity client's token holds. Neither
// is a Swift operator role where the cloud follows Swift's and Keystone's
// defaults (keystoneauth's operator_roles "admin, swiftoperator", or
// "admin, member"); rack-child is a role a cloud makes for rack
// (scripts/keystone-dev.sh does) and grants to its users, reader is the
// role Keystone's bootstrap makes and member implies.
var DefaultChildRoles = []string{"rack-child", "reader"}

// operatorRoles are names clouds commonly list in keystoneauth's
// operator_roles (or reseller_admin_role): a token with one of them is an
// owner of the whole account for every request Swift's middlewares make
// on its behalf, which access rules do not see. Issue refuses them.
var operatorRoles = []string{"admin", "member", "_member_", "swiftoperator", "reselleradmin", "resellerAdmin"}

// Issue creates an application credential of user userID ("" for the
// identity client's token's user) for the token's project: restricted,
// expiring at opts.Expires, carrying opts.Roles (by default the first of
// DefaultChildRoles the token holds, never an operator role), with the
// access rules described in the package documentation. Its role reaches
// containers only through ACLs: call Grant with the same opts first, and
// Check after. identity is a Keystone v3 client authenticated with a
// password (see openstack.Login); the returned Credential holds the
// only copy of the secret.
//
// Errors name the namespace, containers and user, never the secret.
func Issue(ctx context.Context, identity *gophercloud.ServiceClient, userID string, opts IssueOptions) (*Credential, error) {
	what := fmt.Sprintf("credential: issue for namespace %q", opts.Namespace)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s: %w", what, fmt.Sprintf(format, args...), backend.ErrInvalid)
	}
	if identity == nil || identity.ProviderClient == nil {
		return nil, fail("no identity client")
	}
	if err := validName(opts.Namespace); err != nil {
		return nil, fail("namespace: %v", err)
	}
	if opts.Expires.IsZero() {
		return nil, fail("no expiry (IssueOptions.Expires): a child credential must expire")
	}
	if !opts.Expires.After(time.Now()) {
		return nil, fail("expiry %s is not in the future", opts.Expires.UTC().Format(time.RFC3339))
	}
	auth, err := tokenInfo(identity)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if userID == "" {
		userID = auth.userID
	}
	if userID == "" {
		return nil, fail("no user id, and the identity client's token names none")
	}
	avail, err := availability(opts.Interface)
	if err != nil {
		return nil, fail("%v", err)
	}
	acct := opts.AccountPath
	if acct == "" {
		if acct, err = endpointPath(identity, ServiceObjectStore, opts.Region, avail); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	comp := opts.ComputePath
	if opts.AllowServerDelete && comp == "" {
		if comp, err = endpointPath(identity, ServiceCompute, opts.Region, avail); err != nil {
			return nil, fmt.Errorf("%s: AllowServerDelete: %w", what, err)
		}
	}
	rules, err := accessRules(acct, comp, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	roles, err := pickRoles(auth.roles, opts.Roles)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	name, err := credentialName(opts.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ar := make([]applicationcredentials.AccessRule, len(rules))
	for i, r := range rules {
		ar[i] = applicationcredentials.AccessRule{Service: r.Service, Method: r.Method, Path: r.Path}
	}
	// gophercloud formats ExpiresAt without a zone, which Keystone reads
	// as UTC.
	exp := opts.Expires.UTC()
	ac, err := applicationcredentials.Create(ctx, identity, userID, applicationcredentials.CreateOpts{
		Name:         name,
		Description:  fmt.Sprintf("rack: child credential of namespace %q (container %q)", opts.Namespace, opts.Container),
		Unrestricted: false,
		Roles:        roles,
		AccessRules:  ar,
		ExpiresAt:    &exp,
	}).Extract()
	if err != nil {
		return nil, fmt.Errorf("%s: creating application credential %s of user %s: %w", what, name, userID, keystoneErr(err))
	}
	if ac.ID == "" || ac.Secret == "" {
		return nil, fmt.Errorf("%s: Keystone returned application credential %s without id or secret: %w", what, name, backend.ErrInvalid)
	}
	region := opts.Region
	return &Credential{
		ID: ac.ID, Secret: ac.Secret, Name: ac.Name, ProjectID: coalesce(ac.ProjectID, auth.projectID),
		ExpiresAt: ac.ExpiresAt, AuthURL: identityURL(identity), Region: region,
		Interface: coalesce(opts.Interface, "public"), Rules: rules,
	}, nil
}

// Revoke deletes application credential credID of user userID ("" for
// the identity client's token's user). A credential that is already gone
// is not an error.
func Revoke(ctx context.Context, identity *gophercloud.ServiceClient, userID, credID string) error {
	if identity == nil || identity.ProviderClient == nil {
		return fmt.Errorf("credential: revoke %s: no identity client: %w", credID, backend.ErrInvalid)
	}
	if credID == "" {
		return fmt.Errorf("credential: revoke: empty credential id: %w", backend.ErrInvalid)
	}
	if userID == "" {
		auth, err := tokenInfo(identity)
		if err != nil {
			return fmt.Errorf("credential: revoke %s: %w", credID, err)
		}
		userID = auth.userID
	}
	// A delete is idempotent (404: gone already), so a connection that
	// failed under it is tried again: Go's transport replays only GET-like
	// requests on a reused connection the server closed, and Keystone
	// under uwsgi was seen to close one that way (EOF, in CI).
	for attempt := 1; ; attempt++ {
		err := applicationcredentials.Delete(ctx, identity, userID, credID).ExtractErr()
		if err == nil || gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return nil
		}
		if attempt == revokeTries || !connectionFailed(err) || ctx.Err() != nil {
			return fmt.Errorf("credential: revoke %s of user %s: %w", credID, userID, keystoneErr(err))
		}
		t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// revokeTries bounds the attempts of a revoke whose connection failed.
const revokeTries = 3

// connectionFailed reports whether err is a request's connection failing
// (closed or reset by the server) rather than an answer.
func connectionFailed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// RevokeNamespace deletes every application credential of user userID
// ("" for the token's user) that Issue made for namespace, e.g. those a
// crashed parent left behind, and returns how many it deleted.
func RevokeNamespace(ctx context.Context, identity *gophercloud.ServiceClient, userID, namespace string) (int, error) {
	what := fmt.Sprintf("credential: revoke namespace %q", namespace)
	if identity == nil || identity.ProviderClient == nil {
		return 0, fmt.Errorf("%s: no identity client: %w", what, backend.ErrInvalid)
	}
	if err := validName(namespace); err != nil {
		return 0, fmt.Errorf("%s: %v: %w", what, err, backend.ErrInvalid)
	}
	if userID == "" {
		auth, err := tokenInfo(identity)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		userID = auth.userID
	}
	page, err := applicationcredentials.List(identity, userID, nil).AllPages(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: listing the credentials of user %s: %w", what, userID, keystoneErr(err))
	}
	all, err := applicationcredentials.ExtractApplicationCredentials(page)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	re := nameRegexp(namespace)
	n := 0
	for _, ac := range all {
		if !re.MatchString(ac.Name) {
			continue
		}
		if err := Revoke(ctx, identity, userID, ac.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// authInfo is what the identity client's token says.
type authInfo struct {
	userID, projectID string
	roles             []tokens3.Role
}

func tokenInfo(identity *gophercloud.ServiceClient) (authInfo, error) {
	cr, ok := identity.ProviderClient.GetAuthResult().(tokens3.CreateResult)
	if !ok {
		return authInfo{}, fmt.Errorf("the identity client holds no Keystone v3 token (authenticate it with a password): %w", backend.ErrInvalid)
	}
	var ai authInfo
	if u, err := cr.ExtractUser(); err == nil && u != nil {
		ai.userID = u.ID
	}
	if p, err := cr.ExtractProject(); err == nil && p != nil {
		ai.projectID = p.ID
	}
	if ai.projectID == "" {
		return ai, fmt.Errorf("the identity client's token is not scoped to a project: %w", backend.ErrInvalid)
	}
	ai.roles, _ = cr.ExtractRoles()
	return ai, nil
}

// pickRoles returns the roles to give: the named ones, or the first of
// DefaultChildRoles the token holds. Operator roles are refused.
func pickRoles(have []tokens3.Role, want []string) ([]applicationcredentials.Role, error) {
	var out []applicationcredentials.Role
	if want != nil {
		for _, w := range want {
			if w == "" {
				return nil, fmt.Errorf("an empty role name in IssueOptions.Roles: %w", backend.ErrInvalid)
			}
			if isOperatorRole(w) {
				return nil, fmt.Errorf("role %q is a Swift operator role in common clouds: with it every request Swift's middlewares make for the child (copy, large objects, symlinks, versions) may reach the whole account; give a role that is not (e.g. %s): %w",
					w, strings.Join(DefaultChildRoles, " or "), backend.ErrInvalid)
			}
			out = append(out, applicationcredentials.Role{Name: w})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("IssueOptions.Roles is empty (nil means the first of %s the token holds): %w", strings.Join(DefaultChildRoles, ", "), backend.ErrInvalid)
		}
		return out, nil
	}
	var names []string
	for _, r := range have {
		names = append(names, r.Name)
	}
	for _, d := range DefaultChildRoles {
		for _, r := range have {
			if strings.EqualFold(r.Name, d) {
				return []applicationcredentials.Role{{ID: r.ID}}, nil
			}
		}
	}
	return nil, fmt.Errorf("the token's roles on the project (%s) include none of %s: a child credential needs a role that is not a Swift operator role (ask the cloud's administrator to grant one, e.g. %q; scripts/keystone-dev.sh makes it) or name one in IssueOptions.Roles: %w",
		strings.Join(names, ", "), strings.Join(DefaultChildRoles, ", "), DefaultChildRoles[0], backend.ErrInvalid)
}

func isOperatorRole(name string) bool {
	for _, o := range operatorRoles {
		if strings.EqualFold(o, name) {
			return true
		}
	}
	return false
}

// accessRules builds the rules for account path acct ("/v1/AUTH_x") and
// compute path comp ("/v2.1", used with AllowServerDelete).
func accessRules(acct, comp string, opts IssueOptions) ([]Rule, error) {
	acct = strings.TrimSuffix(acct, "/")
	if err := checkRulePath("object-store account path", acct); err != nil {
		return nil, err
	}
	if err := checkContainer("container", opts.Container); err != nil {
		return nil, err
	}
	q := escapeSegment
	var rules []Rule
	add := func(service, path string, methods ...string) {
		for _, m := range methods {
			rules = append(rules, Rule{Service: service, Method: m, Path: path})
		}
	}
	// "*" matches one non-empty segment: ".../NS/*" and ".../NS/*/**"
	// match every object of NS but not ".../NS/", which Swift takes for a
	// request to the container itself (".../NS/**" matched it).
	objects := func(c string) []string { return []string{acct + "/" + q(c) + "/*", acct + "/" + q(c) + "/*/**"} }
	rw := []string{"GET", "PUT", "HEAD", "DELETE", "POST"}
	for _, p := range objects(opts.Container) {
		add(ServiceObjectStore, p, rw...)
	}
	add(ServiceObjectStore, acct+"/"+q(opts.Container), "GET", "HEAD")
	if seg := opts.SegmentContainer; seg != "" {
		if err := checkContainer("segment container", seg); err != nil {
			return nil, err
		}
		for _, p := range objects(seg) {
			add(ServiceObjectStore, p, rw...)
		}
		// HEAD only: the forker creates it (Grant); a Store HEADs it
		// before its first large Put.
		add(ServiceObjectStore, acct+"/"+q(seg), "HEAD")
	}
	for _, c := range opts.ReadOnlyContainers {
		if err := checkContainer("read-only container", c); err != nil {
			return nil, err
		}
		for _, p := range objects(c) {
			add(ServiceObjectStore, p, "GET", "HEAD")
		}
	}
	if opts.AllowServerDelete {
		comp = strings.TrimSuffix(comp, "/")
		if err := checkRulePath("compute path", comp); err != nil {
			return nil, err
		}
		add(ServiceCompute, comp+"/servers/*", "DELETE")
	}
	for _, r := range rules {
		if len(r.Path) > maxRulePath {
			return nil, fmt.Errorf("access rule path %q is longer than Keystone's %d bytes (shorten the container name): %w", r.Path, maxRulePath, backend.ErrInvalid)
		}
	}
	return rules, nil
}

// patternChars are the characters keystonemiddleware does not take
// literally in an access rule path: it builds a regular expression from
// the path without escaping, so "a.b" would also grant "aXb". Braces,
// '*' and '/' are its own syntax.
const patternChars = `.^$*+?{}[]\|()`

// checkContainer checks that container c can be named by an access rule.
func checkContainer(what, c string) error {
	if c == "" {
		return fmt.Errorf("no %s: %w", what, backend.ErrInvalid)
	}
	if !utf8.ValidString(c) || len(c) > 256 || strings.Contains(c, "/") {
		return fmt.Errorf("%s %.60q is not a Swift container name: %w", what, c, backend.ErrInvalid)
	}
	for _, r := range c {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q contains a control character: %w", what, c, backend.ErrInvalid)
		}
	}
	if i := strings.IndexAny(escapeSegment(c), patternChars); i >= 0 {
		return fmt.Errorf("%s %q contains %q, which an access rule cannot match literally (use letters, digits, '-' and '_'): %w",
			what, c, escapeSegment(c)[i:i+1], backend.ErrInvalid)
	}
	return nil
}

// pathSafe are the bytes besides letters and digits that
// keystonemiddleware leaves unescaped in the request path it matches
// (webob's Request.path: Python's url quote with safe "/~!$&'()*+,;=:@").
const pathSafe = "_.-~/!$&'()*+,;=:@"

// escapeSegment escapes s as the request path that access rules are
// matched against shows it: other bytes become %XX (upper case hex).
func escapeSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(pathSafe, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// checkRulePath checks a service's path ("/v1/AUTH_x", "/v2.1"). A '.'
// is let through: it matches any character there, which names no other
// account or API version.
func checkRulePath(what, p string) error {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, strings.ReplaceAll(patternChars, ".", "")) {
		return fmt.Errorf("%s %q must start with '/' and contain none of %s: %w", what, p, patternChars[1:], backend.ErrInvalid)
	}
	return nil
}

// endpointPath returns the URL path of service's endpoint in the token's
// catalog.
func endpointPath(identity *gophercloud.ServiceClient, service, region string, avail gophercloud.Availability) (string, error) {
	pc := identity.ProviderClient
	if pc.EndpointLocator == nil {
		return "", fmt.Errorf("the identity client has no service catalog: %w", backend.ErrInvalid)
	}
	ep, err := pc.EndpointLocator(gophercloud.EndpointOpts{Type: service, Region: region, Availability: avail})
	if err != nil {
		return "", fmt.Errorf("no %s endpoint (interface %s, region %q) in the catalog: %w", service, avail, region, backend.ErrInvalid)
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("the catalog's %s URL %q is not a URL: %w", service, ep, backend.ErrInvalid)
	}
	p := strings.TrimSuffix(u.Path, "/")
	if p == "" {
		return "", fmt.Errorf("the catalog's %s URL %q has no path: %w", service, ep, backend.ErrInvalid)
	}
	return p, nil
}

func availability(iface string) (gophercloud.Availability, error) {
	switch iface {
	case "", "public", "publicURL":
		return gophercloud.AvailabilityPublic, nil
	case "internal", "internalURL":
		return gophercloud.AvailabilityInternal, nil
	case "admin", "adminURL":
		return gophercloud.AvailabilityAdmin, nil
	}
	return "", fmt.Errorf("interface %q is not public, internal or admin", iface)
}

// identityURL is the Keystone URL the child authenticates against.
func identityURL(identity *gophercloud.ServiceClient) string {
	if e := identity.ProviderClient.IdentityEndpoint; e != "" {
		return e
	}
	return identity.ProviderClient.IdentityBase
}

// Keystone's name limit is 255 characters; "rack-" + label + "-" + 16 hex.
const maxLabel = 255 - len("rack-") - 1 - 16

// credentialName returns "rack-<label>-<16 random hex digits>".
func credentialName(namespace string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return "rack-" + nameLabel(namespace) + "-" + hex.EncodeToString(b[:]), nil
}

// nameLabel is namespace, or for a long one a prefix and a hash.
func nameLabel(namespace string) string {
	if utf8.RuneCountInString(namespace) <= maxLabel {
		return namespace
	}
	sum := sha256.Sum256([]byte(namespace))
	r := []rune(namespace)[:maxLabel-17]
	return string(r) + "~" + hex.EncodeToString(sum[:8])
}

func nameRegexp(namespace string) *regexp.Regexp {
	return regexp.MustCompile(`^rack-` + regexp.QuoteMeta(nameLabel(namespace)) + `-[0-9a-f]{16}$`)
}

func validName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}

// keystoneErr describes a Keystone error by status and message (the
// request body, which holds no secret here, is not repeated).
func keystoneErr(err error) error { return keystoneErrAs("Keystone", err) }

// keystoneErrAs is keystoneErr for service.
func keystoneErrAs(service string, err error) error {
	var ue gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &ue) {
		msg := strings.TrimSpace(string(ue.Body))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		kind := backend.ErrInvalid
		if ue.Actual == 429 || ue.Actual >= 500 {
			kind = backend.ErrTransient
		}
		return fmt.Errorf("%s answered HTTP %d to %s %s: %s: %w", service, ue.Actual, ue.Method, ue.URL, msg, kind)
	}
	return err
}

func coalesce(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
