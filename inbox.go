package rack

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// inbox delivers the signals that other kernels send to the processes
// hosted here, and the notes that children's kernels leave when they
// exit: objects under this kernel's inbox prefix, read and deleted in
// listing order. It hands each to receive.
type inbox struct {
	ns      *nsStore
	id      string // this kernel's id: whose inbox
	log     *slog.Logger
	receive func(ctx context.Context, s record.Signal)

	// consumed remembers the names read lately (only loop touches it). A
	// create-only put retried after an ambiguous failure can land again
	// once the first copy was read and deleted (its writer token cannot
	// tell, the object being gone), and a listing can lag behind a delete:
	// the same name must not deliver twice. Names are unique per message.
	consumed   map[string]time.Time
	lastPruned time.Time
}

// consumedFor is how long a read message's name is remembered: far longer
// than a put's retries last.
const consumedFor = 10 * time.Minute

// start starts the delivery of signals sent to this kernel, the
// first look after wait.
func (in *inbox) start(ctx context.Context, wg *sync.WaitGroup, wait time.Duration) {
	wg.Add(1)
	go in.loop(ctx, wg, wait)
}

// loop delivers signals that other kernels sent to processes hosted
// here. One listing serves every process of this kernel.
func (in *inbox) loop(ctx context.Context, wg *sync.WaitGroup, wait time.Duration) {
	defer wg.Done()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	prefix := record.SignalInbox(in.id)
	var delay time.Duration
	for first := true; ; first = false {
		// The first look goes without a watch: a short-lived child's
		// kernel then never sets one up (a signal sent in its first
		// pollMin waits that long).
		var ch <-chan struct{}
		if !first {
			ch = in.ns.changed(prefix)
		}
		n := in.drain(ctx, prefix)
		if n > 0 {
			delay = 0
		}
		// A notification can come before the listing shows the signal
		// (listings are eventually consistent): poll as well, with backoff
		// that each notification restarts.
		if delay == 0 {
			delay = in.ns.pollMin
		}
		t := time.NewTimer(delay)
		select {
		case <-ch: // nil without a notifier: never ready
			delay = 0
		case <-t.C:
			if delay *= 2; delay > in.ns.pollMax {
				delay = in.ns.pollMax
			}
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// drain reads, hands over and deletes what the inbox holds now; it
// returns how many it found.
func (in *inbox) drain(ctx context.Context, prefix string) int {
	page, err := in.ns.store.List(ctx, in.ns.container, backend.ListOptions{Prefix: prefix})
	if err != nil {
		if ctx.Err() == nil {
			in.log.Warn("rack: reading signal inbox", "kernel", in.id, "err", err)
		}
		return 0
	}
	in.prune()
	for _, o := range page {
		if _, seen := in.consumed[o.Name]; seen {
			_ = in.ns.deleteSized(ctx, o.Name, o.Size)
			continue
		}
		var s record.Signal
		if sum, ok := record.ParseSignalSummary(o.ContentType); ok {
			s = *sum // the listing carries it whole (sendMessage)
		} else if err := in.ns.getRecord(ctx, o.Name, &s); err != nil {
			switch {
			case errors.Is(err, record.ErrCorrupt):
				// Never readable: drop it, or it is read (and warned
				// about) again at every look.
				in.log.Warn("rack: dropping a corrupt signal", "name", o.Name, "err", err)
				_ = in.ns.deleteSized(ctx, o.Name, o.Size)
			case !errors.Is(err, backend.ErrNotFound):
				in.log.Warn("rack: reading signal", "name", o.Name, "err", err)
			}
			continue
		}
		if in.consumed == nil {
			in.consumed = make(map[string]time.Time)
		}
		in.consumed[o.Name] = time.Now()
		_ = in.ns.deleteSized(ctx, o.Name, o.Size)
		in.receive(ctx, s)
	}
	return len(page)
}

// prune forgets, once a minute, the names read over consumedFor ago.
func (in *inbox) prune() {
	now := time.Now()
	if len(in.consumed) == 0 || now.Sub(in.lastPruned) < time.Minute {
		return
	}
	in.lastPruned = now
	for name, at := range in.consumed {
		if now.Sub(at) > consumedFor {
			delete(in.consumed, name)
		}
	}
}

// receive acts on what the inbox brings: a child's exit note, or a signal
// for a process hosted here.
func (k *Kernel) receive(ctx context.Context, s record.Signal) {
	if s.Signal == sigchld {
		k.childExited(PID(s.Child), s.Exit)
		return
	}
	p := k.hosted(PID(s.PID))
	switch {
	case p == nil:
	case Signal(s.Signal) == SIGKILL:
		// A kill waits for the subtree; the inbox must not.
		go k.deliver(ctx, p, SIGKILL)
	default:
		// In listing order, so one sender's signals arrive in the
		// order sent.
		k.deliver(ctx, p, Signal(s.Signal))
	}
}
