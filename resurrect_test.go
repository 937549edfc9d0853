package rack_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// lostReply stores the first create-only Put of a pipe segment, waits
// until its reader has consumed it (deleted it), then fails it as a
// request whose answer was lost: the retry finds the name free and
// creates the segment again.
type lostReply struct {
	backend.Store
	hit  atomic.Bool
	puts atomic.Int32 // of the segment hit
	key  atomic.Value
}

func (s *lostReply) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	info, err := s.Store.Put(ctx, c, n, r, o)
	if k, _ := s.key.Load().(string); k == n {
		s.puts.Add(1)
	}
	if err != nil || o == nil || !o.CreateOnly || !strings.Contains(n, "/seg/") || !s.hit.CompareAndSwap(false, true) {
		return info, err
	}
	s.key.Store(n)
	s.puts.Add(1)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := s.Store.Head(ctx, c, n); errors.Is(err, backend.ErrNotFound) {
			break
		}
	}
	return backend.ObjectInfo{}, fmt.Errorf("answer lost: %w", backend.ErrTransient)
}

// TestPipeSegmentNotResurrected: a pipe segment whose create was stored,
// consumed by the reader, and created again by the writer's retry (its
// first answer lost) is deleted by the reader once it reads the writer's
// close record, which lists it: the stream is exact and no segment is
// left.
func TestPipeSegmentNotResurrected(t *testing.T) {
	ctx := pgCtx(t, time.Minute)
	store := &lostReply{Store: mem.New()}
	k, err := rack.New(ctx, store, inproc.New(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var got []string
	root, err := k.Start(ctx, rack.Spec{Name: "reader"}, func(ctx context.Context, self *rack.Self) error {
		if len(self.Args()) > 0 {
			for _, line := range []string{"one", "two", "three"} {
				if _, err := fmt.Fprintln(self.Stdout(), line); err != nil {
					return err
				}
			}
			return nil
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		c, err := self.Fork(ctx, rack.Spec{Name: "writer", Args: []string{"write"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "one two three" {
		t.Fatalf("read %q, want one two three", got)
	}
	if n := store.puts.Load(); n != 2 {
		t.Fatalf("segment %v put %d times, want 2 (stored, consumed, created again)", store.key.Load(), n)
	}
	// The reader deletes in the background: give it a moment.
	var left []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		objs, err := store.List(ctx, "rack", backend.ListOptions{Prefix: "pipes/"})
		if err != nil {
			t.Fatal(err)
		}
		left = left[:0]
		for _, o := range objs {
			if strings.Contains(o.Name, "/seg/") {
				left = append(left, o.Name)
			}
		}
		if len(left) == 0 {
			return
		}
	}
	t.Errorf("segments left after the stream: %v", left)
}
