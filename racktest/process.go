package racktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/testkit"
)

// Helpers shared by process.go and group.go. They are prefixed pg so as
// not to collide with those of pipe.go.

// pgCtx bounds a test, so that a bug fails it instead of hanging it.
func (s *suite) pgCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.deadline(d))
	t.Cleanup(cancel)
	return ctx
}

// pgRoles is one program made of roles (testkit.Roles): a process runs
// the role its first argument names.
type pgRoles = testkit.Roles

// pgRoot starts a root process running roles and hands the test its self
// handle (testkit.Root).
var pgRoot = testkit.Root

// pgRecv receives from ch or fails the test when ctx ends first.
func pgRecv[T any](t testing.TB, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// pgExit asserts that err is an *ExitError and returns it.
func pgExit(t testing.TB, err error) *rack.ExitError {
	t.Helper()
	var ee *rack.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v (%T), want an *rack.ExitError", err, err)
	}
	return ee
}

// pgPS returns ps as a map by pid.
func pgPS(t testing.TB, ctx context.Context, k *rack.Kernel) map[rack.PID]rack.ProcessInfo {
	t.Helper()
	ps, err := k.Processes(ctx)
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	m := make(map[rack.PID]rack.ProcessInfo, len(ps))
	for _, p := range ps {
		if _, dup := m[p.PID]; dup {
			t.Fatalf("ps lists pid %d twice", p.PID)
		}
		m[p.PID] = p
	}
	return m
}

// blockOnCtx is a role that runs until signalled and exits as the signal
// says.
func blockOnCtx(ctx context.Context, self *rack.Self) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *suite) testExitCodes(t *testing.T) {
	ctx := s.pgCtx(t, 20*time.Second)
	k := s.pgKernel(t)
	// The stderr of "tail": 10,000+ bytes in writes of varied sizes,
	// including one larger than the 4 KiB tail.
	var written bytes.Buffer
	for i := 0; written.Len() < 6000; i++ {
		fmt.Fprintf(&written, "line %d of the stderr tail test\n", i)
	}
	written.WriteString(strings.Repeat("0123456789abcdef", 300)) // 4800 bytes in one write
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&written, "last %d\n", i)
	}
	self := pgRoot(t, ctx, k, pgRoles{
		"nil":    func(context.Context, *rack.Self) error { return nil },
		"error":  func(context.Context, *rack.Self) error { return errors.New("disk on fire") },
		"panic":  func(context.Context, *rack.Self) error { panic("kaboom-7f3a") },
		"exit3":  func(context.Context, *rack.Self) error { return rack.Exit(3) },
		"exit0":  func(context.Context, *rack.Self) error { return rack.Exit(0) },
		"exit5":  func(context.Context, *rack.Self) error { return fmt.Errorf("wrapped: %w", rack.Exit(5, "five")) },
		"goexit": func(context.Context, *rack.Self) error { runtime.Goexit(); return nil },
		"tail": func(ctx context.Context, self *rack.Self) error {
			data := written.Bytes()
			for off, n := 0, 1; off < len(data); n = n*3 + 1 {
				if n > 5000 {
					n = 1
				}
				// The 4800-byte run goes out in one write.
				if i := bytes.Index(data[off:], []byte("0123456789abcdef")); i == 0 {
					n = 4800
				} else if i > 0 {
					n = min(n, i)
				}
				end := min(off+n, len(data))
				if _, err := self.Stderr().Write(data[off:end]); err != nil {
					return err
				}
				off = end
			}
			return errors.New("failed after writing")
		},
	})
	fork := func(role string) *rack.Process {
		t.Helper()
		c, err := self.Fork(ctx, rack.Spec{Name: role, Args: []string{role}})
		if err != nil {
			t.Fatalf("fork %s: %v", role, err)
		}
		return c
	}

	t.Run("nil", func(t *testing.T) {
		if err := fork("nil").Wait(ctx); err != nil {
			t.Fatalf("wait = %v, want nil", err)
		}
		if err := fork("exit0").Wait(ctx); err != nil {
			t.Fatalf("Exit(0): wait = %v, want nil", err)
		}
	})
	t.Run("error", func(t *testing.T) {
		c := fork("error")
		ee := pgExit(t, c.Wait(ctx))
		if ee.Code() != 1 || ee.Signal() != 0 || ee.Reason != "disk on fire" {
			t.Fatalf("code %d signal %v reason %q, want 1, 0, %q", ee.Code(), ee.Signal(), ee.Reason, "disk on fire")
		}
		if ee.PID != c.PID() || ee.Name != "error" {
			t.Fatalf("ExitError names %s[%d], want error[%d]", ee.Name, ee.PID, c.PID())
		}
		if !strings.Contains(ee.Error(), "disk on fire") {
			t.Fatalf("Error() = %q lacks the reason", ee.Error())
		}
	})
	t.Run("panic", func(t *testing.T) {
		ee := pgExit(t, fork("panic").Wait(ctx))
		if ee.Code() != 2 || ee.Signal() != 0 {
			t.Fatalf("code %d signal %v, want 2, 0", ee.Code(), ee.Signal())
		}
		if !strings.Contains(ee.Reason, "kaboom-7f3a") {
			t.Errorf("reason %q lacks the panic value", ee.Reason)
		}
		if !strings.Contains(ee.Stderr, "kaboom-7f3a") {
			t.Errorf("stderr lacks the panic value:\n%s", ee.Stderr)
		}
		if !strings.Contains(ee.Stderr, "goroutine ") || !strings.Contains(ee.Stderr, "racktest/process.go") {
			t.Errorf("stderr lacks a goroutine stack through the program:\n%s", ee.Stderr)
		}
	})
	t.Run("exit3", func(t *testing.T) {
		ee := pgExit(t, fork("exit3").Wait(ctx))
		if ee.Code() != 3 || ee.Signal() != 0 {
			t.Fatalf("code %d signal %v, want 3, 0", ee.Code(), ee.Signal())
		}
		ee = pgExit(t, fork("exit5").Wait(ctx))
		if ee.Code() != 5 || ee.Reason != "five" {
			t.Fatalf("wrapped Exit(5, five): code %d reason %q", ee.Code(), ee.Reason)
		}
	})
	t.Run("goexit", func(t *testing.T) {
		// runtime.Goexit (what t.FailNow does) neither returns nor
		// panics: the process still ends, abnormally, instead of hanging
		// its waiters.
		ee := pgExit(t, fork("goexit").Wait(ctx))
		if ee.Code() != 2 || ee.Signal() != 0 || !strings.Contains(ee.Reason, "Goexit") {
			t.Fatalf("code %d signal %v reason %q, want 2, 0, a reason naming Goexit", ee.Code(), ee.Signal(), ee.Reason)
		}
	})
	t.Run("stderr tail", func(t *testing.T) {
		ee := pgExit(t, fork("tail").Wait(ctx))
		if ee.Code() != 1 || ee.Reason != "failed after writing" {
			t.Fatalf("code %d reason %q", ee.Code(), ee.Reason)
		}
		all := written.String()
		if want := all[len(all)-4096:]; ee.Stderr != want {
			t.Fatalf("stderr tail is %d bytes ending %q, want the last 4096 bytes ending %q",
				len(ee.Stderr), ee.Stderr[max(0, len(ee.Stderr)-40):], want[len(want)-40:])
		}
	})
	t.Run("ps", func(t *testing.T) {
		want := map[string]int{"nil": 0, "error": 1, "panic": 2, "exit3": 3, "exit0": 0, "exit5": 5, "tail": 1, "goexit": 2}
		seen := 0
		for _, p := range pgPS(t, ctx, k) {
			code, ok := want[p.Name]
			if !ok {
				continue
			}
			seen++
			if p.State != rack.Exited || p.ExitCode != code || p.Signal != 0 || p.PPID != self.PID() {
				t.Errorf("ps %s: state %s code %d signal %v ppid %d, want exited %d 0 %d",
					p.Name, p.State, p.ExitCode, p.Signal, p.PPID, code, self.PID())
			}
		}
		if seen != len(want) {
			t.Errorf("ps shows %d of the %d children", seen, len(want))
		}
	})
}

func (s *suite) testWaitFromManyGoroutines(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	release := make(chan struct{})
	self := pgRoot(t, ctx, k, pgRoles{
		"seven": func(ctx context.Context, self *rack.Self) error {
			<-release
			return rack.Exit(7, "seven")
		},
	})
	c, err := self.Fork(ctx, rack.Spec{Args: []string{"seven"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := k.Process(ctx, c.PID())
	if err != nil {
		t.Fatal(err)
	}
	if other.PID() != c.PID() || other.PPID() != self.PID() {
		t.Fatalf("k.Process handle is %d (ppid %d), want %d (ppid %d)", other.PID(), other.PPID(), c.PID(), self.PID())
	}
	const n = 16
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		go func() { errs <- c.Wait(ctx) }()
		go func() { errs <- other.Wait(ctx) }()
	}
	close(release)
	for i := 0; i < 2*n; i++ {
		err := pgRecv(t, ctx, errs, "a waiter")
		ee := pgExit(t, err)
		if ee.Code() != 7 || ee.Reason != "seven" || ee.PID != c.PID() {
			t.Fatalf("waiter %d: %v, want exit 7 (seven) of %d", i, err, c.PID())
		}
	}
	// Waiting again, on either handle, gives the same result.
	for _, h := range []*rack.Process{c, other} {
		if ee := pgExit(t, h.Wait(ctx)); ee.Code() != 7 {
			t.Fatalf("second wait: code %d", ee.Code())
		}
	}
}

func (s *suite) testWaitCancelled(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	self := pgRoot(t, ctx, k, pgRoles{"block": blockOnCtx})
	c, err := self.Fork(ctx, rack.Spec{Args: []string{"block"}})
	if err != nil {
		t.Fatal(err)
	}
	// Already cancelled.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	if err := c.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with a cancelled ctx = %v, want context.Canceled", err)
	}
	// Cancelled while waiting.
	cctx, cancel = context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := c.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait cancelled midway = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cancelled waits took %v", d)
	}
	// A deadline is reported as such.
	dctx, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if err := c.Wait(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past a deadline = %v, want context.DeadlineExceeded", err)
	}
	// The process is unaffected by its waiters giving up.
	if st := pgPS(t, ctx, k)[c.PID()].State; st != rack.Running {
		t.Fatalf("state after cancelled waits = %s, want running", st)
	}
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, c.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("after kill: %v", ee)
	}
}

func (s *suite) testSIGTERMCancelsContext(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	causes := make(chan error, 1)
	ready := make(chan struct{})
	self := pgRoot(t, ctx, k, pgRoles{
		"term": func(ctx context.Context, self *rack.Self) error {
			close(ready)
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		},
	})
	c, err := self.Fork(ctx, rack.Spec{Args: []string{"term"}})
	if err != nil {
		t.Fatal(err)
	}
	pgRecv(t, ctx, ready, "the child to start")
	if err := c.Signal(ctx, rack.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cause := pgRecv(t, ctx, causes, "the child's ctx to be cancelled")
	if cause != rack.SIGTERM {
		t.Fatalf("context.Cause = %v (%T), want rack.SIGTERM", cause, cause)
	}
	ee := pgExit(t, c.Wait(ctx))
	if ee.Signal() != rack.SIGTERM || ee.Code() != 128+15 {
		t.Fatalf("exit: signal %v code %d, want SIGTERM 143", ee.Signal(), ee.Code())
	}
	info := pgPS(t, ctx, k)[c.PID()]
	if info.State != rack.Exited || info.Signal != rack.SIGTERM || info.ExitCode != 143 {
		t.Fatalf("ps: %+v", info)
	}
	// Signalling an ended process says so.
	if err := c.Signal(ctx, rack.SIGTERM); !errors.Is(err, rack.ErrFinished) {
		t.Fatalf("signal after exit = %v, want ErrFinished", err)
	}
	if err := c.Signal(ctx, rack.Signal(99)); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("signal 99 = %v, want ErrInvalid", err)
	}
}

func (s *suite) testSIGTERMEscalatesAfterGrace(t *testing.T) {
	const grace = 100 * time.Millisecond
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t, rack.WithGracePeriod(grace))
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	causes := make(chan error, 1)
	ready := make(chan struct{})
	self := pgRoot(t, ctx, k, pgRoles{
		"stubborn": func(ctx context.Context, self *rack.Self) error {
			close(ready)
			go func() { <-ctx.Done(); causes <- context.Cause(ctx) }()
			<-stuck // ignores its ctx
			return nil
		},
	})
	c, err := self.Fork(ctx, rack.Spec{Args: []string{"stubborn"}})
	if err != nil {
		t.Fatal(err)
	}
	pgRecv(t, ctx, ready, "the child to start")
	start := time.Now()
	if err := c.Signal(ctx, rack.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if cause := pgRecv(t, ctx, causes, "ctx cancellation"); cause != rack.SIGTERM {
		t.Fatalf("first cause = %v, want SIGTERM", cause)
	}
	ee := pgExit(t, c.Wait(ctx))
	elapsed := time.Since(start)
	if ee.Signal() != rack.SIGKILL || ee.Code() != 128+9 {
		t.Fatalf("exit: signal %v code %d, want SIGKILL 137", ee.Signal(), ee.Code())
	}
	if elapsed < grace {
		t.Fatalf("killed after %v, before the %v grace period", elapsed, grace)
	}
	t.Logf("SIGTERM escalated to SIGKILL after %v (grace %v)", elapsed, grace)
}

func (s *suite) testNotify(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t, rack.WithGracePeriod(50*time.Millisecond))
	type report struct {
		got     []rack.Signal
		ctxErr  error
		killErr error
	}
	reports := make(chan report, 1)
	ready := make(chan struct{})
	stopped := make(chan struct{})
	self := pgRoot(t, ctx, k, pgRoles{
		"catcher": func(pctx context.Context, self *rack.Self) error {
			var r report
			r.killErr = self.Notify(make(chan rack.Signal, 1), rack.SIGKILL)
			ch := make(chan rack.Signal, 4)
			if err := self.Notify(ch, rack.SIGUSR1, rack.SIGTERM); err != nil {
				return err
			}
			close(ready)
			for len(r.got) < 2 {
				select {
				case s := <-ch:
					r.got = append(r.got, s)
				case <-ctx.Done(): // the test's ctx: bounded
					return ctx.Err()
				}
			}
			r.ctxErr = pctx.Err()
			// Back to the default: SIGTERM now cancels the ctx.
			self.StopNotify(ch)
			reports <- r
			close(stopped)
			<-pctx.Done()
			return pctx.Err()
		},
	})
	c, err := self.Fork(ctx, rack.Spec{Args: []string{"catcher"}})
	if err != nil {
		t.Fatal(err)
	}
	pgRecv(t, ctx, ready, "Notify")
	if err := c.Signal(ctx, rack.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(ctx, rack.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := pgRecv(t, ctx, reports, "the signals to arrive")
	if !slices.Equal(r.got, []rack.Signal{rack.SIGUSR1, rack.SIGTERM}) {
		t.Errorf("received %v, want [SIGUSR1 SIGTERM]", r.got)
	}
	if r.ctxErr != nil {
		t.Errorf("ctx cancelled by notified signals: %v", r.ctxErr)
	}
	if !errors.Is(r.killErr, rack.ErrInvalid) {
		t.Errorf("Notify(SIGKILL) = %v, want ErrInvalid", r.killErr)
	}
	// A caught SIGTERM must not have armed the SIGKILL escalation: the
	// process is still running well after the grace period.
	pgRecv(t, ctx, stopped, "StopNotify")
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caught SIGTERM ended the process: %v", err)
	}
	if err := c.Signal(ctx, rack.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, c.Wait(ctx)); ee.Signal() != rack.SIGTERM {
		t.Fatalf("SIGTERM after StopNotify: %v, want exit by SIGTERM", ee)
	}
}

func (s *suite) testKillSubtree(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	type started struct {
		role string
		pid  rack.PID
		ppid rack.PID
	}
	startedc := make(chan started, 64)
	announce := func(self *rack.Self) {
		startedc <- started{self.Args()[0], self.PID(), self.PPID()}
	}
	self := pgRoot(t, ctx, k, pgRoles{
		"P": func(pctx context.Context, self *rack.Self) error {
			for i := 0; i < 3; i++ {
				if _, err := self.Fork(pctx, rack.Spec{Args: []string{"C", strconv.Itoa(i)}}); err != nil {
					return err
				}
			}
			if _, err := self.Fork(pctx, rack.Spec{Args: []string{"D"}, Detached: true}); err != nil {
				return err
			}
			announce(self)
			return blockOnCtx(pctx, self)
		},
		"C": func(pctx context.Context, self *rack.Self) error {
			for i := 0; i < 2; i++ {
				if _, err := self.Fork(pctx, rack.Spec{Args: []string{"G", strconv.Itoa(i)}}); err != nil {
					return err
				}
			}
			announce(self)
			return blockOnCtx(pctx, self)
		},
		"G": func(pctx context.Context, self *rack.Self) error { announce(self); return blockOnCtx(pctx, self) },
		"D": func(pctx context.Context, self *rack.Self) error { announce(self); return blockOnCtx(pctx, self) },
	})
	p, err := self.Fork(ctx, rack.Spec{Args: []string{"P"}})
	if err != nil {
		t.Fatal(err)
	}
	procs := map[rack.PID]started{}
	var detached rack.PID
	for len(procs) < 1+3+6+1 {
		s := pgRecv(t, ctx, (<-chan started)(startedc), "the tree to start")
		procs[s.pid] = s
		if s.role == "D" {
			detached = s.pid
		}
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	ps := pgPS(t, ctx, k)
	for pid, s := range procs {
		if pid == detached {
			continue
		}
		h, err := k.Process(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		if ee := pgExit(t, h.Wait(ctx)); ee.Signal() != rack.SIGKILL {
			t.Errorf("%s[%d]: %v, want killed by SIGKILL", s.role, pid, ee)
		}
		info := ps[pid]
		if info.State != rack.Exited || info.Signal != rack.SIGKILL || info.Ended.IsZero() {
			t.Errorf("ps %s[%d]: %+v", s.role, pid, info)
		}
		if pid == p.PID() {
			continue
		}
		parent := ps[s.ppid]
		if info.Ended.After(parent.Ended) {
			t.Errorf("%s[%d] ended at %v, after its parent %d at %v (leaves first)",
				s.role, pid, info.Ended, s.ppid, parent.Ended)
		}
	}
	// The detached child survived its parent's kill.
	if info := ps[detached]; info.State != rack.Running || info.PPID != p.PID() {
		t.Fatalf("detached child: %+v, want running with ppid %d", info, p.PID())
	}
	d, err := k.Process(ctx, detached)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, d.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("detached after kill: %v", ee)
	}
	// The root, the killed subtree's parent, is untouched.
	if st := pgPS(t, ctx, k)[self.PID()].State; st != rack.Running {
		t.Fatalf("root state %s after killing its child's subtree", st)
	}
}

// A process that exits cleanly as soon as its ctx is cancelled was still
// killed: Kill's verdict must not lose a race with its return.
func (s *suite) testKillBeatsCleanReturn(t *testing.T) {
	ctx := s.pgCtx(t, 20*time.Second)
	k := s.pgKernel(t)
	ready := make(chan struct{}, 1)
	self := pgRoot(t, ctx, k, pgRoles{
		"quitter": func(ctx context.Context, self *rack.Self) error {
			ready <- struct{}{}
			<-ctx.Done()
			return nil // or a panic: either way it was killed first
		},
		"panicker": func(ctx context.Context, self *rack.Self) error {
			ready <- struct{}{}
			<-ctx.Done()
			panic("after the kill")
		},
	})
	for i := 0; i < 200; i++ {
		role := []string{"quitter", "panicker"}[i%2]
		c, err := self.Fork(ctx, rack.Spec{Args: []string{role}})
		if err != nil {
			t.Fatal(err)
		}
		pgRecv(t, ctx, ready, "the child to start")
		if err := c.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		err = c.Wait(ctx)
		var ee *rack.ExitError
		if !errors.As(err, &ee) || ee.Signal() != rack.SIGKILL || ee.Code() != 137 {
			t.Fatalf("%s %d: wait after kill = %v, want killed by SIGKILL", role, i, err)
		}
	}
}

// A parent killed while it forks must not leave a child running: the
// subtree is taken whole, including a fork in flight.
func (s *suite) testKillWhileForking(t *testing.T) {
	ctx := s.pgCtx(t, 20*time.Second)
	k := s.pgKernel(t)
	forked := make(chan struct{}, 1)
	self := pgRoot(t, ctx, k, pgRoles{
		"spawner": func(pctx context.Context, self *rack.Self) error {
			for i := 0; ; i++ {
				if _, err := self.Fork(context.Background(), rack.Spec{Args: []string{"child"}}); err != nil {
					return err // ignores pctx: only the fence stops it
				}
				if i == 10 {
					forked <- struct{}{}
				}
			}
		},
		"child": blockOnCtx,
	})
	for round := 0; round < 20; round++ {
		p, err := self.Fork(ctx, rack.Spec{Args: []string{"spawner"}})
		if err != nil {
			t.Fatal(err)
		}
		pgRecv(t, ctx, forked, "the spawner to fork")
		if err := p.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		// The spawner's Fork failing (ErrKilled) made it return an error
		// before the kill finished: that must not count as its exit.
		if ee := pgExit(t, p.Wait(ctx)); ee.Signal() != rack.SIGKILL {
			t.Fatalf("round %d: the killed spawner: %v, want killed by SIGKILL", round, ee)
		}
		// Once Kill returned, no child of the killed parent may run, now or
		// later: a fork that was in flight must be reaped too.
		kids := 0
		ps := pgPS(t, ctx, k)
		for _, info := range ps {
			if info.PPID != p.PID() {
				continue
			}
			kids++
			if info.State == rack.Exited && info.Ended.After(ps[p.PID()].Ended) {
				t.Errorf("round %d: child %d ended after its killed parent", round, info.PID)
			}
			h, err := k.Process(ctx, info.PID)
			if err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = h.Wait(wctx)
			cancel()
			var ee *rack.ExitError
			if !(errors.As(err, &ee) && ee.Signal() == rack.SIGKILL) && !errors.Is(err, rack.ErrLost) {
				t.Fatalf("round %d: child %d of the killed parent: wait = %v, want killed (or lost)", round, info.PID, err)
			}
		}
		if kids < 11 {
			t.Fatalf("round %d: ps shows %d children", round, kids)
		}
	}
}

func (s *suite) testKilledProcessWritesAreFenced(t *testing.T) {
	ctx := s.pgCtx(t, 15*time.Second)
	k := s.pgKernel(t)
	var acked atomic.Int64
	reached := make(chan struct{})
	type fenced struct{ stdout, pipe, status, fork, close error }
	results := make(chan fenced, 1)
	pattern := func(off int64) byte { return byte(off % 251) }
	self := pgRoot(t, ctx, k, pgRoles{
		"writer": func(pctx context.Context, self *rack.Self) error {
			_, own, err := self.Pipe(pctx)
			if err != nil {
				return err
			}
			var once sync.Once
			chunk := make([]byte, 1000)
			for {
				off := acked.Load()
				for i := range chunk {
					chunk[i] = pattern(off + int64(i))
				}
				n, err := self.Stdout().Write(chunk) // ignores pctx
				if err != nil {
					var f fenced
					f.stdout = err
					_, f.pipe = own.Write([]byte("more"))
					f.close = own.Close()
					f.status = self.SetStatus(context.Background(), "still here")
					_, f.fork = self.Fork(context.Background(), rack.Spec{Args: []string{"never"}})
					results <- f
					return err
				}
				if n != len(chunk) {
					return fmt.Errorf("short write %d", n)
				}
				if acked.Add(int64(n)) >= 256<<10 {
					once.Do(func() { close(reached) })
				}
			}
		},
	})
	r, w, err := self.Pipe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := self.Fork(ctx, rack.Spec{Args: []string{"writer"}, Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	type readResult struct {
		data []byte
		err  error
	}
	readc := make(chan readResult, 1)
	go func() {
		data, err := io.ReadAll(r)
		readc <- readResult{data, err}
	}()
	t.Cleanup(func() { _ = r.Close() }) // unblocks the reader if the test fails
	pgRecv(t, ctx, reached, "256 KiB acknowledged")
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	f := pgRecv(t, ctx, results, "the killed child's next write to fail")
	for name, err := range map[string]error{"stdout write": f.stdout, "own pipe write": f.pipe,
		"own pipe close": f.close, "SetStatus": f.status, "Fork": f.fork} {
		if !errors.Is(err, rack.ErrKilled) {
			t.Errorf("%s after kill = %v, want ErrKilled", name, err)
		}
	}
	res := pgRecv(t, ctx, readc, "the reader to reach EOF")
	if res.err != nil {
		t.Fatalf("read: %v", res.err)
	}
	if got, want := int64(len(res.data)), acked.Load(); got != want {
		t.Fatalf("reader got %d bytes, the killed writer had %d acknowledged", got, want)
	}
	for i, b := range res.data {
		if b != pattern(int64(i)) {
			t.Fatalf("byte %d is %d, want %d", i, b, pattern(int64(i)))
		}
	}
	if ee := pgExit(t, c.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("exit %v", ee)
	}
	t.Logf("%d bytes acknowledged and delivered", len(res.data))
}

func (s *suite) testCrossKernel(t *testing.T) {
	ctx := s.pgCtx(t, 15*time.Second)
	url := s.sharedName(t)
	ka := s.pgOpen(t, url)
	kb := s.pgOpen(t, url)
	if ka.ID() == kb.ID() {
		t.Fatal("two kernels share an id")
	}
	causes := make(chan error, 1)
	self := pgRoot(t, ctx, ka, pgRoles{
		"block": blockOnCtx,
		"term": func(ctx context.Context, self *rack.Self) error {
			if err := self.SetStatus(ctx, "waiting for TERM"); err != nil {
				return err
			}
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return ctx.Err()
		},
		"exit5": func(context.Context, *rack.Self) error { return rack.Exit(5, "five") },
	})
	blocker, err := self.Fork(ctx, rack.Spec{Name: "blocker", Args: []string{"block", "x"}})
	if err != nil {
		t.Fatal(err)
	}
	// B gets a handle to a process that A forked.
	hb, err := kb.Process(ctx, blocker.PID())
	if err != nil {
		t.Fatal(err)
	}
	if hb.PPID() != self.PID() || hb.Name() != "blocker" || !slices.Equal(hb.Args(), []string{"block", "x"}) {
		t.Fatalf("B's handle: %v ppid %d args %q", hb, hb.PPID(), hb.Args())
	}
	if _, err := kb.Process(ctx, 99999); !errors.Is(err, rack.ErrNotFound) {
		t.Fatalf("B: Process(99999) = %v, want ErrNotFound", err)
	}
	// B's Wait works through the store, and honours its ctx.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := hb.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("B: wait on a running process = %v, want DeadlineExceeded", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if err := hb.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("B: wait with a cancelled ctx = %v, want context.Canceled", err)
	}
	five, err := self.Fork(ctx, rack.Spec{Args: []string{"exit5"}})
	if err != nil {
		t.Fatal(err)
	}
	h5, err := kb.Process(ctx, five.PID())
	if err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, h5.Wait(ctx)); ee.Code() != 5 || ee.Reason != "five" {
		t.Fatalf("B: wait = %v, want exit 5", ee)
	}
	// ps from B lists A's processes, with status.
	term, err := self.Fork(ctx, rack.Spec{Args: []string{"term"}})
	if err != nil {
		t.Fatal(err)
	}
	var ps map[rack.PID]rack.ProcessInfo
	for {
		ps = pgPS(t, ctx, kb)
		if ps[term.PID()].Status == "waiting for TERM" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("B's ps never showed the status: %+v", ps[term.PID()])
		case <-time.After(5 * time.Millisecond):
		}
	}
	for _, pid := range []rack.PID{self.PID(), blocker.PID(), five.PID(), term.PID()} {
		if _, ok := ps[pid]; !ok {
			t.Errorf("B's ps lacks %d: %v", pid, ps)
		}
	}
	if ps[blocker.PID()].State != rack.Running || ps[five.PID()].State != rack.Exited || ps[five.PID()].ExitCode != 5 {
		t.Errorf("B's ps: blocker %+v, exit5 %+v", ps[blocker.PID()], ps[five.PID()])
	}
	// B signals and kills A's processes through A's inbox.
	ht, err := kb.Process(ctx, term.PID())
	if err != nil {
		t.Fatal(err)
	}
	if err := ht.Signal(ctx, rack.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if cause := pgRecv(t, ctx, causes, "SIGTERM from B"); cause != rack.SIGTERM {
		t.Fatalf("cause %v, want SIGTERM", cause)
	}
	if ee := pgExit(t, ht.Wait(ctx)); ee.Signal() != rack.SIGTERM {
		t.Fatalf("B: wait after SIGTERM = %v", ee)
	}
	if err := hb.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, hb.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("B: wait after kill = %v", ee)
	}
	if ee := pgExit(t, blocker.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("A: wait after B's kill = %v", ee)
	}
	if err := hb.Kill(ctx); !errors.Is(err, rack.ErrFinished) {
		t.Fatalf("B: kill of an ended process = %v, want ErrFinished", err)
	}

	// A third kernel that closes while waiting on A's process gives up
	// with ErrClosed; B, still open, sees A's Close kill it.
	last, err := self.Fork(ctx, rack.Spec{Args: []string{"block"}})
	if err != nil {
		t.Fatal(err)
	}
	kc := s.pgOpen(t, url)
	hc, err := kc.Process(ctx, last.PID())
	if err != nil {
		t.Fatal(err)
	}
	hb, err = kb.Process(ctx, last.PID())
	if err != nil {
		t.Fatal(err)
	}
	cwait, bwait := make(chan error, 1), make(chan error, 1)
	go func() { cwait <- hc.Wait(ctx) }()
	go func() { bwait <- hb.Wait(ctx) }()
	if err := kc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pgRecv(t, ctx, cwait, "C's wait to end at C's Close"); !errors.Is(err, rack.ErrClosed) {
		t.Fatalf("C: wait across its Close = %v, want ErrClosed", err)
	}
	if err := ka.Close(); err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, pgRecv(t, ctx, bwait, "B's wait to end at A's Close")); ee.Signal() != rack.SIGKILL {
		t.Fatalf("B: wait across A's Close = %v, want killed by SIGKILL", ee)
	}
	if info := pgPS(t, ctx, kb)[last.PID()]; info.State != rack.Exited || info.Signal != rack.SIGKILL {
		t.Fatalf("B's ps after A's Close: %+v", info)
	}
}

func (s *suite) testKernelClose(t *testing.T) {
	ctx := s.pgCtx(t, 15*time.Second)
	k := s.pgKernel(t, rack.WithMaxRunning(3))
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	var queuedRan atomic.Int32
	ready := make(chan struct{}, 2)
	self := pgRoot(t, ctx, k, pgRoles{
		"block":  func(ctx context.Context, self *rack.Self) error { ready <- struct{}{}; return blockOnCtx(ctx, self) },
		"stuck":  func(context.Context, *rack.Self) error { ready <- struct{}{}; <-stuck; return nil },
		"queued": func(context.Context, *rack.Self) error { queuedRan.Add(1); return nil },
	})
	var procs []*rack.Process
	for _, role := range []string{"block", "stuck", "queued"} {
		c, err := self.Fork(ctx, rack.Spec{Args: []string{role}})
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, c)
	}
	pgRecv(t, ctx, ready, "block to start")
	pgRecv(t, ctx, ready, "stuck to start")
	procs = append(procs, self.Process)
	errs := make(chan error, len(procs))
	for _, p := range procs {
		go func() { errs <- p.Wait(ctx) }()
	}
	closed := make(chan error, 1)
	go func() { closed <- k.Close() }()
	if err := pgRecv(t, ctx, closed, "Close"); err != nil {
		t.Fatalf("close: %v", err)
	}
	for range procs {
		err := pgRecv(t, ctx, errs, "a Wait to return after Close")
		var ee *rack.ExitError
		if !(errors.As(err, &ee) && ee.Signal() == rack.SIGKILL) && !errors.Is(err, rack.ErrClosed) {
			t.Errorf("wait after close = %v, want killed by SIGKILL or ErrClosed", err)
		}
	}
	if n := queuedRan.Load(); n != 0 {
		t.Errorf("a process queued at Close ran")
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second close = %v", err)
	}
	if _, err := k.Start(ctx, rack.Spec{Args: []string{"block"}}, blockOnCtx); !errors.Is(err, rack.ErrClosed) {
		t.Errorf("Start after close = %v, want ErrClosed", err)
	}
	if _, err := self.Fork(ctx, rack.Spec{Args: []string{"block"}}); !errors.Is(err, rack.ErrClosed) {
		t.Errorf("Fork after close = %v, want ErrClosed", err)
	}
	if _, err := k.Processes(ctx); !errors.Is(err, rack.ErrClosed) {
		t.Errorf("Processes after close = %v, want ErrClosed", err)
	}
	if _, err := k.Process(ctx, self.PID()); !errors.Is(err, rack.ErrClosed) {
		t.Errorf("Process after close = %v, want ErrClosed", err)
	}
	if _, err := k.NewGroup(ctx, "late"); !errors.Is(err, rack.ErrClosed) {
		t.Errorf("NewGroup after close = %v, want ErrClosed", err)
	}
	if err := procs[0].Signal(ctx, rack.SIGTERM); !errors.Is(err, rack.ErrClosed) {
		t.Errorf("Signal after close = %v, want ErrClosed", err)
	}
}

// boundedRun starts n blocking processes with start and checks that
// exactly slots of them run at once, releasing one each time another has
// started: without the bound, all n would be running before the first
// release. start gets the program to run.
func boundedRun(t *testing.T, ctx context.Context, n, slots int, start func(i int, prog rack.Program) (*rack.Process, error)) {
	t.Helper()
	var running, peak, ran atomic.Int32
	started := make(chan struct{}, n)
	release := make(chan struct{})
	prog := func(pctx context.Context, self *rack.Self) error {
		now := running.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		ran.Add(1)
		started <- struct{}{}
		defer running.Add(-1)
		select {
		case <-release:
			return nil
		case <-pctx.Done():
			return pctx.Err()
		}
	}
	releaseOne := func() {
		select {
		case release <- struct{}{}:
		case <-ctx.Done():
			t.Fatal("timed out releasing a worker")
		}
	}
	var procs []*rack.Process
	for i := 0; i < n; i++ {
		p, err := start(i, prog)
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	for i := 0; i < n; i++ {
		pgRecv(t, ctx, started, "a worker to start")
		if i >= slots-1 {
			releaseOne()
		}
	}
	for i := 0; i < slots-1; i++ {
		releaseOne()
	}
	for i, p := range procs {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("worker %d: %v", i, err)
		}
	}
	if got := peak.Load(); got != int32(slots) {
		t.Fatalf("at most %d ran at once, want exactly %d", got, slots)
	}
	if got := ran.Load(); got != int32(n) {
		t.Fatalf("%d ran, want %d", got, n)
	}
}

func (s *suite) testMaxRunning(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	const limit, n = 2, 6
	k := s.pgKernel(t, rack.WithMaxRunning(limit))
	// Root processes, so that nothing else takes a slot.
	boundedRun(t, ctx, n, limit, func(i int, prog rack.Program) (*rack.Process, error) {
		return k.Start(ctx, rack.Spec{Name: "worker", Args: []string{strconv.Itoa(i)}}, prog)
	})
	// Children forked from one root: the root is running too, so the
	// children have limit-1 slots (and, with the root, limit run at once).
	var childProg atomic.Pointer[rack.Program]
	var kidsRan atomic.Int32
	hogging := make(chan struct{})
	self := pgRoot(t, ctx, k, pgRoles{
		"bounded": func(ctx context.Context, self *rack.Self) error { return (*childProg.Load())(ctx, self) },
		"kid":     func(context.Context, *rack.Self) error { kidsRan.Add(1); return nil },
		"hog": func(ctx context.Context, self *rack.Self) error {
			kidsRan.Add(1)
			close(hogging)
			return blockOnCtx(ctx, self)
		},
	})
	boundedRun(t, ctx, n, limit-1, func(i int, prog rack.Program) (*rack.Process, error) {
		childProg.Store(&prog)
		return self.Fork(ctx, rack.Spec{Args: []string{"bounded", strconv.Itoa(i)}})
	})
	if st := pgPS(t, ctx, k)[self.PID()].State; st != rack.Running {
		t.Fatalf("root %s", st)
	}

	// A queued child can be killed, and never runs; the next one runs
	// once a slot frees.
	hog, err := self.Fork(ctx, rack.Spec{Args: []string{"hog"}})
	if err != nil {
		t.Fatal(err)
	}
	pgRecv(t, ctx, hogging, "the hog to run")
	queued, err := self.Fork(ctx, rack.Spec{Args: []string{"kid"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := queued.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if ee := pgExit(t, queued.Wait(ctx)); ee.Signal() != rack.SIGKILL {
		t.Fatalf("killed while queued: %v", ee)
	}
	later, err := self.Fork(ctx, rack.Spec{Args: []string{"kid"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := hog.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := later.Wait(ctx); err != nil {
		t.Fatalf("child queued behind the hog: %v", err)
	}
	if got := kidsRan.Load(); got != 2 {
		t.Fatalf("%d children ran, want 2 (the killed queued one must not)", got)
	}
}

func (s *suite) testForkAllIsAllOrNothing(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	var ran atomic.Int32
	self := pgRoot(t, ctx, k, pgRoles{
		"run": func(context.Context, *rack.Self) error { ran.Add(1); return nil },
	})
	other := s.pgKernel(t)
	foreign, err := other.NewGroup(ctx, "foreign")
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]rack.Spec{
		"unknown program": {Program: "pg-no-such-program"},
		"bad env":         {Args: []string{"run"}, Env: map[string]string{"A=B": "x"}},
		"foreign group":   {Args: []string{"run"}, Group: foreign},
		"bad stdout":      {Args: []string{"run"}, Stdout: &bytes.Buffer{}},
	}
	for name, spec := range bad {
		t.Run(name, func(t *testing.T) {
			before := pgPS(t, ctx, k)
			specs := []rack.Spec{{Args: []string{"run"}}, {Args: []string{"run"}}, spec, {Args: []string{"run"}}}
			out, err := self.ForkAll(ctx, specs)
			if err == nil || out != nil {
				t.Fatalf("ForkAll = %v, %v; want an error and no handles", out, err)
			}
			if !errors.Is(err, rack.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			// The two forked before the bad spec are reaped, as lost.
			var reaped []rack.PID
			for pid, info := range pgPS(t, ctx, k) {
				if _, old := before[pid]; old {
					continue
				}
				reaped = append(reaped, pid)
				if info.PPID != self.PID() || info.State != rack.Lost {
					t.Errorf("ps after failed ForkAll: %+v, want a lost child of %d", info, self.PID())
				}
				h, err := k.Process(ctx, pid)
				if err != nil {
					t.Fatal(err)
				}
				if err := h.Wait(ctx); !errors.Is(err, rack.ErrLost) {
					t.Errorf("wait on an aborted sibling = %v, want ErrLost", err)
				}
			}
			if len(reaped) != 2 {
				t.Errorf("%d new processes after the failed ForkAll, want the 2 aborted ones", len(reaped))
			}
		})
	}
	// All good: all run.
	out, err := self.ForkAll(ctx, []rack.Spec{{Args: []string{"run"}}, {Args: []string{"run"}}, {Args: []string{"run"}}})
	if err != nil || len(out) != 3 {
		t.Fatalf("ForkAll = %v, %v", out, err)
	}
	for _, c := range out {
		if err := c.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := ran.Load(); got != 3 {
		t.Fatalf("%d programs ran, want the 3 of the good ForkAll only", got)
	}
}

func (s *suite) testSetStatusShowsInPS(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	set := make(chan error, 1)
	self := pgRoot(t, ctx, k, pgRoles{
		"busy": func(pctx context.Context, self *rack.Self) error {
			set <- self.SetStatus(pctx, "crunching 42% ✓")
			return blockOnCtx(pctx, self)
		},
	})
	c, err := self.Fork(ctx, rack.Spec{Args: []string{"busy"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pgRecv(t, ctx, set, "SetStatus"); err != nil {
		t.Fatal(err)
	}
	if got := pgPS(t, ctx, k)[c.PID()].Status; got != "crunching 42% ✓" {
		t.Fatalf("ps status %q", got)
	}
	// A Self made by hand around another process's handle cannot act as
	// that process.
	forged := &rack.Self{Process: c}
	if err := forged.SetStatus(ctx, "not mine"); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("SetStatus on a hand-made Self = %v, want ErrInvalid", err)
	}
	if _, err := forged.Fork(ctx, rack.Spec{Args: []string{"busy"}}); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("Fork on a hand-made Self = %v, want ErrInvalid", err)
	}
	if _, err := forged.Stdout().Write([]byte("x")); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("Stdout().Write on a hand-made Self = %v, want ErrInvalid", err)
	}
	if _, _, err := forged.Pipe(ctx); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("Pipe on a hand-made Self = %v, want ErrInvalid", err)
	}
	if err := forged.Notify(make(chan rack.Signal, 1), rack.SIGTERM); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("Notify on a hand-made Self = %v, want ErrInvalid", err)
	}
	if _, err := forged.OpenFifoWriter(ctx, "forged"); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("OpenFifoWriter on a hand-made Self = %v, want ErrInvalid", err)
	}
	if _, err := forged.ForkAll(ctx, []rack.Spec{{Args: []string{"busy"}}}); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("ForkAll on a hand-made Self = %v, want ErrInvalid", err)
	}
	if got := pgPS(t, ctx, k)[c.PID()].Status; got != "crunching 42% ✓" {
		t.Fatalf("ps status %q after a hand-made Self's SetStatus", got)
	}
	if err := self.SetStatus(ctx, strings.Repeat("x", 5000)); !errors.Is(err, rack.ErrInvalid) {
		t.Fatalf("5000-byte status = %v, want ErrInvalid", err)
	}
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
}

// psCheck forks n short processes from one root in batches, waiting for
// each, then checks that ps shows all of them, correctly.
func (s *suite) psCheck(t *testing.T, n, batch int, full bool) {
	ctx := s.pgCtx(t, 10*time.Minute)
	k := s.pgKernel(t)
	self := pgRoot(t, ctx, k, pgRoles{
		"leaf": func(ctx context.Context, self *rack.Self) error {
			i, err := strconv.Atoi(self.Args()[1])
			if err != nil {
				return err
			}
			return rack.Exit(i % 4)
		},
	})
	start := time.Now()
	pids := make([]rack.PID, n)
	// forkRange forks processes [lo, hi) in batches, waiting for each batch.
	forkRange := func(lo, hi int) error {
		for b := lo; b < hi; b += batch {
			var procs []*rack.Process
			for i := b; i < min(b+batch, hi); i++ {
				spec := rack.Spec{Args: []string{"leaf", strconv.Itoa(i)}}
				if full {
					spec.Name = "leaf-" + strconv.Itoa(i%10)
				}
				c, err := self.Fork(ctx, spec)
				if err != nil {
					return fmt.Errorf("fork %d: %w", i, err)
				}
				pids[i] = c.PID()
				procs = append(procs, c)
			}
			for j, c := range procs {
				i := b + j
				err := c.Wait(ctx)
				var ee *rack.ExitError
				if i%4 == 0 && err != nil || i%4 != 0 && !(errors.As(err, &ee) && ee.Code() == i%4) {
					return fmt.Errorf("process %d: wait = %v", i, err)
				}
			}
		}
		return nil
	}
	// A few forkers at once, all from the one root.
	const forkers = 4
	errc := make(chan error, forkers)
	for f := 0; f < forkers; f++ {
		go func() { errc <- forkRange(f*n/forkers, (f+1)*n/forkers) }()
	}
	for f := 0; f < forkers; f++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("forked and waited for %d processes in %v", n, time.Since(start))
	start = time.Now()
	ps, err := k.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ps of %d processes took %v", len(ps), time.Since(start))
	if len(ps) != n+1 {
		t.Fatalf("ps lists %d processes, want %d", len(ps), n+1)
	}
	byPID := make(map[rack.PID]rack.ProcessInfo, len(ps))
	for i, p := range ps {
		if i > 0 && ps[i-1].PID >= p.PID {
			t.Fatalf("ps is not sorted by pid at %d", i)
		}
		byPID[p.PID] = p
	}
	if r := byPID[self.PID()]; r.PPID != rack.InitPID || r.State != rack.Running || r.Name != "root" {
		t.Fatalf("root row: %+v", r)
	}
	for i, pid := range pids {
		p, ok := byPID[pid]
		if !ok {
			t.Fatalf("ps lacks process %d (pid %d)", i, pid)
		}
		wantName := "root"
		if full {
			wantName = "leaf-" + strconv.Itoa(i%10)
		}
		if p.PPID != self.PID() || p.Name != wantName || p.State != rack.Exited || p.ExitCode != i%4 ||
			p.Signal != 0 || !slices.Equal(p.Args, []string{"leaf", strconv.Itoa(i)}) ||
			p.Started.IsZero() || p.Ended.Before(p.Started) {
			t.Fatalf("ps row of process %d: %+v", i, p)
		}
	}
}

func (s *suite) testPS10k(t *testing.T) {
	s.needManyProcesses(t, "10,000 forks take minutes against a Swift; TestPSBudget holds ps to listing pages")
	s.psCheck(t, 10_000, 500, true)
}

func (s *suite) testPS100k(t *testing.T) {
	s.needManyProcesses(t, "100,000 forks")
	if testing.Short() {
		t.Skip("forks 100,000 processes")
	}
	s.psCheck(t, 100_000, 2_000, false)
}

func (s *suite) testProcessLearnsItsIdentity(t *testing.T) {
	ctx := s.pgCtx(t, 10*time.Second)
	k := s.pgKernel(t)
	g, err := k.NewGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	type identity struct {
		pid, ppid, group, ctxPID, derivedPID rack.PID
		args                                 []string
		env                                  string
		environ                              map[string]string
		name                                 string
		kernel                               *rack.Kernel
		selfIO                               bool
		sameSelf                             bool // FromContext returns the Program's own *Self
	}
	ids := make(chan identity, 1)
	self := pgRoot(t, ctx, k, pgRoles{
		"who": func(pctx context.Context, self *rack.Self) error {
			id := identity{pid: self.PID(), ppid: self.PPID(), args: self.Args(), env: self.Getenv("COLOR"),
				environ: self.Environ(), name: self.Name(), kernel: self.Kernel(),
				selfIO: self.Stdin() != nil && self.Stdout() != nil && self.Stderr() != nil}
			if g := self.Group(); g != nil {
				id.group = g.ID()
			}
			if p := rack.FromContext(pctx); p != nil {
				id.ctxPID, id.sameSelf = p.PID(), p == self
			}
			derived, cancel := context.WithTimeout(context.WithValue(pctx, derivedKey{}, 1), time.Minute)
			defer cancel()
			if p := rack.FromContext(derived); p != nil {
				id.derivedPID = p.PID()
			}
			ids <- id
			return nil
		},
	})
	env := map[string]string{"COLOR": "teal", "EMPTY": ""}
	c, err := self.Fork(ctx, rack.Spec{Name: "who-am-i", Args: []string{"who", "a b", ""}, Env: env, Group: g})
	if err != nil {
		t.Fatal(err)
	}
	env["COLOR"] = "changed after fork"
	id := pgRecv(t, ctx, ids, "the child's identity")
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if id.pid != c.PID() || id.ppid != self.PID() || id.group != g.ID() {
		t.Errorf("pid %d ppid %d group %d, want %d %d %d", id.pid, id.ppid, id.group, c.PID(), self.PID(), g.ID())
	}
	if id.ctxPID != c.PID() || id.derivedPID != c.PID() {
		t.Errorf("FromContext: %d, derived %d, want %d", id.ctxPID, id.derivedPID, c.PID())
	}
	if !id.sameSelf {
		t.Errorf("FromContext returned another *Self than the one the Program was given")
	}
	if !slices.Equal(id.args, []string{"who", "a b", ""}) || id.env != "teal" || id.name != "who-am-i" {
		t.Errorf("args %q env %q name %q", id.args, id.env, id.name)
	}
	if len(id.environ) != 2 || id.environ["COLOR"] != "teal" || id.environ["EMPTY"] != "" {
		t.Errorf("environ %v", id.environ)
	}
	if id.kernel != k || !id.selfIO {
		t.Errorf("kernel %p (want %p), self stdio present %v", id.kernel, k, id.selfIO)
	}
	if p := rack.FromContext(ctx); p != nil {
		t.Errorf("FromContext of a plain ctx = %v, want nil", p)
	}
	if self.PPID() != rack.InitPID || self.Group() != nil {
		t.Errorf("root: ppid %d group %v", self.PPID(), self.Group())
	}
}

// derivedKey is a context key of this package's own: a context derived
// with a value still names its process.
type derivedKey struct{}
