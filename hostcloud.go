package rack

import (
	"context"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"golang.org/x/sync/singleflight"
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
			p.slots = min(n, maxHostSlots)
			return p.slots
		}
		k.cfg.logger.Warn("rack: hosts: the compute did not say how many slots a host has; using this machine's CPUs", "err", err)
	}
	return runtime.NumCPU()
}

// hostBootLimit bounds how long a forker keeps the lease of a host it
// started on a compute that boots servers, while the host is not up.
const hostBootLimit = 15 * time.Minute

// tendBootingHost keeps the lease of a host just started (written for one
// lease; its record, for hostBootLimit) alive until the host runs and says so
// (hostRecord.Up): processes placed on it are not taken for lost, nor the
// host for dead, while it starts: a server boots for seconds to minutes,
// and a local host on a loaded machine can take longer than a lease
// (TestHostSlowStart; CI once lost a host's children so). It stops when
// the compute no longer lists the instance (its start failed for good),
// after hostBootLimit, or when this kernel closes; the lease then lapses
// as any other.
func (k *Kernel) tendBootingHost(rec *hostRecord) {
	cp := *rec
	rec = &cp
	p := &k.placer // locked by the caller (startHost, serveHostRequest)
	if p.booting == nil {
		p.booting = map[string]bool{}
	}
	p.booting[rec.Kernel] = true
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		defer func() {
			p.mu.Lock()
			delete(p.booting, rec.Kernel)
			p.mu.Unlock()
		}()
		ctx := k.ctx
		deadline := time.Now().Add(hostBootLimit)
		t := time.NewTicker(k.cfg.lease / renewEvery)
		defer t.Stop()
		// At once first: starting the server may have taken longer than
		// a lease (the program's first upload, the credential's issue).
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			var now hostRecord
			err := k.ns.getRecord(ctx, hostKey(rec.Kernel), &now)
			if err == nil && now.Up != 0 {
				return // it runs, and renews its lease itself
			}
			if time.Now().After(deadline) {
				k.cfg.logger.Warn("rack: hosts: a host did not start in time; its lease is left to lapse", "host", rec.Kernel, "limit", hostBootLimit)
				_ = k.ns.deleteSmall(ctx, hostKey(rec.Kernel))
				return
			}
			live, lerr := k.compute.List(ctx, k.cfg.namespace)
			if lerr == nil && !slices.ContainsFunc(live, func(in backend.Instance) bool { return in.Name == rec.Instance }) {
				// Its instance is gone (a failed boot): the lease lapses.
				_ = k.ns.deleteSmall(ctx, hostKey(rec.Kernel))
				return
			}
			// Only the lease: the record, written for hostBootLimit, is
			// the host's own from its start (a put here could undo its Up).
			if err := k.leases.put(ctx, rec.Kernel, k.cfg.lease); err != nil && ctx.Err() == nil {
				k.cfg.logger.Warn("rack: hosts: renewing a booting host's lease", "host", rec.Kernel, "err", err)
			}
		}
	}()
}

// hostUp records that the host runs (see tendBootingHost): a forker
// tending its lease while it booted stops. One put, as the host starts.
func (k *Kernel) hostUp(ctx context.Context, rec *hostRecord) {
	rec.Up = time.Now().UnixNano()
	if err := k.putHostRecord(ctx, rec); err != nil {
		k.cfg.logger.Warn("rack: host: writing its record", "err", err)
	}
}

// sharedLeaseChecks remembers the latest lease checks of other kernels.
type sharedLeaseChecks struct {
	mu   sync.Mutex
	last map[string]leaseCheck
	// flight makes the checks of one kernel that are due at once one
	// request: each used to make its own while the first was under way
	// (a loaded store answers in a second). Lease HEADs in the first 28 s
	// of a 100-worker run on 10 hosts: 309 before, 35 after.
	flight singleflight.Group
}

type leaseCheck struct {
	at    time.Time
	alive bool
}

// aliveShared is alive, but answers from a check of kernel id made within
// maxAge when there is one: a host's processes, often many children of
// one forker, each watch their parent's lease, and would otherwise make
// one request each per watch (a hundred processes on a store behind
// Keystone are a hundred requests a second).
func (l *leaseKeeper) aliveShared(ctx context.Context, id string, maxAge time.Duration) (bool, error) {
	s := &l.seen
	s.mu.Lock()
	if c, ok := s.last[id]; ok && time.Since(c.at) < maxAge {
		s.mu.Unlock()
		return c.alive, nil
	}
	s.mu.Unlock()
	// One check, remembered once, for every caller due meanwhile; not
	// under the first caller's ctx: one that ends must not fail the
	// others' check (a caller that ends stops waiting, below).
	ch := s.flight.DoChan(id, func() (any, error) {
		at := time.Now()
		alive, err := l.alive(context.WithoutCancel(ctx), id)
		if err == nil {
			s.mu.Lock()
			if s.last == nil {
				s.last = map[string]leaseCheck{}
			}
			for k, c := range s.last { // keep it small: drop the old
				if time.Since(c.at) >= maxAge {
					delete(s.last, k)
				}
			}
			s.last[id] = leaseCheck{at: at, alive: alive}
			s.mu.Unlock()
		}
		return alive, err
	})
	select {
	case res := <-ch:
		return res.Val.(bool), res.Err
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}
