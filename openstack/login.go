package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	gcos "github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/swift"
)

// Login is one Keystone login to a cloud: its configuration, read once by
// CloudConfig, and the identity client that configuration authenticated.
// The Nova client (ComputeClient), the children's credentials and the
// Swift store (swift.Config.Login set to Identity.ProviderClient) all
// start from its token; the identity client re-authenticates when the
// token expires, and the store, which keeps its token for ncw/swift,
// re-authenticates by itself with the same configuration.
type Login struct {
	// Cloud is the clouds.yaml entry ("" for OS_CLOUD or the OS_* variables).
	Cloud string
	// Config is the cloud's Keystone configuration, for swift.New.
	Config swift.Config
	// Identity is a Keystone v3 client holding the login's token, scoped
	// as Config says.
	Identity *gophercloud.ServiceClient
}

// NewLogin reads cloud's configuration (see CloudConfig) and
// authenticates with Keystone. A configuration at fault gives an error
// wrapping rack.ErrInvalid. Errors never hold a password or secret.
func NewLogin(ctx context.Context, cloud string) (*Login, error) {
	cfg, err := CloudConfig(cloud)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", rack.ErrInvalid, err)
	}
	identity, err := swift.IdentityClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Login{Cloud: cloud, Config: cfg, Identity: identity}, nil
}

// ComputeClient returns a Nova (compute v2) client of the login's region
// and interface, for nova.Config.Client.
func (l *Login) ComputeClient() (*gophercloud.ServiceClient, error) {
	avail := gophercloud.AvailabilityPublic
	switch l.Config.Interface {
	case "internal", "internalURL":
		avail = gophercloud.AvailabilityInternal
	case "admin", "adminURL":
		avail = gophercloud.AvailabilityAdmin
	}
	client, err := gcos.NewComputeV2(l.Identity.ProviderClient, gophercloud.EndpointOpts{Region: l.Config.Region, Availability: avail})
	if err != nil {
		return nil, fmt.Errorf("%w: cloud %q has no compute endpoint (region %q, interface %q): %v", rack.ErrInvalid, l.Cloud, l.Config.Region, l.Config.Interface, err)
	}
	return client, nil
}
