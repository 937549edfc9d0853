package rack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// heldDeletes is a store whose deletes of pipe segments wait until
// released.
type heldDeletes struct {
	backend.Store
	release chan struct{}
}

func (s *heldDeletes) Delete(ctx context.Context, c, name string) error {
	if strings.Contains(name, "/seg/") {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Store.Delete(ctx, c, name)
}

// TestReaderDoesNotWaitForDeletes: a reader deletes the segments it has
// read in the background, and does not wait for those deletes however
// many are in flight (it waited once 32 were); all of them are done once
// the store lets them through.
func TestReaderDoesNotWaitForDeletes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inner := mem.New()
	store := &heldDeletes{Store: inner, release: make(chan struct{})}
	k, err := New(ctx, store, inproc.New(), WithPipeBuffer(0, 0), WithPolling(time.Millisecond, 5*time.Millisecond),
		WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const lines = 3 * deleteWorkers
	p, err := k.Start(ctx, Spec{Name: "reader"}, func(ctx context.Context, self *Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		written := make(chan error, 1)
		go func() {
			var err error
			for i := 0; i < lines && err == nil; i++ {
				_, err = fmt.Fprintf(w, "line %d\n", i) // a segment each (no flush delay)
			}
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			written <- err
		}()
		read := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(r)
			n := 0
			for sc.Scan() {
				if want := fmt.Sprintf("line %d", n); sc.Text() != want {
					read <- fmt.Errorf("line %d: %q, want %q", n, sc.Text(), want)
					return
				}
				n++
			}
			if n != lines {
				read <- fmt.Errorf("read %d lines, want %d (%v)", n, lines, sc.Err())
				return
			}
			read <- sc.Err()
		}()
		select {
		case err := <-read:
			if err != nil {
				return err
			}
		case <-time.After(10 * time.Second):
			return fmt.Errorf("the reader is stuck with the store's deletes held")
		}
		return <-written
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	close(store.release)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		objs, err := inner.List(ctx, k.cfg.container, backend.ListOptions{Prefix: "pipes/"})
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, o := range objs {
			if strings.Contains(o.Name, "/seg/") {
				left = append(left, o.Name)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d segments left after the reader read them: %v", len(left), left)
		}
	}
}

// readCounts is a store that counts looks for a pipe's new ends (HEADs of
// its end records) and the most segment GETs in flight at once.
type readCounts struct {
	backend.Store
	mu                  sync.Mutex
	endHeads            int
	segGets, maxSegGets int
}

func (s *readCounts) Head(ctx context.Context, c, name string) (backend.ObjectInfo, error) {
	if strings.Contains(name, "/ends/") {
		s.mu.Lock()
		s.endHeads++
		s.mu.Unlock()
	}
	return s.Store.Head(ctx, c, name)
}

func (s *readCounts) Get(ctx context.Context, c, name string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	if strings.Contains(name, "/seg/") {
		s.mu.Lock()
		s.segGets++
		s.maxSegGets = max(s.maxSegGets, s.segGets)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.segGets--
			s.mu.Unlock()
		}()
	}
	return s.Store.Get(ctx, c, name, o)
}

// TestReaderReadsListedSegmentsTogether: a reader of many ends reads the
// small segments a listing shows all at once, not 32 at a time, and
// while they are on their way does not look for new ends (one round trip
// each, every 16 segments): its looks are the first (3 HEADs: its own
// end's record, the ForkAll's block of ends, none after) and the one
// before EOF; 10 when it looked every 16 segments.
func TestReaderReadsListedSegmentsTogether(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store := &readCounts{Store: mem.New(mem.WithLatency(20 * time.Millisecond))}
	k, err := New(ctx, store, inproc.New(), WithPipeBuffer(0, 0), WithPolling(time.Millisecond, 20*time.Millisecond),
		WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const writers = 100
	var heads, maxGets int
	p, err := k.Start(ctx, Spec{Name: "fan-in"}, func(ctx context.Context, self *Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		specs := make([]Spec, writers)
		for i := range specs {
			specs[i] = Spec{Program: "pipereads-line", Stdout: w}
		}
		kids, err := self.ForkAll(ctx, specs)
		if err != nil {
			return err
		}
		w.Close()
		// Every line is stored before the reader starts: one listing
		// shows them all.
		for _, c := range kids {
			if err := c.Wait(ctx); err != nil {
				return err
			}
		}
		store.mu.Lock()
		before := store.endHeads
		store.mu.Unlock()
		sc := bufio.NewScanner(r)
		n := 0
		for sc.Scan() {
			n++
		}
		if n != writers {
			return fmt.Errorf("read %d lines, want %d (%v)", n, writers, sc.Err())
		}
		store.mu.Lock()
		heads, maxGets = store.endHeads-before, store.maxSegGets
		store.mu.Unlock()
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d segments: at most %d GETs of segments at once, %d looks for new ends", writers, maxGets, heads)
	// All 100 go out at once; a loaded machine may start the last after
	// the first is back. Twice the old window (32) tells the two apart.
	const oldWindow = 32
	if maxGets <= 2*oldWindow {
		t.Errorf("at most %d segment GETs at once, want the %d listed ones together (more than %d)", maxGets, writers, 2*oldWindow)
	}
	if heads > 4 {
		t.Errorf("%d looks for new ends while reading %d listed segments, want at most 4", heads, writers)
	}
}
