package swift

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	tokens3 "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/rackfork/rack/backend"
)

// keystoneTestConfig returns the Keystone-authenticated Swift to test
// against: the clouds.yaml entry $RACK_KEYSTONE_CLOUD (file
// $OS_CLIENT_CONFIG_FILE), else $OS_CLOUD or the OS_* variables. Without
// any it skips, or fails when RACK_KEYSTONE=1 (CI starts Keystone).
func keystoneTestConfig(tb testing.TB) Config {
	tb.Helper()
	cloud := os.Getenv("RACK_KEYSTONE_CLOUD")
	if cloud == "" && os.Getenv("OS_CLOUD") == "" && os.Getenv("OS_AUTH_URL") == "" {
		if os.Getenv("RACK_KEYSTONE") == "1" {
			tb.Fatal("Keystone required (RACK_KEYSTONE=1) but neither RACK_KEYSTONE_CLOUD, OS_CLOUD nor OS_AUTH_URL is set")
		}
		tb.Skip("no Keystone: start scripts/keystone-dev.sh and swift-saio.sh with SWIFT_KEYSTONE_URL, then set " +
			"OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml RACK_KEYSTONE_CLOUD=rack-test")
	}
	cfg, err := cloudConfigForTest(cloud)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// keystoneCounter counts Keystone token requests and all requests.
type keystoneCounter struct {
	all, tokens atomic.Int64
	base        http.RoundTripper
}

func (c *keystoneCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.all.Add(1)
	if strings.HasSuffix(r.URL.Path, "/auth/tokens") {
		c.tokens.Add(1)
	}
	return c.base.RoundTrip(r)
}

func newKeystoneStore(t *testing.T, cfg Config) (*Store, *keystoneCounter) {
	t.Helper()
	kc := &keystoneCounter{base: http.DefaultTransport}
	cfg.Transport = kc
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, kc
}

// A token Swift does not know (as after a revocation or expiry) makes the
// Store authenticate with Keystone exactly once and retry.
func TestKeystoneReauthOn401(t *testing.T) {
	cfg := keystoneTestConfig(t)
	s, kc := newKeystoneStore(t, cfg)
	ctx := context.Background()
	c := "rack-swifttest-ksreauth-" + newToken()
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	defer s.DeleteContainer(ctx, c)
	old := s.ks.currentToken()
	forge := func() {
		// A well-formed token that Keystone never issued.
		s.conn.AuthToken = "gAAAAABpZm9yZ2VkLXRva2VuLWZvci1yYWNrLXRlc3Rz" + newToken()
	}
	for _, op := range []struct {
		name string
		fn   func() error
	}{
		{"Put", func() error { _, err := s.Put(ctx, c, "o", strings.NewReader("x"), nil); return err }},
		{"Head", func() error { _, err := s.Head(ctx, c, "o"); return err }},
		{"List", func() error { _, err := s.List(ctx, c, backend.ListOptions{}); return err }},
		{"Delete", func() error { return s.Delete(ctx, c, "o") }},
	} {
		forge()
		before, beforeAuths := kc.tokens.Load(), s.ks.auths.Load()
		if err := op.fn(); err != nil {
			t.Fatalf("%s with a refused token: %v", op.name, err)
		}
		if n := kc.tokens.Load() - before; n != 1 {
			t.Errorf("%s: %d Keystone token requests, want exactly 1", op.name, n)
		}
		if n := s.ks.auths.Load() - beforeAuths; n != 1 {
			t.Errorf("%s: %d authentications, want 1", op.name, n)
		}
	}
	if s.ks.currentToken() == old {
		t.Error("the token did not change")
	}
}

// A token revoked in Keystone before Swift has seen it is refused by Swift
// (keystonemiddleware caches validated tokens for token_cache_time, so a
// revocation of a token already in use takes effect only after that); the
// Store re-authenticates once.
func TestKeystoneRevokedToken(t *testing.T) {
	cfg := keystoneTestConfig(t)
	s, kc := newKeystoneStore(t, cfg)
	ctx := context.Background()
	tok := s.ks.currentToken()

	// Revoke it with another token of the same user.
	pc, err := openstack.AuthenticatedClient(ctx, cfg.authOptions())
	if err != nil {
		t.Fatal(err)
	}
	idc, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens3.Revoke(ctx, idc, tok).Err; err != nil {
		t.Fatalf("revoking the Store's token: %v", err)
	}
	before := kc.tokens.Load()
	c := "rack-swifttest-ksrevoked-" + newToken()
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatalf("CreateContainer with a revoked token: %v", err)
	}
	defer s.DeleteContainer(ctx, c)
	if n := kc.tokens.Load() - before; n != 1 {
		t.Errorf("%d Keystone token requests after the revocation, want 1", n)
	}
	if s.ks.currentToken() == tok {
		t.Error("still the revoked token")
	}
}

// With RACK_KEYSTONE_TOKEN_EXPIRATION (seconds, at most 120) set to
// Keystone's [token] expiration, a token is left to expire and the next
// operation still succeeds after one re-authentication.
func TestKeystoneTokenExpiry(t *testing.T) {
	cfg := keystoneTestConfig(t)
	exp, err := strconv.Atoi(os.Getenv("RACK_KEYSTONE_TOKEN_EXPIRATION"))
	if err != nil || exp <= 0 || exp > 120 {
		t.Skip("set RACK_KEYSTONE_TOKEN_EXPIRATION to the Keystone's token lifetime (<= 120 s; keystone-dev.sh's KEYSTONE_TOKEN_EXPIRATION)")
	}
	s, kc := newKeystoneStore(t, cfg)
	ctx := context.Background()
	if !s.ks.Expires().IsZero() {
		t.Errorf("a %d s token is renewed proactively (Expires %v); want only after a 401", exp, s.ks.Expires())
	}
	c := "rack-swifttest-ksexpiry-" + newToken()
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	defer s.DeleteContainer(ctx, c)
	time.Sleep(time.Duration(exp+2) * time.Second)
	before := kc.tokens.Load()
	if _, err := s.Put(ctx, c, "o", strings.NewReader("after expiry"), nil); err != nil {
		t.Fatalf("Put after the token expired: %v", err)
	}
	if err := s.Delete(ctx, c, "o"); err != nil {
		t.Fatal(err)
	}
	if n := kc.tokens.Load() - before; n != 1 {
		t.Errorf("%d Keystone token requests after expiry, want 1", n)
	}
}

// clearOSEnv unsets every OS_* variable for the test.
func clearOSEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// The live OS_* path: RACK_KEYSTONE_ENV names a KEY=VALUE file
// (keystone-dev.sh's keystone.env).
func TestKeystoneFromEnvFile(t *testing.T) {
	keystoneTestConfig(t) // skip or fail like the other Keystone tests
	path := os.Getenv("RACK_KEYSTONE_ENV")
	if path == "" {
		t.Skip("RACK_KEYSTONE_ENV unset (keystone-dev.sh's DIR/keystone.env)")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	clearOSEnv(t)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
			t.Setenv(k, v)
		}
	}
	cfg, err := cloudConfigForTest("")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newKeystoneStore(t, cfg)
	ctx := context.Background()
	c := "rack-swifttest-ksenv-" + newToken()
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
}

func TestKeystoneEndpointErrors(t *testing.T) {
	cfg := keystoneTestConfig(t)
	cfg.Region = "NoSuchRegion"
	_, err := New(context.Background(), cfg)
	if !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "NoSuchRegion") || !strings.Contains(err.Error(), "object-store") {
		t.Fatalf("New with an unknown region: %v", err)
	}
	if strings.Contains(err.Error(), cfg.Key) {
		t.Fatalf("error contains the password: %v", err)
	}
	t.Log(err)
}

// Keystone's answers map to the backend errors without secrets, against a
// stand-in Keystone.
func TestKeystoneErrorMapping(t *testing.T) {
	const pw, secret = "fake-pw-s3cret", "fake-ac-s3cret"
	var status atomic.Int64
	var calls atomic.Int64
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		// A hostile or buggy Keystone that echoes the credentials.
		fmt.Fprintf(w, `{"error":{"code":%d,"message":"refused %s %s"}}`, status.Load(), pw, secret)
	}))
	defer ks.Close()
	for _, tc := range []struct {
		code int
		want error
	}{{401, ErrAuth}, {403, ErrAuth}, {400, backend.ErrInvalid}, {503, backend.ErrTransient}} {
		for _, cfg := range []Config{
			{AuthVersion: AuthV3, AuthURL: ks.URL + "/v3", User: "u1", Key: pw, Project: "p1", Retries: -1},
			{AuthVersion: AuthV3, AuthURL: ks.URL + "/v3", ApplicationCredentialID: "ac1", ApplicationCredentialSecret: secret, Retries: -1},
		} {
			status.Store(int64(tc.code))
			calls.Store(0)
			_, err := New(context.Background(), cfg)
			if !errors.Is(err, tc.want) {
				t.Errorf("HTTP %d: %v, want %v", tc.code, err, tc.want)
				continue
			}
			own := cfg.Key + cfg.ApplicationCredentialSecret // each config knows one secret
			if msg := err.Error(); strings.Contains(msg, own) ||
				!strings.Contains(msg, ks.URL) || !strings.Contains(msg, strconv.Itoa(tc.code)) {
				t.Errorf("HTTP %d: %v", tc.code, err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("HTTP %d: %d requests to Keystone, want 1", tc.code, n)
			}
		}
	}
	// Unreachable: transient, names the URL.
	cfg := Config{AuthVersion: AuthV3, AuthURL: "http://127.0.0.1:1/v3", User: "u1", Key: pw, Project: "p1"}
	start := time.Now()
	_, err := New(context.Background(), cfg)
	if !errors.Is(err, backend.ErrTransient) || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), pw) || time.Since(start) > 5*time.Second {
		t.Errorf("unreachable Keystone: %v after %v", err, time.Since(start))
	}
	// Refused before sending: incomplete configs.
	for _, bad := range []Config{
		{AuthVersion: AuthV3, AuthURL: "ftp://x/v3", User: "u", Key: pw, Project: "p"},
		{AuthVersion: AuthV3, AuthURL: ks.URL, User: "u", Key: pw},
		{AuthVersion: AuthV3, AuthURL: ks.URL, ApplicationCredentialID: "ac1"},
		{AuthVersion: AuthV3, AuthURL: ks.URL, ApplicationCredentialName: "n", ApplicationCredentialSecret: secret},
		{AuthVersion: AuthV3, AuthURL: ks.URL, User: "u", Key: pw, Project: "p", Interface: "private"},
	} {
		calls.Store(0)
		if _, err := New(context.Background(), bad); !errors.Is(err, backend.ErrInvalid) || strings.Contains(err.Error(), pw) || calls.Load() != 0 {
			t.Errorf("New(%v): %v (%d requests)", bad, err, calls.Load())
		}
	}
}
