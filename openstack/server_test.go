package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/novaemu"
	"github.com/rackfork/rack/openstack/internal/credential"
)

// fakeKeystone accepts application credential id/secret and hands out a
// token whose catalog's compute endpoint is computeURL.
func fakeKeystone(t *testing.T, id, secret, computeURL string) *httptest.Server {
	t.Helper()
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/auth/tokens" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Auth struct {
				Identity struct {
					AppCred struct {
						ID     string `json:"id"`
						Secret string `json:"secret"`
					} `json:"application_credential"`
				} `json:"identity"`
			} `json:"auth"`
		}
		json.Unmarshal(body, &req)
		if a := req.Auth.Identity.AppCred; a.ID != id || a.Secret != secret {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}`)
			return
		}
		w.Header().Set("X-Subject-Token", "child-token")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"methods":    []string{"application_credential"},
			"catalog": []any{map[string]any{"type": "compute", "name": "nova", "id": "c", "endpoints": []any{
				map[string]string{"id": "e", "region": "RegionOne", "region_id": "RegionOne", "interface": "public", "url": computeURL},
			}}},
		}})
	}))
	t.Cleanup(ks.Close)
	return ks
}

// A child's compute deletes the server it runs on, found through the
// metadata service, with its own credential (backend.SelfDeleter); run
// where no metadata service answers, it deletes nothing.
func TestChildDeleteSelf(t *testing.T) {
	e, err := novaemu.Start(novaemu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	admin := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{TokenID: "admin"},
		Endpoint:       e.URL() + "/", Type: "compute", Microversion: "2.37",
	}
	create := func(name string) string {
		t.Helper()
		s, err := servers.Create(ctx, admin, servers.CreateOpts{Name: name, ImageRef: "img-1", FlavorRef: "1", Networks: "none"}, nil).Extract()
		if err != nil {
			t.Fatalf("creating server %s: %v", name, err)
		}
		return s.ID
	}
	self, other := create("self"), create("other")
	const secret = "child-s3cret-value"
	ks := fakeKeystone(t, "cred-1", secret, e.URL())
	var sd backend.SelfDeleter = childCompute{cred: &credential.Credential{
		ID: "cred-1", Secret: secret, AuthURL: ks.URL + "/v3", Region: "RegionOne", Interface: "public",
	}}
	exists := func(id string) bool {
		t.Helper()
		_, err := servers.Get(ctx, admin, id).Extract()
		if err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Fatalf("looking up server %s: %v", id, err)
		}
		return err == nil
	}

	// No metadata service: nothing is deleted.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	t.Setenv("RACK_METADATA_URL", dead.URL)
	if err := sd.DeleteSelf(ctx); err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("DeleteSelf without a metadata service: %v, want an error naming it", err)
	}
	// A wrong secret: refused, without the secret in the error.
	t.Setenv("RACK_METADATA_URL", e.BaseURL()+"/servers/"+self+"/metadata-service")
	bad := childCompute{cred: &credential.Credential{ID: "cred-1", Secret: "wrong-" + secret, AuthURL: ks.URL + "/v3", Region: "RegionOne"}}
	if err := bad.DeleteSelf(ctx); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("DeleteSelf with a wrong secret: %v", err)
	}
	if !exists(self) || !exists(other) {
		t.Fatal("a failed DeleteSelf deleted a server")
	}

	// In server self: it goes, the other stays.
	if err := sd.DeleteSelf(ctx); err != nil {
		t.Fatalf("DeleteSelf: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for exists(self) {
		if time.Now().After(deadline) {
			t.Fatal("server self still exists after DeleteSelf")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !exists(other) {
		t.Error("DeleteSelf deleted another server")
	}
}

// A child opening another namespace than its own fails at once, saying
// why, and leaves its one-time credential unfetched for its own: it
// cannot reach the other namespace, and the child has nothing else to log
// in with.
func TestChildOpensOtherNamespace(t *testing.T) {
	var fetched atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv(credentialGetEnv, srv.URL+"/get")
	t.Setenv(credentialDeleteEnv, srv.URL+"/delete")
	t.Setenv(rack.URLEnv, "openstack:///mine?flavor=f&image=i")
	k, err := rack.Open(context.Background(), "openstack://cloud/other?image=i&flavor=f")
	if err == nil {
		k.Close()
	}
	if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), "openstack:///other") ||
		!strings.Contains(err.Error(), "openstack:///mine") || !strings.Contains(err.Error(), "cannot log in as the user") {
		t.Errorf("child opening another namespace: %v; want ErrInvalid naming both namespaces", err)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the credential was fetched %d times for a namespace it cannot reach", n)
	}
	if os.Getenv(credentialGetEnv) == "" {
		t.Errorf("the credential's URL was taken from the environment")
	}
}
