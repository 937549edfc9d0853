package swift

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/rackfork/rack/backend"
)

// SegmentContainer names the container in which a Store puts the Static
// Large Object segments of container c's large objects (c + "_segments",
// shortened with a hash when that would exceed Swift's 256 bytes). A
// credential that may write c needs it too.
func SegmentContainer(c string) string { return segmentContainer(c) }

// IdentityClient authenticates with Keystone as cfg (a Keystone, AuthV3,
// Config, e.g. from openstack.CloudConfig) and returns an identity v3 client that
// carries the token, project-scoped as cfg says. Its ProviderClient
// re-authenticates when the token expires, and its GetAuthResult holds
// the token's user, project, roles and catalog. The openstack package uses
// it to manage application credentials, which Keystone lets only a
// password (or unrestricted application credential) token do.
//
// Requests use cfg's Transport (or TLSConfig) and never follow redirects.
// Errors name the auth URL, cloud and user, never a password or secret.
func IdentityClient(ctx context.Context, cfg Config) (*gophercloud.ServiceClient, error) {
	if cfg.AuthVersion != AuthV3 {
		return nil, fmt.Errorf("swift: identity client: Config is not Keystone (AuthV3): %w", backend.ErrInvalid)
	}
	if err := cfg.checkV3(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(discardHandler{})
	}
	tr := newTransport(cfg, log)
	ka := newKeystoneAuth(&cfg, tr, log)
	pc, err := openstack.NewClient(cfg.AuthURL)
	if err != nil {
		return nil, ka.fail(err)
	}
	pc.HTTPClient = http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	pc.UserAgent.Prepend("rack-swift/1")
	if err := openstack.Authenticate(ctx, pc, cfg.authOptions()); err != nil {
		return nil, ka.fail(err)
	}
	idc, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return nil, ka.fail(err)
	}
	return idc, nil
}
