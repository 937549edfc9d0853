package nova

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack/backend"
)

// Retry policy of idempotent calls (look-ups, deletes) and of creates
// whose outcome was unknown and that a look-up showed had no effect.
const (
	maxTries     = 6
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
	// maxQuotaWait caps the wait between two creates refused for quota.
	maxQuotaWait = 30 * time.Second
)

// exactName is the name filter that matches name only: Nova matches the
// filter as a regular expression anywhere in the name.
func exactName(name string) string { return "^" + regexp.QuoteMeta(name) + "$" }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// retry calls call, each time with RequestTimeout, until it succeeds or
// fails for good: a failure without a response, a 5xx or a 429 is tried
// again with backoff (or after Retry-After), up to maxTries calls. Only
// idempotent calls go through retry. It returns call's last error.
func (c *Compute) retry(ctx context.Context, call func(ctx context.Context) error) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		err := call(rctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		f := examine(err)
		if !f.ambiguous() && !f.rateLimited() || attempt >= maxTries {
			return err
		}
		wait := jitter(backoff)
		if f.retryAfter > wait {
			wait = f.retryAfter
		}
		if sleepCtx(ctx, wait) != nil {
			return err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// nameTaken reports whether a server named name exists, other than one
// this Compute deleted: one GET /servers (no details).
func (c *Compute) nameTaken(ctx context.Context, name string) (bool, error) {
	var list []servers.Server
	err := c.retry(ctx, func(ctx context.Context) error {
		pages, err := servers.ListSimple(c.client, servers.ListOpts{Name: exactName(name)}).AllPages(ctx)
		if err == nil {
			list, err = servers.ExtractServers(pages)
		}
		return err
	})
	if err != nil {
		return false, c.apiError(ctx, "look up "+name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range list {
		if _, ours := c.deleted[s.ID]; s.Name == name && !ours {
			return true, nil
		}
	}
	return false, nil
}

// lookup returns the details of the servers named exactly name that are
// not being deleted.
func (c *Compute) lookup(ctx context.Context, op, name string) ([]servers.Server, error) {
	var list []servers.Server
	err := c.retry(ctx, func(ctx context.Context) error {
		pages, err := servers.List(c.client, servers.ListOpts{Name: exactName(name)}).AllPages(ctx)
		if err == nil {
			list, err = servers.ExtractServers(pages)
		}
		return err
	})
	if err != nil {
		return nil, c.apiError(ctx, op+": look up "+name, err)
	}
	out := list[:0]
	for _, s := range list {
		if s.Name == name && !gone(&s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// gone reports whether s is being deleted or is deleted.
func gone(s *servers.Server) bool {
	return s.Status == "DELETED" || s.Status == "SOFT_DELETED" || s.TaskState == "deleting"
}

// mine returns the servers of found that belong to in (its namespace and
// PID) and that this Compute has not deleted, oldest first.
func (c *Compute) mine(in *instance, found []servers.Server) []servers.Server {
	pid := strconv.FormatInt(in.info.PID, 10)
	c.mu.Lock()
	var out []servers.Server
	for _, s := range found {
		if _, del := c.deleted[s.ID]; !del && s.Metadata[MetaNamespace] == in.info.Namespace && s.Metadata[MetaPID] == pid {
			out = append(out, s)
		}
	}
	c.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// createServer creates a server for in and returns its ID. A create
// refused for quota or rate waits and tries again; one whose outcome is
// unknown (no response, 5xx) is followed by a look-up of the name, which
// adopts the server the create made, if any, before a new create is tried.
// If ctx ends while a create is under way, in.maybe is left set: a server
// may exist.
func (c *Compute) createServer(ctx context.Context, in *instance) (string, error) {
	name := in.info.Name
	op := "start " + name + ": create"
	backoff := max(firstBackoff, c.cfg.PollInterval)
	quotaWait := backoff
	ambiguous, unstaged := 0, 0
	haveTurn := false
	defer func() {
		if haveTurn {
			<-c.quotaTurn
		}
	}()
	// What ExtraEnv adds (a one-time credential) is delivered once and
	// serves every attempt: only a booted server consumes it, and none
	// was created while this loop goes on (an ambiguous create, which may
	// have made one, drops it).
	var extra map[string]string
	for {
		if err := ctx.Err(); err != nil {
			return "", context.Cause(ctx)
		}
		var err error
		if extra == nil && c.cfg.ExtraEnv != nil {
			extra, err = c.extraEnv(ctx, in)
		}
		var opts servers.CreateOptsBuilder
		if err == nil {
			opts, err = c.serverOpts(ctx, in, extra)
		}
		if err != nil {
			// A transient failure to stage the program (or to make the
			// extra environment) is tried again here: Start owns the
			// attempts (see RetriesStart).
			if !errors.Is(err, backend.ErrTransient) || ctx.Err() != nil {
				return "", err
			}
			if unstaged++; unstaged >= maxTries {
				return "", err
			}
			c.log.Info("nova: preparing the create failed; trying again", "name", name, "error", c.redact(err.Error()))
			if err := sleepCtx(ctx, jitter(backoff)); err != nil {
				return "", err
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		c.mu.Lock()
		freed := c.freed
		c.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CreateTimeout)
		s, cerr := servers.Create(cctx, c.client, opts, nil).Extract()
		cancel()
		if cerr == nil {
			return s.ID, nil
		}
		if ctx.Err() != nil {
			c.setMaybe(in, true)
			return "", context.Cause(ctx)
		}
		f := examine(cerr)
		switch {
		case f.quota():
			// One Start at a time probes the quota; the others queue.
			if !haveTurn {
				select {
				case c.quotaTurn <- struct{}{}:
					haveTurn = true
				case <-ctx.Done():
					return "", context.Cause(ctx)
				}
			}
			c.log.Info("nova: quota exceeded; waiting", "name", name, "wait", quotaWait, "message", c.redact(f.message))
			t := time.NewTimer(jitter(quotaWait))
			select {
			case <-t.C:
			case <-freed: // a server of ours was deleted
			case <-ctx.Done():
				t.Stop()
				return "", fmt.Errorf("waiting for quota (%s): %w", c.redact(f.message), context.Cause(ctx))
			}
			t.Stop()
			quotaWait = min(2*quotaWait, max(maxQuotaWait, backoff))
		case f.rateLimited():
			wait := max(f.retryAfter, jitter(backoff))
			c.log.Info("nova: rate limited; waiting", "name", name, "wait", wait)
			if err := sleepCtx(ctx, wait); err != nil {
				return "", err
			}
		case f.ambiguous():
			extra = nil // a server that was not found may have it
			c.setMaybe(in, true)
			c.log.Info("nova: create failed, looking the name up", "name", name, "error", c.redact(f.describe()))
			found, err := c.lookup(ctx, op, name)
			if err != nil {
				return "", err
			}
			if ours := c.mine(in, found); len(ours) > 0 {
				for _, extra := range ours[1:] {
					c.log.Warn("nova: deleting a duplicate server", "name", name, "server", extra.ID)
					if err := c.deleteServer(ctx, name, extra.ID); err != nil && !errors.Is(err, backend.ErrNotFound) {
						return "", err
					}
				}
				c.setMaybe(in, false)
				return ours[0].ID, nil
			}
			c.setMaybe(in, false)
			if ambiguous++; ambiguous >= maxTries {
				return "", c.apiError(ctx, op, cerr)
			}
			if err := sleepCtx(ctx, jitter(backoff)); err != nil {
				return "", err
			}
			backoff = min(2*backoff, maxBackoff)
		default:
			if hint := f.configHint(); hint != "" {
				return "", fmt.Errorf("nova: %s: %s: %s: %w", op, c.redact(f.describe()), hint, backend.ErrInvalid)
			}
			return "", c.apiError(ctx, op, cerr)
		}
	}
}

func (c *Compute) setMaybe(in *instance, v bool) {
	c.mu.Lock()
	in.maybe = v
	c.mu.Unlock()
}

// extraEnv returns what Config.ExtraEnv adds to in's environment (never
// nil, so that the caller delivers it once).
func (c *Compute) extraEnv(ctx context.Context, in *instance) (map[string]string, error) {
	extra, err := c.cfg.ExtraEnv(ctx, in.req)
	if err != nil {
		return nil, fmt.Errorf("extra environment: %w", transientIfNetwork(err))
	}
	if extra == nil {
		extra = map[string]string{}
	}
	return extra, nil
}

// transientIfNetwork marks a network error (no answer, a reset connection)
// as backend.ErrTransient. Any other error that does not wrap ErrTransient
// stays permanent: a refused credential (403) or a missing container is
// no better at the next attempt.
func transientIfNetwork(err error) error {
	var ne net.Error
	if !errors.Is(err, backend.ErrTransient) && errors.As(err, &ne) {
		return fmt.Errorf("%w (%w)", err, backend.ErrTransient)
	}
	return err
}

// serverOpts returns the create options of in's next server: a freshly
// staged program URL in the user-data, the environment with extra, the
// metadata, and the tags.
func (c *Compute) serverOpts(ctx context.Context, in *instance, extra map[string]string) (servers.CreateOptsBuilder, error) {
	name := in.info.Name
	url, sum, err := c.stage(ctx, in.req)
	if err != nil {
		return nil, fmt.Errorf("staging the program: %w", transientIfNetwork(err))
	}
	env := in.env
	if len(extra) > 0 {
		env = maps.Clone(in.env)
		maps.Copy(env, extra)
	}
	ud, err := (&script{name: name, url: url, sha256: strings.ToLower(sum), env: env, poweroff: !c.cfg.noPowerOff}).render()
	if err != nil {
		return nil, err
	}
	if tok := c.client.ProviderClient.Token(); len(tok) >= 8 && strings.Contains(ud, tok) {
		return nil, fmt.Errorf("the user-data would hold the API token; refusing: %w", backend.ErrInvalid)
	}
	opts := in.create
	opts.UserData = []byte(base64.StdEncoding.EncodeToString([]byte(ud)))
	opts.Metadata = map[string]string{
		MetaNamespace: in.info.Namespace,
		MetaPID:       strconv.FormatInt(in.info.PID, 10),
		MetaDeleteAt:  strconv.FormatInt(time.Now().Add(c.cfg.DeleteAfter).Unix(), 10),
	}
	if in.host {
		opts.Metadata[MetaHost] = "1"
	}
	if c.tags() {
		opts.Tags = []string{TagRack, namespaceTag(in.info.Namespace), c.ownerTag}
	}
	if in.keyName != "" {
		return keypairs.CreateOptsExt{CreateOptsBuilder: opts, KeyName: in.keyName}, nil
	}
	return opts, nil
}

// stage returns the URL and SHA-256 of the program req's server boots:
// the published one its backend.ProgramOption names, or else the one
// Config.Stager stages.
func (c *Compute) stage(ctx context.Context, req *backend.StartRequest) (url, sum string, err error) {
	sum = req.Options[backend.ProgramOption]
	if sum == "" {
		return c.cfg.Stager.Stage(ctx)
	}
	ps, ok := c.cfg.Stager.(PublishedStager)
	if !ok {
		return "", "", fmt.Errorf("option %s: the stager (%T) cannot boot published programs: %w", backend.ProgramOption, c.cfg.Stager, backend.ErrInvalid)
	}
	url, err = ps.StagePublished(ctx, sum)
	return url, sum, err
}

// deleteServer asks Nova to delete server id (of instance name), retrying
// transient failures. A server already gone is backend.ErrNotFound (and
// counts as freed). A delete Nova accepted may still fail on the compute
// host, or be a soft delete: confirmGone sees it through.
func (c *Compute) deleteServer(ctx context.Context, name, id string) error {
	err := c.retry(ctx, func(ctx context.Context) error {
		return servers.Delete(ctx, c.client, id).ExtractErr()
	})
	f := apiFailure{}
	if err != nil {
		f = examine(err)
	}
	if err == nil || f.status == 404 {
		c.mu.Lock()
		c.deleted[id] = time.Now()
		c.mu.Unlock()
	}
	if f.status == 404 {
		c.signalFreed()
	}
	if err != nil {
		return c.apiError(ctx, fmt.Sprintf("delete server %s (%s)", id, name), err)
	}
	return nil
}

// signalFreed wakes the Starts waiting for quota: a server of this
// Compute is gone.
func (c *Compute) signalFreed() {
	c.mu.Lock()
	c.signalFreedLocked()
	c.mu.Unlock()
}

// signalFreedLocked is signalFreed with c.mu held.
func (c *Compute) signalFreedLocked() {
	close(c.freed)
	c.freed = make(chan struct{})
}

// removeServer deletes server id and sees the delete through: in the
// background (confirmLater), or, once the Compute is closing, only as far
// as one look (confirmGone without patience): Close does not wait minutes
// for Nova. A server already gone is not an error.
func (c *Compute) removeServer(ctx context.Context, name, id string) error {
	if err := c.deleteServer(ctx, name, id); err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		return err
	}
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.confirmLater(name, id)
	}
	c.mu.Unlock()
	if closed {
		return c.confirmGone(ctx, name, id, false)
	}
	return nil
}

// maxDeletes bounds the deletes of one server whose delete keeps failing
// on its compute host.
const maxDeletes = 4

// confirmGone follows server id, whose delete Nova accepted, until a GET
// answers 404 (one GET when the delete is quick). A server the delete left
// in ERROR (the compute host failed it, nova/compute/manager.py) or that no
// longer shows a delete under way is deleted again; a soft-deleted one
// (SOFT_DELETED, with reclaim_instance_interval > 0) still holds quota, so
// it is force-deleted (os-deferred-delete, allowed to the owner by
// default) and, if the cloud refuses, waited for until reclaimed or ctx
// ends. Only then are the Starts waiting for quota woken. Without
// patience, it returns once Nova shows the delete under way.
func (c *Compute) confirmGone(ctx context.Context, name, id string, patient bool) error {
	// A delete takes Nova seconds: look at once (a quick one is gone),
	// then after 1 s, 2 s, ... up to 30 s between looks.
	backoff := time.Second
	deletes, forced := 1, false
	for {
		var s *servers.Server
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		s, err := servers.Get(rctx, c.client, id).Extract()
		cancel()
		if err != nil {
			f := examine(err)
			if f.status == 404 {
				c.signalFreed()
				return nil
			}
			if ctx.Err() != nil || !f.ambiguous() && !f.rateLimited() {
				return c.apiError(ctx, fmt.Sprintf("delete server %s (%s): confirming it is gone", id, name), err)
			}
		} else {
			switch {
			case s.Status == "DELETED":
				c.signalFreed()
				return nil
			case s.Status == "SOFT_DELETED":
				if !forced {
					forced = true
					rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
					ferr := servers.ForceDelete(rctx, c.client, id).ExtractErr()
					cancel()
					if ferr != nil && examine(ferr).status != 404 {
						c.log.Info("nova: a soft-deleted server could not be force-deleted; waiting for it to be reclaimed",
							"name", name, "server", id, "error", c.redact(examine(ferr).describe()))
					}
					continue // look at once
				}
				if !patient {
					return nil
				}
			case s.TaskState == "deleting" || s.TaskState == "soft-deleting":
				if !patient {
					return nil
				}
			default:
				// The delete failed (ERROR) or was lost: again.
				if deletes >= maxDeletes {
					return fmt.Errorf("nova: delete server %s (%s): still %s after %d deletes (%s): %w",
						id, name, s.Status, deletes, c.redact(strings.TrimSpace(s.Fault.Message)), backend.ErrTransient)
				}
				deletes++
				c.log.Info("nova: a delete did not take; deleting again", "name", name, "server", id, "status", s.Status, "fault", s.Fault.Message)
				if err := c.deleteServer(ctx, name, id); err != nil {
					if errors.Is(err, backend.ErrNotFound) {
						return nil
					}
					return err
				}
				continue
			}
		}
		if err := sleepCtx(ctx, jitter(backoff)); err != nil {
			return fmt.Errorf("nova: delete server %s (%s): waiting for it to go: %w", id, name, err)
		}
		backoff = min(2*backoff, maxQuotaWait)
	}
}

// consoleTail returns the last lines of server id's console.
func (c *Compute) consoleTail(ctx context.Context, id string) (string, error) {
	var out string
	err := c.retry(ctx, func(ctx context.Context) error {
		var err error
		out, err = servers.ShowConsoleOutput(ctx, c.client, id, servers.ShowConsoleOutputOpts{Length: 100}).Extract()
		return err
	})
	return out, err
}
