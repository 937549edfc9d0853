package rack

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Processes started as new programs (computes that are not in-process)
// run under a kernel of their own, which writes a host record when it
// adopts the process. The forker keeps a stand-in for each, which
// watchRemote ends when the exit record appears, or when the child turns
// out lost (its program ended without recording an exit, or its kernel's
// lease lapsed).

// signalRemote passes sig on to the kernel that runs pr; a signal for a
// child that has not joined yet waits for it (watchRemote delivers it).
func (k *Kernel) signalRemote(ctx context.Context, pr *proc, sig Signal) {
	if sig == SIGKILL {
		k.killRemote(ctx, pr)
		return
	}
	host, started, err := k.records.host(ctx, pr.pid, pr.rec)
	if err == nil && started {
		err = k.sendSignal(ctx, host, pr.pid, sig)
	}
	if err != nil || !started {
		pr.mu.Lock()
		pr.pendingSigs = append(pr.pendingSigs, sig)
		pr.mu.Unlock()
	}
}

// killRemote asks pr's kernel to kill it (and so its subtree), and falls
// back to stopping its instance and recording the kill itself.
func (k *Kernel) killRemote(ctx context.Context, pr *proc) {
	if isDone(pr) {
		return
	}
	k.continueForKill(ctx, pr)
	pr.killed.Store(true)
	if host, started, err := k.records.host(ctx, pr.pid, pr.rec); err == nil && started {
		if k.sendSignal(ctx, host, pr.pid, SIGKILL) == nil {
			t := time.NewTimer(k.cfg.grace)
			select {
			case <-pr.done:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	if isDone(pr) {
		return
	}
	if err := k.compute.Stop(ctx, k.instanceName(pr.pid)); err != nil && !errors.Is(err, backend.ErrNotFound) {
		k.cfg.logger.Warn("rack: stopping instance", "pid", pr.pid, "err", err)
	}
	k.finish(pr, &record.Exit{Code: 128 + int(SIGKILL), Signal: int(SIGKILL), Reason: "killed by " + SIGKILL.String()})
}

// childExited ends the stand-in of remote child pid, whose kernel has
// recorded its exit and left a note in this kernel's inbox: with the exit
// itself when the note can carry all of it (record.Signal.Exit, checked
// as the record would be), else the record is read.
func (k *Kernel) childExited(pid PID, noted *record.Exit) {
	pr := k.hosted(pid)
	if pr == nil || !pr.remote {
		return
	}
	if noted != nil && noted.PID == int64(pid) && noted.By != "" {
		k.finish(pr, noted)
		return
	}
	if ex, err := k.records.exit(k.ctx, pid); err == nil {
		k.finish(pr, ex)
	}
}

// awaitNotifiedExit ends remote child pr's stand-in when its exit record
// appears, on a store that notifies (where children leave no SIGCHLD
// note): waiting costs no request.
func (k *Kernel) awaitNotifiedExit(pr *proc) {
	for !isDone(pr) {
		ch := k.ns.changed(record.ExitKey(int64(pr.pid)))
		if ex, err := k.records.exit(k.ctx, pr.pid); err == nil {
			k.finish(pr, ex)
			return
		}
		select {
		case <-ch:
		case <-pr.done:
		case <-k.ctx.Done():
			return
		}
	}
}

// watchRemotes watches, for the whole kernel, the children started as new
// programs. Their exits arrive as notes in the inbox (childExited); this
// loop catches the children that end otherwise. A round costs one compute
// listing and no store request; every half lease, a listing of their host
// records and one of leases find children whose kernel died. The cost does
// not grow with the number of children.
func (k *Kernel) watchRemotes() {
	defer k.wg.Done()
	delay := k.cfg.pollMin
	var leasesChecked time.Time
	for {
		var tick <-chan time.Time
		var t *time.Timer
		if k.remoteCount() > 0 {
			t = time.NewTimer(delay)
			tick = t.C
		}
		select {
		case <-k.remoteWake:
			delay = k.cfg.pollMin
		case <-tick:
			delay = min(2*delay, k.cfg.pollMax)
		case <-k.ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		}
		if t != nil {
			t.Stop()
		}
		pending := k.remoteChildren()
		if len(pending) == 0 {
			continue
		}
		checkLeases := time.Since(leasesChecked) >= k.cfg.lease/2
		if checkLeases {
			leasesChecked = time.Now()
		}
		k.checkRemotes(k.ctx, pending, checkLeases)
	}
}

// wakeRemotes makes watchRemotes look soon (a child has just started).
func (k *Kernel) wakeRemotes() {
	select {
	case k.remoteWake <- struct{}{}:
	default:
	}
}

// remoteChildren returns the stand-ins of running remote children whose
// instance has been started.
func (k *Kernel) remoteChildren() []*proc {
	out := k.sched.match(launchedRemote)
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

// remoteCount returns how many remoteChildren there are.
func (k *Kernel) remoteCount() int { return k.sched.count(launchedRemote) }

// launchedRemote reports whether pr is the stand-in of a remote child
// whose instance has been started.
func launchedRemote(pr *proc) bool { return pr.remote && pr.launched.Load() }

// checkRemotes delivers signals queued for children that have joined, and
// ends the stand-ins of children that are gone without a note.
func (k *Kernel) checkRemotes(ctx context.Context, pending []*proc, checkLeases bool) {
	for _, pr := range pending {
		pr.mu.Lock()
		queued := len(pr.pendingSigs) > 0
		pr.mu.Unlock()
		if !queued {
			continue
		}
		if host, started, err := k.records.host(ctx, pr.pid, pr.rec); err == nil && started {
			pr.mu.Lock()
			sigs := pr.pendingSigs
			pr.pendingSigs = nil
			pr.mu.Unlock()
			for _, s := range sigs {
				_ = k.sendSignal(ctx, host, pr.pid, s)
			}
		}
	}
	live, err := k.compute.List(ctx, k.cfg.namespace)
	if err != nil {
		if ctx.Err() == nil {
			k.cfg.logger.Warn("rack: listing instances", "err", err)
		}
		return
	}
	names := make(map[string]bool, len(live))
	for _, in := range live {
		names[in.Name] = true
	}
	for _, pr := range pending {
		if isDone(pr) || names[k.instanceName(pr.pid)] || pr.host != "" {
			continue // (on a host: its host's lease tells, below)
		}
		// Its program has ended: the exit it recorded, if any, is in the
		// store (its note may still be on the way).
		ex, err := k.records.exit(ctx, pr.pid)
		if err == nil {
			k.finish(pr, ex)
			continue
		}
		if !errors.Is(err, backend.ErrNotFound) {
			continue
		}
		_, started, err := k.records.host(ctx, pr.pid, pr.rec)
		if err != nil {
			continue
		}
		why := "its program ended before joining the namespace"
		if started {
			why = "its program ended without recording an exit"
		}
		if fr, ok := k.compute.(backend.FailureReporter); ok {
			if reason, failed := fr.Failure(k.instanceName(pr.pid)); failed {
				why = "its instance failed: " + reason
			}
		}
		k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: why})
	}
	if checkLeases {
		k.checkRemoteLeases(ctx, pending)
	}
}

// checkRemoteLeases ends the stand-ins of children whose kernel has
// stopped renewing its lease (a hung program on a live machine): two
// listings, whatever the number of children.
func (k *Kernel) checkRemoteLeases(ctx context.Context, pending []*proc) {
	v := &psView{k: k, hosts: map[PID]string{}, leaseSeen: map[string]leaseEntry{}}
	lo, hi := pending[0].pid, pending[len(pending)-1].pid
	hosts, err := k.ns.listRange(ctx, record.Hosts, record.HostKey(int64(lo)-1), record.HostKey(int64(hi)))
	if err != nil {
		return
	}
	for _, o := range hosts {
		if n, err := record.ParseNumber(o.Name); err == nil {
			if host, ok := record.ParseHostSummary(o.ContentType); ok {
				v.hosts[PID(n)] = host
			}
		}
	}
	if err := v.listLeases(ctx); err != nil {
		return
	}
	for _, pr := range pending {
		host := v.hosts[pr.pid]
		if host == "" && pr.host != "" && !isDone(pr) && time.Since(pr.placedAt) > k.cfg.lease && k.claimVanished(ctx, pr) {
			k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "its claim of a slot on host " + pr.host + " was gone before the host ran it"})
			continue
		}
		if host == "" {
			host = pr.host // placed on a host that has not adopted it yet
			v.hosts[pr.pid] = host
		}
		if host == "" || isDone(pr) {
			continue // not joined yet (or not listed yet): the compute tells
		}
		if alive, err := v.alive(ctx, pr.pid, pr.rec); err == nil && !alive {
			k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "its kernel " + host + " stopped renewing its lease"})
		}
	}
}

// claimVanished reports whether pr, placed on a host over a lease ago and
// not listed as adopted, never will be: its slot no longer holds its claim,
// and it has no host record and no exit. A host deletes a slot's claim only
// once its process has a host record (it ran) or an exit (killed, lost), so
// a claim gone without either was deleted by something else (a host once
// took a slot claimed again since its listing for a bad record), and the
// process, waited for while its host lives, would be waited for forever.
func (k *Kernel) claimVanished(ctx context.Context, pr *proc) bool {
	k.placer.mu.Lock()
	at, ok := k.placer.placed[pr.pid]
	k.placer.mu.Unlock()
	if !ok {
		return false
	}
	info, err := k.ns.store.Head(ctx, k.cfg.container, hostSlotKey(at.host, at.slot))
	switch {
	case err == nil:
		if p, ok := record.ParseSlotSummary(info.ContentType); ok && p == int64(pr.pid) {
			return false // still there: its host is slow
		}
	case !errors.Is(err, backend.ErrNotFound):
		return false
	}
	if _, err := k.ns.store.Head(ctx, k.cfg.container, record.HostKey(int64(pr.pid))); !errors.Is(err, backend.ErrNotFound) {
		return false // adopted (the listing lagged), or unknown
	}
	_, err = k.records.exit(ctx, pr.pid)
	return errors.Is(err, backend.ErrNotFound)
}

// closeRecordedEnds closes, on behalf of a lost process, the pipe writer
// ends handed to it at fork, counting the segments it did store.
func (k *Kernel) closeRecordedEnds(ctx context.Context, rec *record.Proc) {
	for _, s := range []record.Stream{rec.Stdout, rec.Stderr} {
		if s.Kind != "pipe" || s.End < 0 {
			continue
		}
		n := 0
		for {
			_, err := k.ns.store.Head(ctx, k.cfg.container, record.PipeSegmentKey(s.Pipe, s.End, n))
			if err != nil {
				if !errors.Is(err, backend.ErrNotFound) {
					k.cfg.logger.Warn("rack: counting a lost writer's segments", "pipe", s.Pipe, "err", err)
				}
				break
			}
			n++
		}
		err := k.ns.putOnce(ctx, record.PipeCloseKey(s.Pipe, s.End), record.Encode(record.PipeClose{Segments: n}), "")
		if err != nil {
			k.cfg.logger.Warn("rack: closing a lost writer's pipe end", "pipe", s.Pipe, "err", err)
		}
	}
}
