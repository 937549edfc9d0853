package rack_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/file"
	"github.com/rackfork/rack/backend/osproc"
)

// TestMain lets this test binary serve as the program that file://
// namespaces start as OS-process children.
func TestMain(m *testing.M) {
	rack.Register("os-child", osChild)
	if os.Getenv("RACK_TEST_BARE_CHILD") != "" {
		os.Exit(0) // BenchmarkBareReexec's child: the cost of the exec alone
	}
	if d, err := time.ParseDuration(os.Getenv("RACK_TEST_SLOW_HOST")); err == nil && os.Getenv(rack.HostEnv) != "" {
		time.Sleep(d) // TestHostSlowStart: a host that takes longer than a lease to start
	}
	if rack.Launched() {
		rack.Main(nil) // a forked child (or a host): runs its process(es) and exits
	}
	if url := os.Getenv("RACK_TEST_PARENT_URL"); url != "" {
		os.Exit(blockingParent(url)) // TestOpenStackKilledParent's parent
	}
	os.Exit(m.Run())
}

// osChild prints its argument and OS pid, then ends as the argument says.
func osChild(ctx context.Context, self *rack.Self) error {
	arg := self.Args()[0]
	if arg == "quiet" {
		return nil
	}
	fmt.Fprintf(self.Stdout(), "%s %d\n", arg, os.Getpid())
	switch arg {
	case "error":
		return errors.New("it failed")
	case "exit3":
		return rack.Exit(3)
	case "panic":
		panic("boom")
	case "block":
		<-ctx.Done()
		return ctx.Err()
	case "vanish":
		os.Exit(7) // dies without a word to rack: lost (its line was stored before Fprintln returned)
	}
	return nil
}

// TestOSProcesses forks OS processes through a file:// namespace: the
// same program code, exit statuses, a pipe across processes, a kill, and
// a child that dies without telling rack (lost, its pipe end closed for it).
func TestOSProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := rack.Open(ctx, "file://"+t.TempDir(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	want := map[string]int{"ok": 0, "error": 1, "exit3": 3, "panic": 2, "block": 128 + 9, "vanish": -1}
	root, err := k.Start(ctx, rack.Spec{Name: "os-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		kids := map[string]*rack.Process{}
		for arg := range want {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{arg}, Stdout: w})
			if err != nil {
				return err
			}
			kids[arg] = c
		}
		w.Close()
		sc := bufio.NewScanner(r)
		seen := map[string]bool{}
		for len(seen) < len(want) && sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				return fmt.Errorf("bad line %q", sc.Text())
			}
			if ospid, _ := strconv.Atoi(f[1]); ospid == os.Getpid() {
				return fmt.Errorf("child %s ran in the parent's OS process", f[0])
			}
			seen[f[0]] = true
		}
		if err := kids["block"].Kill(ctx); err != nil {
			return err
		}
		for sc.Scan() {
			return fmt.Errorf("unexpected line %q", sc.Text())
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("pipe: %w", err)
		}
		if err := kids["vanish"].Wait(ctx); !errors.Is(err, rack.ErrLost) {
			return fmt.Errorf("vanish: Wait = %v, want ErrLost", err)
		}
		for arg, code := range want {
			if arg == "vanish" {
				continue
			}
			err := kids[arg].Wait(ctx)
			var ee *rack.ExitError
			if code == 0 && err != nil || code != 0 && (!errors.As(err, &ee) || ee.Code() != code) {
				return fmt.Errorf("%s: Wait = %v, want code %d", arg, err, code)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := k.Processes(ctx)
	if err != nil || len(ps) != 7 {
		t.Fatalf("ps: %d processes, %v", len(ps), err)
	}
}

// TestOSSignalRightAfterFork signals OS-process children 0-4 ms after
// their fork, before their programs run: each signal reaches its child
// (none ends by the grace period's SIGKILL, nor hangs). A child's kernel
// that read its inbox before it hosted the process lost about one signal
// in a hundred here.
func TestOSSignalRightAfterFork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := rack.Open(ctx, "file://"+t.TempDir(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard),
		rack.WithGracePeriod(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	root, err := k.Start(ctx, rack.Spec{Name: "signaller"}, func(ctx context.Context, self *rack.Self) error {
		for i := range 300 {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}})
			if err != nil {
				return err
			}
			if i%2 == 1 {
				time.Sleep(time.Duration(i%5) * time.Millisecond)
			}
			if err := c.Signal(ctx, rack.SIGTERM); err != nil {
				return err
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			err = c.Wait(wctx)
			wcancel()
			var ee *rack.ExitError
			if !errors.As(err, &ee) || ee.Signal() != rack.SIGTERM {
				return fmt.Errorf("child %d, signalled %d ms after its fork: Wait = %v, want an exit by SIGTERM", i, i%5*(i%2), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOSForkWait forks and waits for an empty OS-process child through
// a file:// namespace; BenchmarkBareReexec is the same binary re-executed
// and waited for by hand. Run them side by side and compare.
func BenchmarkOSForkWait(b *testing.B) {
	ctx := context.Background()
	k, err := rack.Open(ctx, "file://"+b.TempDir(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	root, err := k.Start(ctx, rack.Spec{Name: "bench"}, func(ctx context.Context, self *rack.Self) error {
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
			if err != nil {
				return err
			}
			if err := c.Wait(ctx); err != nil {
				return err
			}
		}
		b.StopTimer()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHostForkWait is BenchmarkOSForkWait with hosts on: the child
// runs on a warm host (started before the timer) instead of a new OS
// process. Compare with BenchmarkOSForkWait and BenchmarkBareReexec.
func BenchmarkHostForkWait(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	awaitHostsGone(b, dir)
	k, err := rack.Open(ctx, "file://"+dir+"?hosts=1&slots=1&idle=1m", rack.WithLease(3*time.Second),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	root, err := k.Start(ctx, rack.Spec{Name: "bench"}, func(ctx context.Context, self *rack.Self) error {
		forkWait := func() error {
			c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"quiet"}})
			if err != nil {
				return err
			}
			return c.Wait(ctx)
		}
		if err := forkWait(); err != nil { // starts the host
			return err
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := forkWait(); err != nil {
				return err
			}
		}
		b.StopTimer()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkBareReexec(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), "RACK_TEST_BARE_CHILD=1")
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPSShowsProcessesOfADeadKernelAsLost: a kernel that stops renewing
// its lease (here: abandoned without Close, with a short lease) leaves its
// running processes shown as lost, not running, by another kernel's ps.
func TestPSShowsProcessesOfADeadKernelAsLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "mem://lost-lease-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	a, err := rack.Open(ctx, url, rack.WithLease(300*time.Millisecond), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Start(ctx, rack.Spec{Name: "orphan"}, func(ctx context.Context, self *rack.Self) error {
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := rack.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	state := func() rack.State {
		ps, err := b.Processes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range ps {
			if info.PID == p.PID() {
				return info.State
			}
		}
		t.Fatalf("ps from b lacks pid %d", p.PID())
		return ""
	}
	if s := state(); s != rack.Running {
		t.Fatalf("state while a renews its lease: %s", s)
	}
	a.StopLeaseForTest()
	deadline := time.Now().Add(10 * time.Second)
	for state() != rack.Lost {
		if time.Now().After(deadline) {
			t.Fatal("a's process still shown running 10 s after its lease stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Close()
}

// TestRemoteIdleBudget holds a parent idle-waiting on OS-process children
// to the request budget, on a store that cannot notify (as on Swift): two
// parents, one with 2 children and one with 20, idle side by side.
//
// An idle kernel's requests are periodic: a poll of its inbox every
// pollMax, a renewal of its lease every third of the lease, a listing of
// its remote children's host records and one of leases every half lease.
// How many of each land in a window depends on where the window starts
// (and load moves that): a 10 s window may hold 2 renewals or none. So the
// test holds each kind to its period, with the one event a window's phase
// may add, and the budget (1 request per second) to the sum of the
// periods' rates, which is what a long run costs. Nothing else may happen
// while the parent idles: no GET, HEAD, DELETE or create.
func TestRemoteIdleBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	fs, err := file.New(dir, file.WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	const (
		window  = 10 * time.Second
		pollMax = 1500 * time.Millisecond // the defaults
		lease   = 30 * time.Second
	)
	counts := []int{2, 20}
	costs := make([]rack.Stats, len(counts))
	errs := make(chan error, len(counts))
	for i, n := range counts {
		compute, err := osproc.New()
		if err != nil {
			t.Fatal(err)
		}
		k, err := rack.New(ctx, pollOnly{fs}, compute, rack.WithURL("file://"+dir),
			rack.WithPolling(5*time.Millisecond, pollMax), rack.WithLease(lease),
			rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		go func() {
			errs <- func() error {
				root, err := k.Start(ctx, rack.Spec{Name: "idle-root"}, func(ctx context.Context, self *rack.Self) error {
					return idleParent(ctx, self, n, window, func(cost rack.Stats) { costs[i] = cost })
				})
				if err != nil {
					return err
				}
				return root.Wait(ctx)
			}()
		}()
	}
	for range counts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Events of a period p in a window w: at most w/p, plus one for the
	// window's phase.
	most := func(p time.Duration) int64 { return int64(window/p) + 1 }
	polls, renewals, leaseChecks := most(pollMax), most(lease/3), most(lease/2)
	rate := float64(time.Second)/float64(pollMax) + float64(time.Second)/float64(lease/3) + 2*float64(time.Second)/float64(lease/2)
	if rate > 1.0 {
		t.Errorf("an idle kernel's periods cost %.2f requests per second in a long run, budget 1.0", rate)
	}
	for i, c := range costs {
		t.Logf("parent idle-waiting on %d OS-process children, %v: %v", counts[i], window, c)
		if got, max := c["list"], polls+2*leaseChecks; got > max {
			t.Errorf("parent idle-waiting on %d children: %d listings in %v, at most %d (inbox polls, then hosts and leases every half lease)", counts[i], got, window, max)
		}
		if got := c["put"]; got > renewals {
			t.Errorf("parent idle-waiting on %d children: %d puts in %v, at most %d lease renewals", counts[i], got, window, renewals)
		}
		if other := c["total"] - c["list"] - c["put"]; other != 0 {
			t.Errorf("parent idle-waiting on %d children: %d requests other than listings and lease renewals: %v", counts[i], other, c)
		}
	}
}

// idleParent forks n blocking OS-process children, waits until all have
// joined, reports the requests its kernel makes while it waits idle for
// window, then kills them.
func idleParent(ctx context.Context, self *rack.Self, n int, window time.Duration, report func(rack.Stats)) error {
	k := self.Kernel()
	r, w, err := self.Pipe(ctx)
	if err != nil {
		return err
	}
	var kids []*rack.Process
	for i := 0; i < n; i++ {
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w})
		if err != nil {
			return err
		}
		kids = append(kids, c)
	}
	w.Close()
	sc := bufio.NewScanner(r)
	for i := 0; i < n; i++ { // every child has joined and printed
		if !sc.Scan() {
			return fmt.Errorf("pipe ended after %d lines: %v", i, sc.Err())
		}
	}
	time.Sleep(3 * time.Second) // polling backs off to its idle pace
	base := k.Stats()
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	if err := kids[0].Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("idle wait: %v", err)
	}
	after := k.Stats()
	for kind := range after {
		after[kind] -= base[kind]
	}
	report(after)
	for _, c := range kids {
		if err := c.Kill(ctx); err != nil {
			return err
		}
	}
	for _, c := range kids {
		var ee *rack.ExitError
		if err := c.Wait(ctx); !errors.As(err, &ee) || ee.Signal() != rack.SIGKILL {
			return fmt.Errorf("killed child: Wait = %v", err)
		}
	}
	return nil
}
