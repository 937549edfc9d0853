package rack

import (
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
	"github.com/rackfork/rack/internal/record"
)

// pipereads-line writes a line to its stdout.
func init() {
	Register("pipereads-line", func(ctx context.Context, self *Self) error {
		_, err := fmt.Fprintln(self.Stdout(), "a line")
		return err
	})
}

// createSpy is a store that notes, for each create-only Put, whether it
// said NoRival.
type createSpy struct {
	backend.Store
	mu      sync.Mutex
	noRival map[string]bool
}

func (s *createSpy) Put(ctx context.Context, c, name string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	if o != nil && o.CreateOnly {
		s.mu.Lock()
		if s.noRival == nil {
			s.noRival = map[string]bool{}
		}
		s.noRival[name] = o.NoRival
		s.mu.Unlock()
	}
	return s.Store.Put(ctx, c, name, r, o)
}

func (s *createSpy) said(name string) (noRival, put bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	noRival, put = s.noRival[name]
	return noRival, put
}

// TestCreatesReadBackOnlyWhereItMatters: a create-only put is read back
// for a rival (on Swift a HEAD after the PUT) only where its writer acts
// on whose create stayed: a process's exit (its waiters must see the one
// recorded). A pipe end's close, a lost process's exit and a group
// member's record are not: the writer takes a rival's as its own, or has
// none.
func TestCreatesReadBackOnlyWhereItMatters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := &createSpy{Store: mem.New()}
	k, err := New(ctx, store, inproc.New(), WithPolling(time.Millisecond, 5*time.Millisecond),
		WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	g, err := k.NewGroup(ctx, "spies")
	if err != nil {
		t.Fatal(err)
	}
	var pipe string
	var child PID
	p, err := k.Start(ctx, Spec{Name: "spied"}, func(ctx context.Context, self *Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		pipe = w.pipe
		c, err := self.Fork(ctx, Spec{Program: "pipereads-line", Stdout: w, Group: g})
		if err != nil {
			return err
		}
		child = c.PID()
		w.Close()
		if _, err := io.ReadAll(r); err != nil {
			return err
		}
		return c.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	k.recordLost(ctx, 999, "a test")
	for _, c := range []struct {
		what, key string
		noRival   bool
	}{
		{"the child's pipe end's close", record.PipeCloseKey(pipe, 1), true},
		{"the parent's pipe end's close", record.PipeCloseKey(pipe, 0), true},
		{"the child's group member record", record.GroupMemberKey(int64(g.ID()), int64(child)), true},
		{"a lost process's exit", record.ExitKey(999), true},
		{"the child's exit", record.ExitKey(int64(child)), false},
		{"the child's process record", record.ProcKey(int64(child)), true},
	} {
		noRival, put := store.said(c.key)
		switch {
		case !put:
			t.Errorf("%s (%s): no create-only put", c.what, c.key)
		case noRival != c.noRival:
			t.Errorf("%s (%s): NoRival %v, want %v", c.what, c.key, noRival, c.noRival)
		}
	}
}
