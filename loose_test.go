package rack_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/internal/record"
)

// looseStore models Swift's create-only PUT for pid-block claims: two
// claims of one block in flight together both succeed, and the one that
// arrived last stays, a moment after the first. The first claim of a
// block waits (up to 100 ms) for a rival, so that the race happens.
type looseStore struct {
	backend.Store
	mu    sync.Mutex
	held  map[string]chan struct{}
	races int
}

func (s *looseStore) LooseCreate() bool { return true }

func (s *looseStore) Put(ctx context.Context, c, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	if opts == nil || !opts.CreateOnly || !strings.HasPrefix(name, record.PIDBlocks) {
		return s.Store.Put(ctx, c, name, r, opts)
	}
	s.mu.Lock()
	hold, rival := s.held[name]
	if !rival {
		hold = make(chan struct{})
		s.held[name] = hold
	}
	s.mu.Unlock()
	if !rival {
		select { // first to arrive: wait for a rival, then land first
		case <-hold:
		case <-time.After(100 * time.Millisecond):
		}
		return s.Store.Put(ctx, c, name, r, opts)
	}
	select {
	case <-hold:
		return s.Store.Put(ctx, c, name, r, opts) // not in flight together: as Swift, 412
	default:
	}
	close(hold)
	time.Sleep(time.Millisecond) // arrived last, lands last: it stays
	s.mu.Lock()
	s.races++
	s.mu.Unlock()
	o := *opts
	o.CreateOnly = false
	return s.Store.Put(ctx, c, name, r, &o)
}

// Two kernels that claim the same pid block at the same moment, on a
// store whose creates are loose, still hand out distinct pids: the claim
// that did not stay is read back and dropped.
func TestLooseCreatePIDClaims(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := &looseStore{Store: mem.New(), held: map[string]chan struct{}{}}
	kernels := make([]*rack.Kernel, 2)
	for i := range kernels {
		k, err := rack.New(ctx, store, inproc.New(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		kernels[i] = k
	}
	pids := make([][]rack.PID, 2) // each kernel's roots and kids, by its own goroutines
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, k := range kernels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			root, err := k.Start(ctx, rack.Spec{Name: "root"}, func(ctx context.Context, self *rack.Self) error {
				if len(self.Args()) > 0 {
					return nil // a kid
				}
				for range 3 {
					c, err := self.Fork(ctx, rack.Spec{Name: "kid", Args: []string{"kid"}})
					if err != nil {
						return err
					}
					pids[i] = append(pids[i], c.PID())
					if err := c.Wait(ctx); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = root.Wait(ctx)
			pids[i] = append(pids[i], root.PID()) // after Wait: the kids are in
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("kernel %d: %v", i, err)
		}
	}
	if store.races == 0 {
		t.Fatal("no two claims were in flight together: the test did not test the race")
	}
	seen := map[rack.PID]int{}
	for i, ps := range pids {
		for _, p := range ps {
			if j, dup := seen[p]; dup {
				t.Fatalf("pid %d handed out by kernels %d and %d", p, j, i)
			}
			seen[p] = i
		}
	}
	t.Logf("pids %v and %v, %d claims raced", pids[0], pids[1], store.races)
}

// racedClaims lets every create-only claim of a pid block succeed, and
// shows no claim to a HEAD, as for two claims in flight together on Swift;
// it does not say its creates are loose. Kernels then share a block, and
// only their process records, which are create-only too, tell them apart.
type racedClaims struct{ backend.Store }

func (s racedClaims) Head(ctx context.Context, c, name string) (backend.ObjectInfo, error) {
	if strings.HasPrefix(name, record.PIDBlocks) {
		return backend.ObjectInfo{}, backend.ErrNotFound
	}
	return s.Store.Head(ctx, c, name)
}

func (s racedClaims) Put(ctx context.Context, c, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	if opts != nil && opts.CreateOnly && strings.HasPrefix(name, record.PIDBlocks) {
		o := *opts
		o.CreateOnly = false
		opts = &o
	}
	return s.Store.Put(ctx, c, name, r, opts)
}

// A kernel whose pid turns out to be another kernel's (its block was
// claimed twice) fails that one fork, saying why, and leaves the block:
// the next fork gets a pid of a block of its own.
func TestSharedPIDBlockIsLeft(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := racedClaims{mem.New()}
	open := func() *rack.Kernel {
		k, err := rack.New(ctx, store, inproc.New(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.Close() })
		return k
	}
	block := func(ctx context.Context, self *rack.Self) error { <-ctx.Done(); return nil }
	a, b := open(), open()
	for range 2 { // pids 100 and 101
		if _, err := a.Start(ctx, rack.Spec{Name: "a"}, block); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.Start(ctx, rack.Spec{Name: "b"}, block)
	if err == nil || !strings.Contains(err.Error(), "claimed twice") {
		t.Fatalf("first start in the shared block: %v, want an error that says the block was claimed twice", err)
	}
	p, err := b.Start(ctx, rack.Spec{Name: "b"}, block)
	if err != nil {
		t.Fatalf("second start: %v (the kernel stayed in the shared block)", err)
	}
	if p.PID() < 200 {
		t.Fatalf("second start got pid %d, want one of a block of its own (>= 200)", p.PID())
	}
}
