package rack_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// schemeSeq makes the schemes these tests register unique, with -count.
var schemeSeq atomic.Int64

func newTestScheme() string { return fmt.Sprintf("rack-test-%d", schemeSeq.Add(1)) }

// A registered scheme opens through Open, with the URL parsed and the
// options passed on; Schemes lists it beside the built-in ones.
func TestRegisterScheme(t *testing.T) {
	scheme := newTestScheme()
	var got *url.URL
	rack.RegisterScheme(scheme, func(ctx context.Context, u *url.URL, opts []rack.Option) (*rack.Kernel, error) {
		got = u
		return rack.New(ctx, mem.New(), inproc.New(), append([]rack.Option{rack.WithNamespace(strings.Trim(u.Path, "/"))}, opts...)...)
	})
	k, err := rack.Open(context.Background(), scheme+"://host/ns1?x=1", rack.WithNamespace("ns2"))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if got == nil || got.Host != "host" || got.Path != "/ns1" || got.Query().Get("x") != "1" {
		t.Errorf("the opener got URL %v", got)
	}
	if k.Namespace() != "ns2" {
		t.Errorf("namespace %q: the caller's options must come last and win", k.Namespace())
	}
	s := rack.Schemes()
	for _, want := range []string{"mem", "file", scheme, "swift", "swift+v1", "openstack"} {
		if !slices.Contains(s, want) {
			t.Errorf("Schemes() = %q, lacks %q", s, want)
		}
	}
	if !slices.IsSorted(s) {
		t.Errorf("Schemes() = %q, not sorted", s)
	}
}

// Registering a scheme twice, a malformed one or a nil opener panics (a
// programming error, found at init).
func TestRegisterSchemeMisuse(t *testing.T) {
	open := func(context.Context, *url.URL, []rack.Option) (*rack.Kernel, error) { return nil, errors.New("unused") }
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			t.Helper()
			v := recover()
			if v == nil {
				t.Errorf("%s: no panic", what)
			} else if s := fmt.Sprint(v); !strings.Contains(s, "rack: RegisterScheme") {
				t.Errorf("%s: panic %q does not say rack: RegisterScheme", what, s)
			}
		}()
		f()
	}
	scheme := newTestScheme()
	rack.RegisterScheme(scheme, open)
	mustPanic("duplicate", func() { rack.RegisterScheme(scheme, open) })
	mustPanic("built-in mem", func() { rack.RegisterScheme("mem", open) })
	for _, bad := range []string{"", "Upper", "1st", "a/b", "a b", "a:"} {
		mustPanic(fmt.Sprintf("scheme %q", bad), func() { rack.RegisterScheme(bad, open) })
	}
	mustPanic("nil opener", func() { rack.RegisterScheme(newTestScheme(), nil) })
}

// An unknown scheme's error lists the registered ones; a scheme whose
// package is known but not linked names the package to import.
func TestOpenUnregisteredScheme(t *testing.T) {
	ctx := context.Background()
	_, err := rack.Open(ctx, "nope://user:s3cret@host/c")
	if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), `unknown scheme "nope"`) ||
		!strings.Contains(err.Error(), "file, mem") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("unknown scheme: %v", err)
	}
	_, err = rack.Open(ctx, "rack-test-unlinked://c")
	if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), `import _ "example.com/rack-test/unlinked"`) {
		t.Errorf("scheme of a package not linked: %v", err)
	}
}

// Open refuses an opaque URL (no // after the scheme) rather than reading
// it as something else, without repeating it: it may hold a key.
func TestOpenOpaqueURL(t *testing.T) {
	ctx := context.Background()
	for _, raw := range []string{"mem:foo", "swift+v1:user:s3cret@host/c", "nope:s3cret"} {
		k, err := rack.Open(ctx, raw)
		if err == nil {
			k.Close()
		}
		if !errors.Is(err, rack.ErrInvalid) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "foo") ||
			!strings.Contains(err.Error(), "no // after the scheme") {
			t.Errorf("rack.Open(%q): %v; want ErrInvalid, without the part after the scheme", raw, err)
		}
	}
}

// Open wraps an opener's error with the URL, its userinfo hidden.
func TestOpenWrapsOpenerErrors(t *testing.T) {
	scheme := newTestScheme()
	boom := errors.New("boom")
	rack.RegisterScheme(scheme, func(context.Context, *url.URL, []rack.Option) (*rack.Kernel, error) {
		return nil, fmt.Errorf("%w: %w", rack.ErrInvalid, boom)
	})
	_, err := rack.Open(context.Background(), scheme+"://user:s3cret@host/c")
	if !errors.Is(err, boom) || !errors.Is(err, rack.ErrInvalid) || !strings.HasPrefix(err.Error(), "rack: open ") ||
		!strings.Contains(err.Error(), scheme+"://user:xxxxx@host/c") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("opener error: %v", err)
	}
}
