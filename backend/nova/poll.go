package nova

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack/backend"
)

// pollLoop is the Compute's one poller: while it has servers to watch, it
// lists them every PollInterval and acts on their states (reconcile).
func (c *Compute) pollLoop() {
	defer c.wg.Done()
	for {
		if !c.watching() {
			select {
			case <-c.kick:
			case <-c.ctx.Done():
				return
			}
			// A server just created is building: no hurry.
			if sleepCtx(c.ctx, c.cfg.PollInterval) != nil {
				return
			}
			continue
		}
		start := time.Now()
		list, err := c.listOwn(c.ctx)
		wait := c.cfg.PollInterval
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			f := examine(err)
			wait = max(wait, f.retryAfter)
			c.log.Warn("nova: listing servers failed", "error", c.redact(f.describe()))
		} else {
			c.reconcile(start, list)
		}
		if sleepCtx(c.ctx, wait) != nil {
			return
		}
	}
}

// watching reports whether any instance needs the poller.
func (c *Compute) watching() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, in := range c.insts {
		if c.watched(in) || in.state == stEnding && !in.busy {
			return true
		}
	}
	return false
}

// watched reports whether the poller follows in's server. Called with c.mu
// held.
func (c *Compute) watched(in *instance) bool {
	return !in.stopping && !in.busy && in.id != "" && (in.state == stBuilding || in.state == stActive)
}

// listOwn lists the servers of this Compute: those with its tag, or,
// without tags, those whose names start with what the names it watches
// have in common.
func (c *Compute) listOwn(ctx context.Context) ([]servers.Server, error) {
	var opts servers.ListOpts
	if c.tags() {
		opts.Tags = c.ownerTag
	} else {
		c.mu.Lock()
		prefix, first := "", true
		for _, in := range c.insts {
			if first {
				prefix, first = in.info.Name, false
			} else {
				prefix = commonPrefix(prefix, in.info.Name)
			}
		}
		c.mu.Unlock()
		if prefix != "" {
			opts.Name = "^" + regexp.QuoteMeta(prefix)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	pages, err := servers.List(c.client, opts).AllPages(rctx)
	if err != nil {
		return nil, err
	}
	return servers.ExtractServers(pages)
}

func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

// reconcile acts on a listing of the Compute's servers that began at start.
func (c *Compute) reconcile(start time.Time, list []servers.Server) {
	byID := make(map[string]*servers.Server, len(list))
	for i := range list {
		byID[list[i].ID] = &list[i]
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for _, in := range c.insts {
		if in.state == stEnding && !in.busy {
			c.setEnding(in, false) // an earlier clean-up failed: again
			continue
		}
		if !c.watched(in) {
			continue
		}
		s := byID[in.id]
		if s == nil && !in.idAt.Before(start) {
			continue // created while the listing was made
		}
		if s == nil {
			// Missing from a listing is no proof: Nova leaves out the
			// servers of a cell that does not respond. After two
			// listings, a GET tells.
			if in.missed++; in.missed >= 2 {
				in.busy = true
				c.wg.Add(1)
				go c.confirmMissing(in, in.id)
			}
			continue
		}
		c.observe(in, s, now)
	}
	// A server of a name watched, other than the instance's own, can only
	// come from a create whose outcome was unknown and that a look-up did
	// not find: delete it before its program runs twice.
	for i := range list {
		s := &list[i]
		in := c.insts[s.Name]
		if in == nil || !c.watched(in) || s.ID == in.id || gone(s) ||
			s.Metadata[MetaNamespace] != in.info.Namespace || s.Metadata[MetaPID] != strconv.FormatInt(in.info.PID, 10) {
			continue
		}
		if _, done := c.deleted[s.ID]; done {
			continue
		}
		c.deleted[s.ID] = now
		c.log.Warn("nova: deleting a duplicate server", "name", s.Name, "server", s.ID)
		c.wg.Add(1)
		go func(name, id string) {
			defer c.wg.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), closeTimeout)
			defer cancel()
			if err := c.removeServer(ctx, name, id); err != nil {
				c.log.Warn("nova: deleting a duplicate server failed", "name", name, "server", id, "error", err)
			}
		}(s.Name, s.ID)
	}
	// Forget deleted servers once they are gone from the listing.
	for id, at := range c.deleted {
		if byID[id] == nil && at.Before(start) {
			delete(c.deleted, id)
		}
	}
}

// observe acts on s, the server of in as a listing or a GET showed it.
// Called with c.mu held.
func (c *Compute) observe(in *instance, s *servers.Server, now time.Time) {
	if gone(s) {
		c.lost(in, now)
		return
	}
	in.missed = 0
	switch s.Status {
	case "ACTIVE":
		if in.state == stBuilding {
			in.state, in.ran, in.quotaErr = stActive, true, 0
			c.releaseSlot(in)
		}
	case "BUILD":
		if in.state == stBuilding && now.Sub(in.idAt) > in.build {
			c.bootFailed(in, fmt.Sprintf("server %s was still in BUILD at its build deadline, %v after its create (option %s=)",
				in.id, in.build, OptionBuildTimeout), false)
		}
	case "ERROR":
		reason := strings.TrimSpace(s.Fault.Message)
		if reason == "" {
			reason = "no fault message"
		}
		ran := in.ran || !s.LaunchedAt.IsZero()
		switch {
		case ran:
			c.fail(in, fmt.Sprintf("server %s failed: %s", in.id, reason))
			c.setEnding(in, false)
		case quotaMessage(reason):
			// It lost the conductor's quota recheck
			// (nova/conductor/manager.py): no failed boot, but a wait
			// for quota.
			c.bootFailed(in, reason, true)
		default:
			c.bootFailed(in, reason, false)
		}
	case "SHUTOFF":
		// A last resort: the kernel reaps a server once its program's
		// exit is recorded (Reap), and Nova may show SHUTOFF minutes
		// after the power-off.
		in.ran = true
		c.setEnding(in, true)
	}
}

// bootFailed handles a server of in that failed to boot (ERROR before it
// ran, or past its build deadline): it is deleted and created again, up to
// BootRetries times, or for as long as the cause is quota; then in fails
// with reason. Called with c.mu held.
func (c *Compute) bootFailed(in *instance, reason string, quota bool) {
	if !quota && in.boots > c.cfg.BootRetries {
		c.fail(in, fmt.Sprintf("boot failed: %s (%d attempts)", reason, in.boots))
		c.setEnding(in, false)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	in.state, in.busy, in.cancel = stRetrying, true, cancel
	if quota {
		in.boots-- // not a failed boot
		in.quotaErr++
	}
	c.log.Info("nova: boot failed; re-creating the server", "name", in.info.Name, "server", in.id, "reason", reason, "boots", in.boots, "quota", quota)
	c.wg.Add(1)
	go c.retryBoot(ctx, in, in.id, reason, quota)
}

// lost records that in's server is gone, deleted by someone else. Called
// with c.mu held.
func (c *Compute) lost(in *instance, now time.Time) {
	c.fail(in, fmt.Sprintf("server %s was deleted outside rack", in.id))
	c.deleted[in.id] = now
	in.id = ""
	c.forget(in)
	c.signalFreedLocked()
}

// confirmMissing GETs server id of in, which two listings lacked: a 404
// means it is gone; otherwise it is observed as the GET shows it (a server
// hidden from listings is not lost).
func (c *Compute) confirmMissing(in *instance, id string) {
	defer c.wg.Done()
	defer c.wake() // the poller may have gone idle meanwhile
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.RequestTimeout)
	s, err := servers.Get(ctx, c.client, id).Extract()
	cancel()
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	in.busy = false
	if c.closed || in.id != id || in.state == stEnding {
		return
	}
	switch {
	case in.stopping:
		return
	case err == nil && !in.reap:
		c.observe(in, s, now)
		in.missed = 0
	case err != nil && examine(err).status == 404:
		c.lost(in, now)
		return
	default:
		in.missed = 0 // no answer: it counts as there
	}
	if in.reap && in.state != stEnding && c.insts[in.info.Name] == in {
		in.reap = false
		c.setEnding(in, false)
	}
}

// setEnding hands in to a goroutine that deletes its server (after reading
// its console, if probe and the program may not have started) and forgets
// it. Called with c.mu held.
func (c *Compute) setEnding(in *instance, probe bool) {
	in.state, in.busy = stEnding, true
	c.releaseSlot(in)
	c.wg.Add(1)
	go c.end(in, probe)
}

// end deletes in's servers and forgets in. With probe, it first reads the
// console of the server, unless Config.ProgramStarted says the program
// started, to record a bootstrap failure. If the delete fails, the poller
// tries again later (or Close does).
func (c *Compute) end(in *instance, probe bool) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), closeTimeout)
	defer cancel()
	c.mu.Lock()
	id := in.id
	c.mu.Unlock()
	if probe && id != "" && (c.cfg.ProgramStarted == nil || !c.cfg.ProgramStarted(ctx, in.info)) {
		out, err := c.consoleTail(ctx, id)
		if err != nil {
			c.log.Warn("nova: reading the console failed", "name", in.info.Name, "server", id, "error", c.apiError(ctx, "console", err))
		} else if line := bootstrapFailure(out); line != "" {
			c.mu.Lock()
			c.fail(in, "bootstrap failed: "+line)
			c.mu.Unlock()
		}
	}
	if err := c.reap(ctx, in); err != nil {
		c.log.Warn("nova: deleting a server failed; will retry", "name", in.info.Name, "error", err)
		c.mu.Lock()
		in.busy = false
		c.mu.Unlock()
		c.wake()
	}
}

// reap deletes in's server, and any server an unfinished create may have
// made for it, and then forgets in.
func (c *Compute) reap(ctx context.Context, in *instance) error {
	name := in.info.Name
	c.mu.Lock()
	id, maybe := in.id, in.maybe
	c.mu.Unlock()
	if id != "" {
		if err := c.removeServer(ctx, name, id); err != nil {
			return err
		}
		c.mu.Lock()
		in.id = ""
		c.mu.Unlock()
	}
	if maybe {
		found, err := c.lookup(ctx, "clean up "+name, name)
		if err != nil {
			return err
		}
		for _, s := range c.mine(in, found) {
			if err := c.removeServer(ctx, name, s.ID); err != nil {
				return err
			}
		}
		c.mu.Lock()
		in.maybe = false
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.forget(in)
	c.mu.Unlock()
	return nil
}

// retryBoot replaces in's server oldID, which failed to boot, with a new
// one of the same name, once the old one is gone. The boot slot stays
// held. After a quota failure (the recheck's ERROR), it first waits for
// one of this Compute's servers to go, or a while.
func (c *Compute) retryBoot(ctx context.Context, in *instance, oldID, reason string, quota bool) {
	defer c.wg.Done()
	defer c.wake() // the poller may have gone idle meanwhile
	name := in.info.Name
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	var err error
	if quota {
		// Wait until the refused server is gone: its going frees no
		// quota for this one.
		if err = c.deleteServer(dctx, name, oldID); err == nil {
			err = c.confirmGone(dctx, name, oldID, true)
		} else if errors.Is(err, backend.ErrNotFound) {
			err = nil
		}
	} else {
		err = c.removeServer(dctx, name, oldID)
	}
	cancel()
	if err == nil && quota {
		c.mu.Lock()
		n := in.quotaErr
		freed := c.freed
		c.mu.Unlock()
		wait := max(firstBackoff, c.cfg.PollInterval) << min(n, 8)
		wait = min(wait, max(maxQuotaWait, c.cfg.PollInterval))
		c.log.Info("nova: the quota recheck refused a server; waiting", "name", name, "wait", wait)
		t := time.NewTimer(jitter(wait))
		select {
		case <-t.C:
		case <-freed: // another server of this Compute went
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		t.Stop()
	}
	var id string
	if err == nil {
		c.mu.Lock()
		in.id = ""
		c.mu.Unlock()
		id, err = c.createServer(ctx, in)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	in.busy, in.cancel = false, nil
	if err == nil {
		in.id, in.idAt, in.missed = id, time.Now(), 0
		in.boots++
	}
	if err != nil || in.stopping || c.closed {
		if err != nil && !in.stopping && !c.closed {
			c.fail(in, fmt.Sprintf("boot failed: %s; then re-creating the server failed: %v", reason, err))
		}
		c.setEnding(in, false)
		return
	}
	in.state = stBuilding
	if in.reap {
		in.reap = false
		c.setEnding(in, false)
	}
}
