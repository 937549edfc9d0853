package openstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/swift"
)

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
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

const testClouds = `clouds:
  split:
    auth_type: password
    auth:
      auth_url: http://keystone.example:5000/v3
      username: alice
      password: pw-clouds-s3cret
      project_name: proj
      user_domain_name: Users
      project_domain_id: projdom
    region_name: RegionTwo
    interface: internal
    identity_api_version: 3
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: http://keystone.example:5000/v3
      application_credential_id: ac-id-1
      application_credential_secret: ac-s3cret-value
    region_name: RegionOne
  bytoken:
    auth_type: token
    auth:
      auth_url: http://keystone.example:5000/v3
      token: tok
  nosecret:
    auth:
      auth_url: http://keystone.example:5000/v3
      username: bob
      project_id: p1
`

func TestCloudConfigFile(t *testing.T) {
	clearOSEnv(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "clouds.yaml", testClouds)
	writeFile(t, dir, "secure.yaml", "clouds:\n  nosecret:\n    auth:\n      password: from-secure-yaml\n")
	t.Setenv("OS_CLIENT_CONFIG_FILE", path)

	cfg, err := CloudConfig("split")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuthVersion != swift.AuthV3 || cfg.Cloud != "split" || cfg.User != "alice" || cfg.Key != "pw-clouds-s3cret" ||
		cfg.Project != "proj" || cfg.Domain != "Users" || cfg.DomainID != "" || cfg.ProjectDomainID != "projdom" ||
		cfg.Region != "RegionTwo" || cfg.Interface != "internal" {
		t.Fatalf("split: %#v", cfg) // GoString: no secrets
	}
	ao := cfg.AuthOptions()
	if ao.DomainName != "Users" || ao.DomainID != "" || ao.Scope == nil || ao.Scope.ProjectName != "proj" ||
		ao.Scope.DomainID != "projdom" || ao.Scope.DomainName != "" || !ao.AllowReauth {
		t.Fatalf("split: auth options: user domain %q/%q, scope %+v", ao.DomainID, ao.DomainName, ao.Scope)
	}
	if _, err := ao.ToTokenV3CreateMap(nil); err != nil {
		t.Fatalf("split: gophercloud refuses the options: %v", err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, cfg); strings.Contains(s, cfg.Key) || !strings.Contains(s, "alice") || !strings.Contains(s, "split") {
			t.Errorf("Sprintf(%q) = %s", f, s)
		}
	}

	// OS_REGION_NAME and OS_INTERFACE override the file, as for the
	// OpenStack clients.
	t.Setenv("OS_REGION_NAME", "RegionEnv")
	if cfg, err := CloudConfig("split"); err != nil || cfg.Region != "RegionEnv" {
		t.Errorf("OS_REGION_NAME override: %q, %v", cfg.Region, err)
	}
	os.Unsetenv("OS_REGION_NAME")

	cfg, err = CloudConfig("appcred")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ApplicationCredentialID != "ac-id-1" || cfg.ApplicationCredentialSecret != "ac-s3cret-value" || cfg.Interface != "public" {
		t.Fatalf("appcred: %v", cfg)
	}
	if s := cfg.String(); strings.Contains(s, "ac-s3cret-value") || !strings.Contains(s, "ac-id-1") {
		t.Errorf("appcred String: %s", s)
	}
	ao = cfg.AuthOptions()
	if m, err := ao.ToTokenV3ScopeMap(); err != nil || m != nil {
		t.Errorf("appcred: scope %v, %v; want none", m, err)
	}

	cfg, err = CloudConfig("nosecret")
	if err != nil || cfg.Key != "from-secure-yaml" || cfg.ProjectID != "p1" {
		t.Errorf("secure.yaml merge: %v, %v", cfg, err)
	}
	if ao := cfg.AuthOptions(); ao.DomainID != "default" || ao.Scope.ProjectID != "p1" {
		t.Errorf("nosecret: user domain %q, scope %+v", ao.DomainID, ao.Scope)
	}

	for name, want := range map[string]string{"bytoken": `auth_type "token"`, "missing": `"missing"`} {
		_, err := CloudConfig(name)
		if !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("CloudConfig(%q): %v", name, err)
		}
	}

	// A broken file: the error gives the line, not the text (it could be a
	// password).
	bad := writeFile(t, dir, "bad.yaml", "clouds:\n  x:\n    auth:\n      password: [s3cret-in-broken-yaml\n")
	t.Setenv("OS_CLIENT_CONFIG_FILE", bad)
	if _, err := CloudConfig("x"); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("broken YAML: %v", err)
	}
	t.Setenv("OS_CLIENT_CONFIG_FILE", filepath.Join(dir, "absent.yaml"))
	if _, err := CloudConfig("x"); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCloudConfigEnv(t *testing.T) {
	clearOSEnv(t)
	if _, err := CloudConfig(""); !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "OS_AUTH_URL") {
		t.Fatalf("no OS_*: %v", err)
	}
	for k, v := range map[string]string{
		"OS_AUTH_URL": "http://keystone.example:5000/v3", "OS_USERNAME": "tester", "OS_PASSWORD": "env-s3cret",
		"OS_PROJECT_NAME": "test", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_ID": "default",
		"OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "public", "OS_IDENTITY_API_VERSION": "3",
	} {
		t.Setenv(k, v)
	}
	cfg, err := CloudConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "tester" || cfg.Key != "env-s3cret" || cfg.Project != "test" || cfg.Domain != "Default" ||
		cfg.ProjectDomainID != "default" || cfg.Region != "RegionOne" || cfg.Cloud != "" {
		t.Fatalf("env: %v", cfg)
	}
	ao := cfg.AuthOptions()
	if _, err := ao.ToTokenV3CreateMap(nil); err != nil || ao.DomainName != "Default" || ao.Scope.DomainID != "default" {
		t.Fatalf("env: auth options %+v: %v", ao.Scope, err)
	}
	t.Setenv("OS_INTERFACE", "private")
	if _, err := CloudConfig(""); !errors.Is(err, backend.ErrInvalid) || strings.Contains(err.Error(), "env-s3cret") {
		t.Errorf("bad interface: %v", err)
	}
	t.Setenv("OS_INTERFACE", "")
	t.Setenv("OS_PROJECT_NAME", "")
	if _, err := CloudConfig(""); !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "project") {
		t.Errorf("no project: %v", err)
	}
	t.Setenv("OS_IDENTITY_API_VERSION", "2")
	if _, err := CloudConfig(""); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("identity v2: %v", err)
	}
}
