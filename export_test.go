package rack

import (
	"context"
	"errors"
	"os"

	"github.com/rackfork/rack/backend"
)

// StopLeaseForTest makes k stop renewing its lease, as a kernel that died
// would, while it goes on running.
func (k *Kernel) StopLeaseForTest() { k.leases.off.Store(true) }

// DumpForTest returns every object of the namespace's container.
func (k *Kernel) DumpForTest(ctx context.Context) (map[string][]byte, error) {
	objs, err := k.ns.listAllIn(ctx, k.cfg.container, "")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(objs))
	for _, o := range objs {
		data, err := k.ns.get(ctx, o.Name)
		if err != nil {
			continue // gone since the listing
		}
		out[o.Name] = data
	}
	return out, nil
}

// ReadableForTest returns the names of the objects of container c that
// can still be read.
func (k *Kernel) ReadableForTest(ctx context.Context, c string) ([]string, error) {
	objs, err := k.ns.listAllIn(ctx, c, "")
	if errors.Is(err, backend.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range objs {
		if _, err := k.ns.store.Head(ctx, c, o.Name); err == nil {
			out = append(out, o.Name)
		}
	}
	return out, nil
}

// ContainerGoneForTest reports whether container c no longer exists.
func (k *Kernel) ContainerGoneForTest(ctx context.Context, c string) (bool, error) {
	_, err := k.ns.store.List(ctx, c, backend.ListOptions{Limit: 1})
	if errors.Is(err, backend.ErrNotFound) {
		return true, nil
	}
	return false, err
}

// A scheme Open knows the package of but that nothing registers, to test
// the error that names the package to import.
func init() { knownSchemes["rack-test-unlinked"] = "example.com/rack-test/unlinked" }

// PowerlessHostsEnv, set to 1 in a test's environment, makes the hosts it
// starts behave as if their compute could not start hosts: they ask for
// new hosts with host requests (hostfork.go). It is read as the program
// starts, so the test's own kernels are not affected.
const PowerlessHostsEnv = "RACK_TEST_POWERLESS_HOSTS"

func init() { testPowerlessHosts = os.Getenv(PowerlessHostsEnv) == "1" }

// NoHostRequestsForTest makes k serve no host requests (as if no kernel
// that can start hosts lived). Call it before k places anything on a host.
func (k *Kernel) NoHostRequestsForTest() { k.placer.reqs.off = true }

// HostRequestsServedForTest returns how many host requests k served by
// starting a host.
func (k *Kernel) HostRequestsServedForTest() int64 { return k.placer.reqs.served.Load() }

// KernelForTest returns the kernel that runs s's process.
func (s *Self) KernelForTest() *Kernel {
	pr, err := s.selfProc("test")
	if err != nil {
		return nil
	}
	return pr.k
}
