package racktest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// groupRoles are the programs of the group tests: "member" forks
// grandchildren (Args[1] of them, which inherit its group) and then runs
// until signalled, reporting its pid and its ctx's cancellation cause.
type groupProbe struct {
	started chan rack.PID
	causes  chan error
}

func newGroupProbe() *groupProbe {
	return &groupProbe{started: make(chan rack.PID, 64), causes: make(chan error, 64)}
}

func (g *groupProbe) roles() pgRoles {
	return pgRoles{
		"member": func(ctx context.Context, self *rack.Self) error {
			n := 0
			if len(self.Args()) > 1 {
				n, _ = strconv.Atoi(self.Args()[1])
			}
			for i := 0; i < n; i++ {
				if _, err := self.Fork(ctx, rack.Spec{Args: []string{"member"}}); err != nil {
					return err
				}
			}
			g.started <- self.PID()
			<-ctx.Done()
			g.causes <- context.Cause(ctx)
			return ctx.Err()
		},
	}
}

// await collects n started pids.
func (g *groupProbe) await(t *testing.T, ctx context.Context, n int) []rack.PID {
	t.Helper()
	var pids []rack.PID
	for len(pids) < n {
		pids = append(pids, pgRecv(t, ctx, g.started, "members to start"))
	}
	slices.Sort(pids)
	return pids
}

func groupPIDs(t *testing.T, ctx context.Context, g *rack.Group) []rack.PID {
	t.Helper()
	ps, err := g.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pids []rack.PID
	for _, p := range ps {
		pids = append(pids, p.PID)
	}
	return pids
}

func (s *suite) testGroupMembership(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	probe := newGroupProbe()
	self := pgRoot(t, ctx, k, probe.roles())
	g, err := k.NewGroup(ctx, "workers")
	if err != nil {
		t.Fatal(err)
	}
	if g.Name() != "workers" || g.ID() < 100 {
		t.Fatalf("group %q id %d", g.Name(), g.ID())
	}
	for i := 0; i < 3; i++ {
		if _, err := self.Fork(ctx, rack.Spec{Args: []string{"member", "1"}, Group: g}); err != nil {
			t.Fatal(err)
		}
	}
	outsider, err := self.Fork(ctx, rack.Spec{Args: []string{"member", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	started := probe.await(t, ctx, 8)
	members := groupPIDs(t, ctx, g)
	if len(members) != 6 {
		t.Fatalf("group lists %v, want 3 children and their 3 children", members)
	}
	ps := pgPS(t, ctx, k)
	for _, pid := range members {
		if ps[pid].Group != g.ID() || ps[pid].State != rack.Running {
			t.Errorf("member %d: %+v", pid, ps[pid])
		}
	}
	inGroup := 0
	for _, pid := range started {
		if ps[pid].Group == g.ID() {
			inGroup++
			if !slices.Contains(members, pid) {
				t.Errorf("%d is in the group by ps, but the group does not list it", pid)
			}
		} else if ps[pid].Group != 0 {
			t.Errorf("non-member %d in group %d", pid, ps[pid].Group)
		}
	}
	if inGroup != 6 || ps[self.PID()].Group != 0 || ps[outsider.PID()].Group != 0 {
		t.Errorf("%d processes in the group; root group %d; outsider group %d", inGroup, ps[self.PID()].Group, ps[outsider.PID()].Group)
	}
	// A handle by id names the same group.
	g2, err := k.Group(ctx, g.ID())
	if err != nil || g2.ID() != g.ID() || g2.Name() != "workers" {
		t.Fatalf("k.Group = %v, %v", g2, err)
	}
	if _, err := k.Group(ctx, 99999); !errors.Is(err, rack.ErrNotFound) {
		t.Fatalf("k.Group(99999) = %v, want ErrNotFound", err)
	}
	if _, err := k.NewGroup(ctx, "a/b"); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("NewGroup(a/b) = %v, want ErrInvalid", err)
	}
	empty, err := k.NewGroup(ctx, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Wait(ctx); err != nil {
		t.Fatalf("wait on an empty group = %v", err)
	}
	if ps, err := empty.Processes(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("empty group lists %v, %v", ps, err)
	}
}

func (s *suite) testGroupWait(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	gates := map[string]chan struct{}{"ok": make(chan struct{}), "slow": make(chan struct{})}
	self := pgRoot(t, ctx, k, pgRoles{
		"ok": func(context.Context, *rack.Self) error { <-gates["ok"]; return nil },
		"fail": func(ctx context.Context, self *rack.Self) error {
			return rack.Exit(4, "four")
		},
		"slow": func(ctx context.Context, self *rack.Self) error {
			select {
			case <-gates["slow"]:
			case <-ctx.Done():
			}
			return nil
		},
	})

	t.Run("all succeed", func(t *testing.T) {
		g, err := k.NewGroup(ctx, "good")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			if _, err := self.Fork(ctx, rack.Spec{Args: []string{"ok"}, Group: g}); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error, 1)
		go func() { done <- g.Wait(ctx) }()
		close(gates["ok"])
		if err := pgRecv(t, ctx, done, "the group"); err != nil {
			t.Fatalf("group wait = %v, want nil", err)
		}
		for _, p := range pgPS(t, ctx, k) {
			if p.Group == g.ID() && p.State != rack.Exited {
				t.Errorf("group wait returned while %d is %s", p.PID, p.State)
			}
		}
	})

	t.Run("first failure, after all", func(t *testing.T) {
		g, err := k.NewGroup(ctx, "mixed")
		if err != nil {
			t.Fatal(err)
		}
		slow, err := self.Fork(ctx, rack.Spec{Args: []string{"slow"}, Group: g})
		if err != nil {
			t.Fatal(err)
		}
		fail, err := self.Fork(ctx, rack.Spec{Args: []string{"fail"}, Group: g})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- g.Wait(ctx) }()
		if ee := pgExit(t, fail.Wait(ctx)); ee.Code() != 4 {
			t.Fatal(ee)
		}
		// Give a wrong Wait the time to return early, then let the slow
		// member finish: Wait must still have been waiting for it.
		time.AfterFunc(50*time.Millisecond, func() { close(gates["slow"]) })
		err = pgRecv(t, ctx, done, "the group")
		if ee := pgExit(t, err); ee.Code() != 4 || ee.PID != fail.PID() || ee.Reason != "four" {
			t.Fatalf("group wait = %v, want the failure of %d", err, fail.PID())
		}
		if st := pgPS(t, ctx, k)[slow.PID()].State; st != rack.Exited {
			t.Fatalf("group wait returned while a member was %s", st)
		}
	})
}

func (s *suite) testGroupKill(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	probe := newGroupProbe()
	self := pgRoot(t, ctx, k, probe.roles())
	g, err := k.NewGroup(ctx, "doomed")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := self.Fork(ctx, rack.Spec{Args: []string{"member", "1"}, Group: g}); err != nil {
			t.Fatal(err)
		}
	}
	outsider, err := self.Fork(ctx, rack.Spec{Args: []string{"member"}})
	if err != nil {
		t.Fatal(err)
	}
	probe.await(t, ctx, 7)
	members := groupPIDs(t, ctx, g)
	if len(members) != 6 {
		t.Fatalf("members %v", members)
	}
	if err := g.Kill(ctx); err != nil {
		t.Fatalf("group kill: %v", err)
	}
	for _, pid := range members {
		h, err := k.Process(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if ee := pgExit(t, h.Wait(ctx)); ee.Signal() != rack.SIGKILL {
			t.Errorf("member %d: %v", pid, ee)
		}
	}
	if ee := pgExit(t, g.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Errorf("group wait after kill: %v", ee)
	}
	ps := pgPS(t, ctx, k)
	if ps[outsider.PID()].State != rack.Running || ps[self.PID()].State != rack.Running {
		t.Fatalf("group kill hit non-members: outsider %s, root %s", ps[outsider.PID()].State, ps[self.PID()].State)
	}
	// Killing an ended group is not an error.
	if err := g.Kill(ctx); err != nil {
		t.Fatalf("second group kill: %v", err)
	}
}

func (s *suite) testGroupSignal(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	probe := newGroupProbe()
	self := pgRoot(t, ctx, k, probe.roles())
	g, err := k.NewGroup(ctx, "terminated")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := self.Fork(ctx, rack.Spec{Args: []string{"member", "1"}, Group: g}); err != nil {
			t.Fatal(err)
		}
	}
	probe.await(t, ctx, 6)
	if err := g.Signal(ctx, rack.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		if cause := pgRecv(t, ctx, probe.causes, "members' ctx cancellation"); cause != rack.SIGTERM {
			t.Errorf("member cause %v, want SIGTERM", cause)
		}
	}
	if ee := pgExit(t, g.Wait(ctx)); ee.Signal() != rack.SIGTERM {
		t.Fatalf("group wait = %v, want exit by SIGTERM", ee)
	}
	for _, p := range pgPS(t, ctx, k) {
		if p.Group == g.ID() && (p.State != rack.Exited || p.Signal != rack.SIGTERM) {
			t.Errorf("member after SIGTERM: %+v", p)
		}
	}
}

func (s *suite) testGroupAcrossKernels(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	url := s.sharedName(t)
	ka := s.pgOpen(t, url)
	kb := s.pgOpen(t, url)
	probe := newGroupProbe()
	self := pgRoot(t, ctx, ka, probe.roles())
	g, err := ka.NewGroup(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := self.Fork(ctx, rack.Spec{Args: []string{"member", "1"}, Group: g}); err != nil {
			t.Fatal(err)
		}
	}
	probe.await(t, ctx, 4)
	gb, err := kb.Group(ctx, g.ID())
	if err != nil {
		t.Fatal(err)
	}
	if gb.Name() != "shared" {
		t.Fatalf("B's group name %q", gb.Name())
	}
	// A group of another kernel cannot be forked into.
	if _, err := self.Fork(ctx, rack.Spec{Args: []string{"member"}, Group: gb}); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("fork into B's handle = %v, want ErrInvalid", err)
	}
	if got, want := groupPIDs(t, ctx, gb), groupPIDs(t, ctx, g); !slices.Equal(got, want) || len(got) != 4 {
		t.Fatalf("B lists %v, A lists %v", got, want)
	}
	if err := gb.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, g.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("A: group wait after B's kill = %v", ee)
	}
	if ee := pgExit(t, gb.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("B: group wait after its kill = %v", ee)
	}
}
