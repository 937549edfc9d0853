package nova

import (
	"context"
	"fmt"
	"sync"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"

	"github.com/rackfork/rack/backend"
)

// flavorSlots caches HostSlots' answer.
type flavorSlots struct {
	mu    sync.Mutex
	n     int
	known bool
}

// HostSlots returns the vCPUs of Config.Flavor, the flavor a host's server
// boots with (backend.HostSlots): one GET /flavors/{id}, the first time it
// succeeds. A flavor that reports no vCPUs counts as one.
func (c *Compute) HostSlots(ctx context.Context) (int, error) {
	c.hostSlots.mu.Lock()
	defer c.hostSlots.mu.Unlock()
	if c.hostSlots.known {
		return c.hostSlots.n, nil
	}
	if c.cfg.Flavor == "" {
		return 0, fmt.Errorf("nova: host slots: no flavor configured (Config.Flavor): %w", backend.ErrInvalid)
	}
	var f *flavors.Flavor
	err := c.retry(ctx, func(ctx context.Context) error {
		var err error
		f, err = flavors.Get(ctx, c.client, c.cfg.Flavor).Extract()
		return err
	})
	if err != nil {
		return 0, c.apiError(ctx, "host slots: show flavor "+c.cfg.Flavor, err)
	}
	c.hostSlots.n, c.hostSlots.known = max(1, f.VCPUs), true
	return c.hostSlots.n, nil
}

var _ backend.HostSlots = (*Compute)(nil)
