package rack_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// TestGC leaves behind what ended processes, a finished pipe and a dead
// kernel leave, and checks that GC removes exactly that: running
// processes, their parents' children, and a pipe still in use stay. It
// runs in memory and on Swift (it needs StopLeaseForTest, an internal, so
// it is not part of racktest).
func TestGC(t *testing.T) {
	t.Run("mem", func(t *testing.T) { testGC(t, sharedMemURL(t)) })
	t.Run("swift", func(t *testing.T) { testGC(t, swiftURL(t)) })
}

func testGC(t *testing.T, url string) {
	ctx := pgCtx(t, time.Minute)
	k := pgOpen(t, url)

	// Three children that end, under a root that ends: reapable, with the
	// pipe they wrote to.
	done, err := k.Start(ctx, rack.Spec{Name: "done-root"}, func(ctx context.Context, self *rack.Self) error {
		if len(self.Args()) > 0 {
			_, err := io.WriteString(self.Stdout(), "x\n")
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		var kids []*rack.Process
		for i := 0; i < 3; i++ {
			c, err := self.Fork(ctx, rack.Spec{Name: "done-kid", Args: []string{"write"}, Stdout: w})
			if err != nil {
				return err
			}
			kids = append(kids, c)
		}
		w.Close()
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		for _, c := range kids {
			if err := c.Wait(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := done.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// A running parent with an ended child (it may still Wait for it) and
	// a running child reading a pipe still in use.
	release := make(chan struct{})
	started := make(chan error, 1)
	live, err := k.Start(ctx, rack.Spec{Name: "live-root"}, func(ctx context.Context, self *rack.Self) error {
		if len(self.Args()) > 0 {
			if self.Args()[0] == "read" {
				_, err := io.Copy(io.Discard, self.Stdin())
				return err
			}
			return nil
		}
		c, err := self.Fork(ctx, rack.Spec{Name: "ended-kid", Args: []string{"end"}})
		if err != nil {
			started <- err
			return err
		}
		if err := c.Wait(ctx); err != nil {
			started <- err
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			started <- err
			return err
		}
		reader, err := self.Fork(ctx, rack.Spec{Name: "reader", Args: []string{"read"}, Stdin: r})
		if err != nil {
			started <- err
			return err
		}
		io.WriteString(w, "hello\n")
		started <- nil
		<-release
		w.Close()
		return reader.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}

	// A kernel that dies with a process running.
	dying := pgOpen(t, url, rack.WithLease(300*time.Millisecond))
	orphan, err := dying.Start(ctx, rack.Spec{Name: "orphan"}, func(ctx context.Context, self *rack.Self) error {
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dying.StopLeaseForTest()
	time.Sleep(time.Second) // its lease lapses

	before := psNames(ctx, t, k)
	rep, err := k.GC(ctx, &rack.GCOptions{MinAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc: %+v", rep)
	if !slices.Equal(rep.Lost, []rack.PID{orphan.PID()}) {
		t.Errorf("gc found lost %v, want [%d]", rep.Lost, orphan.PID())
	}
	if len(rep.Reaped) != 4 { // done-root and its three children
		t.Errorf("gc reaped %v, want done-root and its 3 children", rep.Reaped)
	}
	if rep.Pipes != 1 {
		t.Errorf("gc removed %d pipes, want 1", rep.Pipes)
	}
	after := psNames(ctx, t, k)
	for name, want := range map[string]int{"done-root": 0, "done-kid": 0, "live-root": 1, "ended-kid": 1, "reader": 1, "orphan": 1} {
		if after[name] != want {
			t.Errorf("after gc, ps shows %d %q (before: %d), want %d", after[name], name, before[name], want)
		}
	}
	if err := done.Wait(ctx); !errors.Is(err, rack.ErrNotFound) && err != nil {
		t.Errorf("Wait on a reaped process: %v", err)
	}
	if p, err := k.Process(ctx, done.PID()); !errors.Is(err, rack.ErrNotFound) {
		t.Errorf("Process(reaped pid) = %v, %v; want ErrNotFound", p, err)
	}

	// The pipe in use still works end to end.
	close(release)
	if err := live.Wait(ctx); err != nil {
		t.Fatalf("live root after gc: %v", err)
	}

	// Once the live root has ended, a second pass reaps the rest, the
	// process found lost included.
	rep, err = k.GC(ctx, &rack.GCOptions{MinAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if after := psNames(ctx, t, k); len(after) != 0 {
		t.Errorf("after the second gc (%+v), ps still shows %v", rep, after)
	}
}

// psNames counts ps rows by process name.
func psNames(ctx context.Context, t *testing.T, k *rack.Kernel) map[string]int {
	t.Helper()
	infos, err := k.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, in := range infos {
		out[in.Name]++
	}
	return out
}
