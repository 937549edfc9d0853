package rack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// The read end of a pipe: it finds the writer ends, reads their segments
// in order (a Write stored in several segments reads contiguous, fetched
// ahead), and sees EOF once every end is closed and read.

// PipeReader is the read end of a pipe: an io.ReadCloser. Read returns
// io.EOF once every writer end is closed (or its process ended) and all
// their bytes were read. A pipe has one reader; handing it to a child
// moves it there.
type PipeReader struct {
	k     *Kernel
	owner *proc
	pipe  string
	fifo  bool

	mu     sync.Mutex
	ends   []readEnd // by end number
	cur    io.ReadCloser
	curKey string
	// curLeft is what remains of cur by its stored size: a store's reader
	// may report the end of a segment only on the Read after its last
	// bytes, and a reader at the end of one may be handed to a child.
	curLeft int64
	// broken is set when a segment ended short of its stored size: the
	// stream has lost bytes, and every later Read says so.
	broken error
	lock   int // -1, or the end whose Write continues in its next segment
	rr     int
	eof    bool
	moved  bool
	// fetches counts fetch calls; stuck says the last one made no
	// progress. Both pace the look for new writer ends.
	fetches int
	stuck   bool
	stalls  int // fetches in a row without progress
	// lockWaits counts the quick looks for the next segment of a Write.
	lockWaits int
	// ahead holds segments fetched before they are read, by key.
	ahead map[string]chan prefetched

	closeOnce sync.Once
	closing   chan struct{}
}

// prefetched is a segment read ahead: its content and info, or the error.
type prefetched struct {
	data []byte
	info backend.ObjectInfo
	err  error
}

// segmentsAhead is how many segments of a Write stored in several segments
// the reader fetches ahead of the one it reads.
const segmentsAhead = 3

type readEnd struct {
	next   int // next segment to read
	closed bool
	count  int // segments written, once closed
}

// newReader registers a reader of pipe for owner; it fails with ErrKilled
// once owner is killed.
func (k *Kernel) newReader(owner *proc, pipe string, fifo bool, read map[int]int) (*PipeReader, error) {
	r := &PipeReader{k: k, owner: owner, pipe: pipe, fifo: fifo, lock: -1, closing: make(chan struct{})}
	for end, next := range read {
		for len(r.ends) <= end {
			r.ends = append(r.ends, readEnd{})
		}
		r.ends[end].next = next
	}
	owner.mu.Lock()
	if owner.readers == nil {
		owner.readers = make(map[*PipeReader]struct{})
	}
	owner.readers[r] = struct{}{}
	owner.mu.Unlock()
	if owner.killed.Load() {
		// finish sets killed before closeEnds takes its snapshot of
		// owner's ends: this one may have come too late to be in it.
		_ = r.Close()
		return nil, fmt.Errorf("pipe %s: process %d: %w", pipe, owner.pid, ErrKilled)
	}
	return r, nil
}

// Read reads from the pipe, waiting for data; it returns io.EOF once every
// writer end is closed and drained.
func (r *PipeReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.moved {
		return 0, fmt.Errorf("rack: read pipe %s: %w: the reader was handed to a child", r.pipe, ErrClosedPipe)
	}
	if r.broken != nil {
		return 0, r.broken
	}
	if len(p) == 0 {
		return 0, nil
	}
	ctx := r.owner.ctx
	var delay time.Duration
	for {
		select {
		case <-r.closing:
			return 0, fmt.Errorf("rack: read pipe %s: %w", r.pipe, ErrClosedPipe)
		default:
		}
		if r.cur != nil {
			n, err := r.cur.Read(p)
			r.curLeft -= int64(n)
			if err == nil && n > 0 && r.curLeft == 0 {
				err = io.EOF
			}
			if err == io.EOF && r.curLeft > 0 {
				// The store's body ended before the size it stored: going on
				// to the next segment would drop bytes from the middle.
				r.cur.Close()
				r.cur = nil
				r.broken = fmt.Errorf("rack: read pipe %s: segment %s ended %d bytes short of its stored size: %w", r.pipe, r.curKey, r.curLeft, io.ErrUnexpectedEOF)
				return n, r.broken
			}
			if err == io.EOF {
				r.cur.Close()
				r.cur = nil
				// Consumed: the segment is no longer needed (it expires anyway).
				r.k.deleteSoon(r.curKey)
				err = nil
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if r.eof {
			return 0, io.EOF
		}
		ch := r.k.ns.changed(record.PipePrefix(r.pipe))
		progress, err := r.fetch(ctx)
		if err != nil {
			return 0, fmt.Errorf("rack: read pipe %s: %w", r.pipe, err)
		}
		if progress {
			delay, r.lockWaits = 0, 0
			continue
		}
		if r.lock >= 0 && r.lockWaits < 8 {
			// In the middle of a Write stored in several segments: the
			// next one is on its way, so look again soon (a few times:
			// a writer that died mid-Write is closed for it later).
			r.lockWaits++
			delay = 0
		}
		if delay, err = r.k.ns.waitChange(ctx, ch, r.closing, delay); err != nil {
			return 0, fmt.Errorf("rack: read pipe %s: %w", r.pipe, err)
		}
	}
}

// fetch makes progress if it can: it discovers ends, opens the next
// segment, notes closes, or decides EOF.
func (r *PipeReader) fetch(ctx context.Context) (bool, error) {
	// New writer ends are looked for when the known ones have nothing to
	// give, and now and then while they stream.
	// In the middle of a Write only its end matters: no look then. A new
	// end is rare: waiting, look every fourth time (EOF looks once more).
	// A store that notifies is looked at every time: a wait there ends
	// only with a change, so nothing may be left unlooked at before it.
	if r.fetches++; r.k.ns.notifier != nil || r.lock < 0 && r.stuck && r.stalls%4 == 3 || len(r.ends) == 0 || r.fetches%16 == 0 {
		if err := r.discover(ctx); err != nil {
			return false, err
		}
	}
	progress, err := r.fetchKnown(ctx)
	r.stuck = !progress && err == nil
	if r.stuck {
		r.stalls++
	} else {
		r.stalls = 0
	}
	return progress, err
}

// fetchKnown is fetch for the writer ends already discovered.
func (r *PipeReader) fetchKnown(ctx context.Context) (bool, error) {
	if r.lock >= 0 && r.ends[r.lock].closed && r.ends[r.lock].next >= r.ends[r.lock].count {
		// The end closed in the middle of a Write whose next segment could
		// not be stored (the writer was told): do not wait for it.
		r.lock = -1
	}
	n := len(r.ends)
	for i := 0; i < n; i++ {
		e := (r.rr + i) % n
		if r.lock >= 0 && e != r.lock {
			continue
		}
		end := &r.ends[e]
		if end.closed && end.next >= end.count {
			continue
		}
		ok, err := r.open(ctx, e)
		if ok || err != nil {
			return ok, err
		}
		if !end.closed && (r.k.ns.notifier != nil || r.lock < 0 && r.stalls%2 == 1 || r.lock >= 0 && (r.lockWaits%4 == 3 || r.lockWaits >= 8)) {
			// The next segment usually comes before a close: look for
			// the close every other wait (mid-Write, whose next segment
			// comes before any close, every fourth of the quick looks,
			// then at every slow one).
			var c record.PipeClose
			err := r.k.ns.getRecord(ctx, record.PipeCloseKey(r.pipe, e), &c)
			if errors.Is(err, backend.ErrNotFound) {
				continue
			}
			if err != nil {
				return false, err
			}
			end.closed, end.count = true, c.Segments
			if end.next < end.count {
				// Segments are stored before the close record.
				if ok, err := r.open(ctx, e); ok || err != nil {
					return ok, err
				}
			}
			return true, nil
		}
	}
	if r.lock >= 0 {
		return false, nil
	}
	for _, e := range r.ends {
		if !e.closed || e.next < e.count {
			return false, nil
		}
	}
	if len(r.ends) == 0 {
		return false, nil // a FIFO nobody opened for writing yet
	}
	// Every end we know of is done. An end duplicated from one of them was
	// claimed before its source closed, so one more look settles it.
	before := len(r.ends)
	if err := r.discover(ctx); err != nil {
		return false, err
	}
	if len(r.ends) > before {
		return true, nil
	}
	r.eof = true
	return true, nil
}

// discover finds writer ends registered since the last look.
func (r *PipeReader) discover(ctx context.Context) error {
	for {
		if len(r.ends) >= record.MaxPipeEnd {
			return fmt.Errorf("pipe %s: %w: over %d writer ends", r.pipe, record.ErrCorrupt, record.MaxPipeEnd)
		}
		_, err := r.k.ns.store.Head(ctx, r.k.cfg.container, record.PipeEndKey(r.pipe, len(r.ends)))
		if errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		r.ends = append(r.ends, readEnd{})
	}
}

// open opens end e's next segment if it exists.
func (r *PipeReader) open(ctx context.Context, e int) (bool, error) {
	end := &r.ends[e]
	key := record.PipeSegmentKey(r.pipe, e, end.next)
	var (
		rc   io.ReadCloser
		info backend.ObjectInfo
		err  error
	)
	if ch, ok := r.ahead[key]; ok {
		delete(r.ahead, key)
		select {
		case p := <-ch:
			if p.err == nil {
				rc, info = io.NopCloser(bytes.NewReader(p.data)), p.info
			}
		case <-r.closing:
			return false, fmt.Errorf("%w", ErrClosedPipe)
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
	}
	if rc == nil {
		rc, info, err = r.k.ns.store.Get(ctx, r.k.cfg.container, key, nil)
	}
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	end.next++
	r.cur, r.curKey, r.curLeft = rc, key, info.Size
	if info.Metadata[moreKey] != "" {
		r.lock = e
		r.readAhead(e)
	} else {
		r.lock = -1
		r.rr = e + 1
	}
	return true, nil
}

// maxPrefetch bounds a segment read ahead into memory; larger ones (a
// writer with a larger WithPipeBuffer) are streamed when their turn comes.
const maxPrefetch = 16 << 20

var errTooLarge = errors.New("segment too large to read ahead")

// readSized reads r, which the store says holds size bytes, into one
// buffer; a body of another length is an error (a cut download).
func readSized(r io.Reader, size int64) ([]byte, error) {
	buf := make([]byte, max(size, 0)+1)
	n, err := io.ReadFull(r, buf)
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		if err == nil {
			err = fmt.Errorf("segment longer than its %d bytes", size)
		}
		return nil, err
	}
	if int64(n) != size {
		return nil, fmt.Errorf("segment of %d bytes ended after %d", size, n)
	}
	return buf[:n], nil
}

// readAhead starts fetching the next segments of end e, which is in the
// middle of a Write stored in several segments, so that the reader does
// not wait a round trip for each.
func (r *PipeReader) readAhead(e int) {
	if r.ahead == nil {
		r.ahead = make(map[string]chan prefetched)
	}
	for i := 0; i < segmentsAhead; i++ {
		key := record.PipeSegmentKey(r.pipe, e, r.ends[e].next+i)
		if _, ok := r.ahead[key]; ok {
			continue
		}
		ch := make(chan prefetched, 1)
		// The next segment is on its way (the one being read says so):
		// if it is not stored yet, look a few more times, soon. Those
		// after it may belong to no Write yet: one look.
		promised := i == 0
		started := r.k.background(func() {
			var (
				rc   io.ReadCloser
				info backend.ObjectInfo
				err  error
			)
			for wait := time.Millisecond; ; wait *= 2 {
				rc, info, err = r.k.ns.store.Get(r.k.ctx, r.k.cfg.container, key, nil)
				if !promised || !errors.Is(err, backend.ErrNotFound) || wait > 64*time.Millisecond {
					break
				}
				time.Sleep(wait)
			}
			var data []byte
			switch {
			case err != nil:
			case info.Size > maxPrefetch:
				// Larger than this kernel's segments could make it: read
				// it as a stream, not into memory.
				rc.Close()
				err = errTooLarge
			default:
				data, err = readSized(rc, info.Size)
				rc.Close()
			}
			ch <- prefetched{data: data, info: info, err: err}
		})
		if started {
			r.ahead[key] = ch
		}
	}
}

// Close closes the read end; a Read blocked in another goroutine returns.
func (r *PipeReader) Close() error {
	r.closeOnce.Do(func() { close(r.closing) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
	r.owner.mu.Lock()
	delete(r.owner.readers, r)
	r.owner.mu.Unlock()
	return nil
}

// move hands the reader's position to a child and closes it here.
func (r *PipeReader) move() (map[int]int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closing:
		return nil, fmt.Errorf("pipe %s: %w", r.pipe, ErrClosedPipe)
	default:
	}
	if r.moved {
		return nil, fmt.Errorf("pipe %s: %w: reader already handed to a child", r.pipe, ErrClosedPipe)
	}
	if r.cur != nil || r.lock >= 0 {
		return nil, fmt.Errorf("%w: pipe %s: the reader is in the middle of a write; read on or pass it before reading", ErrInvalid, r.pipe)
	}
	read := make(map[int]int)
	for e, end := range r.ends {
		if end.next > 0 {
			read[e] = end.next
		}
	}
	r.moved = true
	r.owner.mu.Lock()
	delete(r.owner.readers, r)
	r.owner.mu.Unlock()
	return read, nil
}
