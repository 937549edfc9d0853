package openstack

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"gopkg.in/yaml.v2"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/swift"
)

// CloudConfig returns the Keystone (AuthV3) Config of an OpenStack cloud,
// for a URL like swift://CLOUD/CONTAINER: the one place rack reads
// clouds.yaml and the OS_* variables, for Swift, Nova and the children's
// credentials alike.
//
// A non-empty cloud names an entry of clouds.yaml, found as the OpenStack
// clients find it: the file $OS_CLIENT_CONFIG_FILE, else ./clouds.yaml,
// ~/.config/openstack/clouds.yaml or /etc/openstack/clouds.yaml (and
// secure.yaml beside it). As with those clients, OS_REGION_NAME and
// OS_INTERFACE, when set, override the entry's region_name and interface.
// The entry's auth_type must be password (v3password) or
// v3applicationcredential.
//
// An empty cloud means $OS_CLOUD if that is set, else the OS_* variables:
// OS_AUTH_URL, OS_USERNAME or OS_USER_ID, OS_PASSWORD, OS_PROJECT_NAME or
// OS_PROJECT_ID, OS_USER_DOMAIN_NAME or _ID, OS_PROJECT_DOMAIN_NAME or _ID
// (OS_DOMAIN_NAME or _ID for both), OS_REGION_NAME, OS_INTERFACE,
// OS_APPLICATION_CREDENTIAL_ID or _NAME and OS_APPLICATION_CREDENTIAL_SECRET,
// OS_CACERT and OS_INSECURE.
//
// The Config is checked but nothing is contacted: swift.New and Login
// authenticate.
// Errors name the cloud and the file, never a password or secret.
func CloudConfig(cloud string) (swift.Config, error) {
	if cloud == "" {
		cloud = os.Getenv("OS_CLOUD")
	}
	var cfg swift.Config
	var err error
	if cloud == "" {
		cfg, err = envConfig()
	} else {
		cfg, err = cloudsConfig(cloud)
	}
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Check()
}

// envConfig reads the OS_* variables.
func envConfig() (swift.Config, error) {
	g := os.Getenv
	cfg := swift.Config{
		AuthVersion:                 swift.AuthV3,
		AuthURL:                     g("OS_AUTH_URL"),
		User:                        g("OS_USERNAME"),
		UserID:                      coalesce(g("OS_USER_ID"), g("OS_USERID")),
		Key:                         g("OS_PASSWORD"),
		Domain:                      coalesce(g("OS_USER_DOMAIN_NAME"), g("OS_DOMAIN_NAME")),
		DomainID:                    coalesce(g("OS_USER_DOMAIN_ID"), g("OS_DOMAIN_ID")),
		Project:                     coalesce(g("OS_PROJECT_NAME"), g("OS_TENANT_NAME")),
		ProjectID:                   coalesce(g("OS_PROJECT_ID"), g("OS_TENANT_ID")),
		ProjectDomain:               coalesce(g("OS_PROJECT_DOMAIN_NAME"), g("OS_DOMAIN_NAME")),
		ProjectDomainID:             coalesce(g("OS_PROJECT_DOMAIN_ID"), g("OS_DOMAIN_ID")),
		Region:                      g("OS_REGION_NAME"),
		Interface:                   coalesce(g("OS_INTERFACE"), g("OS_ENDPOINT_TYPE")),
		ApplicationCredentialID:     g("OS_APPLICATION_CREDENTIAL_ID"),
		ApplicationCredentialName:   g("OS_APPLICATION_CREDENTIAL_NAME"),
		ApplicationCredentialSecret: g("OS_APPLICATION_CREDENTIAL_SECRET"),
	}
	if cfg.AuthURL == "" {
		return cfg, fmt.Errorf("openstack: Keystone auth from the environment: OS_AUTH_URL unset (and no OS_CLOUD): %w", backend.ErrInvalid)
	}
	if v := g("OS_IDENTITY_API_VERSION"); v != "" && v != "3" {
		return cfg, fmt.Errorf("openstack: OS_IDENTITY_API_VERSION=%s: only Keystone v3 is supported: %w", v, backend.ErrInvalid)
	}
	if err := checkAuthType(g("OS_AUTH_TYPE"), "OS_AUTH_TYPE"); err != nil {
		return cfg, err
	}
	insecure, _ := strconv.ParseBool(g("OS_INSECURE"))
	if ca := g("OS_CACERT"); ca != "" || insecure {
		tc := &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // the user asked for it
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return cfg, fmt.Errorf("openstack: OS_CACERT: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return cfg, fmt.Errorf("openstack: OS_CACERT %s holds no PEM certificate: %w", ca, backend.ErrInvalid)
			}
		}
		cfg.TLSConfig = tc
	}
	return cfg, nil
}

// checkAuthType accepts the auth types a Store can use.
func checkAuthType(t, where string) error {
	switch t {
	case "", "password", "v3password", "v3applicationcredential":
		return nil
	}
	return fmt.Errorf("openstack: %s %q is not supported (password, v3password or v3applicationcredential): %w", where, t, backend.ErrInvalid)
}

// cloudsFile finds clouds.yaml the way the OpenStack clients do.
func cloudsFile() (string, error) {
	if p := os.Getenv("OS_CLIENT_CONFIG_FILE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("openstack: OS_CLIENT_CONFIG_FILE: %w", err)
		}
		return p, nil
	}
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		tried = append(tried, filepath.Join(wd, "clouds.yaml"))
	}
	if dir, err := os.UserConfigDir(); err == nil {
		tried = append(tried, filepath.Join(dir, "openstack", "clouds.yaml"))
	}
	tried = append(tried, "/etc/openstack/clouds.yaml")
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("openstack: no clouds.yaml (set OS_CLIENT_CONFIG_FILE; looked at %s): %w", strings.Join(tried, ", "), backend.ErrInvalid)
}

// yamlLine keeps only the position of a YAML error: its text may quote
// the file, passwords included.
var yamlLine = regexp.MustCompile(`line \d+`)

func yamlErr(err error) string {
	if m := yamlLine.FindString(err.Error()); m != "" {
		return "invalid YAML at " + m
	}
	return "invalid YAML"
}

// cloudsConfig reads entry cloud of clouds.yaml (and secure.yaml) with
// gophercloud's clouds package. That package (v2.10) folds the user's and
// the project's domain into one, so the domains are read from the file
// here.
func cloudsConfig(cloud string) (swift.Config, error) {
	path, err := cloudsFile()
	if err != nil {
		return swift.Config{}, err
	}
	where := fmt.Sprintf("cloud %q in %s", cloud, path)
	ao, eo, tc, err := clouds.Parse(clouds.WithCloudName(cloud), clouds.WithLocations(path))
	if err != nil {
		msg := err.Error()
		var ye *yaml.TypeError
		if errors.As(err, &ye) || strings.Contains(msg, "yaml:") {
			msg = yamlErr(err)
		}
		return swift.Config{}, fmt.Errorf("openstack: %s: %s: %w", where, redact(msg, ao.Password, ao.ApplicationCredentialSecret), backend.ErrInvalid)
	}
	raw, err := rawCloud(path, cloud)
	if err != nil {
		return swift.Config{}, fmt.Errorf("openstack: %s: %s: %w", where, err, backend.ErrInvalid)
	}
	if raw.AuthInfo == nil {
		raw.AuthInfo = &clouds.AuthInfo{}
	}
	if sec, err := rawCloud(filepath.Join(filepath.Dir(path), "secure.yaml"), cloud); err == nil && sec.AuthInfo != nil {
		a, b := raw.AuthInfo, sec.AuthInfo
		a.UserDomainID = coalesce(b.UserDomainID, a.UserDomainID)
		a.UserDomainName = coalesce(b.UserDomainName, a.UserDomainName)
		a.ProjectDomainID = coalesce(b.ProjectDomainID, a.ProjectDomainID)
		a.ProjectDomainName = coalesce(b.ProjectDomainName, a.ProjectDomainName)
		a.DomainID = coalesce(b.DomainID, a.DomainID)
		a.DomainName = coalesce(b.DomainName, a.DomainName)
		raw.AuthType = clouds.AuthType(coalesce(string(sec.AuthType), string(raw.AuthType)))
	}
	if err := checkAuthType(string(raw.AuthType), where+": auth_type"); err != nil {
		return swift.Config{}, err
	}
	if v := raw.IdentityAPIVersion; v != "" && v != "3" {
		return swift.Config{}, fmt.Errorf("openstack: %s: identity_api_version %s: only Keystone v3 is supported: %w", where, v, backend.ErrInvalid)
	}
	ai := raw.AuthInfo
	cfg := swift.Config{
		AuthVersion:                 swift.AuthV3,
		Cloud:                       cloud,
		AuthURL:                     ao.IdentityEndpoint,
		User:                        ao.Username,
		UserID:                      ao.UserID,
		Key:                         ao.Password,
		Domain:                      coalesce(ai.UserDomainName, ai.DomainName),
		DomainID:                    coalesce(ai.UserDomainID, ai.DomainID),
		Project:                     ao.TenantName,
		ProjectID:                   ao.TenantID,
		ProjectDomain:               coalesce(ai.ProjectDomainName, ai.DomainName),
		ProjectDomainID:             coalesce(ai.ProjectDomainID, ai.DomainID),
		Region:                      eo.Region,
		Interface:                   string(eo.Availability),
		ApplicationCredentialID:     ao.ApplicationCredentialID,
		ApplicationCredentialName:   ao.ApplicationCredentialName,
		ApplicationCredentialSecret: ao.ApplicationCredentialSecret,
		TLSConfig:                   tc,
	}
	return cfg, nil
}

// rawCloud decodes entry cloud of the clouds.yaml-format file at path.
func rawCloud(path, cloud string) (clouds.Cloud, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return clouds.Cloud{}, err
	}
	var all clouds.Clouds
	if err := yaml.Unmarshal(data, &all); err != nil {
		return clouds.Cloud{}, errors.New(yamlErr(err))
	}
	c, ok := all.Clouds[cloud]
	if !ok {
		return clouds.Cloud{}, fmt.Errorf("no cloud %q", cloud)
	}
	return c, nil
}

func coalesce(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// redact replaces every non-empty secret in msg.
func redact(msg string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}
