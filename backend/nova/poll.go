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
			if in.missed++; in.missed < 2 {
				continue
			}
		}
		if s == nil || gone(s) {
			c.fail(in, fmt.Sprintf("server %s was deleted outside rack", in.id))
			c.deleted[in.id] = now
			in.id = ""
			c.forget(in)
			continue
		}
		in.missed = 0
		switch s.Status {
		case "ACTIVE":
			if in.state == stBuilding {
				in.state, in.ran = stActive, true
				c.releaseSlot(in)
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
			case in.boots <= c.cfg.BootRetries:
				ctx, cancel := context.WithCancel(c.ctx)
				in.state, in.busy, in.cancel = stRetrying, true, cancel
				c.log.Info("nova: boot failed; re-creating the server", "name", in.info.Name, "server", in.id, "reason", reason, "boots", in.boots)
				c.wg.Add(1)
				go c.retryBoot(ctx, in, in.id, reason)
			default:
				c.fail(in, fmt.Sprintf("boot failed: %s (%d attempts)", reason, in.boots))
				c.setEnding(in, false)
			}
		case "SHUTOFF":
			in.ran = true
			c.setEnding(in, true)
		}
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
			if err := c.deleteServer(ctx, name, id); err != nil && !errors.Is(err, backend.ErrNotFound) {
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
		if err := c.deleteServer(ctx, name, id); err != nil && !errors.Is(err, backend.ErrNotFound) {
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
			if err := c.deleteServer(ctx, name, s.ID); err != nil && !errors.Is(err, backend.ErrNotFound) {
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

// retryBoot replaces in's server oldID, which went ERROR before it ran,
// with a new one of the same name. The boot slot stays held.
func (c *Compute) retryBoot(ctx context.Context, in *instance, oldID, reason string) {
	defer c.wg.Done()
	name := in.info.Name
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	err := c.deleteServer(dctx, name, oldID)
	cancel()
	var id string
	if err == nil || errors.Is(err, backend.ErrNotFound) {
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
}
