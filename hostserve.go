package rack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// The host's side (see host.go): a copy of the program started with
// HostEnv serves the processes that forkers put in its slots.

// runHost serves as the host that HostEnv names, until it has been idle
// for its idle time or its namespace has no kernel left but hosts; it
// returns the OS exit code.
func runHost(main Program) int {
	id := os.Getenv(HostEnv)
	lease, err := time.ParseDuration(os.Getenv(hostLeaseEnv))
	if err != nil || lease <= 0 {
		lease = defaultConfig().lease
	}
	digest := os.Getenv(hostDigestEnv)
	// Not for the programs this host starts in turn.
	for _, key := range []string{HostEnv, hostLeaseEnv, hostDigestEnv} {
		os.Unsetenv(key)
	}
	if err := checkKernelID(id); err != nil {
		fmt.Fprintf(os.Stderr, "rack: %s: %v\n", HostEnv, err)
		return 1
	}
	ctx := context.Background()
	k, err := Open(ctx, os.Getenv(URLEnv), joinAs(id), WithLease(lease))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !k.cfg.hosts.on {
		WithHosts(0, 0)(&k.cfg) // a host's own forks go to hosts too
	}
	if digest == "" {
		if digest, err = programDigest(); err != nil {
			fmt.Fprintln(os.Stderr, "rack: host: reading the program's digest:", err)
		}
	}
	h := newHostServer(k, main, hostRecord{Kernel: id, Digest: digest, Slots: k.cfg.hosts.slots, Idle: int64(k.cfg.hosts.idle),
		Instance: hostInstanceName(k.cfg.namespace, id)})
	if err := k.ns.getRecord(ctx, hostKey(id), &h.rec); err != nil {
		// Its forker wrote it (and so says its slots and idle time):
		// without it, no forker can find this host.
		fmt.Fprintln(os.Stderr, "rack: host: reading its record:", err)
		k.Close()
		return 1
	}
	k.inheritHosts(&h.rec) // hostfork.go
	k.hostUp(ctx, &h.rec)  // hostcloud.go
	// SIGTERM, SIGHUP and SIGINT end the host as its idle time does,
	// with its processes (a host has no terminal: these are what an
	// operator sends it). A second signal, or an end that the store holds
	// up for more than a lease, exits at once.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	stop := make(chan struct{})
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "rack: host %s: %v: ending\n", id, s)
		close(stop)
		select {
		case <-sigs:
		case <-time.After(lease):
		}
		os.Exit(128 + int(s.(syscall.Signal)))
	}()
	k.inbox.start(k.ctx, &k.wg, 0)
	reason := h.serve(ctx, stop)
	if reason != "" {
		fmt.Fprintf(os.Stderr, "rack: host %s: %s: ending\n", id, reason)
	}
	// Whatever the store does, the host ends within a lease from here.
	watchdog := time.AfterFunc(lease, func() {
		fmt.Fprintf(os.Stderr, "rack: host %s: ending took over a lease (%v): exiting\n", id, lease)
		os.Exit(1)
	})
	if reason != "" {
		// No forker is to pick it now (the slots of its processes are
		// freed as Close ends them).
		_ = k.ns.deleteSmall(k.ctx, hostKey(id))
	}
	h.endCeilings(ctx) // its life, its host number (hostlimit.go)
	k.Close()
	watchdog.Stop()
	// The hook for a host that is a server: it deletes itself (a local
	// host ends with its OS process).
	if sd, ok := k.compute.(backend.SelfDeleter); ok {
		if err := sd.DeleteSelf(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "rack: host: deleting this server:", err)
		}
	}
	return 0
}

// hostPollMax is the longest a host waits between two listings of its
// slots on a store that does not notify (Swift): a warm fork starts
// within it plus a few round trips. Its cost is the listings: 4 a
// second, 14,400 in an hour of idle time, per host. The root's look for
// host requests (hostfork.go) and an asker's for its answer keep to it
// too: a fork waits on them.
const hostPollMax = 250 * time.Millisecond

// newHostServer makes k the kernel of the host rec describes, running
// main, whose processes' forks take its own free slots first (hostfork.go).
func newHostServer(k *Kernel, main Program, rec hostRecord) *hostServer {
	h := &hostServer{k: k, id: rec.Kernel, main: main, seen: map[string]bool{}, foreign: map[string]time.Time{},
		wake: make(chan struct{}, 1), rec: rec}
	k.placer.self = &hostSelf{h: h, slots: map[PID]*ownSlot{}}
	return h
}

// hostServer is a host's state.
type hostServer struct {
	k    *Kernel
	id   string
	main Program
	rec  hostRecord

	mu   sync.Mutex
	seen map[string]bool // slots taken up (adopting or running), by name
	// foreign: slots another forker's claim was found in (claimOwnSlot),
	// and when, that take has not adopted yet: not free for this host's
	// own forks until a listing begun after that shows them gone.
	foreign map[string]time.Time
	wake    chan struct{} // a slot was released

	ceilings hostCeilings // hostlimit.go
}

// busy returns how many slots are taken up.
func (h *hostServer) busy() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// serve takes new processes from the slots and runs them, until it closes
// (idle: it returns ""), or until it must end with its processes running
// (it returns why): stop is closed (a signal), its lease lapsed (the
// store did not take a renewal for a lease: other kernels may find it
// gone), or the namespace's container is gone.
func (h *hostServer) serve(ctx context.Context, stop <-chan struct{}) string {
	k := h.k
	prefix := hostSlotPrefix(h.id)
	idle := time.Duration(h.rec.Idle)
	idleSince := time.Now()
	refreshed := time.Now()
	nsChecked := time.Now()
	var nsDeadSince time.Time
	delay := k.cfg.pollMin
	// A refresh of the host's record runs beside the loop; the record is
	// not deleted (close, or the caller as the host ends) while one is
	// under way, which would put it back.
	var refreshing atomic.Bool
	var refreshes sync.WaitGroup
	defer refreshes.Wait()
	for {
		ch := k.ns.changed(prefix)
		listedAt := time.Now()
		objs, err := k.ns.listAllIn(ctx, k.cfg.container, prefix)
		took := 0
		if err == nil {
			took = h.take(objs, listedAt)
		} else if k.ctx.Err() == nil {
			if errors.Is(err, backend.ErrNotFound) {
				return "its namespace's container is gone"
			}
			k.cfg.logger.Warn("rack: host: listing its slots", "err", err)
		}
		if !k.leases.held() {
			return "its lease lapsed (the store took no renewal for " + k.cfg.lease.String() + ")"
		}
		failed := err != nil // a store call failed: back off
		now := time.Now()
		busy := h.busy()
		if busy > 0 {
			idleSince, nsDeadSince = time.Time{}, time.Time{}
		} else if idleSince.IsZero() {
			idleSince = now
		}
		if now.Sub(refreshed) >= k.cfg.lease/5 && !refreshing.Load() {
			refreshed = now
			h.rec.Used = busy
			h.rec.IdleSince = 0
			if !idleSince.IsZero() {
				h.rec.IdleSince = idleSince.UnixNano()
			}
			// Beside the loop, not in it: these are up to three puts,
			// and a loaded store took a second each, while forkers'
			// claims waited for the next look at the slots.
			rec := h.rec
			refreshing.Store(true)
			refreshes.Add(1)
			go func() {
				defer refreshes.Done()
				defer refreshing.Store(false)
				if err := k.putHostRecord(ctx, &rec); err != nil && k.ctx.Err() == nil {
					k.cfg.logger.Warn("rack: host: refreshing its record", "err", err)
				}
				h.refreshCeilings(ctx, now) // hostlimit.go
			}()
		}
		if busy == 0 && err == nil {
			closeNow := now.Sub(idleSince) >= idle
			if !closeNow && now.Sub(nsChecked) >= k.cfg.lease/3 {
				nsChecked = now
				if dead, err := h.namespaceDead(ctx); err == nil && dead {
					// Twice in a row, a third of a lease apart: a kernel
					// between two runs may have been gone a moment.
					if !nsDeadSince.IsZero() {
						closeNow = true
					} else {
						nsDeadSince = now
					}
				} else {
					nsDeadSince = time.Time{}
				}
			}
			if closeNow {
				refreshes.Wait()
				if h.close(ctx, objs) {
					return ""
				}
				failed = true
			}
		}
		if took > 0 {
			delay = k.cfg.pollMin
		}
		wait := k.cfg.lease / 5
		// A full host need not look: no forker's claim can land in a
		// slot it holds, and a slot it frees wakes the loop (h.wake).
		// A host that looks lists 4 times a second: on Swift, 10 hosts'
		// listings were a fifth of the proxy's requests in a 100-worker
		// run.
		if ch == nil && !h.full() || failed {
			// A failure backs off too: a store that fails every call
			// must not be asked in a loop. A store that does not notify
			// is listed at least every hostPollMax while nothing fails:
			// a forker's claim waits for this host's next look.
			wait = min(wait, delay)
			delay = min(2*delay, k.cfg.pollMax)
			if !failed {
				delay = min(delay, hostPollMax)
			}
		}
		if busy == 0 && !idleSince.IsZero() && !failed {
			wait = min(wait, max(time.Until(idleSince.Add(idle)), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ch:
			delay = k.cfg.pollMin
		case <-h.wake:
			delay = k.cfg.pollMin
		case <-t.C:
		case <-stop:
			t.Stop()
			return "a signal"
		case <-k.ctx.Done():
			t.Stop()
			return "its kernel closed"
		}
		t.Stop()
	}
}

// full reports whether every slot is taken up: adopting, running, or
// reserved for a child of the host's own (its over-count children hold
// no slot).
func (h *hostServer) full() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) < h.rec.Slots {
		return false
	}
	for n := 0; n < h.rec.Slots; n++ {
		if !h.seen[hostSlotKey(h.id, n)] {
			return false
		}
	}
	return true
}

// take starts adopting the processes in slots it has not seen, from a
// listing begun at listedAt; it returns how many.
func (h *hostServer) take(objs []backend.ObjectInfo, listedAt time.Time) int {
	n := 0
	listed := make(map[string]bool, len(objs))
	for _, o := range objs {
		listed[o.Name] = true
	}
	h.mu.Lock()
	for name, at := range h.foreign {
		if !listed[name] && at.Before(listedAt) {
			delete(h.foreign, name) // freed since
		}
	}
	h.mu.Unlock()
	for _, o := range objs {
		id, slot, ok := parseHostName(o.Name)
		if !ok || id != h.id || slot < 0 || strings.HasPrefix(o.ContentType, hostClosedType) {
			continue
		}
		h.mu.Lock()
		seen := h.seen[o.Name]
		h.seen[o.Name] = true
		delete(h.foreign, o.Name)
		h.mu.Unlock()
		if !seen {
			n++
			h.k.wg.Add(1)
			pid, _ := record.ParseSlotSummary(o.ContentType)
			go h.adopt(o.Name, o.Size, PID(pid))
		}
	}
	return n
}

// adopt runs the process whose start record is in slot name, of size
// bytes (as listed). pid is the process the slot's summary names, or 0
// (none: the slot is dropped).
func (h *hostServer) adopt(name string, size int64, pid PID) {
	k := h.k
	done := false
	wgDone := func() {
		if !done {
			done = true
			k.wg.Done()
		}
	}
	// Not while the program runs: one that ignores its ctx must not hold
	// up Close (the OS process ends after it anyway).
	defer wgDone()
	ctx := k.ctx
	var once sync.Once
	release := func() {
		once.Do(func() {
			if err := k.ns.deleteSized(context.WithoutCancel(ctx), name, size); err != nil && !errors.Is(err, backend.ErrNotFound) {
				k.cfg.logger.Warn("rack: host: freeing a slot", "slot", name, "err", err)
			}
			h.mu.Lock()
			delete(h.seen, name)
			h.mu.Unlock()
			select {
			case h.wake <- struct{}{}:
			default:
			}
		})
	}
	rec, claimed, err := h.readSlot(ctx, name, pid)
	if err != nil {
		if claimed {
			// Not to be run here after all: the record that says it is
			// goes (the exit, if any, is recorded already).
			_ = k.ns.deleteSmall(context.WithoutCancel(ctx), record.HostKey(int64(pid)))
		}
		switch {
		case errors.Is(err, errSlotGone), errors.Is(err, errSlotReclaimed):
			// Freed (a listing that lagged), or freed and claimed again
			// since: the next listing shows what it holds now. Not
			// deleted: the claim there is a forker's, for a process
			// that would never run.
			h.mu.Lock()
			delete(h.seen, name)
			h.mu.Unlock()
		case errors.Is(err, errKilledFirst):
			release()
		case ctx.Err() != nil:
		case errors.Is(err, errRunsElsewhere):
			// Placed twice (a slot claim that looked lost was read here
			// before its rival's landed, and placed again): it runs
			// where its claim landed; an exit recorded here would say it
			// was lost while it runs.
			release()
		case errors.As(err, new(unclaimedError)):
			// As adoptRecord's failures below: its forker learns of it.
			k.recordLost(context.WithoutCancel(ctx), pid, "its host could not run it: "+err.Error())
			release()
		case errors.Is(err, backend.ErrTransient):
			// The store failed past its retries: the next listing tries
			// again (the claim, if made, was taken back above).
			k.cfg.logger.Warn("rack: host: reading a start record", "slot", name, "err", err)
			h.mu.Lock()
			delete(h.seen, name)
			h.mu.Unlock()
		default:
			k.cfg.logger.Warn("rack: host: dropping an unreadable start record", "slot", name, "err", err)
			if pid > 0 && errors.Is(err, record.ErrCorrupt) {
				// Not when the record names another process: that one
				// may run elsewhere.
				k.recordLost(context.WithoutCancel(ctx), pid, "its host could not read its start record: "+err.Error())
			}
			release()
		}
		return
	}
	// finish frees the slot before it records the exit: a forker that
	// has seen the exit finds the slot free.
	pr, err := k.adoptRecord(ctx, rec, h.main, !claimed, release)
	if err != nil {
		k.recordLost(context.WithoutCancel(ctx), PID(rec.PID), "its host could not run it: "+err.Error())
		release()
		return
	}
	wgDone()
	k.run(ctx, pr)
}

var (
	errSlotGone    = errors.New("the slot is gone")
	errKilledFirst = errors.New("killed before it ran")
	// errSlotReclaimed: the slot holds another process's claim than the
	// listing showed, whole (its summary names its record's process): the
	// listing was older than the slot's last free and its claim since.
	errSlotReclaimed = errors.New("the slot was claimed again since the listing")
)

// unclaimedError is readSlot's claim failing (its host record).
type unclaimedError struct{ error }

func (e unclaimedError) Unwrap() error { return e.error }

// readSlot reads the start record in slot name, looks for the exit of the
// process its summary names (one killed before it ran is not run) and
// claims that process (its host record), all three at once: one round
// trip of the store from the listing that found the slot to running it,
// not three. claimed says whether the claim landed.
func (h *hostServer) readSlot(ctx context.Context, name string, pid PID) (rec *record.Proc, claimed bool, err error) {
	k := h.k
	if pid <= 0 {
		// Every forker of this program writes the summary (startOnHost,
		// claimOwnSlot): not a claim.
		return nil, false, errors.New("its content type names no process")
	}
	rec = &record.Proc{}
	var exitErr, claimErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, exitErr = k.records.exit(ctx, pid)
	}()
	go func() {
		defer wg.Done()
		claimErr = k.claimProcess(ctx, pid)
	}()
	ct, err := k.ns.getRecordTyped(ctx, name, rec)
	wg.Wait()
	claimed = claimErr == nil
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return nil, claimed, errSlotGone
	case err != nil:
		return nil, claimed, err
	case rec.PID != int64(pid):
		if now, ok := record.ParseSlotSummary(ct); ok && now == rec.PID {
			return nil, claimed, fmt.Errorf("process %d, not %d: %w", rec.PID, pid, errSlotReclaimed)
		}
		return nil, claimed, fmt.Errorf("its summary names process %d, its record %d", pid, rec.PID)
	case exitErr == nil:
		return nil, claimed, errKilledFirst
	case claimErr != nil:
		return nil, false, unclaimedError{claimErr}
	}
	return rec, true, nil
}

// close ends the host if no forker has claimed a slot: it takes each free
// slot (create-only); a claim found first is served instead. objs is the
// latest listing of its slots, none of which it runs.
func (h *hostServer) close(ctx context.Context, objs []backend.ObjectInfo) bool {
	k := h.k
	taken := map[int]bool{}
	for _, o := range objs {
		if _, slot, ok := parseHostName(o.Name); ok && slot >= 0 {
			taken[slot] = true
		}
	}
	var mine []string
	for n := 0; n < h.rec.Slots; n++ {
		if taken[n] {
			continue
		}
		key := hostSlotKey(h.id, n)
		_, err := k.ns.store.Put(ctx, k.cfg.container, key, bytesReader(nil),
			&backend.PutOptions{CreateOnly: true, DeleteAfter: 2 * k.cfg.lease, ContentType: hostClosedType})
		if err != nil {
			// A forker's claim (ErrExist), or a failure: stay, and give
			// back the slots taken.
			for _, key := range mine {
				_ = k.ns.deleteSmall(ctx, key)
			}
			return false
		}
		mine = append(mine, key)
	}
	// No forker can place anything here now. The markers stay (they
	// expire): a forker's stale view must not find a free slot.
	_ = k.ns.deleteSmall(ctx, hostKey(h.id))
	return true
}

// namespaceDead reports whether no kernel of the namespace but hosts
// renews its lease: nobody is left to place work here.
func (h *hostServer) namespaceDead(ctx context.Context) (bool, error) {
	k := h.k
	leases, err := k.ns.listAll(ctx, record.Kernels)
	if err != nil {
		return false, err
	}
	hosts, err := k.ns.listAll(ctx, hostRecords)
	if err != nil {
		return false, err
	}
	isHost := map[string]bool{}
	for _, o := range hosts {
		isHost[strings.TrimPrefix(o.Name, hostRecords)] = true
	}
	for _, o := range leases {
		id := strings.TrimPrefix(o.Name, record.Kernels)
		if isHost[id] {
			continue
		}
		if ttl, ok := record.ParseLeaseSummary(o.ContentType); !ok || time.Since(o.LastModified) < time.Duration(ttl) {
			return false, nil
		}
	}
	return true, nil
}
