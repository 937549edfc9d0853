package rack_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// pollOnly hides the mem store's notifications, so the kernel works as it
// does on Swift: by polling.
type pollOnly struct{ backend.Store }

// budgetKernel is a kernel on a store that cannot notify, with records of
// its own requests (Kernel.Stats).
func budgetKernel(t *testing.T) *rack.Kernel {
	t.Helper()
	k, err := rack.New(context.Background(), pollOnly{mem.New()}, inproc.New(),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// TestRequestBudget measures the store requests the protocol makes per
// operation, and holds them to the budget the README documents. Request
// counts, unlike times, do not depend on the machine's load.
func TestRequestBudget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := budgetKernel(t)
	var figures []string
	measure := func(what string, per float64, max float64, f func(self *rack.Process) error) {
		t.Helper()
		var before rack.Stats
		root, err := k.Start(ctx, rack.Spec{Name: "budget"}, func(ctx context.Context, self *rack.Process) error {
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
	measure("per fork+exit+wait (amortised over 100)", 100, 3, func(self *rack.Process) error {
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
	pipeRun := func(arg string) func(self *rack.Process) error {
		return func(self *rack.Process) error {
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
	measure("per pipe MiB (64 MiB stream)", 64, 6, pipeRun("mib"))
	measure("fork 20 blocking, idle 4.5 s, kill them", 1, 20*4, func(self *rack.Process) error {
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
