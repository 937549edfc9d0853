package rack_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// pollOnly hides the mem store's notifications, so the kernel works as it
// does on Swift: by polling.
type pollOnly struct{ backend.Store }

// keyCount counts the requests for names under prefix (a List counts when
// its prefix is under it).
type keyCount struct {
	backend.Store
	prefix string
	n      atomic.Int64
}

func (c *keyCount) count(name string) {
	if strings.HasPrefix(name, c.prefix) {
		c.n.Add(1)
	}
}

func (c *keyCount) Put(ctx context.Context, container, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	c.count(name)
	return c.Store.Put(ctx, container, name, r, opts)
}

func (c *keyCount) Get(ctx context.Context, container, name string, opts *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	c.count(name)
	return c.Store.Get(ctx, container, name, opts)
}

func (c *keyCount) Head(ctx context.Context, container, name string) (backend.ObjectInfo, error) {
	c.count(name)
	return c.Store.Head(ctx, container, name)
}

func (c *keyCount) List(ctx context.Context, container string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	c.count(opts.Prefix)
	return c.Store.List(ctx, container, opts)
}

func (c *keyCount) Delete(ctx context.Context, container, name string) error {
	c.count(name)
	return c.Store.Delete(ctx, container, name)
}

// budgetKernel is a kernel on a store that cannot notify, with records of
// its own requests (Kernel.Stats), and the count of its requests for pipe
// objects.
func budgetKernel(t *testing.T) (*rack.Kernel, *keyCount) {
	t.Helper()
	pipes := &keyCount{Store: pollOnly{mem.New()}, prefix: "pipes/"}
	k, err := rack.New(context.Background(), pipes, inproc.New(),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k, pipes
}

// TestRequestBudget measures the store requests the protocol makes per
// operation, and holds them to the budget the README documents. Request
// counts, unlike times, do not depend on the machine's load.
func TestRequestBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, pipes := budgetKernel(t)
	var figures []string
	measure := func(what string, per float64, max float64, f func(self *rack.Self) error) {
		t.Helper()
		var before rack.Stats
		root, err := k.Start(ctx, rack.Spec{Name: "budget"}, func(ctx context.Context, self *rack.Self) error {
			switch a := self.Args(); {
			case len(a) == 0:
			case a[0] == "nop":
				return nil
			case a[0] == "block":
				<-ctx.Done()
				return nil
			case a[0] == "small":
				for i := 0; i < 100; i++ {
					fmt.Fprintf(self.Stdout(), "message %d\n", i)
					time.Sleep(5 * time.Millisecond) // past the batching delay: one segment each
				}
				return nil
			case a[0] == "mib":
				buf := make([]byte, 1<<20)
				for i := 0; i < 64; i++ {
					if _, err := self.Stdout().Write(buf); err != nil {
						return err
					}
				}
				return nil
			}
			before = k.Stats()
			return f(self)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := root.Wait(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		after := k.Stats()
		got := float64(after["total"]-before["total"]) / per
		figures = append(figures, fmt.Sprintf("%-40s %6.2f requests", what, got))
		if got > max {
			t.Errorf("%s: %.2f requests, budget %.0f (by kind: before %v, after %v)", what, got, max, before, after)
		}
	}
	measure("per fork+exit+wait (amortised over 100)", 100, 3, func(self *rack.Self) error {
		for i := 0; i < 100; i++ {
			c, err := self.Fork(ctx, rack.Spec{Args: []string{"nop"}})
			if err != nil {
				return err
			}
			if err := c.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	pipeRun := func(arg string) func(self *rack.Self) error {
		return func(self *rack.Self) error {
			r, w, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			c, err := self.Fork(ctx, rack.Spec{Args: []string{arg}, Stdout: w})
			if err != nil {
				return err
			}
			w.Close()
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			return c.Wait(ctx)
		}
	}
	measure("per small pipe message (100, 5 ms apart)", 100, 7, pipeRun("small"))
	// A MiB through a pipe: the pipe's own requests, with the stream read
	// once its writer has ended, so that the reader never waits. What a
	// waiting reader adds depends on how long it waits, which a busy
	// machine stretches (it once made 6.9 requests of a budget of 6
	// here); its pace is the poll schedule's, held by the idle budgets.
	var pipeFigure string
	measure("per pipe MiB (64 MiB stream, read after)", 64, 6, func(self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		before := pipes.n.Load()
		c, err := self.Fork(ctx, rack.Spec{Args: []string{"mib"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		if err := c.Wait(ctx); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		got := float64(pipes.n.Load()-before) / 64
		pipeFigure = fmt.Sprintf("%-40s %6.2f requests", "  of which for the pipe's objects", got)
		// Per 1 MiB segment: its PUT, GET and DELETE; per stream: the
		// end's claim and close, a look for more writers and for the
		// close, and the reader's first look: under one more per MiB.
		if got > 3.5 {
			t.Errorf("per pipe MiB read after its writer ended: %.2f requests for the pipe's objects, budget 3.5", got)
		}
		return nil
	})
	figures = append(figures, pipeFigure)
	measure("fork 20 blocking, idle 4.5 s, kill them", 1, 20*4, func(self *rack.Self) error {
		var kids []*rack.Process
		for i := 0; i < 20; i++ {
			c, err := self.Fork(ctx, rack.Spec{Args: []string{"block"}})
			if err != nil {
				return err
			}
			kids = append(kids, c)
		}
		// Let the kernel's polling back off to its idle pace first.
		time.Sleep(1500 * time.Millisecond)
		base := k.Stats()["total"]
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_ = kids[0].Wait(wctx) // idle: nothing ends for 3 s
		idle := float64(k.Stats()["total"]-base) / 3
		figures = append(figures, fmt.Sprintf("%-40s %6.2f requests", "per second of a parent idle-waiting on 20", idle))
		if idle > 1.5 {
			t.Errorf("idle waiting on 20 children: %.2f requests per second, budget 1.5", idle)
		}
		for _, c := range kids {
			c.Kill(ctx)
		}
		return nil
	})
	t.Logf("request budget on a store that cannot notify:\n%s", strings.Join(figures, "\n"))
}

// TestPSBudget holds ps of a namespace to a few listing pages, read by a
// kernel that knows none of the processes (nothing cached), and checks
// that what the listings' summaries say is what the records say.
func TestPSBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store := pollOnly{mem.New()}
	open := func() *rack.Kernel {
		k, err := rack.New(ctx, store, inproc.New(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		return k
	}
	forker, reader := open(), open()
	const exited, running = 900, 100
	ready := make(chan []*rack.Process, 1)
	root, err := forker.Start(ctx, rack.Spec{Name: "ps-root"}, func(ctx context.Context, self *rack.Self) error {
		if a := self.Args(); len(a) > 0 {
			i, _ := strconv.Atoi(a[0])
			if i < exited {
				return rack.Exit(i % 7)
			}
			if err := self.SetStatus(ctx, "busy "+a[0]); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}
		var kids []*rack.Process
		for i := 0; i < exited+running; i++ {
			c, err := self.Fork(ctx, rack.Spec{Name: "kid", Args: []string{strconv.Itoa(i), "with space&=;", ""}})
			if err != nil {
				return err
			}
			kids = append(kids, c)
		}
		for _, c := range kids[:exited] {
			c.Wait(ctx)
		}
		ready <- kids
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var kids []*rack.Process
	select {
	case kids = <-ready:
	case <-ctx.Done():
		t.Fatal("forking timed out")
	}
	// Statuses are set by the running children themselves.
	for {
		infos, err := forker.Processes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		busy := 0
		for _, in := range infos {
			if strings.HasPrefix(in.Status, "busy") {
				busy++
			}
		}
		if busy == running {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The reader's own background (its inbox poll, its lease) may land
	// in one ps's window: the least of three is ps alone.
	var infos []rack.ProcessInfo
	cost := int64(math.MaxInt64)
	for range 3 {
		before := reader.Stats()["total"]
		infos, err = reader.Processes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cost = min(cost, reader.Stats()["total"]-before)
	}
	t.Logf("ps of %d processes from a kernel that forked none: %d requests", len(infos), cost)
	// procs, exits, hosts, status, kernels: one page each here (a short
	// page is the last), and one get.
	if cost > 6 {
		t.Errorf("ps of %d processes cost %d requests, want at most 6", len(infos), cost)
	}
	if len(infos) != exited+running+1 {
		t.Fatalf("ps shows %d processes, want %d", len(infos), exited+running+1)
	}
	for _, in := range infos {
		if in.PID == root.PID() {
			continue
		}
		i, _ := strconv.Atoi(in.Args[0])
		want := rack.ProcessInfo{PID: kids[i].PID(), PPID: root.PID(), Name: "kid",
			Args: []string{strconv.Itoa(i), "with space&=;", ""}, State: rack.Exited, ExitCode: i % 7}
		if i >= exited {
			want.State, want.ExitCode, want.Status = rack.Running, 0, "busy "+in.Args[0]
		}
		got := in
		got.Started, got.Ended = time.Time{}, time.Time{}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("ps row of child %d (-want +got):\n%s", i, diff)
		}
		if in.Started.IsZero() || (in.State == rack.Exited) == in.Ended.IsZero() {
			t.Errorf("ps row of child %d: started %v, ended %v", i, in.Started, in.Ended)
		}
	}
	root.Kill(ctx)
	root.Wait(ctx)
}
