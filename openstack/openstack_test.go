package openstack_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rackfork/rack"
	_ "github.com/rackfork/rack/openstack"
)

// Importing the package registers its schemes with rack.Open.
func TestSchemesRegistered(t *testing.T) {
	for _, s := range []string{"swift", "swift+v1", "openstack"} {
		if !slices.Contains(rack.Schemes(), s) {
			t.Errorf("rack.Schemes() = %q, lacks %q", rack.Schemes(), s)
		}
	}
}

// Malformed swift and openstack URLs fail before anything is contacted,
// with rack.ErrInvalid and without the key the URL holds.
func TestBadURLs(t *testing.T) {
	t.Setenv("OS_CLOUD", "")
	t.Setenv("OS_AUTH_URL", "")
	t.Setenv("OS_CLIENT_CONFIG_FILE", t.TempDir()+"/absent.yaml")
	for _, tc := range []struct{ url, says string }{
		{"swift+v1://user:s3cret-key@127.0.0.1:1/", "names no container"},
		{"swift+v1://user:s3cret-key@127.0.0.1:1/c?bad=1", `unknown URL option "bad"`},
		{"swift+v1://user:s3cret-key@127.0.0.1:1/c?compute=x", "not supported"},
		{"swift://user:s3cret-key@mycloud/c", "never the URL"},
		{"swift://no-such-cloud/c", "no-such-cloud"},
		{"openstack://cloud/", "names no container"},
		{"openstack://user:s3cret-key@cloud/c", "never the URL"},
		{"openstack://cloud/c?colour=red", `"colour"`},
		{"openstack://cloud/c?max_boots=0", "max_boots"},
		{"openstack://no-such-cloud/c?image=i&flavor=f", "no-such-cloud"},
	} {
		k, err := rack.Open(context.Background(), tc.url)
		if err == nil {
			k.Close()
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): %v; want ErrInvalid, saying %q, without the key", tc.url, err, tc.says)
		}
	}
}
