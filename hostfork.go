package rack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Forks from a host (issue #15's "forks from anywhere"). A process that
// runs on a host forks like any other: its child goes to a free slot, its
// own host first, then other warm hosts (the placer's view, host.go), then
// a new host.
//
// Its own host first: the host's kernel knows its own slots (the ones it
// runs, hostServer.seen), so it reserves a free one in memory as the fork
// is prepared, and the child runs here, as a goroutine of this kernel, as
// a root's children run on an in-process compute: no host has to find it
// in a listing and read its record back. The slot is still claimed in the
// store (a create-only put of the start record, as a forker elsewhere
// claims one: startOwnClaim) so that other forkers see it taken, once the
// child has run for ownClaimDelay: a child that ends sooner (most forks
// of short work) never writes, nor deletes, the claim, nor wakes its
// host's listing twice. A claim found there first is left to the host to
// serve, and the child runs over the slot count rather than wait (a race
// of one fork, as the placer's are); one that lands in the slot while the
// claim waits is served once the child ends, or at once if the child
// lives to write its own. Its host record says that it runs here, for ps,
// from the start. The host never places a child into its own slots
// through the store: it would both fork and adopt one pid.

// ownClaimDelay is how long a child in its own host's slot runs before the
// slot's claim is written. Other forkers place from listings up to
// hostPollMax old, so a claim this much later misleads them little; a
// forker that meanwhile claims the slot waits for the child at most this
// long (then the child writes its claim, finds theirs, and moves over the
// slot count).
const ownClaimDelay = 25 * time.Millisecond

// hostSelf is what a host's kernel knows of its own slots, for the
// children its processes fork (see placer.self).
type hostSelf struct {
	h *hostServer

	mu    sync.Mutex
	slots map[PID]*ownSlot // this host's children in its own slots
}

// ownSlot is a slot of its own host that a child forked there holds.
type ownSlot struct {
	name    string        // the slot's object name (overName while over the slot count)
	size    int64         // its claim's size
	written bool          // its claim is in the store: ours to delete
	claimed chan struct{} // closed once its claim has been put (or not: written says); nil until it starts (under hostSelf.mu)
	claim   *time.Timer   // puts the claim after ownClaimDelay; stopped in time, it never does
	placed  chan struct{} // closed once its host record is put, or given up; nil with claimed
}

// reserveOwnSlot reserves a free slot of this host for pr, a child about
// to be prepared, when this kernel is a host that has one and pr runs this
// program; it reports whether it did (pr then runs here: see runHere).
func (k *Kernel) reserveOwnSlot(pr *proc) bool {
	s := k.placer.self
	if s == nil || !k.onHostsRec(pr.rec) {
		return false
	}
	h := s.h
	h.mu.Lock()
	name := ""
	for n := 0; n < h.rec.Slots; n++ {
		if key := hostSlotKey(h.id, n); !h.seen[key] && h.foreign[key].IsZero() {
			name = key
			h.seen[key] = true
			break
		}
	}
	h.mu.Unlock()
	if name == "" {
		return false
	}
	slot := &ownSlot{name: name}
	s.mu.Lock()
	s.slots[pr.pid] = slot
	s.mu.Unlock()
	pr.release = func() { s.free(pr.pid) }
	return true
}

// onHostsRec is onHosts for a process record: hosts are on and it runs
// this program with no option of its own (see onHosts).
func (k *Kernel) onHostsRec(rec *record.Proc) bool {
	return k.cfg.hosts.on && len(rec.Options) == 0
}

// unreserveOwnSlot gives back the slot reserved for pr, a fork that
// failed before it was recorded (finish gives it back otherwise).
func (k *Kernel) unreserveOwnSlot(pr *proc) {
	if pr.release != nil && !pr.adopted {
		pr.release()
	}
}

// free gives back the slot of pid: its claim is never put if it was not
// yet (ownClaimDelay), else once put it is deleted (the host's slot is
// free once it is gone); then the host's count. It returns once its host
// record is in the store too (finish records the exit next, and a record
// put after the process was reaped would be left behind).
func (s *hostSelf) free(pid PID) {
	s.mu.Lock()
	slot := s.slots[pid]
	delete(s.slots, pid)
	var claimed, placed chan struct{}
	var timer *time.Timer
	if slot != nil {
		claimed, placed, timer = slot.claimed, slot.placed, slot.claim
	}
	s.mu.Unlock()
	if slot == nil {
		return
	}
	h := s.h
	k := h.k
	if claimed != nil {
		if timer != nil && timer.Stop() {
			k.wg.Done() // the claim's: it will not run
		} else {
			<-claimed
		}
	}
	if slot.written {
		if err := k.ns.deleteSized(context.WithoutCancel(k.ctx), slot.name, slot.size); err != nil && !errors.Is(err, backend.ErrNotFound) {
			k.cfg.logger.Warn("rack: host: freeing a slot", "slot", slot.name, "err", err)
		}
	}
	h.mu.Lock()
	delete(h.seen, slot.name)
	h.mu.Unlock()
	if k.ns.notifier == nil || !slot.written { // else the delete tells its watch
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
	if placed != nil {
		<-placed
	}
}

// runHere runs pr, a process this kernel runs (a root, or a child in a
// slot of its own host), as a goroutine. A child in its host's own slot
// has its claim timed already (startOwnClaim).
func (k *Kernel) runHere(pr *proc) {
	k.run(k.ctx, pr)
}

// startOwnClaim starts claiming, in the store, the slot of this host
// reserved for pr (reserveOwnSlot), as pr's process record is written:
// the slot's claim is data, pr's start record, put once pr has run for
// ownClaimDelay (see above); its host record (for ps) goes with the
// process record where creates are strict, else once the process record
// is in (on a store whose creates are loose, two kernels may have taken
// one pid, and the other's host record must not be taken). The claim is
// for other forkers' sake: pr runs whatever comes of it, and its end
// waits for it, or stops it (see free). It returns nil if pr has no slot
// here, else the function to call with the outcome of the process
// record's put.
func (k *Kernel) startOwnClaim(pr *proc, data []byte) (recorded func(ok bool)) {
	s := k.placer.self
	if s == nil || pr.release == nil || pr.adopted {
		return nil
	}
	s.mu.Lock()
	slot := s.slots[pr.pid]
	if slot == nil || slot.claimed != nil {
		s.mu.Unlock()
		return nil
	}
	slot.claimed, slot.placed = make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
	outcome := make(chan bool, 1)
	if !k.sched.whileOpen(func() { k.wg.Add(2) }) {
		close(slot.claimed) // closing: nothing more is written
		close(slot.placed)
		return func(bool) {}
	}
	pid := pr.pid
	s.mu.Lock() // free reads claim under it
	slot.claim = time.AfterFunc(ownClaimDelay, func() {
		defer k.wg.Done()
		k.claimOwnSlot(pid, slot, data)
	})
	s.mu.Unlock()
	go func() {
		defer k.wg.Done()
		k.placeOwnChild(pr, slot, outcome)
	}()
	return func(ok bool) { outcome <- ok }
}

// claimOwnSlot puts data, a child's start record, in the slot reserved
// for it. A claim found in the slot first is a forker's that the host
// serves: the child runs over the slot count.
func (k *Kernel) claimOwnSlot(pid PID, slot *ownSlot, data []byte) {
	defer close(slot.claimed)
	ctx := k.ctx
	err := k.ns.putSummarized(ctx, slot.name, data, true, record.SlotSummary(int64(pid)))
	slot.written, slot.size = err == nil, int64(len(data))
	if errors.Is(err, backend.ErrExist) {
		// Another forker's claim: the host's to serve, at its next look;
		// the child is counted over the slot count.
		h := k.placer.self.h
		h.mu.Lock()
		delete(h.seen, slot.name)
		h.foreign[slot.name] = time.Now() // not this host's next own fork's either
		slot.name = overName(pid)
		h.seen[slot.name] = true
		h.mu.Unlock()
		select {
		case h.wake <- struct{}{}:
		default:
		}
	} else if err != nil && ctx.Err() == nil {
		k.cfg.logger.Warn("rack: host: claiming its own slot", "slot", slot.name, "err", err)
	}
}

// placeOwnChild puts the host record of pr, a child in a slot of this
// host (ps shows where it runs), once its process record is in (outcome
// says whether it went in), or at once where creates are strict, taking
// it back if the process record failed.
func (k *Kernel) placeOwnChild(pr *proc, slot *ownSlot, outcome <-chan bool) {
	defer close(slot.placed)
	ctx := k.ctx
	var err error
	if k.ns.looseCreate {
		if !<-outcome {
			return
		}
		err = k.claimProcess(ctx, pr.pid)
	} else {
		err = k.claimProcess(ctx, pr.pid)
		if !<-outcome {
			if err == nil {
				_ = k.ns.deleteSmall(context.WithoutCancel(ctx), record.HostKey(int64(pr.pid)))
			}
			return
		}
	}
	if err != nil && ctx.Err() == nil {
		k.cfg.logger.Warn("rack: host: recording where a child runs", "pid", pr.pid, "err", err)
	}
}

// overName is the name a child over its host's slot count is counted
// under (never an object's: it has no slot).
func overName(pid PID) string { return "over/" + strconv.FormatInt(int64(pid), 10) }

// inheritHosts gives a host's kernel, for its processes' forks, the hosts
// option of the kernel that started it, as its record says: the hosts it
// starts (or asks for) have as many slots and as long an idle time, what
// ever its URL says (the forker may have turned hosts on with WithHosts).
func (k *Kernel) inheritHosts(rec *hostRecord) {
	if rec.Slots >= 1 && rec.Idle > 0 {
		WithHosts(rec.Slots, time.Duration(rec.Idle))(&k.cfg)
	}
}

// Host requests: new hosts on a host's behalf. A host whose compute
// cannot start instances (backend.HostStarter reports false: on Nova its
// credential reaches only its namespace's container and deletes servers)
// asks for one with a request record, which a kernel of the namespace that
// can start hosts serves:
//
//	hostd/requests/<rid>        the request (record.HostRequest), written
//	                            create-only by the asker with a random rid
//	hostd/requests/<rid>.reply  the answer (record.HostReply): the serving
//	                            kernel's claim, written create-only (state
//	                            starting), then its outcome (started, with
//	                            the new host's id, or failed, with why)
//
// Both expire (DeleteAfter) a little after the asker stops waiting, and the
// asker deletes them once answered. A kernel that can start hosts and has
// placed processes on hosts (the root's, usually) watches for requests
// while it lives: with a store that notifies it is told of each; else it
// lists the requests every poll interval, backing off to a fifth of a
// lease while none come. The asker places its child into slot 0 of the new
// host, as if it had started the host itself. If nothing answers within
// hostRequestWait (two leases, at least 10 s), the fork's child is lost
// with a reason that says so.
//
// Threat model. A request is data from whoever can write the namespace's
// container: a host, or a program on one, as any kernel of the namespace.
// What it can make the serving kernel do is bounded:
//   - At most one host per request: the reply is the serving kernel's
//     create-only claim, so two servers do not both start one, and a
//     request is never served twice. Requests are served one at a time.
//   - Only a host of the server's own kind: the request names nothing of
//     it. Its kernel id is made by the server (never the asker's: an id of
//     another kernel would let the new host act as that kernel); its
//     program, image, flavor, slots, idle time, lease, URL and environment
//     are the server's, as for a host the server starts for its own forks.
//     A request whose program digest differs from the server's is refused
//     (its child could not run there).
//   - Only for a live host: the asker must have a host record in the
//     namespace, and a request older than hostRequestWait is refused.
//   - Nothing else: no delete, stop, signal, credential or other
//     namespace. The new host is like any other: it ends after its idle
//     time, or when its namespace's lease lapses.
//
// What it can still cost: a program on a host can ask for hosts in a loop,
// each of which lives for its idle time. The namespace's ceilings on
// hosts and server hours bound that, as they bound a root that forks in a
// loop; they are checked where a host is launched (launchHost), so they
// hold for requests too.

// hostRequestPrefix and hostReplySuffix name the host requests and replies.
const (
	hostRequestPrefix = hostRecords + "requests/"
	hostReplySuffix   = ".reply"
)

func hostRequestKey(rid string) string { return hostRequestPrefix + rid }
func hostReplyKey(rid string) string   { return hostRequestPrefix + rid + hostReplySuffix }

// testPowerlessHosts, a test hook (export_test.go), makes host kernels
// behave as if their compute could not start hosts.
var testPowerlessHosts bool

// hostRequests is a kernel's part in host requests.
type hostRequests struct {
	watch  sync.Once
	off    bool         // a test hook: serve none (export_test.go)
	served atomic.Int64 // requests this kernel started a host for
	// asked: the hosts started at this kernel's request, when; under the
	// placer's lock (see askedAlive).
	asked map[string]time.Time
}

// askedAlive reports whether host id, whose record has not been
// rewritten within a lease, is one this kernel asked for that still boots:
// its record is rewritten only once it runs, and until then the kernel
// that started it keeps its lease (tendBootingHost), which is read here.
// Without it, an asker took the host it had just been given for dead a
// lease into its boot, and asked for another (TestHostRequestBooting).
// Called with the placer locked, from refreshHosts.
func (k *Kernel) askedAlive(ctx context.Context, id string) bool {
	r := &k.placer.reqs
	at, ok := r.asked[id]
	if !ok {
		return false
	}
	if time.Since(at) > hostBootLimit {
		delete(r.asked, id)
		return false
	}
	alive, err := k.leases.alive(ctx, id)
	if err != nil || !alive {
		delete(r.asked, id)
		return false
	}
	return true
}

// askedFor notes that host id was started at this kernel's request.
// Called with the placer locked.
func (k *Kernel) askedFor(id string) {
	r := &k.placer.reqs
	if r.asked == nil {
		r.asked = map[string]time.Time{}
	}
	for h, at := range r.asked { // keep it small: drop the old
		if time.Since(at) > hostBootLimit {
			delete(r.asked, h)
		}
	}
	r.asked[id] = time.Now()
}

// hostsPowerless reports whether this kernel must ask for new hosts.
func (k *Kernel) hostsPowerless() bool {
	if hs, ok := k.compute.(backend.HostStarter); ok && !hs.StartsHosts() {
		return true
	}
	return testPowerlessHosts && k.placer.self != nil
}

// hostRequestWait bounds how long an asker waits for an answer.
func (k *Kernel) hostRequestWait() time.Duration { return max(2*k.cfg.lease, 10*time.Second) }

// requestHost asks a kernel that can start hosts for a new one, running
// the program of digest, and returns its kernel id. The caller notes it
// (askedFor).
func (k *Kernel) requestHost(ctx context.Context, digest string) (string, error) {
	rid := newID()
	wait := k.hostRequestWait()
	req := &record.HostRequest{By: k.id, Digest: digest, Made: time.Now().UnixNano()}
	_, err := k.ns.store.Put(ctx, k.cfg.container, hostRequestKey(rid), bytesReader(record.Encode(req)),
		&backend.PutOptions{CreateOnly: true, DeleteAfter: 2 * wait})
	if err != nil {
		return "", fmt.Errorf("this host's compute cannot start hosts, and writing a host request failed: %w", err)
	}
	cleanup := func() {
		bg := context.WithoutCancel(ctx)
		_ = k.ns.deleteSmall(bg, hostReplyKey(rid))
		_ = k.ns.deleteSmall(bg, hostRequestKey(rid))
	}
	deadline := time.Now().Add(wait)
	extended := false
	delay := k.cfg.pollMin
	var lastErr error
	for {
		ch := k.ns.changed(hostReplyKey(rid))
		var rep record.HostReply
		err := k.ns.getRecord(ctx, hostReplyKey(rid), &rep)
		switch {
		case err == nil && rep.State == record.HostStarted:
			cleanup()
			if err := checkKernelID(rep.Host); err != nil {
				return "", fmt.Errorf("host request %s: the answer names no host: %w", rid, err)
			}
			return rep.Host, nil
		case err == nil && rep.State == record.HostFailed:
			cleanup()
			return "", fmt.Errorf("this host's compute cannot start hosts, and the kernel that served host request %s could not: %s", rid, rep.Error)
		case err == nil && rep.State == record.HostStarting && !extended:
			// Claimed: its server is starting one; give it a while more.
			extended = true
			deadline = time.Now().Add(wait)
		case err != nil && !errors.Is(err, backend.ErrNotFound):
			lastErr = err
		}
		left := time.Until(deadline)
		if left <= 0 {
			cleanup()
			msg := fmt.Sprintf("this host's compute cannot start hosts, and no kernel that can (the namespace's root, while it runs) answered host request %s within %v", rid, wait)
			if lastErr != nil {
				msg += " (reading the answer: " + lastErr.Error() + ")"
			}
			return "", errors.New(msg)
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ch:
		case <-t.C:
			delay = min(2*delay, k.cfg.pollMax, hostPollMax) // a fork waits on it
		case <-ctx.Done():
			t.Stop()
			cleanup()
			return "", ctx.Err()
		}
		t.Stop()
	}
}

// serveHostRequests starts, once, the watch for host requests of a kernel
// that places processes on hosts and can start them (a host's kernel does
// not: the kernels that started it serve it).
func (k *Kernel) serveHostRequests() {
	r := &k.placer.reqs
	if k.placer.self != nil || r.off || k.hostsPowerless() {
		return
	}
	r.watch.Do(func() {
		k.sched.whileOpen(func() {
			k.wg.Add(1)
			go k.watchHostRequests()
		})
	})
}

// watchHostRequests serves the namespace's host requests, one at a time,
// until the kernel closes.
func (k *Kernel) watchHostRequests() {
	defer k.wg.Done()
	ctx := k.ctx
	handled := map[string]bool{}
	delay := k.cfg.pollMin
	for ctx.Err() == nil {
		ch := k.ns.changed(hostRequestPrefix)
		objs, err := k.ns.listAllIn(ctx, k.cfg.container, hostRequestPrefix)
		found := false
		if err == nil {
			replied := map[string]bool{}
			for _, o := range objs {
				if rid, ok := strings.CutSuffix(strings.TrimPrefix(o.Name, hostRequestPrefix), hostReplySuffix); ok {
					replied[rid] = true
				}
			}
			listed := map[string]bool{}
			for _, o := range objs {
				rid := strings.TrimPrefix(o.Name, hostRequestPrefix)
				if strings.HasSuffix(rid, hostReplySuffix) || checkKernelID(rid) != nil {
					continue
				}
				listed[rid] = true
				if handled[rid] || replied[rid] || time.Since(o.LastModified) > k.hostRequestWait() {
					continue
				}
				handled[rid] = true
				found = true
				// Each at once: its claim (HostStarting) gives its asker
				// more time; one after another, a request behind a few
				// server creates was given up on before it was claimed.
				k.wg.Add(1)
				go func() {
					defer k.wg.Done()
					k.serveHostRequest(ctx, rid)
				}()
			}
			for rid := range handled {
				if !listed[rid] {
					delete(handled, rid)
				}
			}
		} else if ctx.Err() == nil {
			k.cfg.logger.Warn("rack: listing host requests", "err", err)
		}
		wait := k.cfg.lease / 5
		if ch == nil || err != nil {
			if found {
				delay = k.cfg.pollMin
			}
			wait = min(wait, delay)
			delay = min(2*delay, k.cfg.lease/5)
			if err == nil {
				delay = min(delay, hostPollMax) // a fork on a host waits on it
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// serveHostRequest serves request rid: it claims it, checks it, and starts
// a host (see the threat model above).
func (k *Kernel) serveHostRequest(ctx context.Context, rid string) {
	var req record.HostRequest
	reqErr := k.ns.getRecord(ctx, hostRequestKey(rid), &req)
	if errors.Is(reqErr, backend.ErrNotFound) {
		return // withdrawn
	}
	id := newID()
	reply := func(rep *record.HostReply, createOnly bool) error {
		_, err := k.ns.store.Put(ctx, k.cfg.container, hostReplyKey(rid), bytesReader(record.Encode(rep)),
			&backend.PutOptions{CreateOnly: createOnly, DeleteAfter: 2 * k.hostRequestWait()})
		return err
	}
	if err := reply(&record.HostReply{State: record.HostStarting, Host: id}, true); err != nil {
		if !errors.Is(err, backend.ErrExist) && ctx.Err() == nil {
			k.cfg.logger.Warn("rack: claiming a host request", "request", rid, "err", err)
		}
		return // another kernel's, or the store failed (the asker times out)
	}
	fail := func(why string) {
		if len(why) > record.MaxHostError {
			why = why[:record.MaxHostError]
		}
		if err := reply(&record.HostReply{State: record.HostFailed, Error: why}, false); err != nil && ctx.Err() == nil {
			k.cfg.logger.Warn("rack: answering a host request", "request", rid, "err", err)
		}
	}
	if reqErr != nil {
		fail("reading the request: " + reqErr.Error())
		return
	}
	digest, slots, why := k.admitHostRequest(ctx, &req)
	if why != "" {
		fail(why)
		return
	}
	// Launched with the placer unlocked: requests for a job's hosts come
	// together (bootAhead), and are served side by side.
	rec, err := k.launchHost(ctx, id, digest, slots)
	if err != nil {
		fail(err.Error())
		return
	}
	p := &k.placer
	p.mu.Lock()
	k.tendBootingHost(rec) // hostcloud.go
	p.mu.Unlock()
	p.reqs.served.Add(1)
	if err := reply(&record.HostReply{State: record.HostStarted, Host: id}, false); err != nil && ctx.Err() == nil {
		k.cfg.logger.Warn("rack: answering a host request", "request", rid, "err", err)
	}
}

// admitHostRequest checks req (see the threat model above) and the
// ceilings, which hold for hosts started on request too (max_hosts is
// checked again by launchHost's host number), and returns the program
// digest and slot count of the host to start, or why it may not start.
func (k *Kernel) admitHostRequest(ctx context.Context, req *record.HostRequest) (digest string, slots int, why string) {
	switch {
	case time.Since(time.Unix(0, req.Made)) > k.hostRequestWait():
		return "", 0, "the request is older than its asker waits"
	case checkKernelID(req.By) != nil:
		return "", 0, "the request names no kernel"
	}
	var asker hostRecord
	if err := k.ns.getRecord(ctx, hostKey(req.By), &asker); errors.Is(err, backend.ErrNotFound) {
		return "", 0, fmt.Sprintf("kernel %s is not a live host of this namespace", req.By)
	} else if err != nil {
		return "", 0, fmt.Sprintf("reading the host record of kernel %s: %v", req.By, err)
	}
	p := &k.placer
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ensureDigest(); err != nil {
		return "", 0, "the serving kernel cannot read its program's digest"
	}
	if req.Digest != p.digest {
		return "", 0, "the asking host runs another program than the serving kernel's hosts"
	}
	if err := k.refreshHosts(ctx); err != nil {
		return "", 0, err.Error()
	}
	if err := k.checkHostLimits(ctx); err != nil {
		return "", 0, err.Error()
	}
	return p.digest, k.hostSlotCount(ctx), ""
}
