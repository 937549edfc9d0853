package rack

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Group is a process group: fork into it with Spec.Group, then wait on,
// signal and list its members as one. Children inherit their parent's
// group.
type Group struct {
	k    *Kernel
	gid  PID
	name string
}

// groups remembers, per kernel, the groups it knows and the members it
// forked, so that its own members never depend on a listing.
type groupState struct {
	mu      sync.Mutex
	members map[PID]map[PID]struct{}
	names   map[PID]string
}

// NewGroup creates a group named name (shown by ps).
func (k *Kernel) NewGroup(ctx context.Context, name string) (*Group, error) {
	if err := validName("group name", name); err != nil {
		return nil, fmt.Errorf("rack: new group: %w", err)
	}
	if k.isClosed() {
		return nil, fmt.Errorf("rack: new group: %w", ErrClosed)
	}
	gid, err := k.pids.alloc(ctx)
	if err != nil {
		return nil, fmt.Errorf("rack: new group: %w", err)
	}
	rec := record.Group{GID: int64(gid), Name: name, Created: time.Now().UTC()}
	if err := k.ns.put(ctx, record.GroupKey(int64(gid)), record.Encode(rec), true); err != nil {
		return nil, fmt.Errorf("rack: new group %s: %w", name, err)
	}
	k.groups.mu.Lock()
	k.groups.names[gid] = name
	k.groups.mu.Unlock()
	return &Group{k: k, gid: gid, name: name}, nil
}

// Group returns a handle to the group gid of the namespace.
func (k *Kernel) Group(ctx context.Context, gid PID) (*Group, error) {
	if g := k.groupHandle(gid); g.name != "" {
		return g, nil
	}
	var rec record.Group
	err := k.ns.getRecord(ctx, record.GroupKey(int64(gid)), &rec)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, fmt.Errorf("rack: group %d: %w", gid, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("rack: group %d: %w", gid, err)
	}
	k.groups.mu.Lock()
	k.groups.names[gid] = rec.Name
	k.groups.mu.Unlock()
	return &Group{k: k, gid: gid, name: rec.Name}, nil
}

func (k *Kernel) groupHandle(gid PID) *Group {
	k.groups.mu.Lock()
	defer k.groups.mu.Unlock()
	return &Group{k: k, gid: gid, name: k.groups.names[gid]}
}

func (k *Kernel) addMember(gid, pid PID) {
	k.groups.mu.Lock()
	defer k.groups.mu.Unlock()
	m := k.groups.members[gid]
	if m == nil {
		m = make(map[PID]struct{})
		k.groups.members[gid] = m
	}
	m[pid] = struct{}{}
}

// ID returns the group id.
func (g *Group) ID() PID { return g.gid }

// Name returns the group's name ("" if this kernel has not read it).
func (g *Group) Name() string { return g.name }

// members returns the group's pids: those this kernel forked, plus those
// the store's listing shows (forked elsewhere).
func (g *Group) members(ctx context.Context) ([]PID, error) {
	if g.k.isClosed() {
		return nil, ErrClosed
	}
	listed, err := g.k.ns.listPIDs(ctx, record.GroupMembers(int64(g.gid)))
	if err != nil {
		return nil, err
	}
	set := make(map[PID]struct{}, len(listed))
	for _, p := range listed {
		set[p] = struct{}{}
	}
	g.k.groups.mu.Lock()
	for p := range g.k.groups.members[g.gid] {
		set[p] = struct{}{}
	}
	g.k.groups.mu.Unlock()
	out := make([]PID, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// groupListingThreshold is the group size from which ps of a group reads
// the namespace's listings rather than a few records per member.
const groupListingThreshold = 16

// Processes lists the group's members (ps for the group).
func (g *Group) Processes(ctx context.Context) ([]ProcessInfo, error) {
	pids, err := g.members(ctx)
	if err != nil {
		return nil, fmt.Errorf("rack: group %d: %w", g.gid, err)
	}
	v := &psView{k: g.k}
	if len(pids) > groupListingThreshold {
		if err := v.listAll(ctx); err != nil {
			return nil, fmt.Errorf("rack: group %d: %w", g.gid, err)
		}
	}
	return v.infos(ctx, pids)
}

// Wait waits until every member has exited, including members forked while
// it waits, and returns the first failure it saw (nil if all succeeded).
func (g *Group) Wait(ctx context.Context) error {
	waited := make(map[PID]bool)
	var first error
	for {
		pids, err := g.members(ctx)
		if err != nil {
			return fmt.Errorf("rack: group %d: %w", g.gid, err)
		}
		var todo []PID
		for _, p := range pids {
			if !waited[p] {
				todo = append(todo, p)
			}
		}
		if len(todo) == 0 {
			return first
		}
		errs := make(chan error, len(todo))
		for _, pid := range todo {
			waited[pid] = true
			go func() {
				p, err := g.k.Process(ctx, pid)
				if err == nil {
					err = p.Wait(ctx)
				}
				errs <- err
			}()
		}
		for range todo {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("rack: group %d: wait: %w", g.gid, context.Cause(ctx))
		}
	}
}

// Signal sends sig to every member still running.
func (g *Group) Signal(ctx context.Context, sig Signal) error {
	pids, err := g.members(ctx)
	if err != nil {
		return fmt.Errorf("rack: group %d: %w", g.gid, err)
	}
	var errs []error
	for _, pid := range pids {
		p, err := g.k.Process(ctx, pid)
		if err == nil {
			err = p.Signal(ctx, sig)
		}
		if err != nil && !errors.Is(err, ErrFinished) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Kill sends SIGKILL to every member.
func (g *Group) Kill(ctx context.Context) error { return g.Signal(ctx, SIGKILL) }
