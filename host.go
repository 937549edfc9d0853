package rack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Hosts (local mode first; Nova next). With hosts on (WithHosts, or
// ?hosts=1 on a file:// URL), a fork that would start a new copy of the
// program goes instead to a free slot of a warm host: a copy of the
// program running in host mode, whose kernel runs many rack processes as
// goroutines, as the in-process compute runs them. A host is found from
// the store, with no central server:
//
//	hostd/<kernel>      the host's record (hostRecord), written with a
//	                    lifetime of one lease and refreshed as a lease is:
//	                    a host that dies leaves none for long
//	hostd/<kernel>/<n>  slot n of the host: the start record of the process
//	                    it runs there (a record.Proc, what a child started
//	                    as a new program gets in its environment), or a
//	                    closed marker (hostClosedType)
//
// A forker claims a slot with a create-only put of the start record: two
// forkers cannot take one slot, and the claim is the hand-over, so a warm
// fork costs one put (plus a listing when the forker knows no free slot).
// The host watches its slots, adopts each new start record (as a child's
// kernel adopts its process: host record, streams, watchParent) and runs
// it. It deletes the slot before it records the exit, so a forker that has
// seen the exit finds the slot free. A host idle for its idle time closes
// itself race-free: it claims each free slot with a closed marker, create
// only; a put that fails found a forker's claim, which it then serves
// (taking its markers back), and once every slot is its own no forker can
// reach it, and it deletes its record and exits.

// hostRecords is the prefix of the hosts' records and slots.
const hostRecords = "hostd/"

// hostClosedType marks a slot a closing host has taken for itself.
const hostClosedType = "application/x-rack-host-closed"

// HostEnv names, in the environment of a program started as a host, the
// id of the kernel it is to run as; Main then serves as a host.
const HostEnv = "RACK_HOST"

// hostLeaseEnv and hostDigestEnv carry a host's lease time and the digest
// of the program its forker started.
const (
	hostLeaseEnv  = "RACK_HOST_LEASE"
	hostDigestEnv = "RACK_HOST_DIGEST"
)

// DefaultHostIdle is how long a host with nothing to run stays warm.
const DefaultHostIdle = 2 * time.Minute

func hostKey(id string) string              { return hostRecords + id }
func hostSlotPrefix(id string) string       { return hostRecords + id + "/" }
func hostSlotKey(id string, n int) string   { return hostSlotPrefix(id) + strconv.Itoa(n) }
func hostInstanceName(ns, id string) string { return ns + "-host-" + id }

// parseHostName splits a name under hostRecords into the host's kernel id
// and, for a slot, its number (-1 for the host's record).
func parseHostName(name string) (id string, slot int, ok bool) {
	rest, found := strings.CutPrefix(name, hostRecords)
	if !found {
		return "", 0, false
	}
	id, n, isSlot := strings.Cut(rest, "/")
	if checkKernelID(id) != nil {
		return "", 0, false
	}
	if !isSlot {
		return id, -1, true
	}
	slot, err := strconv.Atoi(n)
	if err != nil || slot < 0 {
		return "", 0, false
	}
	return id, slot, true
}

// checkKernelID refuses what is not a kernel id.
func checkKernelID(id string) error {
	if len(id) != kernelIDLen || strings.Trim(id, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: %q is not a kernel id", ErrInvalid, id)
	}
	return nil
}

// hostRecord is what a host's record says.
type hostRecord struct {
	Kernel   string `json:"kernel"`
	Digest   string `json:"digest"` // SHA-256 of the program it runs
	Slots    int    `json:"slots"`
	Idle     int64  `json:"idle"`    // its idle time, ns
	Started  int64  `json:"started"` // when its forker started it, ns
	Instance string `json:"instance"`
	// Used and IdleSince are as of the last refresh (every lease/5).
	// Used may exceed Slots: a child forked on the host whose own slot
	// a forker's claim took first runs over the slot count (hostfork.go).
	Used      int   `json:"used"`
	IdleSince int64 `json:"idle_since,omitempty"`
	// Up is when the host began to run, as it wrote it, ns; 0 while it
	// starts (its forker tends its lease and record until then:
	// tendBootingHost).
	Up int64 `json:"up,omitempty"`
	// Claim is its host number under max_hosts (hostlimit.go), 0 without.
	Claim int `json:"claim,omitempty"`
}

// maxHostSlots bounds a host's slots (as the slots= option does).
const maxHostSlots = 4096

// Validate checks a host's record read from the store (record.Validator):
// its fields bound what a forker does with it (a slot count it loops over).
func (r *hostRecord) Validate() error {
	switch {
	case checkKernelID(r.Kernel) != nil:
		return fmt.Errorf("host: kernel %.40q is not a kernel id", r.Kernel)
	case r.Slots < 1 || r.Slots > maxHostSlots:
		return fmt.Errorf("host: %d slots, not from 1 to %d", r.Slots, maxHostSlots)
	case r.Used < 0:
		return fmt.Errorf("host: %d slots used", r.Used)
	case r.Idle < 0 || r.Started < 0 || r.IdleSince < 0 || r.Up < 0 || r.Claim < 0:
		return errors.New("host: a negative time or host number")
	case len(r.Digest) > 64 || len(r.Instance) > 255:
		return errors.New("host: digest or instance name too long")
	}
	return nil
}

// hostsConfig is the hosts option of a kernel.
type hostsConfig struct {
	on     bool
	slots  int
	idle   time.Duration
	limits HostLimits // WithHostLimits (hostlimit.go)
}

// WithHosts turns hosts on: the kernel's forks that would start a new
// copy of the program run on warm hosts of slots processes each (0: what
// the compute says a host holds, backend.HostSlots, such as a server
// flavor's vCPUs, else the number of CPUs), each host staying alive for
// idle after its last process ended (0: DefaultHostIdle); at most 4096
// slots. See the
// README's "Hosts". A file:// or openstack:// URL turns it on with
// ?hosts=1 (and slots=N, idle=DURATION, and the ceilings of
// WithHostLimits).
func WithHosts(slots int, idle time.Duration) Option {
	return func(c *config) {
		slots = min(max(slots, 0), maxHostSlots)
		if idle <= 0 {
			idle = DefaultHostIdle
		}
		c.hosts = hostsConfig{on: true, slots: slots, idle: idle, limits: c.hosts.limits}
	}
}

// hostsFromQuery reads the hosts parameters of a URL query (hosts=1,
// slots=N, idle=DURATION, max_hosts=N, max_server_hours=H,
// at_limit=wait|fail), deleting them, and returns the option they make
// (nil without hosts=1).
func hostsFromQuery(q map[string][]string) (Option, error) {
	get := func(key string) (string, bool, error) {
		v, ok := q[key]
		if !ok {
			return "", false, nil
		}
		delete(q, key)
		if len(v) != 1 {
			return "", true, fmt.Errorf("%w: %s given %d times", ErrInvalid, key, len(v))
		}
		return v[0], true, nil
	}
	on, hasOn, err := get("hosts")
	if err != nil {
		return nil, err
	}
	slotsText, hasSlots, err := get("slots")
	if err != nil {
		return nil, err
	}
	idleText, hasIdle, err := get("idle")
	if err != nil {
		return nil, err
	}
	limits, hasLimits, err := limitsFromQuery(q) // hostlimit.go
	if err != nil {
		return nil, err
	}
	if hasOn && on != "1" && on != "0" {
		return nil, fmt.Errorf("%w: hosts=%q: 1 turns hosts on, 0 off", ErrInvalid, on)
	}
	slots := 0
	if hasSlots {
		if slots, err = strconv.Atoi(slotsText); err != nil || slots < 1 || slots > maxHostSlots {
			return nil, fmt.Errorf("%w: slots=%q is not a number from 1 to 4096", ErrInvalid, slotsText)
		}
	}
	var idle time.Duration
	if hasIdle {
		if idle, err = time.ParseDuration(idleText); err != nil || idle <= 0 {
			return nil, fmt.Errorf("%w: idle=%q is not a positive duration such as 2m", ErrInvalid, idleText)
		}
	}
	if on != "1" {
		if hasSlots || hasIdle || hasLimits {
			return nil, fmt.Errorf("%w: slots=, idle=, max_hosts=, max_server_hours= and at_limit= need hosts=1", ErrInvalid)
		}
		return nil, nil
	}
	return func(c *config) {
		WithHostLimits(limits)(c)
		WithHosts(slots, idle)(c)
	}, nil
}

var digestOnce struct {
	sync.Once
	sum string
	err error
}

// programDigest returns the SHA-256 of the running program's executable,
// computed once.
func programDigest() (string, error) {
	digestOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			digestOnce.err = err
			return
		}
		f, err := os.Open(exe)
		if err != nil {
			digestOnce.err = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			digestOnce.err = err
			return
		}
		digestOnce.sum = hex.EncodeToString(h.Sum(nil))
	})
	return digestOnce.sum, digestOnce.err
}

// onHosts reports whether pr, a remote child, is to run on a host: hosts
// are on and it runs this program (not one named by an option) with no
// option at all: a fork that asks for its own kind of instance (a
// server's flavor or image, say) gets one.
func (k *Kernel) onHosts(pr *proc) bool {
	return pr.remote && k.onHostsRec(pr.rec)
}

// placer is a forker's view of the namespace's hosts, for placement. It
// is a hint: a slot it thinks free may be taken (the claim then fails and
// it looks again); the records are the truth.
type placer struct {
	mu     sync.Mutex
	hosts  map[string]*hostView
	placed map[PID]hostSlot // this kernel's children on hosts
	digest string
	// stale: a claim found its slot taken: the view is old, list again
	// before the next pick (rather than trying slot after slot).
	stale bool
	// spent: the lives of ended hosts read for max_server_hours.
	spent map[string]spentLife
	// The forks waiting under max_hosts (hostlimit.go).
	limitWait
	// self: this kernel is a host's; reqs: host requests (hostfork.go).
	self  *hostSelf
	reqs  hostRequests
	slots int // of the hosts this kernel starts, once known (hostSlotCount)
	// booting: hosts this kernel started that do not run yet, whose
	// leases it keeps (tendBootingHost): alive, whatever their record's age.
	booting map[string]bool
	// coming: hosts being started (launched, or asked for) with the lock
	// let go; arrived is closed as one of them is added to the view or
	// fails. A fork that finds no free slot waits for them rather than
	// start one more.
	coming  int
	arrived chan struct{}
}

type hostSlot struct {
	host string
	slot int
}

// hostView is what a forker knows of one host.
type hostView struct {
	id      string
	slots   int
	used    map[int]bool
	seen    time.Time // when a listing last showed its record, or it was started
	started time.Time // when its forker started it (max_server_hours)
	other   bool      // runs another program: never used
}

// startOnHost places pr, a remote child, in a free slot of a warm host of
// this program, starting a new host when none has one.
func (k *Kernel) startOnHost(pr *proc) {
	ctx := k.ctx
	k.serveHostRequests() // hostfork.go
	data := record.Encode(pr.rec)
	var err error
	for attempt := 0; attempt < 16; attempt++ {
		var at hostSlot
		if at, err = k.reserveSlotOrWait(ctx, pr); err != nil { // max_hosts (hostlimit.go)
			if isDone(pr) {
				return // killed while it waited
			}
			break
		}
		// The summary names the process: the host claims it and looks
		// for its exit while it reads the record (hostServer.adopt).
		err = k.ns.putSummarized(ctx, hostSlotKey(at.host, at.slot), data, true, record.SlotSummary(int64(pr.pid)))
		if errors.Is(err, backend.ErrExist) {
			k.placer.mu.Lock()
			if h := k.placer.hosts[at.host]; h != nil {
				h.used[at.slot] = true
			}
			k.placer.stale = true
			k.placer.mu.Unlock()
			continue
		}
		if err != nil {
			k.releaseSlot(at)
			break
		}
		k.placer.mu.Lock()
		k.placer.placed[pr.pid] = at
		k.placer.mu.Unlock()
		pr.host, pr.placedAt = at.host, time.Now()
		if isDone(pr) && pr.exit != nil && (pr.exit.Signal == int(SIGKILL) || pr.exit.Lost) {
			// Killed while being placed: the host finds its exit and
			// runs nothing (see hostServer.adopt).
			return
		}
		pr.launched.Store(true)
		k.wakeRemotes()
		if k.ns.notifier != nil {
			go k.awaitNotifiedExit(pr)
		}
		return
	}
	if err == nil {
		err = errors.New("every slot found free was taken first, 16 times")
	}
	k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "could not place it on a host: " + err.Error()})
}

// reserveSlot picks a free slot: of a host it knows, else of one being
// started, else of one a fresh listing shows, else of a host it starts.
func (k *Kernel) reserveSlot(ctx context.Context) (hostSlot, error) {
	p := &k.placer
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ensureDigest(); err != nil {
		return hostSlot{}, err
	}
	for {
		if !p.stale {
			if at, ok := p.free(k.cfg.lease); ok {
				return at, nil
			}
		}
		if p.coming > 0 {
			if err := p.awaitArrival(ctx); err != nil {
				return hostSlot{}, err
			}
			continue
		}
		p.stale = false
		if err := k.refreshHosts(ctx); err != nil {
			return hostSlot{}, err
		}
		if at, ok := p.free(k.cfg.lease); ok {
			return at, nil
		}
		if err := k.checkHostLimits(ctx); err != nil { // hostlimit.go
			return hostSlot{}, err
		}
		p.coming++
		if err := k.startHost(ctx); err != nil {
			return hostSlot{}, err
		}
		// Its slots are free in the view, unless forks that waited for
		// it took them all while the lock was let go: then again.
	}
}

// bootAhead starts at once the hosts that n forks about to be placed (a
// ForkAll's) need beyond the free slots the view shows, so that a job's
// new hosts boot side by side: placed one by one, each fork that found
// no free slot started one host, and the next forks waited for it. Each
// fork then takes its slot as before (reserveSlot), from the hosts so
// started or, while they start, waits for them. A ceiling stops no fork
// here: each fork meets it itself.
func (k *Kernel) bootAhead(ctx context.Context, n int) {
	p := &k.placer
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ensureDigest() != nil || k.refreshHosts(ctx) != nil {
		return // each fork finds out for itself
	}
	p.stale = false
	slots := k.hostSlotCount(ctx)
	need, live := n-p.coming*slots, p.coming
	for _, h := range p.hosts {
		if !h.other && time.Since(h.seen) <= k.cfg.lease {
			live++
			need -= max(0, h.slots-len(h.used))
		}
	}
	boots := (need + slots - 1) / slots
	if m := k.cfg.hosts.limits.MaxHosts; m > 0 {
		boots = min(boots, m-live)
	}
	if boots <= 0 || k.checkHostLimits(ctx) != nil {
		return
	}
	for range boots {
		p.coming++
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			p.mu.Lock()
			defer p.mu.Unlock()
			if err := k.startHost(ctx); err != nil && ctx.Err() == nil {
				k.cfg.logger.Warn("rack: hosts: starting a host ahead of a fork all", "err", err)
			}
		}()
	}
}

// awaitArrival waits, with the placer's lock let go, until a host being
// started is added to the view or fails. Called with the placer locked.
func (p *placer) awaitArrival(ctx context.Context) error {
	if p.arrived == nil {
		p.arrived = make(chan struct{})
	}
	ch := p.arrived
	p.mu.Unlock()
	defer p.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ensureDigest sets p.digest, the running program's SHA-256, which a
// host must run to be used. Called with p locked.
func (p *placer) ensureDigest() error {
	if p.digest != "" {
		return nil
	}
	d, err := programDigest()
	if err != nil {
		return fmt.Errorf("reading the program's digest: %w", err)
	}
	p.digest = d
	return nil
}

// free takes a free slot of a host seen within lease, lowest first, the
// fullest host first (so idle hosts can end).
func (p *placer) free(lease time.Duration) (hostSlot, bool) {
	var best *hostView
	for _, h := range p.hosts {
		if h.other || time.Since(h.seen) > lease || len(h.used) >= h.slots {
			continue
		}
		if best == nil || len(h.used) > len(best.used) || len(h.used) == len(best.used) && h.id < best.id {
			best = h
		}
	}
	if best == nil {
		return hostSlot{}, false
	}
	for n := 0; n < best.slots; n++ {
		if !best.used[n] {
			best.used[n] = true
			return hostSlot{best.id, n}, true
		}
	}
	return hostSlot{}, false
}

// releaseSlot marks a slot free in the view (its process has ended, and
// its host deletes the slot before it records the exit).
func (k *Kernel) releaseSlot(at hostSlot) {
	k.placer.mu.Lock()
	if h := k.placer.hosts[at.host]; h != nil {
		delete(h.used, at.slot)
	}
	k.placer.wakeFreed() // a fork waiting under max_hosts (hostlimit.go)
	k.placer.mu.Unlock()
}

// hostChildEnded frees the slot of pid, a child placed on a host.
func (k *Kernel) hostChildEnded(pid PID) {
	k.placer.mu.Lock()
	at, ok := k.placer.placed[pid]
	delete(k.placer.placed, pid)
	k.placer.mu.Unlock()
	if ok {
		k.releaseSlot(at)
	}
}

// refreshHosts rebuilds the view from one listing of the hosts' records
// and slots, reading the record of each host it did not know. Called with
// the placer locked.
func (k *Kernel) refreshHosts(ctx context.Context) error {
	p := &k.placer
	objs, err := k.ns.listAllIn(ctx, k.cfg.container, hostRecords)
	if err != nil {
		return fmt.Errorf("listing hosts: %w", err)
	}
	listed := map[string]time.Time{}
	used := map[string]map[int]bool{}
	for _, o := range objs {
		id, slot, ok := parseHostName(o.Name)
		if !ok {
			continue
		}
		if slot < 0 {
			listed[id] = o.LastModified
			continue
		}
		if used[id] == nil {
			used[id] = map[int]bool{}
		}
		used[id][slot] = true
	}
	for id := range p.hosts {
		if _, ok := listed[id]; !ok {
			// Gone: closed, or its record expired. (A host this kernel
			// starts is listed from the start: its record comes first.)
			delete(p.hosts, id)
		}
	}
	for id, modified := range listed {
		h := p.hosts[id]
		if h == nil {
			var rec hostRecord
			if err := k.ns.getRecord(ctx, hostKey(id), &rec); err != nil {
				continue // gone since the listing, or unreadable: not a host to use
			}
			h = &hostView{id: id, slots: rec.Slots, other: rec.Digest != p.digest || rec.Slots < 1 || id == k.id}
			if rec.Started > 0 {
				h.started = time.Unix(0, rec.Started)
			}
			p.hosts[id] = h
		}
		h.seen = time.Now()
		if time.Since(modified) > k.cfg.lease && !p.booting[id] && !k.askedAlive(ctx, id) {
			h.seen = modified // not refreshed within a lease: dead
		}
		h.used = used[id]
		if h.used == nil {
			h.used = map[int]bool{}
		}
	}
	return nil
}

// startHost starts a new host of this program and adds it to the view
// with all its slots free: its lease and record are made here, so that it
// is alive, and found by other forkers, before it runs. It lets go of the
// placer's lock while it starts it (a few store requests and the
// compute's create; an answer to a host request, seconds), counted in
// p.coming, which the caller has raised. Called with the placer locked.
func (k *Kernel) startHost(ctx context.Context) error {
	p := &k.placer
	digest, slots := p.digest, k.hostSlotCount(ctx)
	p.mu.Unlock()
	var (
		id  string
		rec *hostRecord
		err error
	)
	if k.hostsPowerless() {
		id, err = k.requestHost(ctx, digest) // hostfork.go
	} else {
		id = newID()
		rec, err = k.launchHost(ctx, id, digest, slots)
	}
	p.mu.Lock()
	p.coming--
	if p.arrived != nil {
		close(p.arrived)
		p.arrived = nil
	}
	if err != nil {
		return err
	}
	if rec != nil {
		k.tendBootingHost(rec) // hostcloud.go
	} else {
		k.askedFor(id)
	}
	if p.hosts[id] == nil { // a listing may have shown it since its record was made
		p.hosts[id] = &hostView{id: id, slots: slots, used: map[int]bool{}, seen: time.Now(), started: time.Now()}
	}
	return nil
}

// launchHost starts host id, running the program of digest with slots
// slots: its number under max_hosts, its lease and record, then its
// instance. The caller keeps it alive while it starts (tendBootingHost,
// with the placer locked).
func (k *Kernel) launchHost(ctx context.Context, id, digest string, slots int) (*hostRecord, error) {
	claim, err := k.claimHostNumber(ctx, id) // max_hosts (hostlimit.go)
	if err != nil {
		return nil, err
	}
	if err := k.leases.put(ctx, id, k.cfg.lease); err != nil {
		k.releaseHostNumber(ctx, claim)
		return nil, fmt.Errorf("host lease: %w", err)
	}
	name := hostInstanceName(k.cfg.namespace, id)
	rec := &hostRecord{Kernel: id, Digest: digest, Slots: slots, Idle: int64(k.cfg.hosts.idle),
		Started: time.Now().UnixNano(), Instance: name, Claim: claim}
	// For as long as it may take to start (tendBootingHost); the host
	// rewrites it for a lease as it starts, and then as a lease is renewed.
	if err := k.putHostRecordFor(ctx, rec, hostBootLimit); err != nil {
		k.releaseHostNumber(ctx, claim)
		return nil, fmt.Errorf("host record: %w", err)
	}
	req := &backend.StartRequest{
		Namespace: k.cfg.namespace,
		Name:      name,
		Env: map[string]string{URLEnv: k.cfg.url, HostEnv: id,
			hostLeaseEnv: k.cfg.lease.String(), hostDigestEnv: digest},
		Options: map[string]string{backend.HostOption: "1"},
	}
	// A start (the program's first upload, a credential's issue) can
	// outlast the lease: keep it, or a fork placed on the host as it is
	// added could find it lapsed and take its process for lost.
	stop := k.renewWhile(ctx, id)
	delay := k.cfg.retry.Base
	for attempt := 0; attempt < max(1, k.cfg.retry.Attempts); attempt++ {
		if _, err = k.compute.Start(ctx, req); err == nil || !errors.Is(err, backend.ErrTransient) {
			break
		}
		time.Sleep(delay)
		delay = min(2*delay, k.cfg.retry.Max)
	}
	stop()
	if err != nil {
		_ = k.ns.deleteSmall(ctx, hostKey(id))
		_ = k.ns.deleteSmall(ctx, record.KernelKey(id))
		k.releaseHostNumber(ctx, claim)
		return nil, fmt.Errorf("starting a host: %w", err)
	}
	return rec, nil
}

// renewWhile renews kernel id's lease as its own kernel would, until the
// stop it returns is called.
func (k *Kernel) renewWhile(ctx context.Context, id string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(k.cfg.lease / renewEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := k.leases.put(ctx, id, k.cfg.lease); err != nil && ctx.Err() == nil {
					k.cfg.logger.Warn("rack: hosts: renewing a starting host's lease", "host", id, "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// putHostRecord writes a host's record, good for one lease.
func (k *Kernel) putHostRecord(ctx context.Context, rec *hostRecord) error {
	return k.putHostRecordFor(ctx, rec, k.cfg.lease)
}

// putHostRecordFor writes a host's record, good for ttl.
func (k *Kernel) putHostRecordFor(ctx context.Context, rec *hostRecord, ttl time.Duration) error {
	_, err := k.ns.store.Put(ctx, k.cfg.container, hostKey(rec.Kernel), bytesReader(record.Encode(rec)),
		&backend.PutOptions{DeleteAfter: ttl})
	return err
}

// HostInfo is one row of Kernel.Hosts.
type HostInfo struct {
	// Kernel is the host's kernel id (what ps shows as a process's host).
	Kernel string
	// Instance is the compute's name for the host (an OS process, a server).
	Instance string
	// State is "starting" (its program has not begun to serve yet),
	// "busy" (it runs processes), "idle" (warm, none running) or
	// "closing" (it has taken its free slots to end).
	State     string
	Slots     int
	Used      int           // slots taken, from the listing
	Idle      time.Duration // how long it has run nothing (0 when busy)
	IdleLimit time.Duration // its idle time: it ends past it
	Age       time.Duration
}

// Hosts lists the namespace's live hosts (what a hosts builtin shows),
// sorted by kernel id: one listing, and a read of each host's record.
func (k *Kernel) Hosts(ctx context.Context) ([]HostInfo, error) {
	if k.isClosed() {
		return nil, ErrClosed
	}
	objs, err := k.ns.listAllIn(ctx, k.cfg.container, hostRecords)
	if err != nil {
		return nil, fmt.Errorf("rack: hosts: %w", err)
	}
	used := map[string]int{}
	closed := map[string]bool{}
	var ids []string
	for _, o := range objs {
		id, slot, ok := parseHostName(o.Name)
		switch {
		case !ok:
		case slot < 0:
			ids = append(ids, id)
		case strings.HasPrefix(o.ContentType, hostClosedType):
			closed[id] = true
		default:
			used[id]++
		}
	}
	out := make([]HostInfo, 0, len(ids))
	for _, id := range ids {
		var rec hostRecord
		if err := k.ns.getRecord(ctx, hostKey(id), &rec); err != nil {
			if errors.Is(err, backend.ErrNotFound) {
				continue
			}
			if errors.Is(err, record.ErrCorrupt) {
				// Not a host a forker would use (refreshHosts skips it
				// too); one bad record must not hide the others.
				k.cfg.logger.Warn("rack: hosts: skipping a host record", "err", err)
				continue
			}
			return nil, fmt.Errorf("rack: hosts: %w", err)
		}
		hi := HostInfo{Kernel: id, Instance: rec.Instance, Slots: rec.Slots, Used: used[id], IdleLimit: time.Duration(rec.Idle),
			Age: time.Since(time.Unix(0, rec.Started)), State: "busy"}
		switch {
		case closed[id]:
			hi.State = "closing"
		case rec.Up == 0:
			hi.State = "starting"
		case used[id] == 0:
			hi.State = "idle"
			if rec.IdleSince != 0 {
				hi.Idle = time.Since(time.Unix(0, rec.IdleSince))
			}
		}
		out = append(out, hi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kernel < out[j].Kernel })
	return out, nil
}
