package rack_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// replayingInbox is the receiving kernel's view of a store in which every
// inbox message comes back once after its reader deleted it, as a sender's
// create-only put does when it was retried after an ambiguous failure and
// lands after the first copy was read.
type replayingInbox struct {
	backend.Store
	replays  atomic.Int64
	replayed sync.Map // name -> true: each message comes back once
}

func (s *replayingInbox) Delete(ctx context.Context, c, n string) error {
	if _, again := s.replayed.LoadOrStore(n, true); again || !strings.HasPrefix(n, "signals/") {
		return s.Store.Delete(ctx, c, n)
	}
	rc, _, err := s.Store.Get(ctx, c, n, nil)
	if err != nil {
		return s.Store.Delete(ctx, c, n)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if err := s.Store.Delete(ctx, c, n); err != nil {
		return err
	}
	if _, err := s.Store.Put(ctx, c, n, bytes.NewReader(data), &backend.PutOptions{CreateOnly: true}); err == nil {
		s.replays.Add(1)
	}
	return nil
}

// TestInboxDeliversOnce: a signal message that reappears after it was read
// (a retried create-only put landing late) is not delivered again.
func TestInboxDeliversOnce(t *testing.T) {
	ctx := pgCtx(t, 30*time.Second)
	s := mem.New()
	quiet := rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard)
	poll := rack.WithPolling(time.Millisecond, 5*time.Millisecond)
	replay := &replayingInbox{Store: s}
	host, err := rack.New(ctx, replay, inproc.New(), quiet, poll)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	sender, err := rack.New(ctx, s, inproc.New(), quiet, poll)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sender.Close() })

	got := make(chan rack.Signal, 8)
	ready := make(chan rack.PID, 1)
	p, err := host.Start(ctx, rack.Spec{Name: "listener"}, func(ctx context.Context, self *rack.Self) error {
		if err := self.Notify(got, rack.SIGUSR1); err != nil {
			return err
		}
		ready <- self.PID()
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := <-ready
	other, err := sender.Process(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Signal(ctx, rack.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the signal never came")
	}
	// The replayed copy is back in the inbox by now; give the host's
	// inbox (polling every 5 ms at most) time to see it.
	deadline := time.After(300 * time.Millisecond)
	for replay.replays.Load() == 0 {
		select {
		case <-deadline:
			t.Fatal("the store never replayed the message: the test did not test anything")
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case sig := <-got:
		t.Fatalf("%v delivered a second time", sig)
	case <-time.After(300 * time.Millisecond):
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
}
