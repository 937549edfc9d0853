package swift_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/applicationcredentials"
	tokens3 "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/storetest"
	"github.com/rackfork/rack/backend/swift"
)

// The conformance suite against Swift behind Keystone.
func TestKeystoneConformance(t *testing.T) {
	cfg := swift.KeystoneTestConfig(t)
	storetest.Run(t, func(context.Context, *testing.T) (storetest.Harness, error) { return harness{cfg}, nil })
}

// tokenCounter counts requests for Keystone tokens.
type tokenCounter struct {
	all, tokens atomic.Int64
	base        http.RoundTripper
}

func (c *tokenCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.all.Add(1)
	if strings.HasSuffix(r.URL.Path, "/auth/tokens") {
		c.tokens.Add(1)
	}
	return c.base.RoundTrip(r)
}

// refusedFast checks that New with cfg fails at once with ErrAuth, after
// one Keystone request, naming who but not secret.
func refusedFast(t *testing.T, cfg swift.Config, who, secret string) {
	t.Helper()
	tc := &tokenCounter{base: http.DefaultTransport}
	cfg.Transport = tc
	start := time.Now()
	_, err := swift.New(context.Background(), cfg)
	d := time.Since(start)
	if !errors.Is(err, swift.ErrAuth) {
		t.Fatalf("New with a wrong secret: %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error contains the secret: %v", err)
	}
	if !strings.Contains(err.Error(), who) || !strings.Contains(err.Error(), cfg.AuthURL) {
		t.Errorf("the error does not name %q and %s: %v", who, cfg.AuthURL, err)
	}
	if n := tc.all.Load(); n != 1 || d > 3*time.Second {
		t.Errorf("refused after %v and %d requests (%d for tokens), want 1", d, n, tc.tokens.Load())
	}
	t.Logf("%v (%v)", err, d)
}

func TestKeystoneWrongPassword(t *testing.T) {
	cfg := swift.KeystoneTestConfig(t)
	if cfg.Key == "" {
		t.Skip("the Keystone test cloud uses no password")
	}
	cfg.Key = "wrong-password-s3cr3t"
	refusedFast(t, cfg, cfg.User, cfg.Key)
	if s := cfg.String(); strings.Contains(s, cfg.Key) {
		t.Errorf("String shows the password: %s", s)
	}
}

// An application credential, created here for the test user, authenticates
// a Store (by ID, and by name with the user) on the same account.
func TestKeystoneApplicationCredential(t *testing.T) {
	cfg := swift.KeystoneTestConfig(t)
	if cfg.Key == "" {
		t.Skip("the Keystone test cloud uses no password (needed to create an application credential)")
	}
	ctx := context.Background()
	pc, err := openstack.AuthenticatedClient(ctx, swift.AuthOptionsForTest(cfg))
	if err != nil {
		t.Fatal(err)
	}
	idc, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	user, err := pc.GetAuthResult().(tokens3.CreateResult).ExtractUser()
	if err != nil {
		t.Fatal(err)
	}
	name := "rack-swifttest-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ac, err := applicationcredentials.Create(ctx, idc, user.ID, applicationcredentials.CreateOpts{
		Name: name, Description: "rack backend/swift test", ExpiresAt: ptr(time.Now().Add(time.Hour)),
	}).Extract()
	if err != nil {
		t.Fatalf("creating an application credential: %v", err)
	}
	t.Cleanup(func() {
		if err := applicationcredentials.Delete(ctx, idc, user.ID, ac.ID).ExtractErr(); err != nil {
			t.Errorf("deleting application credential %s: %v", ac.ID, err)
		}
	})

	pw := open(t, cfg)
	c := container(t, pw)
	if _, err := pw.Put(ctx, c, "by-password", strings.NewReader("p"), nil); err != nil {
		t.Fatal(err)
	}
	base := swift.Config{AuthVersion: swift.AuthV3, AuthURL: cfg.AuthURL, Region: cfg.Region, Interface: cfg.Interface,
		ApplicationCredentialSecret: ac.Secret}
	byID := base
	byID.ApplicationCredentialID = ac.ID
	byName := base
	byName.ApplicationCredentialName, byName.User, byName.Domain, byName.DomainID = name, cfg.User, cfg.Domain, cfg.DomainID
	for what, acfg := range map[string]swift.Config{"by ID": byID, "by name": byName} {
		s := open(t, acfg)
		if _, err := s.Put(ctx, c, "by-appcred", strings.NewReader(what), nil); err != nil {
			t.Fatalf("%s: Put: %v", what, err)
		}
		rc, _, err := s.Get(ctx, c, "by-password", nil)
		if err != nil {
			t.Fatalf("%s: Get of the password Store's object: %v", what, err)
		}
		rc.Close()
		rc, _, err = pw.Get(ctx, c, "by-appcred", nil)
		if err != nil {
			t.Fatalf("%s: the password Store does not see the object: %v", what, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != what {
			t.Fatalf("%s: read %q", what, got)
		}
		if s := acfg.String(); strings.Contains(s, ac.Secret) {
			t.Errorf("%s: String shows the secret: %s", what, s)
		}
	}
	wrong := byID
	wrong.ApplicationCredentialSecret = "wrong-appcred-s3cr3t"
	refusedFast(t, wrong, ac.ID, wrong.ApplicationCredentialSecret)
}

func ptr[T any](v T) *T { return &v }

func TestTempURL(t *testing.T) {
	// In parallel: each waits ~2 s for a URL to expire.
	t.Run("v1", func(t *testing.T) { cfg := config(t); t.Parallel(); testTempURL(t, cfg) })
	t.Run("keystone", func(t *testing.T) { cfg := swift.KeystoneTestConfig(t); t.Parallel(); testTempURL(t, cfg) })
}

// do sends a token-free request and returns its status and body.
func do(t *testing.T, method, u string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func testTempURL(t *testing.T, cfg swift.Config) {
	s := open(t, cfg)
	c := container(t, s)
	ctx := context.Background()
	name := "dir/temp ü ?&%+.bin"
	const data = "uploaded through a temp URL"

	put, err := s.TempURL(ctx, "put", c, name, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "PUT", put, strings.NewReader(data)); code != http.StatusCreated {
		t.Fatalf("PUT through %s: HTTP %d %s", put, code, body)
	}
	rc, info, err := s.Get(ctx, c, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != data || info.Size != int64(len(data)) {
		t.Fatalf("Get after a temp URL PUT: %q", got)
	}

	get, err := s.TempURL(ctx, "GET", c, name, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "GET", get, nil); code != http.StatusOK || body != data {
		t.Fatalf("GET through the temp URL: HTTP %d %q", code, body)
	}
	if code, _ := do(t, "HEAD", get, nil); code != http.StatusOK {
		t.Fatalf("HEAD through a GET temp URL: HTTP %d", code)
	}
	if code, _ := do(t, "PUT", get, strings.NewReader("x")); code != http.StatusUnauthorized {
		t.Fatalf("PUT through a GET temp URL: HTTP %d, want 401", code)
	}
	// A modified signature, and the signature of one object on another.
	u, _ := url.Parse(get)
	q := u.Query()
	sig := q.Get("temp_url_sig")
	q.Set("temp_url_sig", sig[:len(sig)-1]+string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", sig[len(sig)-1])+1)%16]))
	u.RawQuery = q.Encode()
	if code, _ := do(t, "GET", u.String(), nil); code != http.StatusUnauthorized {
		t.Fatalf("GET with a modified signature: HTTP %d, want 401", code)
	}
	if _, err := s.Put(ctx, c, "other", strings.NewReader("secret"), nil); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(get, url.PathEscape("temp ü ?&%+.bin"), "other", 1)
	if other == get {
		t.Fatalf("could not retarget %s", get)
	}
	if code, _ := do(t, "GET", other, nil); code != http.StatusUnauthorized {
		t.Fatalf("GET of another object with the signature: HTTP %d, want 401", code)
	}

	// Expiry.
	short, err := s.TempURL(ctx, "GET", c, name, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	su, _ := url.Parse(short)
	exp, _ := strconv.ParseInt(su.Query().Get("temp_url_expires"), 10, 64)
	if d := time.Until(time.Unix(exp, 0)); d <= 0 || d > 2*time.Second {
		t.Fatalf("a 1 s URL expires in %v", d)
	}
	time.Sleep(time.Until(time.Unix(exp+1, 0)) + 100*time.Millisecond)
	if code, _ := do(t, "GET", short, nil); code != http.StatusUnauthorized {
		t.Fatalf("GET through an expired temp URL: HTTP %d, want 401", code)
	}

	for _, bad := range []struct {
		method string
		ttl    time.Duration
	}{{"PATCH", time.Minute}, {"GET", 0}, {"GET", -time.Second}} {
		if _, err := s.TempURL(ctx, bad.method, c, name, bad.ttl); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("TempURL(%s, %v): %v, want ErrInvalid", bad.method, bad.ttl, err)
		}
	}
}
