package openstack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rackfork/rack"
)

// A child (or host) compares the URL it was given with the one it opens
// without the kernel's own timeout=, which the forker's kernel adds to the
// URL it hands on and rack.Open takes out before the opener sees it.
func TestSameChildURL(t *testing.T) {
	const child = "openstack:///ns?flavor=f&hosts=1&image=i&slots=3"
	for _, tc := range []struct {
		own  string
		same bool
	}{
		{child, true},
		{"openstack:///ns?flavor=f&hosts=1&image=i&slots=3&timeout=10s", true},
		{"openstack:///ns?timeout=10s&slots=3&image=i&hosts=1&flavor=f", true},
		{"openstack:///ns?flavor=f&hosts=1&image=i&slots=4", false},
		{"openstack:///ns?flavor=f&image=i", false},
		{"openstack:///other?flavor=f&hosts=1&image=i&slots=3", false},
		{"%zz", false},
	} {
		if got := sameChildURL(tc.own, child); got != tc.same {
			t.Errorf("sameChildURL(%q, %q) = %v, want %v", tc.own, child, got, tc.same)
		}
	}
}

// A child given its namespace's URL with timeout= and hosts options opens
// it: it goes on to fetch its credential (here refused) rather than
// refusing the URL.
func TestChildURLWithTimeoutAndHosts(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	t.Setenv(credentialGetEnv, srv.URL+"/get")
	t.Setenv(credentialDeleteEnv, srv.URL+"/delete")
	const url = "openstack:///mine?flavor=f&hosts=1&idle=1m&image=i&slots=3&timeout=10s"
	t.Setenv(rack.URLEnv, url)
	k, err := rack.Open(context.Background(), url)
	if err == nil {
		k.Close()
		t.Fatal("Open succeeded without a credential")
	}
	if strings.Contains(err.Error(), "cannot open") || !strings.Contains(err.Error(), "fetching this child's credential") {
		t.Errorf("child's Open: %v; want it to go on to fetch its credential", err)
	}
}

// Bad hosts options fail before anything is contacted.
func TestBadHostsURLs(t *testing.T) {
	t.Setenv("OS_CLOUD", "")
	t.Setenv("OS_AUTH_URL", "")
	t.Setenv("OS_CLIENT_CONFIG_FILE", t.TempDir()+"/absent.yaml")
	for _, tc := range []struct{ url, says string }{
		{"openstack://cloud/c?image=i&flavor=f&hosts=1&slots=0", "slots"},
		{"openstack://cloud/c?image=i&flavor=f&hosts=1&idle=soon", "idle"},
		{"openstack://cloud/c?image=i&flavor=f&slots=2", "need hosts=1"},
		{"openstack://cloud/c?image=i&flavor=f&hosts=yes", "hosts"},
		{"openstack://cloud/c?image=i&flavor=f&hosts=1&hosts=1", "hosts given 2 times"},
	} {
		k, err := rack.Open(context.Background(), tc.url)
		if err == nil {
			k.Close()
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		if !errors.Is(err, rack.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Open(%q): %v; want ErrInvalid saying %q", tc.url, err, tc.says)
		}
	}
}
