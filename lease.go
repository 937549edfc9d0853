package rack

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// leaseKeeper keeps this kernel's lease: an object that expires unless
// renewed, whose absence tells the other kernels that this one is gone
// (and its processes lost). It also reads the leases of other kernels.
type leaseKeeper struct {
	ns  *nsStore
	id  string        // this kernel's id
	ttl time.Duration // how long a lease lasts unrenewed
	log *slog.Logger
	off atomic.Bool // tests: stop renewing the lease, as a dead kernel would
	// renewed is when the last renewal that succeeded was sent (Unix
	// nanoseconds): the lease holds until then plus ttl.
	renewed atomic.Int64
	// seen shares the parents' lease checks of a kernel's processes
	// (aliveShared, hostcloud.go).
	seen sharedLeaseChecks
}

// renewEvery is how many times per lease period the lease is renewed. A
// renewal retries through an outage until the store answers (or its
// budget, the lease, is spent), and the lease lapses ttl after the last
// renewal that succeeded, at most ttl/renewEvery before the outage began:
// so an outage shorter than ttl - ttl/renewEvery less a backoff (1 s), 23 s
// of the default 30 s lease, passes without the lease lapsing.
const renewEvery = 5

// renew refreshes this kernel's lease object.
func (l *leaseKeeper) renew(ctx context.Context) error {
	sent := time.Now()
	err := l.put(ctx, l.id, l.ttl)
	if err == nil {
		l.renewed.Store(sent.UnixNano())
	}
	return err
}

// held reports whether this kernel's lease still holds: the last renewal
// that succeeded was sent within the lease period. Past it, other kernels
// may have found it gone and declared this kernel's processes lost.
func (l *leaseKeeper) held() bool {
	r := l.renewed.Load()
	return r != 0 && time.Since(time.Unix(0, r)) < l.ttl
}

// put writes the lease of kernel id, good for lease.
func (l *leaseKeeper) put(ctx context.Context, id string, lease time.Duration) error {
	return l.putAs(ctx, id, lease, false)
}

// putAs writes the lease of kernel id, good for lease, saying whether its
// process is stopped (a lease kept by the kernel that stopped it).
func (l *leaseKeeper) putAs(ctx context.Context, id string, lease time.Duration, stopped bool) error {
	summary := record.LeaseSummary(int64(lease))
	if stopped {
		summary = record.StoppedLeaseSummary(int64(lease))
	}
	_, err := l.ns.store.Put(ctx, l.ns.container, record.KernelKey(id),
		bytesReader(record.Encode(record.Lease{Kernel: id, Renewed: time.Now(), Stopped: stopped})),
		&backend.PutOptions{DeleteAfter: lease, ContentType: summary})
	return err
}

// loop renews the lease renewEvery times per lease period until ctx ends.
func (l *leaseKeeper) loop(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(l.ttl / renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if l.off.Load() {
				continue
			}
			if err := l.renew(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("rack: lease renewal failed", "kernel", l.id, "err", err)
			}
		}
	}
}

// alive reports whether kernel id's lease is still there.
func (l *leaseKeeper) alive(ctx context.Context, id string) (bool, error) {
	if id == l.id {
		return true, nil
	}
	_, err := l.ns.store.Head(ctx, l.ns.container, record.KernelKey(id))
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
