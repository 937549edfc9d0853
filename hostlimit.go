package rack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Ceilings on a namespace's hosts (see host.go): how many may be alive at
// once (max_hosts), and how much server time they may spend in all
// (max_server_hours). Both are counted from the store, so they bind every
// forker of the namespace that sets them, with no central server:
//
//	hostd-count/<n>     host number n (1 to max_hosts) is taken: a forker
//	                    claims it with a create-only put before it starts
//	                    a host, which refreshes it as it refreshes its
//	                    record (it lives one lease) and deletes it as it
//	                    ends. Two forkers cannot claim one number, so the
//	                    forkers that set max_hosts never start more than
//	                    max_hosts hosts at once.
//	hostd-spent/<kernel> a host's life (record.HostSpent): written by the
//	                    host once a lease while it runs and as it ends; it
//	                    stays while the namespace lives (gc leaves it: gc
//	                    deletes only hostd/<kernel> and hostd/<kernel>/...).
//
// The server time spent is the sum of the lives in hostd-spent/, with the
// age of each live host instead of its record. A host killed with kill -9
// loses at most a lease of its life from the count.
//
// Where max_hosts can be overshot: (1) a forker that does not set it
// starts hosts without numbers (a forker that sets it counts them among
// the live hosts it lists, but two forkers can each see N-1 and start one);
// (2) a host that ends with processes running (a signal, a lapsed lease)
// gives its number back as its kernel closes, so a new host may start in
// that moment; (3) a claim read back on a store with loose creates is
// trusted after twice its put's time, as pid blocks are (pids.go).
// Between forkers that set it, claims make it race-free otherwise. The
// budget is checked, not reserved: forks that start hosts at the same
// moment may each pass the check, and it is spent by time, so it is
// overshot by the lives of the hosts alive when it runs out (they end as
// usual, by idle time).

const (
	hostCountRecords = "hostd-count/"
	hostSpentRecords = "hostd-spent/"
	hostClaimType    = "application/x-rack-host-claim"

	maxMaxHosts       = 1 << 16
	maxMaxServerHours = 1e9
)

func hostCountKey(n int) string     { return hostCountRecords + strconv.Itoa(n) }
func hostSpentKey(id string) string { return hostSpentRecords + id }

// HostLimits are the ceilings on a namespace's hosts (WithHostLimits; on a
// URL with hosts=1: max_hosts=N, max_server_hours=H, at_limit=wait|fail).
// The zero value sets none.
type HostLimits struct {
	// MaxHosts bounds the hosts of the namespace alive at once (0: no
	// bound). A fork that finds no free slot while MaxHosts hosts are
	// alive waits for a slot or for a host to end (or fails: FailAtLimit).
	// Hosts are counted from the store: the bound holds across every
	// forker of the namespace that sets it (one that sets none starts
	// hosts without counting them, and those count against the others).
	MaxHosts int
	// MaxServerHours is the namespace's budget of host time, in hours
	// (0: none): the sum of the lives of its hosts, ended and alive. Once
	// it is spent, a fork that needs a new host fails with an error
	// naming max_server_hours; forks that find a free slot of a live
	// host still run there (a live host is not stopped by the budget).
	MaxServerHours float64
	// FailAtLimit makes a fork that would need a host past MaxHosts fail
	// at once (at_limit=fail) instead of waiting (at_limit=wait, the
	// default).
	FailAtLimit bool
}

// WithHostLimits sets the ceilings on the hosts this kernel's forks start
// (see HostLimits); they take effect with hosts on (WithHosts). New
// refuses a negative, NaN or infinite value, naming it.
func WithHostLimits(l HostLimits) Option {
	return func(c *config) { c.hosts.limits = l }
}

// check refuses limits out of range, naming the URL option.
func (l HostLimits) check() error {
	if l.MaxHosts < 0 || l.MaxHosts > maxMaxHosts {
		return fmt.Errorf("%w: max_hosts=%d is not a number from 0 (no bound) to %d", ErrInvalid, l.MaxHosts, maxMaxHosts)
	}
	if h := l.MaxServerHours; math.IsNaN(h) || h < 0 || h > maxMaxServerHours {
		return fmt.Errorf("%w: max_server_hours=%v is not a number of hours from 0 (no budget) to %g", ErrInvalid, h, float64(maxMaxServerHours))
	}
	return nil
}

// limitsFromQuery reads max_hosts, max_server_hours and at_limit from a
// URL query, deleting them; given reports whether any was there.
func limitsFromQuery(q map[string][]string) (l HostLimits, given bool, err error) {
	get := func(key string) (string, bool, error) {
		v, ok := q[key]
		if !ok {
			return "", false, nil
		}
		delete(q, key)
		given = true
		if len(v) != 1 {
			return "", true, fmt.Errorf("%w: %s given %d times", ErrInvalid, key, len(v))
		}
		return v[0], true, nil
	}
	if s, ok, err := get("max_hosts"); err != nil {
		return l, given, err
	} else if ok {
		n, perr := strconv.Atoi(s)
		if perr != nil || n < 1 || n > maxMaxHosts {
			return l, given, fmt.Errorf("%w: max_hosts=%q is not a number from 1 to %d", ErrInvalid, s, maxMaxHosts)
		}
		l.MaxHosts = n
	}
	if s, ok, err := get("max_server_hours"); err != nil {
		return l, given, err
	} else if ok {
		h, perr := strconv.ParseFloat(s, 64)
		if perr != nil || math.IsNaN(h) || h <= 0 || h > maxMaxServerHours {
			return l, given, fmt.Errorf("%w: max_server_hours=%q is not a number of hours above 0 and at most %g (such as 0.5)", ErrInvalid, s, float64(maxMaxServerHours))
		}
		l.MaxServerHours = h
	}
	if s, ok, err := get("at_limit"); err != nil {
		return l, given, err
	} else if ok {
		switch s {
		case "wait":
		case "fail":
			l.FailAtLimit = true
		default:
			return l, given, fmt.Errorf("%w: at_limit=%q: wait (the default) or fail", ErrInvalid, s)
		}
	}
	return l, given, nil
}

// hostLimitError is a fork's placement stopped by a ceiling; wait says
// the fork is to wait for a host to end or a slot to free.
type hostLimitError struct {
	msg  string
	wait bool
}

func (e *hostLimitError) Error() string { return e.msg }

// atMaxHosts is the error of a fork that needs a host while n (the
// maximum) are alive.
func (k *Kernel) atMaxHosts(n int) error {
	max := k.cfg.hosts.limits.MaxHosts
	if k.cfg.hosts.limits.FailAtLimit {
		return &hostLimitError{msg: fmt.Sprintf("rack: max_hosts=%d: %d hosts of the namespace are alive, none with a free slot (at_limit=fail)", max, n)}
	}
	return &hostLimitError{wait: true, msg: fmt.Sprintf("rack: max_hosts=%d: %d hosts alive, waiting for a free slot", max, n)}
}

// checkHostLimits says whether a new host may start: the budget is not
// spent and fewer than MaxHosts hosts are alive. Called by reserveSlot
// with the placer locked and its view just listed.
func (k *Kernel) checkHostLimits(ctx context.Context) error {
	l := k.cfg.hosts.limits
	if l.MaxServerHours > 0 {
		spent, err := k.serverHours(ctx)
		if err != nil {
			return fmt.Errorf("max_server_hours: counting the hosts' server time: %w", err)
		}
		if spent >= l.MaxServerHours {
			return &hostLimitError{msg: fmt.Sprintf("rack: max_server_hours=%g spent: the namespace's hosts have run %.4g server hours; "+
				"no new host starts (forks still run in free slots of live hosts)", l.MaxServerHours, spent)}
		}
	}
	if l.MaxHosts > 0 {
		live := 0
		for _, h := range k.placer.hosts {
			if time.Since(h.seen) <= k.cfg.lease {
				live++
			}
		}
		if live >= l.MaxHosts {
			return k.atMaxHosts(live)
		}
	}
	return nil
}

// serverHours sums the lives of the namespace's hosts: the age of each
// live host in the placer's view, the last recorded life of the others.
// Called with the placer locked; a record already read is not read again
// unless the listing shows it rewritten.
func (k *Kernel) serverHours(ctx context.Context) (float64, error) {
	p := &k.placer
	objs, err := k.ns.listAllIn(ctx, k.cfg.container, hostSpentRecords)
	if err != nil {
		return 0, err
	}
	if p.spent == nil {
		p.spent = map[string]spentLife{}
	}
	now := time.Now()
	hours := 0.0
	for _, h := range p.hosts {
		if h.started.IsZero() {
			continue
		}
		end := now
		if now.Sub(h.seen) > k.cfg.lease {
			end = h.seen // dead: its record was last refreshed then
		}
		hours += max(end.Sub(h.started), 0).Hours()
	}
	for _, o := range objs {
		id := strings.TrimPrefix(o.Name, hostSpentRecords)
		if checkKernelID(id) != nil {
			continue
		}
		if h := p.hosts[id]; h != nil && !h.started.IsZero() {
			continue // counted above, by its age
		}
		life, ok := p.spent[id]
		if !ok || !life.modified.Equal(o.LastModified) {
			var rec record.HostSpent
			if err := k.ns.getRecord(ctx, o.Name, &rec); err != nil {
				if errors.Is(err, backend.ErrNotFound) || errors.Is(err, record.ErrCorrupt) {
					continue
				}
				return 0, err
			}
			if rec.Kernel != id {
				continue
			}
			life = spentLife{modified: o.LastModified, life: time.Duration(rec.Until - rec.Started)}
			p.spent[id] = life
		}
		hours += life.life.Hours()
	}
	return hours, nil
}

// spentLife is a host's life as a hostd-spent record last said it.
type spentLife struct {
	modified time.Time
	life     time.Duration
}

// claimHostNumber takes a free host number for id, the host about to
// start, with a create-only put; it returns 0 without MaxHosts. All
// numbers taken is the max_hosts error.
func (k *Kernel) claimHostNumber(ctx context.Context, id string) (int, error) {
	max := k.cfg.hosts.limits.MaxHosts
	if max == 0 {
		return 0, nil
	}
	objs, err := k.ns.listAllIn(ctx, k.cfg.container, hostCountRecords)
	if err != nil {
		return 0, fmt.Errorf("max_hosts: listing the hosts' numbers: %w", err)
	}
	taken := map[int]bool{}
	for _, o := range objs {
		n, err := strconv.Atoi(strings.TrimPrefix(o.Name, hostCountRecords))
		// Not refreshed within a lease: its host is gone, and a store
		// that lists an expired object may still take a create over it.
		if err == nil && time.Since(o.LastModified) <= k.cfg.lease {
			taken[n] = true
		}
	}
	for n := 1; n <= max; n++ {
		if taken[n] {
			continue
		}
		began := time.Now()
		_, err := k.ns.store.Put(ctx, k.cfg.container, hostCountKey(n), bytesReader([]byte(id)),
			&backend.PutOptions{CreateOnly: true, DeleteAfter: k.cfg.lease, ContentType: hostClaimType})
		if err == nil {
			mine, err := k.hostNumberStillMine(ctx, n, id, time.Since(began))
			if err != nil {
				return 0, fmt.Errorf("max_hosts: reading back host number %d: %w", n, err)
			}
			if mine {
				return n, nil
			}
			continue // a rival's create of the same number arrived last: it has it
		}
		if !errors.Is(err, backend.ErrExist) {
			return 0, fmt.Errorf("max_hosts: claiming host number %d: %w", n, err)
		}
	}
	return 0, k.atMaxHosts(max)
}

// hostNumberStillMine reports whether host number n, which this kernel
// has just claimed for id in took, is still id's: on a store whose creates
// are loose (backend.LooseCreate), a rival create in flight at the same
// moment succeeds too and the later one stays. It reads the claim back
// once a rival would have ended, as pidAlloc.stillMine does.
func (k *Kernel) hostNumberStillMine(ctx context.Context, n int, id string, took time.Duration) (bool, error) {
	if !k.ns.looseCreate {
		return true, nil
	}
	if err := k.ns.awaitRivals(ctx, took); err != nil {
		return false, err
	}
	data, err := k.ns.get(ctx, hostCountKey(n))
	if err != nil {
		return false, err
	}
	return string(data) == id, nil
}

// releaseHostNumber gives back host number n (0: none).
func (k *Kernel) releaseHostNumber(ctx context.Context, n int) {
	if n > 0 {
		_ = k.ns.deleteSmall(ctx, hostCountKey(n))
	}
}

// limitWait is the placer's state for the forks waiting under max_hosts.
type limitWait struct {
	turn    chan struct{} // held by the one waiting fork that looks
	freed   chan struct{} // closed when the view frees a slot
	gen     uint64        // counts the slots the view freed
	looked  uint64        // gen when a waiting fork last found no slot
	waiters int           // forks waiting, the one looking included
	delay   time.Duration // the poll's backoff, shared by turns
}

// reserveSlotOrWait is reserveSlot, waiting while max_hosts hosts are
// alive without a free slot (at_limit=wait), until a slot is found or a
// host may start, pr ends or the kernel closes. It looks again when a
// child of this kernel frees a slot (the view knows it: no listing),
// when a host number is freed (a host ended: notified where the store
// can), and at a poll with backoff (for slots that other forkers'
// children free, and hosts that die, whose records expire), listing the
// hosts then. One waiting fork of this kernel at a time looks, the others
// queue behind it (a new fork too, while any waits), so many waiting
// forks cost what one does.
func (k *Kernel) reserveSlotOrWait(ctx context.Context, pr *proc) (at hostSlot, err error) {
	p := &k.placer
	p.mu.Lock()
	queued, gen := p.waiters > 0, p.gen
	p.mu.Unlock()
	if !queued {
		if at, err = k.reserveSlot(ctx); !waitsForHost(err) {
			return at, err
		}
		p.mu.Lock()
		p.looked = gen
		p.mu.Unlock()
	}
	p.mu.Lock()
	if p.turn == nil {
		p.turn = make(chan struct{}, 1)
	}
	turn := p.turn
	p.waiters++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.waiters--; p.waiters == 0 {
			p.delay = 0
		}
		p.mu.Unlock()
	}()
	if err == nil {
		err = k.atMaxHosts(k.cfg.hosts.limits.MaxHosts) // what it waits for, if it must give up
	}
	select {
	case turn <- struct{}{}:
	case <-pr.done:
		return at, err
	case <-ctx.Done():
		return at, err
	}
	defer func() { <-turn }()
	for {
		// A fork that had the turn before may have taken the last slot:
		// look first, then wait.
		numbers := k.ns.changed(hostCountRecords)
		p.mu.Lock()
		if p.freed == nil {
			p.freed = make(chan struct{})
		}
		freed, gen := p.freed, p.gen
		// Nothing freed, no poll due since a waiting fork last looked:
		// looking again would list the hosts for nothing.
		look := p.stale || gen != p.looked
		p.mu.Unlock()
		if look {
			if at, err = k.reserveSlot(ctx); !waitsForHost(err) {
				return at, err
			}
			p.mu.Lock()
			p.looked = gen
			p.mu.Unlock()
		}
		p.mu.Lock()
		delay := max(p.delay, k.cfg.pollMin)
		p.mu.Unlock()
		t := time.NewTimer(delay)
		relist := true
		select {
		case <-freed:
			relist = false // the view has the slot
		case <-numbers:
		case <-t.C:
			p.mu.Lock()
			p.delay = min(2*delay, k.cfg.pollMax, max(k.cfg.lease/5, k.cfg.pollMin))
			p.mu.Unlock()
		case <-pr.done:
			t.Stop()
			return at, err
		case <-ctx.Done():
			t.Stop()
			return at, err
		}
		t.Stop()
		if relist {
			p.mu.Lock()
			p.stale = true
			p.mu.Unlock()
		}
	}
}

// wakeFreed wakes the fork waiting under max_hosts: the view has freed
// a slot. Called with the placer locked.
func (w *limitWait) wakeFreed() {
	w.gen++
	if w.freed != nil {
		close(w.freed)
		w.freed = nil
	}
}

// waitsForHost reports whether err is max_hosts's, with at_limit=wait.
func waitsForHost(err error) bool {
	var le *hostLimitError
	return errors.As(err, &le) && le.wait
}

// hostCeilings is a host's part of the ceilings: it refreshes its number
// and records its life.
type hostCeilings struct {
	lifeWritten time.Time
}

// refreshCeilings, called as the host refreshes its record, refreshes its
// host number and, once a lease, records its life so far.
func (h *hostServer) refreshCeilings(ctx context.Context, now time.Time) {
	k := h.k
	if h.rec.Claim > 0 {
		_, err := k.ns.store.Put(ctx, k.cfg.container, hostCountKey(h.rec.Claim), bytesReader([]byte(h.id)),
			&backend.PutOptions{DeleteAfter: k.cfg.lease, ContentType: hostClaimType})
		if err != nil && k.ctx.Err() == nil {
			k.cfg.logger.Warn("rack: host: refreshing its host number", "n", h.rec.Claim, "err", err)
		}
	}
	if now.Sub(h.ceilings.lifeWritten) >= k.cfg.lease {
		h.ceilings.lifeWritten = now
		h.writeLife(ctx, now)
	}
}

// writeLife records the host's life up to now under hostd-spent/.
func (h *hostServer) writeLife(ctx context.Context, now time.Time) {
	k := h.k
	started := h.rec.Started
	if started <= 0 || started > now.UnixNano() {
		return // a record without its start: nothing sound to count
	}
	rec := &record.HostSpent{Kernel: h.id, Started: started, Until: now.UnixNano()}
	if _, err := k.ns.store.Put(ctx, k.cfg.container, hostSpentKey(h.id), bytesReader(record.Encode(rec)), &backend.PutOptions{}); err != nil && k.ctx.Err() == nil {
		k.cfg.logger.Warn("rack: host: recording its life", "err", err)
	}
}

// endCeilings, called as the host ends (its record deleted, before its
// kernel closes), records its whole life and gives back its number. A
// host ending with processes running (a signal, a lapsed lease) gives
// its number back while Close ends them: another host can start in that
// moment, one over max_hosts.
func (h *hostServer) endCeilings(ctx context.Context) {
	h.writeLife(ctx, time.Now())
	if h.rec.Claim > 0 {
		// Its own still: a host whose number expired (it stalled for a
		// lease) must not free another's.
		if data, err := h.k.ns.get(ctx, hostCountKey(h.rec.Claim)); err == nil && string(data) == h.id {
			h.k.releaseHostNumber(ctx, h.rec.Claim)
		}
	}
}
