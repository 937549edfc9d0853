package openstack

import (
	"context"
	"encoding/json"
	"errors"
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

// On a cloud without a metadata service, a child learns its server's id
// from its config drive or from what cloud-init wrote, and deletes it;
// DeleteSelfAfterExit does so after leaving the forker its grace.
func TestChildDeleteSelfWithoutMetadataService(t *testing.T) {
	e, err := novaemu.Start(novaemu.Config{Faults: novaemu.Faults{NoMetadataService: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	admin := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{TokenID: "admin"},
		Endpoint:       e.URL() + "/", Type: "compute", Microversion: "2.37",
	}
	// A VM that runs until deleted: what it knows of itself is written
	// when it boots.
	boot := func(name string) novaemu.ServerInfo {
		t.Helper()
		s, err := servers.Create(ctx, admin, servers.CreateOpts{Name: name, ImageRef: "img-1", FlavorRef: "1", Networks: "none",
			UserData: []byte("#!/bin/sh\nsleep 600\n")}, nil).Extract()
		if err != nil {
			t.Fatalf("creating server %s: %v", name, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, si := range e.Servers() {
				if si.ID == s.ID && si.Status == "ACTIVE" && si.PID != 0 {
					return si
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("server %s did not boot", name)
		return novaemu.ServerInfo{}
	}
	gone := func(id string) bool {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			_, err := servers.Get(ctx, admin, id).Extract()
			if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
		return false
	}
	const secret = "child-s3cret-value"
	ks := fakeKeystone(t, "cred-1", secret, e.URL())
	cc := childCompute{cred: &credential.Credential{ID: "cred-1", Secret: secret, AuthURL: ks.URL + "/v3", Region: "RegionOne"}}

	drive, cloud := boot("by-drive"), boot("by-cloud-init")
	t.Setenv("RACK_METADATA_URL", e.BaseURL()+"/servers/"+drive.ID+"/metadata-service") // answers 404
	t.Setenv("RACK_CLOUD_DIR", filepath.Join(t.TempDir(), "none"))
	// The config drive.
	t.Setenv("RACK_CONFIG_DRIVE", filepath.Join(filepath.Dir(drive.Dir), "config-2"))
	if err := cc.DeleteSelf(ctx); err != nil {
		t.Fatalf("DeleteSelf with a config drive: %v", err)
	}
	if !gone(drive.ID) {
		t.Error("the server with the config drive is still there")
	}
	// cloud-init's instance-id, after a grace left to the forker.
	t.Setenv("RACK_CONFIG_DRIVE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("RACK_CLOUD_DIR", filepath.Join(filepath.Dir(cloud.Dir), "cloud"))
	cc.afterExit = 100 * time.Millisecond
	t0 := time.Now()
	if err := cc.DeleteSelfAfterExit(ctx); err != nil {
		t.Fatalf("DeleteSelfAfterExit with cloud-init's instance-id: %v", err)
	}
	if d := time.Since(t0); d < cc.afterExit {
		t.Errorf("DeleteSelfAfterExit returned after %v, before its grace of %v", d, cc.afterExit)
	}
	if !gone(cloud.ID) {
		t.Error("the server found through cloud-init is still there")
	}
	// Nothing to go by: an error naming every source, nothing deleted.
	other := boot("other")
	t.Setenv("RACK_CLOUD_DIR", filepath.Join(t.TempDir(), "none"))
	t.Setenv("RACK_METADATA_URL", e.BaseURL()+"/servers/"+other.ID+"/metadata-service")
	err = cc.DeleteSelf(ctx)
	if err == nil || !strings.Contains(err.Error(), "metadata") || !strings.Contains(err.Error(), "config drive") || !strings.Contains(err.Error(), "cloud-init") {
		t.Errorf("DeleteSelf with no source of its id: %v, want an error naming each", err)
	}
	if _, err := servers.Get(ctx, admin, other.ID).Extract(); err != nil {
		t.Errorf("a failed DeleteSelf deleted a server: %v", err)
	}
}
