package rack

import (
	"context"
	"net/url"
	"runtime"

	"github.com/rackfork/rack/backend"
)

// Hosts on a compute whose instances are servers (backend/nova through
// openstack://): the URL options, and the slot count of a host.

// HostsFromQuery reads the hosts options of a namespace URL's query
// (hosts=1, slots=N, idle=DURATION; see WithHosts), deleting them from q,
// and returns the Option they make, nil without hosts=1. An Opener whose
// compute can start hosts calls it; its errors wrap ErrInvalid.
func HostsFromQuery(q url.Values) (Option, error) {
	return hostsFromQuery(q)
}

// hostSlotCount returns the slots of a host this kernel starts: WithHosts'
// count, else what the compute says (backend.HostSlots: a flavor's
// vCPUs), else the number of CPUs. Called with the placer locked; the
// compute is asked until it answers.
func (k *Kernel) hostSlotCount(ctx context.Context) int {
	if n := k.cfg.hosts.slots; n > 0 {
		return n
	}
	p := &k.placer
	if p.slots > 0 {
		return p.slots
	}
	if hs, ok := k.compute.(backend.HostSlots); ok {
		n, err := hs.HostSlots(ctx)
		if err == nil && n > 0 {
			p.slots = n
			return n
		}
		k.cfg.logger.Warn("rack: hosts: the compute did not say how many slots a host has; using this machine's CPUs", "err", err)
	}
	return runtime.NumCPU()
}
