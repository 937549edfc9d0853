package rack_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
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
	// done-root and its three children, and the orphan: its starter is
	// gone, so nothing can wait for it.
	if want := []rack.PID{done.PID(), orphan.PID()}; len(rep.Reaped) != 5 || !slices.Contains(rep.Reaped, want[0]) || !slices.Contains(rep.Reaped, want[1]) {
		t.Errorf("gc reaped %v, want done-root, its 3 children and the orphan %v", rep.Reaped, want)
	}
	if rep.Pipes != 1 {
		t.Errorf("gc removed %d pipes, want 1", rep.Pipes)
	}
	after := psNames(ctx, t, k)
	for name, want := range map[string]int{"done-root": 0, "done-kid": 0, "live-root": 1, "ended-kid": 1, "reader": 1, "orphan": 0} {
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

	// Once the live root has ended, a second pass reaps the rest.
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

// TestGCOnceAfterKill: a root that forked children sharing a pipe is
// killed (kill -9) while some children have ended and others run; one
// GC with the default options, a lease later, leaves only the namespace's
// own objects: its pid blocks, its marker and the collecting kernel's own
// lease. On file:// the root is an OS process killed with SIGKILL (its
// OS-process children die with it), and the test waits for their default
// lease (30 s); in memory its kernel stops renewing its lease, as a dead
// one would.
func TestGCOnceAfterKill(t *testing.T) {
	const lease = 2 * time.Second
	t.Run("mem", func(t *testing.T) {
		ctx := pgCtx(t, time.Minute)
		url := sharedMemURL(t)
		dying := pgOpen(t, url, rack.WithLease(lease))
		ready := make(chan error, 1)
		_, err := dying.Start(ctx, rack.Spec{Name: "doomed"}, func(ctx context.Context, self *rack.Self) error {
			if len(self.Args()) > 0 {
				io.WriteString(self.Stdout(), "x\n")
				if self.Args()[0] == "block" {
					<-ctx.Done()
				}
				return nil
			}
			r, w, err := self.Pipe(ctx)
			if err != nil {
				ready <- err
				return err
			}
			specs := make([]rack.Spec, 6)
			for i := range specs {
				arg := "end"
				if i%2 == 0 {
					arg = "block"
				}
				specs[i] = rack.Spec{Name: "kid", Args: []string{arg}, Stdout: w}
			}
			kids, err := self.ForkAll(ctx, specs)
			if err != nil {
				ready <- err
				return err
			}
			w.Close()
			buf := make([]byte, 2*len(specs))
			_, err = io.ReadFull(r, buf)
			for i, c := range kids {
				if i%2 == 1 && err == nil {
					err = c.Wait(ctx)
				}
			}
			ready <- err
			<-ctx.Done()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-ready; err != nil {
			t.Fatal(err)
		}
		dying.StopLeaseForTest()
		killed := time.Now()
		gcOnceAfter(ctx, t, url, lease, killed, 7)
	})
	t.Run("file", func(t *testing.T) {
		ctx := pgCtx(t, 2*time.Minute)
		url := "file://" + t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RACK_TEST_PARENT_URL="+url) // blockingParent: a 2 s lease
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("parent said %q, %v", line, err)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		// Its children's kernels, which died with it (Pdeathsig), had
		// the default lease.
		gcOnceAfter(ctx, t, url, 30*time.Second, time.Now(), 3)
	})
}

// gcOnceAfter waits a lease after killed, runs one GC with the default
// options from a new kernel of url with that lease, and checks that it found procs
// processes ended or lost and left nothing but the namespace's pid
// blocks, marker and the collecting kernel's lease.
func gcOnceAfter(ctx context.Context, t *testing.T, url string, lease time.Duration, killed time.Time, procs int) {
	t.Helper()
	time.Sleep(time.Until(killed.Add(lease + 500*time.Millisecond)))
	g := pgOpen(t, url, rack.WithLease(lease))
	rep, err := g.GC(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one gc %v after the kill: %+v", time.Since(killed).Round(time.Millisecond), rep)
	if len(rep.Reaped) != procs {
		t.Errorf("gc reaped %v, want %d processes", rep.Reaped, procs)
	}
	objs, err := g.DumpForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name := range objs {
		if !strings.HasPrefix(name, "pids/") && name != "rack-namespace" && name != "kernels/"+g.ID() {
			t.Errorf("left after one gc: %s", name)
		}
	}
	if ps := psNames(ctx, t, g); len(ps) != 0 {
		t.Errorf("after one gc, ps shows %v", ps)
	}
}
