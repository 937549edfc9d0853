package rack_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// gateStore holds the first Put (or Head, if head) of an object whose name
// contains match until release is closed (then completes it whatever its context
// says: the store had done it as the caller was cancelled), telling
// entered when it arrives.
type gateStore struct {
	*mem.Store
	match   string
	head    bool
	once    *sync.Once
	entered chan struct{}
	release chan struct{}
}

func newGateStore(match string, head bool) gateStore {
	return gateStore{Store: mem.New(), match: match, head: head, once: new(sync.Once), entered: make(chan struct{}), release: make(chan struct{})}
}

// Close leaves the store open: a test reads it after Kernel.Close.
func (gateStore) Close() error { return nil }

func (s gateStore) gate(name string, head bool) bool {
	if head != s.head || !strings.Contains(name, s.match) {
		return false
	}
	held := false
	s.once.Do(func() {
		held = true
		close(s.entered)
		<-s.release
	})
	return held
}

func (s gateStore) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	if s.gate(n, false) {
		ctx = context.WithoutCancel(ctx)
	}
	return s.Store.Put(ctx, c, n, r, o)
}

func (s gateStore) Head(ctx context.Context, c, n string) (backend.ObjectInfo, error) {
	if s.gate(n, true) {
		ctx = context.WithoutCancel(ctx)
	}
	return s.Store.Head(ctx, c, n)
}

func gateKernel(t *testing.T, s gateStore) *rack.Kernel {
	t.Helper()
	k, err := rack.New(context.Background(), s, inproc.New(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatalf("rack.New: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// killDuringOpen starts a process that runs open, which the gate holds;
// kills the process while it is held, lets it go once the process has
// ended, and returns what open returned.
func killDuringOpen(ctx context.Context, t *testing.T, k *rack.Kernel, s gateStore, open func(context.Context, *rack.Self) error) error {
	t.Helper()
	opened := make(chan error, 1)
	p, err := k.Start(ctx, rack.Spec{Name: "opener"}, func(ctx context.Context, self *rack.Self) error {
		err := open(ctx, self)
		opened <- err
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.entered:
	case <-ctx.Done():
		t.Fatal("the open never reached the store")
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if err := p.Wait(ctx); !errors.Is(err, rack.ErrKilled) && err == nil {
		t.Fatalf("wait: %v; want the process killed", err)
	}
	close(s.release)
	select {
	case err := <-opened:
		return err
	case <-ctx.Done():
		t.Fatal("the open never returned")
		return nil
	}
}

// TestLateFifoWriter: a FIFO writer end whose registration completes after
// its process was killed (and its ends closed) is closed too, so that the
// FIFO's reader reaches EOF instead of waiting for it forever.
func TestLateFifoWriter(t *testing.T) {
	ctx := ioCtx(t, 20*time.Second)
	// The reader has end 0 of the FIFO's first session; the writer's is 1.
	s := newGateStore(".0/ends/1", false)
	k := gateKernel(t, s)
	if err := k.Mkfifo(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got []byte
	opened := make(chan error, 1)
	reader, err := k.Start(readCtx, rack.Spec{Name: "reader"}, func(ctx context.Context, self *rack.Self) error {
		r, err := self.OpenFifoReader(ctx, "late")
		opened <- err
		if err != nil {
			return err
		}
		got, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	err = killDuringOpen(ctx, t, k, s, func(ctx context.Context, self *rack.Self) error {
		w, err := self.OpenFifoWriter(ctx, "late")
		if err == nil {
			w.Close()
		}
		return err
	})
	if !errors.Is(err, rack.ErrKilled) {
		t.Errorf("OpenFifoWriter in a process killed meanwhile: %v; want ErrKilled", err)
	}
	if err := reader.Wait(readCtx); err != nil {
		t.Fatalf("FIFO reader whose only writer was killed while opening: %v (got %q); want EOF", err, got)
	}
}

// TestLateFile: a file whose open completes after its process was killed
// is discarded and the open fails, rather than left open with no one to
// close it.
func TestLateFile(t *testing.T) {
	ctx := ioCtx(t, 20*time.Second)
	s := newGateStore("late.txt", true)
	k := gateKernel(t, s)
	writeLate(ctx, t, k)
	err := killDuringOpen(ctx, t, k, s, func(ctx context.Context, self *rack.Self) error {
		f, err := k.Open(ctx, "/data/late.txt")
		if err == nil {
			f.Close()
		}
		return err
	})
	if !errors.Is(err, rack.ErrKilled) {
		t.Errorf("Open in a process killed meanwhile: %v; want ErrKilled", err)
	}
}

// TestLateKernelFile: a file opened outside any process whose open
// completes after Kernel.Close collected the kernel's files is discarded,
// and the open fails with ErrClosed.
func TestLateKernelFile(t *testing.T) {
	ctx := ioCtx(t, 20*time.Second)
	s := newGateStore("late.txt", true)
	k := gateKernel(t, s)
	writeLate(ctx, t, k)
	opened := make(chan error, 1)
	go func() {
		f, err := k.Open(ctx, "/data/late.txt")
		if err == nil {
			_, err = io.ReadAll(f) // still open: nothing discarded it
			f.Close()
		}
		opened <- err
	}()
	<-s.entered
	if err := k.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	close(s.release)
	if err := <-opened; !errors.Is(err, rack.ErrClosed) {
		t.Errorf("Open during Kernel.Close: %v; want ErrClosed", err)
	}
}

func writeLate(ctx context.Context, t *testing.T, k *rack.Kernel) {
	t.Helper()
	f, err := k.Create(ctx, "/data/late.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
