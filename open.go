package rack

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack/backend/file"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/backend/osproc"
)

// Opener opens the namespace that u names: it makes the drivers the URL
// asks for and composes them with New, passing opts on (after its own, so
// that the caller's win). It should set WithURL to a URL a child can open
// the namespace with, when its compute starts new programs. Its errors
// need not repeat the URL (Open adds it, without its userinfo), and should
// wrap ErrInvalid when the URL itself is at fault.
type Opener func(ctx context.Context, u *url.URL, opts []Option) (*Kernel, error)

// The registered schemes: mem and file are built in; the rest register
// from their packages' init.
var schemes = struct {
	sync.RWMutex
	m map[string]Opener
}{m: map[string]Opener{}}

// knownSchemes names the package that registers each scheme rack knows of
// but does not build in, for the error of an Open that finds none.
var knownSchemes = map[string]string{
	"swift":     "github.com/rackfork/rack/openstack",
	"swift+v1":  "github.com/rackfork/rack/openstack",
	"openstack": "github.com/rackfork/rack/openstack",
}

// schemeSyntax is RFC 3986's, lower case (url.Parse lowers a scheme).
var schemeSyntax = regexp.MustCompile(`^[a-z][a-z0-9+.-]*$`)

func init() {
	RegisterScheme("mem", openMem)
	RegisterScheme("file", openFile)
}

// RegisterScheme makes Open open URLs of scheme (lower case, as in
// "swift+v1") with open. A driver package calls it from its init, as a
// database/sql driver calls sql.Register, and a program enables the scheme
// by importing that package, for its side effect if need be:
//
//	import _ "github.com/rackfork/rack/openstack" // swift://, swift+v1://, openstack://
//
// A child started as a new program (an OS process, a server) runs the same
// binary as its forker, so it has the same registrations and can open the
// namespace URL it is given. Another program started in its place
// (Spec.Options["exe"]) must import the driver packages of the namespaces
// it will join itself.
//
// RegisterScheme panics if scheme is malformed or registered already, or if
// open is nil: those are programming errors, found at init.
func RegisterScheme(scheme string, open Opener) {
	if !schemeSyntax.MatchString(scheme) {
		panic(fmt.Sprintf("rack: RegisterScheme: malformed scheme %q (want lower case letters, digits, '+', '-' or '.', a letter first)", scheme))
	}
	if open == nil {
		panic(fmt.Sprintf("rack: RegisterScheme: nil opener for scheme %q", scheme))
	}
	schemes.Lock()
	defer schemes.Unlock()
	if _, dup := schemes.m[scheme]; dup {
		panic(fmt.Sprintf("rack: RegisterScheme: scheme %q registered twice", scheme))
	}
	schemes.m[scheme] = open
}

// Schemes returns the URL schemes Open can open, sorted.
func Schemes() []string {
	schemes.RLock()
	defer schemes.RUnlock()
	out := make([]string, 0, len(schemes.m))
	for s := range schemes.m {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Open opens a namespace by URL, with the Opener registered for the URL's
// scheme (see RegisterScheme). Built in:
//
//	mem://        a new private in-memory namespace with goroutine processes
//	mem://NAME    the in-memory namespace NAME, shared within this OS process
//	file:///DIR   the directory DIR as the store, processes as OS processes
//	              running this program again (see Main); private to this
//	              user (DIR 0700, files 0600), or with ?mode=group shared
//	              with DIR's group (0770, 0660)
//
// file:// is built in because it costs nothing to link (its drivers use
// only the standard library and golang.org/x/sys), because a local
// namespace needs no configuration, and because the rack shell and local
// development default to it.
//
// The package github.com/rackfork/rack/openstack registers swift://,
// swift+v1:// and openstack:// (Swift as the store, goroutines or Nova
// servers as processes); a program imports it to open them. A child a
// compute starts as a new program runs the same binary, so it has the same
// schemes.
//
// Any URL may carry the parameter timeout, a Go duration: the store
// request timeout (see WithRequestTimeout), as in
// swift://cloud/ns?timeout=10s or file:///tmp/ns?timeout=2s. Open takes
// it out of the URL before the scheme's Opener sees it.
//
// Errors never repeat a key given in the URL.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Kernel, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's own message quotes the whole URL, key included.
		return nil, wrapf("rack: open %q: %w: malformed URL", redactUserinfo(rawURL), ErrInvalid)
	}
	shown := u.Redacted()
	if rest, ok := strings.CutPrefix(rawURL, u.Scheme+"://"); ok && !strings.HasPrefix(shown, u.Scheme+"://") {
		// Redacted drops the // of a URL without a host ("bogus://"
		// showed as "bogus:"): shown as given, with no userinfo to hide.
		shown = u.Scheme + "://" + rest
	}
	if u.Scheme == "" {
		return nil, wrapf("rack: open %q: %w: no scheme (try mem://)", shown, ErrInvalid)
	}
	if u.Opaque != "" {
		// scheme:rest, no "//": not a namespace URL, and Redacted shows
		// the rest whole (it may hold a key), so it is not repeated.
		return nil, wrapf("rack: open %s:...: %w: no // after the scheme (try %s://...)", u.Scheme, ErrInvalid, u.Scheme)
	}
	schemes.RLock()
	open := schemes.m[u.Scheme]
	schemes.RUnlock()
	if open == nil {
		registered := strings.Join(Schemes(), ", ")
		if pkg := knownSchemes[u.Scheme]; pkg != "" {
			return nil, wrapf("rack: open %q: %w: scheme %q is not registered: import _ %q to open it (registered: %s)", shown, ErrInvalid, u.Scheme, pkg, registered)
		}
		return nil, wrapf("rack: open %q: %w: unknown scheme %q (registered: %s)", shown, ErrInvalid, u.Scheme, registered)
	}
	// The kernel's own URL parameters: taken out before the opener sees
	// the URL.
	q := u.Query()
	if vals, ok := q["timeout"]; ok {
		d, err := time.ParseDuration(strings.Join(vals, ","))
		if err != nil || d < 0 || len(vals) != 1 {
			return nil, wrapf("rack: open %q: %w: timeout=%q is not a duration such as 5s (0 for none)", shown, ErrInvalid, strings.Join(vals, ","))
		}
		q.Del("timeout")
		u.RawQuery = q.Encode()
		// Before the caller's options, which win.
		opts = append([]Option{WithRequestTimeout(d)}, opts...)
	}
	k, err := open(ctx, u, opts)
	if err != nil {
		return nil, wrapf("rack: open %q: %w", shown, err)
	}
	return k, nil
}

// redactUserinfo hides what stands between "://" and the last '@' of a URL
// that did not parse, so an error can name it without its key.
func redactUserinfo(raw string) string {
	i := strings.Index(raw, "://")
	j := strings.LastIndex(raw, "@")
	if i < 0 || j < i {
		return raw
	}
	return raw[:i+3] + "xxxxx" + raw[j:]
}

// CheckNamespace returns an error wrapping ErrInvalid if name cannot name
// a namespace (its container in the store): for openers, to refuse a URL
// before they contact anything.
func CheckNamespace(name string) error {
	return validContainer(name)
}

// openMem opens mem:// and mem://NAME.
func openMem(ctx context.Context, u *url.URL, opts []Option) (*Kernel, error) {
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil || u.Port() != "" {
		return nil, fmt.Errorf("%w: a mem URL is mem:// or mem://NAME", ErrInvalid)
	}
	var s *mem.Store
	if u.Host == "" {
		s = mem.New(mem.WithVersionETags())
	} else {
		if err := validName("mem namespace", u.Host); err != nil {
			return nil, err
		}
		s = mem.Shared(u.Host, mem.WithVersionETags())
	}
	return New(ctx, s, inproc.New(), opts...)
}

// openFile opens file:///DIR, and file:///DIR?mode=group for a namespace
// shared with DIR's group (file.WithGroupAccess).
func openFile(ctx context.Context, u *url.URL, opts []Option) (*Kernel, error) {
	if u.User != nil {
		// It would reach the children's RACK_URL; a local namespace has
		// no use for it.
		return nil, fmt.Errorf("%w: a file URL takes no user or password (file:///absolute/dir)", ErrInvalid)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: a file URL's query does not parse", ErrInvalid)
	}
	hosts, err := hostsFromQuery(q) // hosts=1, slots=N, idle=D (host.go)
	if err != nil {
		return nil, err
	}
	group := len(q["mode"]) == 1 && q.Get("mode") == "group"
	delete(q, "mode")
	if u.Host != "" || u.Path == "" || len(q) > 0 || !group && u.Query().Has("mode") {
		return nil, fmt.Errorf("%w: a file URL is file:///absolute/dir, with ?mode=group for a namespace its group shares, ?hosts=1 (slots=N, idle=DURATION) for warm hosts", ErrInvalid)
	}
	if hosts != nil {
		opts = append([]Option{hosts}, opts...)
	}
	// No fsync: in a local namespace a machine crash ends every process
	// anyway, and the page cache outlives any one process.
	fopts := []file.Option{file.WithoutSync()}
	// The children's own output goes to DIR/logs (beside the store's
	// containers, not in one), which "rack logs" reads.
	copts := []osproc.Option{osproc.WithLogDir(filepath.Join(u.Path, "logs"))}
	if group {
		fopts = append(fopts, file.WithGroupAccess())
		copts = append(copts, osproc.WithGroupAccess())
	}
	s, err := file.New(u.Path, fopts...)
	if err != nil {
		return nil, err
	}
	c, err := osproc.New(copts...)
	if err != nil {
		s.Close()
		return nil, err
	}
	k, err := New(ctx, s, c, append([]Option{WithURL(u.String())}, opts...)...)
	if err != nil {
		s.Close()
		c.Close()
		return nil, err
	}
	return k, nil
}

// withTimeoutParam returns rawURL with the parameter timeout=d, unless d
// is the default (then rawURL as it is): the URL a child opens then gives
// it its forker's request timeout.
func withTimeoutParam(rawURL string, d time.Duration) string {
	if d == DefaultRequestTimeout {
		return rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	q.Set("timeout", d.String())
	u.RawQuery = q.Encode()
	return u.String()
}
