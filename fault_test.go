package rack_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// sharedStore lets two kernels use one mem.Store (a kernel closes its
// store, so only the test closes the real one), and counts the injected
// faults, to prove the test met some.
type sharedStore struct {
	*mem.Store
	faults *atomic.Int64
}

func (sharedStore) Close() error { return nil }

func (s sharedStore) count(err error) error {
	if errors.Is(err, backend.ErrTransient) {
		s.faults.Add(1)
	}
	return err
}

func (s sharedStore) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	info, err := s.Store.Put(ctx, c, n, r, o)
	return info, s.count(err)
}

func (s sharedStore) Get(ctx context.Context, c, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, c, n, o)
	return rc, info, s.count(err)
}

func (s sharedStore) Head(ctx context.Context, c, n string) (backend.ObjectInfo, error) {
	info, err := s.Store.Head(ctx, c, n)
	return info, s.count(err)
}

func (s sharedStore) List(ctx context.Context, c string, o backend.ListOptions) ([]backend.ObjectInfo, error) {
	page, err := s.Store.List(ctx, c, o)
	return page, s.count(err)
}

func (s sharedStore) Delete(ctx context.Context, c, n string) error {
	return s.count(s.Store.Delete(ctx, c, n))
}

// faultOptions: fast retries and polling, small pipe segments (more
// requests, so more faults), a silent console.
func faultOptions() []rack.Option {
	return []rack.Option{
		rack.WithRetry(20, time.Millisecond, 20*time.Millisecond),
		rack.WithPolling(time.Millisecond, 20*time.Millisecond),
		rack.WithPipeBuffer(64<<10, time.Millisecond),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard),
	}
}

// faultKernels returns two kernels on one store.
func faultKernels(t *testing.T, s *mem.Store, faults *atomic.Int64) (*rack.Kernel, *rack.Kernel) {
	t.Helper()
	ctx := ioCtx(t, 10*time.Second)
	t.Cleanup(func() { s.Close() })
	k1, err := rack.New(ctx, sharedStore{s, faults}, inproc.New(), faultOptions()...)
	if err != nil {
		t.Fatalf("rack.New: %v", err)
	}
	t.Cleanup(func() { k1.Close() })
	k2, err := rack.New(ctx, sharedStore{s, faults}, inproc.New(), faultOptions()...)
	if err != nil {
		t.Fatalf("rack.New (second kernel): %v", err)
	}
	t.Cleanup(func() { k2.Close() })
	return k1, k2
}

// monteCarlo is worker i's deterministic share: how many of 20,000
// seeded points fall in the unit circle.
func monteCarlo(i int) int {
	rng := rand.New(rand.NewPCG(uint64(i), 99))
	n := 0
	for j := 0; j < 20000; j++ {
		x, y := rng.Float64(), rng.Float64()
		if x*x+y*y <= 1 {
			n++
		}
	}
	return n
}

// faultWorkers: enough that the montecarlo job meets 20 faults at the rate of
// 0.1 though a reader of many ends polls with few requests.
const faultWorkers = 30

// faultJob is the program of the fault tests; the root runs the job its
// first argument names.
func faultJob(result *string) rack.Program {
	return func(ctx context.Context, self *rack.Self) error {
		if self.PPID() != rack.InitPID {
			switch ioArg(self, 0) {
			case "worker":
				i, _ := strconv.Atoi(ioArg(self, 1))
				_, err := fmt.Fprintf(self.Stdout(), "%d\n", monteCarlo(i))
				return err
			case "stream":
				_, err := io.Copy(self.Stdout(), ioData(9, 8<<20))
				return err
			case "exit":
				switch ioArg(self, 1) {
				case "0":
					return nil
				case "error":
					return errors.New("failed")
				case "3":
					return rack.Exit(3, "three")
				case "panic":
					panic("boom")
				case "sleep":
					<-ctx.Done()
					return context.Cause(ctx)
				}
			}
			return fmt.Errorf("bad args %q", self.Args())
		}
		switch ioArg(self, 0) {
		case "montecarlo":
			r, w, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			var kids []*rack.Process
			for i := 0; i < faultWorkers; i++ {
				kid, err := self.Fork(ctx, rack.Spec{Args: []string{"worker", strconv.Itoa(i)}, Stdout: w})
				if err != nil {
					return err
				}
				kids = append(kids, kid)
			}
			if err := w.Close(); err != nil {
				return err
			}
			sum, lines := 0, 0
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				n, err := strconv.Atoi(sc.Text())
				if err != nil {
					return fmt.Errorf("bad line %q", sc.Text())
				}
				sum += n
				lines++
			}
			if err := sc.Err(); err != nil {
				return err
			}
			for _, kid := range kids {
				if err := kid.Wait(ctx); err != nil {
					return err
				}
			}
			*result = fmt.Sprintf("%d lines, sum %d", lines, sum)
			return nil
		case "stream":
			r, w, err := self.Pipe(ctx)
			if err != nil {
				return err
			}
			kid, err := self.Fork(ctx, rack.Spec{Args: []string{"stream"}, Stdout: w})
			if err != nil {
				return err
			}
			w.Close()
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return err
			}
			*result = fmt.Sprintf("%d bytes, sha256 %x", n, h.Sum(nil))
			return kid.Wait(ctx)
		}
		return fmt.Errorf("bad root args %q", self.Args())
	}
}

func runFaultJob(ctx context.Context, t *testing.T, k *rack.Kernel, job string) string {
	t.Helper()
	var result string
	p, err := k.Start(ctx, rack.Spec{Name: job, Args: []string{job}}, faultJob(&result))
	if err != nil {
		t.Fatalf("start %s: %v", job, err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%s: %v", job, err)
	}
	return result
}

// TestFaults runs the protocol on a store that fails 10% of its calls
// (half of the failed changes having taken effect) and lists 50 ms late:
// results must be exactly those of a fault-free store.
func TestFaults(t *testing.T) {
	// The reference: the same jobs on a fault-free store, and by hand.
	want := map[string]string{}
	{
		ctx := ioCtx(t, 30*time.Second)
		k, err := rack.New(ctx, mem.New(), inproc.New(), faultOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		for _, job := range []string{"montecarlo", "stream"} {
			want[job] = runFaultJob(ctx, t, k, job)
		}
		k.Close()
		sum := 0
		for i := 0; i < faultWorkers; i++ {
			sum += monteCarlo(i)
		}
		if w := fmt.Sprintf("%d lines, sum %d", faultWorkers, sum); want["montecarlo"] != w {
			t.Fatalf("fault-free montecarlo = %q, want %q", want["montecarlo"], w)
		}
		if w := fmt.Sprintf("%d bytes, sha256 %x", 8<<20, ioSum(t, ioData(9, 8<<20))); want["stream"] != w {
			t.Fatalf("fault-free stream = %q, want %q", want["stream"], w)
		}
	}
	for _, seed := range []int64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			ctx := ioCtx(t, 40*time.Second)
			var faults atomic.Int64
			k, k2 := faultKernels(t, mem.New(mem.WithFaults(0.1, seed), mem.WithListLag(50*time.Millisecond)), &faults)
			for _, job := range []string{"montecarlo", "stream"} {
				before := faults.Load()
				if got := runFaultJob(ctx, t, k, job); got != want[job] {
					t.Errorf("%s with faults: %s; want %s", job, got, want[job])
				}
				if n := faults.Load() - before; n < 20 {
					t.Errorf("%s met only %d injected faults", job, n)
				}
			}
			faultExits(ctx, t, k, k2)
			faultFifo(ctx, t, k, k2)
			t.Logf("%d injected faults in all", faults.Load())
		})
	}
}

// faultExits checks that each child's exit status is recorded once and
// correctly: its parent, another handle and another kernel all read the
// same one.
func faultExits(ctx context.Context, t *testing.T, k, k2 *rack.Kernel) {
	t.Helper()
	type want struct {
		code int
		sig  rack.Signal
	}
	cases := []struct {
		arg  string
		want want
	}{
		{"0", want{0, 0}},
		{"error", want{1, 0}},
		{"3", want{3, 0}},
		{"panic", want{2, 0}},
		{"sleep", want{128 + 9, rack.SIGKILL}},  // killed by its parent
		{"sleep", want{128 + 15, rack.SIGTERM}}, // signalled from the other kernel
	}
	check := func(who string, err error, w want) error {
		var ee *rack.ExitError
		switch {
		case w.code == 0 && err == nil:
			return nil
		case w.code == 0:
			return fmt.Errorf("%s: %v, want success", who, err)
		case !errors.As(err, &ee):
			return fmt.Errorf("%s: %v, want exit code %d", who, err, w.code)
		case ee.Code() != w.code || ee.Signal() != w.sig:
			return fmt.Errorf("%s: code %d signal %v, want code %d signal %v (%v)", who, ee.Code(), ee.Signal(), w.code, w.sig, err)
		}
		return nil
	}
	var pids []rack.PID
	root, err := k.Start(ctx, rack.Spec{Name: "exits"}, func(ctx context.Context, self *rack.Self) error {
		if self.PPID() != rack.InitPID {
			var unused string
			return faultJob(&unused)(ctx, self)
		}
		var errs []error
		kids := make([]*rack.Process, len(cases))
		for i, c := range cases {
			kid, err := self.Fork(ctx, rack.Spec{Args: []string{"exit", c.arg}})
			if err != nil {
				return err
			}
			kids[i] = kid
			pids = append(pids, kid.PID())
		}
		if err := kids[4].Kill(ctx); err != nil {
			return err
		}
		other, err := k2.Process(ctx, kids[5].PID())
		if err != nil {
			return err
		}
		if err := other.Signal(ctx, rack.SIGTERM); err != nil {
			return fmt.Errorf("SIGTERM from the other kernel: %w", err)
		}
		for i, c := range cases {
			for try := 0; try < 2; try++ {
				if err := check(fmt.Sprintf("child %s: wait %d", c.arg, try), kids[i].Wait(ctx), c.want); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// What the store recorded, read by both kernels through fresh handles.
	for i, c := range cases {
		for j, kk := range []*rack.Kernel{k, k2} {
			p, err := kk.Process(ctx, pids[i])
			if err == nil {
				err = check(fmt.Sprintf("kernel %d: pid %d (%s)", j+1, pids[i], c.arg), p.Wait(ctx), c.want)
			}
			if err != nil {
				t.Error(err)
			}
		}
	}
	// ps agrees, once the listing caught up.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps, err := k2.Processes(ctx)
		if err != nil {
			t.Fatalf("ps: %v", err)
		}
		var errs []error
		seen := 0
		for _, info := range ps {
			for i, pid := range pids {
				if info.PID != pid {
					continue
				}
				seen++
				if info.State != rack.Exited || info.ExitCode != cases[i].want.code || info.Signal != cases[i].want.sig {
					errs = append(errs, fmt.Errorf("ps: pid %d (%s): state %s code %d signal %v; want exited, code %d", pid, cases[i].arg, info.State, info.ExitCode, info.Signal, cases[i].want.code))
				}
			}
		}
		if seen == len(pids) {
			for _, err := range errs {
				t.Error(err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ps shows %d of the %d children after 5 s", seen, len(pids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failingStore fails for good (not transiently) every Put of an object
// whose name ends in suffix.
type failingStore struct {
	*mem.Store
	suffix string
}

func (s failingStore) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	if strings.HasSuffix(n, s.suffix) {
		return backend.ObjectInfo{}, fmt.Errorf("injected permanent failure of %s: %w", n, backend.ErrInvalid)
	}
	return s.Store.Put(ctx, c, n, r, o)
}

// TestFaultSplitWriteLost: a Write split into segments whose second
// segment cannot be stored fails, and the reader still reaches the end of
// the stream (with the other writers' data) instead of waiting forever for
// the rest of that Write.
func TestFaultSplitWriteLost(t *testing.T) {
	ctx := ioCtx(t, 20*time.Second)
	// The parent's end is end 0; its segment 1 is refused.
	k, err := rack.New(ctx, failingStore{mem.New(), "/seg/0/1"}, inproc.New(), faultOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var got []byte
	err = ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		if ioArg(self, 0) == "child" {
			_, err := io.WriteString(self.Stdout(), "child's line\n")
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		child, err := self.Fork(ctx, rack.Spec{Args: []string{"child"}, Stdout: w})
		if err != nil {
			return err
		}
		big := make([]byte, 150<<10) // three 64 KiB segments
		if n, err := w.Write(big); err == nil {
			return fmt.Errorf("a Write whose segment could not be stored returned %d, nil", n)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			return errors.New("a Write after a lost segment succeeded")
		}
		w.Close() // reports the write error again; the end is closed all the same
		if err := child.Wait(ctx); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() {
			var err error
			got, err = io.ReadAll(r)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			r.Close()
			<-done
			return errors.New("the reader hangs after a lost segment")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte("child's line\n")) {
		t.Fatalf("the reader lost the other writer's data: read %d bytes", len(got))
	}
}

// faultFifo streams 2 MiB through a named pipe from a process of one
// kernel to a process of the other.
func faultFifo(ctx context.Context, t *testing.T, k, k2 *rack.Kernel) {
	t.Helper()
	const size = 2 << 20
	if err := k.Mkfifo(ctx, "across"); err != nil {
		t.Fatal(err)
	}
	// The writer's open waits for the reader's (as on Linux).
	writer, err := k.Start(ctx, rack.Spec{Name: "fifo-writer"}, func(ctx context.Context, self *rack.Self) error {
		w, err := self.OpenFifoWriter(ctx, "across")
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, ioData(5, size)); err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	reader, err := k2.Start(ctx, rack.Spec{Name: "fifo-reader"}, func(ctx context.Context, self *rack.Self) error {
		r, err := self.OpenFifoReader(ctx, "across")
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		got = fmt.Sprintf("%d bytes, sha256 %x", n, h.Sum(nil))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*rack.Process{writer, reader} {
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("%v: %v", p, err)
		}
	}
	if want := fmt.Sprintf("%d bytes, sha256 %x", size, ioSum(t, ioData(5, size))); got != want {
		t.Fatalf("fifo across kernels: %s; want %s", got, want)
	}
}
