package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/internal/novaemu"
)

// computeClient logs in to cloud and returns its compute client.
func computeClient(ctx context.Context, cloud string) (*gophercloud.ServiceClient, error) {
	l, err := NewLogin(ctx, cloud)
	if err != nil {
		return nil, err
	}
	return l.ComputeClient()
}

// TestLoginComputeClient reads clouds.yaml, authenticates with a fake
// Keystone and picks the compute endpoint of the entry's region and
// interface (what backend/nova's NewServiceClient did).
func TestLoginComputeClient(t *testing.T) {
	e, err := novaemu.Start(novaemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const password = "pa55-w0rd-SECRET"
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/auth/tokens" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct {
							Password string `json:"password"`
						} `json:"user"`
					} `json:"password"`
				} `json:"identity"`
			} `json:"auth"`
		}
		json.Unmarshal(body, &req)
		if req.Auth.Identity.Password.User.Password != password {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}`)
			return
		}
		endpoint := func(region, iface, url string) map[string]string {
			return map[string]string{"id": region + iface, "region": region, "region_id": region, "interface": iface, "url": url}
		}
		w.Header().Set("X-Subject-Token", "tok-123456789")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"methods":    []string{"password"},
			"catalog": []any{map[string]any{"type": "compute", "name": "nova", "id": "c", "endpoints": []any{
				endpoint("RegionOne", "public", "http://127.0.0.1:1/v2.1"),
				endpoint("RegionTwo", "public", "http://127.0.0.1:2/v2.1"),
				endpoint("RegionTwo", "internal", e.URL()),
			}}, map[string]any{"type": "identity", "name": "keystone", "id": "i", "endpoints": []any{
				endpoint("RegionTwo", "public", "http://"+r.Host+"/v3"),
			}}},
		}})
	}))
	defer ks.Close()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`clouds:
  test:
    auth:
      auth_url: %s/v3
      username: alice
      password: %s
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionTwo
    interface: internal
  wrong:
    auth:
      auth_url: %s/v3
      username: alice
      password: not-%s
      project_name: demo
      user_domain_name: Default
`, ks.URL, password, ks.URL, password)
	if err := os.WriteFile(filepath.Join(dir, "clouds.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OS_CLIENT_CONFIG_FILE", filepath.Join(dir, "clouds.yaml"))
	t.Setenv("OS_REGION_NAME", "")
	t.Setenv("OS_INTERFACE", "")
	t.Setenv("OS_CLOUD", "")
	ctx := context.Background()
	sc, err := computeClient(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Endpoint != e.URL()+"/" {
		t.Errorf("endpoint %q, want the RegionTwo internal one %q", sc.Endpoint, e.URL()+"/")
	}
	if _, err := servers.ListSimple(sc, nil).AllPages(ctx); err != nil {
		t.Errorf("listing servers with the client: %v", err)
	}
	_, err = computeClient(ctx, "wrong")
	if err == nil || !strings.Contains(err.Error(), `"wrong"`) || strings.Contains(err.Error(), password) {
		t.Errorf("the login with a wrong password: %v", err)
	}
	if _, err := computeClient(ctx, "absent"); !errors.Is(err, rack.ErrInvalid) {
		t.Errorf("the login of an unknown cloud: %v, want ErrInvalid", err)
	}
}

// One login serves Swift too: a Store given the login's provider takes its
// token and object-store endpoint, with no second token request.
func TestLoginSharedWithSwift(t *testing.T) {
	var tokens, swiftReqs atomic.Int64
	const token = "tok-shared-1"
	sw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		swiftReqs.Add(1)
		if r.URL.Path != "/info" && r.Header.Get("X-Auth-Token") != token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	}))
	defer sw.Close()
	var ks *httptest.Server
	ks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/auth/tokens" {
			http.NotFound(w, r)
			return
		}
		tokens.Add(1)
		endpoint := func(url string) []any {
			return []any{map[string]string{"id": url, "region": "RegionOne", "region_id": "RegionOne", "interface": "public", "url": url}}
		}
		w.Header().Set("X-Subject-Token", token)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"methods":    []string{"password"},
			"catalog": []any{
				map[string]any{"type": "identity", "name": "keystone", "id": "i", "endpoints": endpoint(ks.URL + "/v3")},
				map[string]any{"type": "object-store", "name": "swift", "id": "s", "endpoints": endpoint(sw.URL + "/v1/AUTH_p")},
			},
		}})
	}))
	defer ks.Close()
	dir := t.TempDir()
	clearOSEnv(t)
	t.Setenv("OS_CLIENT_CONFIG_FILE", writeFile(t, dir, "clouds.yaml", fmt.Sprintf(`clouds:
  test:
    auth:
      auth_url: %s/v3
      username: alice
      password: pw
      project_name: demo
      user_domain_name: Default
      project_domain_id: default
    region_name: RegionOne
`, ks.URL)))
	ctx := context.Background()
	l, err := NewLogin(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.Config
	cfg.Login = l.Identity.ProviderClient
	s, err := swift.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := tokens.Load(); n != 1 {
		t.Errorf("%d Keystone token requests for the login and the Store, want 1", n)
	}
	if _, err := s.Head(ctx, "c", "o"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Head with the shared token: %v, want ErrNotFound (a 401 would mean the token was not used)", err)
	}
	if tokens.Load() != 1 || swiftReqs.Load() == 0 {
		t.Errorf("after a request: %d token requests, %d Swift requests", tokens.Load(), swiftReqs.Load())
	}
	// Without the login the Store authenticates itself.
	s2, err := swift.New(ctx, l.Config)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if n := tokens.Load(); n != 2 {
		t.Errorf("%d token requests after a Store of its own, want 2", n)
	}
}
