package rack

import (
	"context"
	"errors"
	"strconv"
	"sync"

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
// claims one) so that other forkers see it taken; a claim found there
// first is left to the host to serve, and the child runs over the slot
// count rather than wait (a race of one fork, as the placer's are). Its
// host record says that it runs here, for ps. The host never places a
// child into its own slots through the store: it would both fork and
// adopt one pid.

// hostSelf is what a host's kernel knows of its own slots, for the
// children its processes fork (see placer.self).
type hostSelf struct {
	h *hostServer

	mu    sync.Mutex
	slots map[PID]*ownSlot // this host's children in its own slots
}

// ownSlot is a slot of its own host that a child forked there holds.
type ownSlot struct {
	name     string // the slot's object name; "" while over the slot count
	written  bool   // its claim is in the store: ours to delete
	claiming bool   // its claim is being put
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
		if key := hostSlotKey(h.id, n); !h.seen[key] {
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
// this program.
func (k *Kernel) onHostsRec(rec *record.Proc) bool {
	return k.cfg.hosts.on && rec.Options[backend.ExeOption] == "" && rec.Options[backend.ProgramOption] == ""
}

// unreserveOwnSlot gives back the slot reserved for pr, a fork that
// failed before it was recorded (finish gives it back otherwise).
func (k *Kernel) unreserveOwnSlot(pr *proc) {
	if pr.release != nil && !pr.adopted {
		pr.release()
	}
}

// free gives back the slot of pid: its claim in the store first (the
// host's slot is free once it is gone), then the host's count. A slot
// being claimed is given back by its claim, once the put has returned.
func (s *hostSelf) free(pid PID) {
	s.mu.Lock()
	slot := s.slots[pid]
	delete(s.slots, pid)
	s.mu.Unlock()
	if slot != nil && !slot.claiming {
		s.giveBack(slot)
	}
}

// giveBack deletes slot's claim, if it wrote one, and uncounts it.
func (s *hostSelf) giveBack(slot *ownSlot) {
	h := s.h
	k := h.k
	if slot.written {
		if err := k.ns.store.Delete(context.WithoutCancel(k.ctx), k.cfg.container, slot.name); err != nil && !errors.Is(err, backend.ErrNotFound) {
			k.cfg.logger.Warn("rack: host: freeing a slot", "slot", slot.name, "err", err)
		}
	}
	h.mu.Lock()
	delete(h.seen, slot.name)
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// runHere runs pr, a process this kernel runs (a root, or a child in a
// slot of its own host), as a goroutine.
func (k *Kernel) runHere(pr *proc) {
	if s := k.placer.self; s != nil {
		s.mu.Lock()
		slot := s.slots[pr.pid]
		if slot != nil {
			slot.claiming = true
		}
		s.mu.Unlock()
		if slot != nil {
			k.claimOwnSlot(pr, slot)
		}
	}
	k.run(k.ctx, pr)
}

// claimOwnSlot puts pr's start record in the slot reserved for it, and its
// host record, at once. A claim found in the slot first is a forker's
// that the host serves: pr runs over the slot count.
func (k *Kernel) claimOwnSlot(pr *proc, slot *ownSlot) {
	ctx := k.ctx
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		host := &record.Host{PID: int64(pr.pid), Kernel: k.id}
		if err := k.ns.putSummarized(ctx, record.HostKey(int64(pr.pid)), record.Encode(host), true, record.HostSummary(host)); err != nil && ctx.Err() == nil {
			k.cfg.logger.Warn("rack: host: recording where a child runs", "pid", pr.pid, "err", err)
		}
	}()
	err := k.ns.put(ctx, slot.name, record.Encode(pr.rec), true)
	wg.Wait()
	s := k.placer.self
	h := s.h
	s.mu.Lock()
	slot.claiming = false
	slot.written = err == nil
	freed := s.slots[pr.pid] != slot // ended (killed) while claiming
	if errors.Is(err, backend.ErrExist) {
		// Another forker's claim: the host's to serve, at its next look;
		// pr is counted over the slot count.
		h.mu.Lock()
		delete(h.seen, slot.name)
		slot.name = overName(pr.pid)
		h.seen[slot.name] = true
		h.mu.Unlock()
		select {
		case h.wake <- struct{}{}:
		default:
		}
	} else if err != nil && ctx.Err() == nil {
		k.cfg.logger.Warn("rack: host: claiming its own slot", "slot", slot.name, "err", err)
	}
	s.mu.Unlock()
	if freed {
		s.giveBack(slot)
	}
}

// overName is the name a child over its host's slot count is counted
// under (never an object's: it has no slot).
func overName(pid PID) string { return "over/" + strconv.FormatInt(int64(pid), 10) }
