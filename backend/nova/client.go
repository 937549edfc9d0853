package nova

import (
	"context"
	"fmt"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"

	"github.com/rackfork/rack/backend"
)

// NewServiceClient authenticates to the cloud named cloudName in
// clouds.yaml (found as the OpenStack clients find it; "" means $OS_CLOUD)
// and returns a compute service client for the entry's region_name and
// interface (OS_REGION_NAME and OS_INTERFACE override them). The client
// re-authenticates when its token expires. Errors name the cloud and never
// hold its password or secret.
func NewServiceClient(ctx context.Context, cloudName string) (*gophercloud.ServiceClient, error) {
	var opts []clouds.ParseOption
	if cloudName != "" {
		opts = append(opts, clouds.WithCloudName(cloudName))
	}
	ao, eo, tlsConfig, err := clouds.Parse(opts...)
	if err != nil {
		return nil, fmt.Errorf("nova: cloud %q: %v: %w", cloudName, err, backend.ErrInvalid)
	}
	ao.AllowReauth = true
	pc, err := config.NewProviderClient(ctx, ao, config.WithTLSConfig(tlsConfig))
	if err != nil {
		return nil, fmt.Errorf("nova: cloud %q: authenticating: %s", cloudName, scrub(err.Error(), ao))
	}
	sc, err := openstack.NewComputeV2(pc, eo)
	if err != nil {
		return nil, fmt.Errorf("nova: cloud %q: finding the compute endpoint (region %q, interface %q): %v: %w",
			cloudName, eo.Region, eo.Availability, err, backend.ErrInvalid)
	}
	return sc, nil
}

// scrub removes the secrets of ao from s.
func scrub(s string, ao gophercloud.AuthOptions) string {
	for _, secret := range []string{ao.Password, ao.ApplicationCredentialSecret, ao.TokenID} {
		if len(secret) >= 4 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
