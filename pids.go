package rack

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// pidAlloc hands out this kernel's pids. The namespace's pid space is cut
// into blocks of pidBlockSize, each claimed by one kernel with a
// create-only object; a kernel hands out its current block's pids from
// memory.
type pidAlloc struct {
	ns *nsStore
	id string // this kernel's id, which its claims name

	mu    sync.Mutex
	next  int64 // the next pid to hand out
	end   int64 // the end of the current block
	block int64 // where to look for the next free block
}

// alloc hands out a pid from this kernel's block, claiming a new block
// (one create-only object) when it runs out.
func (a *pidAlloc) alloc(ctx context.Context) (PID, error) {
	a.mu.Lock()
	if a.next < a.end {
		p := a.next
		a.next++
		a.mu.Unlock()
		return PID(p), nil
	}
	block := a.block
	a.mu.Unlock()
	block, err := a.claim(ctx, block)
	if err != nil {
		return 0, fmt.Errorf("rack: allocate pid: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next >= a.end { // nobody refilled while we claimed
		a.block = block + 1
		a.next = firstPID + block*pidBlockSize
		a.end = a.next + pidBlockSize
	} else {
		// Another goroutine refilled first; our block is wasted, which
		// only leaves a gap in the pid space.
	}
	p := a.next
	a.next++
	return PID(p), nil
}

// leave stops handing out pids of the block that holds pid, if it is
// still this kernel's current one.
func (a *pidAlloc) leave(pid PID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if int64(pid) >= a.end-pidBlockSize && int64(pid) < a.end {
		a.next = a.end
	}
}

// claim claims the first free block at or after hint. Blocks are
// claimed densely, so the first free one is found by probing (HEAD is
// strongly consistent) rather than by listing.
func (a *pidAlloc) claim(ctx context.Context, hint int64) (int64, error) {
	exists := func(b int64) (bool, error) {
		_, err := a.ns.store.Head(ctx, a.ns.container, record.PIDKey(b))
		if errors.Is(err, backend.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	// Exponential probe, then binary search for the first free block.
	lo, step := hint, int64(1)
	for {
		ok, err := exists(lo)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		hint, lo = lo, lo+step
		step *= 2
	}
	for hint < lo {
		mid := hint + (lo-hint)/2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hint = mid + 1
		} else {
			lo = mid
		}
	}
	for b := lo; ; b++ {
		start := time.Now()
		err := a.ns.put(ctx, record.PIDKey(b), record.Encode(map[string]string{"kernel": a.id}), true)
		if err == nil {
			if mine, err := a.stillMine(ctx, record.PIDKey(b), time.Since(start)); err != nil || mine {
				return b, err
			}
			continue // a rival's claim of the same block arrived last: it has it
		}
		if !errors.Is(err, backend.ErrExist) {
			return 0, err
		}
	}
}

// stillMine reports whether the claim at key, which this kernel has just
// created in took, still names this kernel. On a store whose creates are
// loose (backend.LooseCreate) a rival create in flight at the same moment
// also succeeds, and the later one stays: it started before ours ended, so
// it ends about one request later: read back once it would have
// (nsStore.awaitRivals).
func (a *pidAlloc) stillMine(ctx context.Context, key string, took time.Duration) (bool, error) {
	if !a.ns.looseCreate {
		return true, nil
	}
	if err := a.ns.awaitRivals(ctx, took); err != nil {
		return false, err
	}
	var claim map[string]string
	if err := a.ns.getRecord(ctx, key, &claim); err != nil {
		return false, err
	}
	return claim["kernel"] == a.id, nil
}
