package rack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// A named pipe is a series of sessions, each an ordinary pipe. A session
// begins when an end is opened while none is and is over once every end
// opened in it (readers too: they register like writer ends) is closed;
// its data is then dropped and the next open begins the next session, as
// a Linux FIFO holds no data once nobody has it open. Session s of the
// named pipe whose record names pipe B is the pipe "B.s".
//
// The end of a session is fenced like its ends are claimed: the closer
// that finds every end closed claims the next end number create-only as
// the session's end (record.EndOver), so an end claimed at the same time
// either comes first (and the session goes on) or finds the session over
// and moves to the next one. It then writes the session's over marker
// (record.FifoOverKey) and drops the segments no reader took. Over markers are never removed
// while the named pipe exists (written after its record, they expire after
// it, WithRecordTTL): an open finds the current session as the
// first without one (a doubling search from the last session this OS
// process saw), all by reads at computable names.

// fifoSessionPipe names session s of the named pipe whose base pipe id
// is base.
func fifoSessionPipe(base string, s int) string { return base + "." + strconv.Itoa(s) }

// isFifoPipe reports whether pipe is a named pipe's session (anonymous
// pipes' ids have no '.').
func isFifoPipe(pipe string) bool { return strings.Contains(pipe, ".") }

// fifoHints holds, by base pipe id, a session that every session before
// it is known to be over (a lower bound: any kernel's is right).
var fifoHints sync.Map

// fifoOver reports whether pipe (a session) is over.
func (k *Kernel) fifoOver(ctx context.Context, pipe string) (bool, error) {
	_, err := k.ns.store.Head(ctx, k.cfg.container, record.FifoOverKey(pipe))
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// fifoSession returns the current session of the named pipe base: the
// first that is not over.
func (k *Kernel) fifoSession(ctx context.Context, base string) (int, error) {
	lo := 0
	if h, ok := fifoHints.Load(base); ok {
		lo = h.(int)
	}
	over, err := k.fifoOver(ctx, fifoSessionPipe(base, lo))
	if err != nil || !over {
		return lo, err
	}
	// lo is over: double the step until one is not, then bisect.
	var hi int
	for step := 1; ; step *= 2 {
		hi = lo + step
		over, err := k.fifoOver(ctx, fifoSessionPipe(base, hi))
		if err != nil {
			return 0, err
		}
		if !over {
			break
		}
		lo = hi
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		over, err := k.fifoOver(ctx, fifoSessionPipe(base, mid))
		if err != nil {
			return 0, err
		}
		if over {
			lo = mid
		} else {
			hi = mid
		}
	}
	k.fifoSeen(base, hi)
	return hi, nil
}

// fifoSeen notes that the sessions of base before s are over.
func (k *Kernel) fifoSeen(base string, s int) {
	for {
		h, loaded := fifoHints.LoadOrStore(base, s)
		if !loaded || h.(int) >= s || fifoHints.CompareAndSwap(base, h, s) {
			return
		}
	}
}

// joinFifo registers, for pid, an end of kind (record.PipeEnd.Kind: ""
// for a writer, record.EndReader) in the current session of the named
// pipe base, and returns the session's pipe, the end's number and whether
// a reader's end comes before it.
func (k *Kernel) joinFifo(ctx context.Context, pid PID, base, kind string) (string, int, bool, error) {
	for {
		s, err := k.fifoSession(ctx, base)
		if err != nil {
			return "", 0, false, err
		}
		pipe := fifoSessionPipe(base, s)
		n, over, reader, err := k.claimFifoEnd(ctx, pid, pipe, kind)
		if err != nil {
			return "", 0, false, err
		}
		if !over {
			// Claimed before the session's end: the end records stay
			// when a session is dropped, so a claim in an over session
			// always meets its end.
			return pipe, n, reader, nil
		}
		if err := k.markFifoOver(ctx, pipe); err != nil {
			return "", 0, false, err
		}
		k.fifoSeen(base, s+1)
	}
}

// claimFifoEnd claims the first free end number of session pipe for an
// end of kind; over says the session ended first, reader that a reader's
// end comes before the one claimed.
func (k *Kernel) claimFifoEnd(ctx context.Context, pid PID, pipe, kind string) (n int, over, reader bool, err error) {
	data := record.Encode(record.PipeEnd{PID: int64(pid), Kernel: k.id, From: -1, Kind: kind})
	for n < record.MaxPipeEnd {
		key := record.PipeEndKey(pipe, n)
		err := k.ns.putSummarized(ctx, key, data, true, record.FifoEndsSummary(kind))
		if err == nil {
			return n, false, reader, nil
		}
		if !errors.Is(err, backend.ErrExist) {
			return 0, false, false, err
		}
		info, err := k.ns.store.Head(ctx, k.cfg.container, key)
		if errors.Is(err, backend.ErrNotFound) {
			// Removed meanwhile: GC removes only the sessions of a named
			// pipe that is gone (or of one it did not list yet).
			return 0, true, false, nil
		}
		if err != nil {
			return 0, false, false, err
		}
		c, other, err := k.endKind(ctx, pipe, n, info)
		if err != nil {
			return 0, false, false, err
		}
		if other == record.EndOver {
			return 0, true, false, nil
		}
		reader = reader || other == record.EndReader
		n += c
	}
	return 0, false, false, fmt.Errorf("pipe %s: %w: over %d ends", pipe, ErrInvalid, record.MaxPipeEnd)
}

// endKind returns how many ends the record at end n of pipe registers and
// their kind, from its summary (info, of a HEAD) or the record.
func (k *Kernel) endKind(ctx context.Context, pipe string, n int, info backend.ObjectInfo) (int, string, error) {
	if c, ok := record.ParseEndsSummary(info.ContentType); ok {
		if kind, ok := record.ParseEndsKind(info.ContentType); ok {
			return c, kind, nil
		}
	}
	var e record.PipeEnd
	if err := k.ns.getRecord(ctx, record.PipeEndKey(pipe, n), &e); err != nil {
		return 0, "", err
	}
	return max(e.Count, 1), e.Kind, nil
}

// putClose writes the close record of end n of pipe (segments written).
func (k *Kernel) putClose(ctx context.Context, pipe string, n, segments int) {
	err := k.ns.putOnce(ctx, record.PipeCloseKey(pipe, n), record.Encode(record.PipeClose{Segments: segments}), "")
	if err != nil {
		k.cfg.logger.Warn("rack: closing a named pipe's end", "pipe", pipe, "end", n, "err", err)
	}
}

// markFifoOver writes session pipe's over marker (once its end is
// claimed, record.EndOver).
func (k *Kernel) markFifoOver(ctx context.Context, pipe string) error {
	return k.ns.putOnce(ctx, record.FifoOverKey(pipe), record.Encode(record.PipeClose{}), "")
}

// fifoEndClosed runs once end mine of session pipe is closed: if every
// end of the session is, it ends the session and drops its data. A
// failure leaves the session open: the next close looks again. from is
// where a record of ends is known to start (0, or past whole records
// claimed: an end of a ForkAll's block has no record of its own).
func (k *Kernel) fifoEndClosed(pid PID, pipe string, mine, from int) {
	ctx := k.ctx
	n := from
	for {
		info, err := k.ns.store.Head(ctx, k.cfg.container, record.PipeEndKey(pipe, n))
		if errors.Is(err, backend.ErrNotFound) {
			break
		}
		if err != nil {
			return
		}
		c, kind, err := k.endKind(ctx, pipe, n, info)
		if err != nil || kind == record.EndOver {
			return
		}
		n += c
	}
	// The latest ends are the likeliest to be open: look from the top.
	for e := n - 1; e >= 0; e-- {
		if e == mine {
			continue
		}
		_, err := k.ns.store.Head(ctx, k.cfg.container, record.PipeCloseKey(pipe, e))
		if err != nil && (!errors.Is(err, backend.ErrNotFound) || !k.closeEndOfDead(ctx, pipe, e)) {
			return // open (or unknown): not over
		}
	}
	data := record.Encode(record.PipeEnd{PID: int64(pid), Kernel: k.id, From: -1, Kind: record.EndOver})
	err := k.ns.putSummarized(ctx, record.PipeEndKey(pipe, n), data, true, record.FifoEndsSummary(record.EndOver))
	if err != nil {
		return // an end joined first (or another closer ended it)
	}
	if err := k.markFifoOver(ctx, pipe); err != nil {
		k.cfg.logger.Warn("rack: marking a named pipe's session over", "pipe", pipe, "err", err)
		return // the next open writes it, finding the session's end
	}
	// Drop the data no reader took. The end records stay (small; GC
	// takes them with the named pipe): a claim that comes late meets the
	// session's end. A listing may miss segments: they expire by
	// themselves (WithRecordTTL), and nothing reads a session that is over.
	k.background(func() {
		objs, err := k.ns.listAllIn(k.ctx, k.cfg.container, record.PipePrefix(pipe)+"seg/")
		if err != nil {
			return
		}
		for _, o := range objs {
			_ = k.ns.deleteSized(k.ctx, o.Name, o.Size)
		}
	})
}

// awaitFifoReader waits until a reader has opened session pipe, as
// open(2) of a FIFO for writing waits for one: one whose end comes at or
// after end n, none before having been a reader's.
func (k *Kernel) awaitFifoReader(ctx context.Context, pipe string, n int, stop <-chan struct{}) error {
	var delay time.Duration
	for {
		ch := k.ns.changed(record.PipePrefix(pipe))
		for {
			info, err := k.ns.store.Head(ctx, k.cfg.container, record.PipeEndKey(pipe, n))
			if errors.Is(err, backend.ErrNotFound) {
				break
			}
			if err != nil {
				return err
			}
			c, kind, err := k.endKind(ctx, pipe, n, info)
			if err != nil {
				return err
			}
			if kind == record.EndReader {
				return nil
			}
			n += c
		}
		var err error
		if delay, err = k.ns.waitChange(ctx, ch, stop, delay); err != nil {
			return err
		}
	}
}

// closeEndOfDead closes end e of session pipe if the kernel that opened it
// is gone (its lease lapsed): its process is lost, and nobody else would
// close the end. The close record counts the segments the end stored. It
// reports whether e is closed now. Ends handed to a child (a duplicate)
// are left alone: the record names the forker's kernel, not the child's.
func (k *Kernel) closeEndOfDead(ctx context.Context, pipe string, e int) bool {
	var rec record.PipeEnd
	if err := k.ns.getRecord(ctx, record.PipeEndKey(pipe, e), &rec); err != nil {
		return false // inside a block of ends, or unreadable
	}
	if rec.Kind == record.EndOver {
		return true
	}
	if rec.From != -1 || rec.Count > 1 {
		return false
	}
	if alive, err := k.leases.alive(ctx, rec.Kernel); err != nil || alive {
		return false
	}
	n := 0
	for rec.Kind == "" {
		_, err := k.ns.store.Head(ctx, k.cfg.container, record.PipeSegmentKey(pipe, e, n))
		if errors.Is(err, backend.ErrNotFound) {
			break
		}
		if err != nil {
			return false
		}
		n++
	}
	k.putClose(ctx, pipe, e, n)
	return true
}

// changedOrAfter returns a channel closed when ch is, or after d.
func (n *nsStore) changedOrAfter(ch <-chan struct{}, d time.Duration) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ch:
		case <-t.C:
		case <-n.closing:
		}
		close(out)
	}()
	return out
}
