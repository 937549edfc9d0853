package rack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
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
	// fifo: a named pipe's reader, registered as its session's end
	// fifoEnd (see fifo.go).
	fifo    bool
	fifoEnd int
	// writers counts the writer ends found (a named pipe's session also
	// registers its readers): EOF needs one.
	writers int
	// moved0 is, for a named pipe's reader moved here, how far it had
	// read each end.
	moved0 map[int]int
	// deadCheck is when a named pipe's reader last looked for ends of
	// kernels that are gone (closeDeadEnds).
	deadCheck time.Time

	mu   sync.Mutex
	ends []readEnd // by end number
	// active lists the ends not yet done (closed and read), in end order;
	// done ones are taken out now and then (compact), so a poll's work
	// does not grow with the ends that closed.
	active []int
	nDone  int // ends of active that are done
	// With many active ends (manyEnds) the reader does not look at each
	// one per poll: see fetchMany.
	hints      []segHint // segments a listing showed, not opened yet
	hintsAhead int       // how many of hints, from the first, are being read ahead
	hintBytes  int64     // their listed sizes, in all
	closeHints []int     // ends a listing of close records showed
	closeMark  string    // where the rolling listing of close records resumes
	suspects   []int     // ends that just gave a segment: their close may follow
	sweep      int       // next index of active that fetchMany probes
	// quiet counts ends probed by the sweep since the last progress: once
	// it covers every active end, a wait for a notification misses nothing.
	quiet   int
	cur     io.ReadCloser
	curKey  string
	curSize int64 // the current segment's stored size
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
	// skipped: the last fetch left idle ends unlooked at (fetchKnown).
	skipped bool
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
	// fetch is the reader's fetch count when the look was started: a
	// "not found" is news only during that fetch.
	fetch int
}

// segmentsAhead is how many segments of a Write stored in several segments
// the reader fetches ahead of the one it reads.
const segmentsAhead = 3

type readEnd struct {
	next    int // next segment to read
	closed  bool
	count   int  // segments written, once closed
	suspect int  // > 0: probes left for its close (in suspects)
	counted bool // done, and counted in nDone
	idle    int  // looks in a row that found no segment while others gave one
}

func (e *readEnd) done() bool { return e.closed && e.next >= e.count }

// segHint is a segment a listing showed, of its listed size.
type segHint struct {
	end, seq int
	size     int64
}

// manyEnds: with more active ends than this the reader looks for work with
// listings as hints and a bounded sweep (fetchMany), not one look at each.
const manyEnds = 8

// Bounds on what fetchMany does per poll.
const (
	hintPage     = 1000 // names per listing page
	sweepPerPoll = 8    // ends probed by GETs
	suspectTries = 3    // probes for the close of an end that just wrote
	probeWindow  = 32   // named-pipe ends of dead kernels closed together (closeDeadEnds)
)

// Bounds on the listed segments read ahead at once (readHintsAhead): the
// small ones of many ends (a line from each of 100 workers) all together,
// not a window of 32 per round trip (on a loaded Swift, a second each),
// and large ones a few at a time. The closes of ends that a listing shows
// closed, or that just gave a segment, are looked for as many together.
const (
	hintsAheadMax  = 128
	hintBytesAhead = 64 << 20
)

// newReader registers a reader of pipe for owner; it fails with ErrKilled
// once owner is killed. fifoEnd is the end a named pipe's reader holds in
// its session, else -1.
func (k *Kernel) newReader(owner *proc, pipe string, fifoEnd int, read map[int]int) (*PipeReader, error) {
	fifo := fifoEnd >= 0 && isFifoPipe(pipe)
	if !fifo {
		fifoEnd = -1
	}
	r := &PipeReader{k: k, owner: owner, pipe: pipe, fifo: fifo, fifoEnd: fifoEnd, lock: -1, closing: make(chan struct{}), deadCheck: time.Now()}
	if fifo {
		// Which of its ends are writers discover tells: it starts them
		// where the reader moved here had got to.
		r.moved0 = read
	} else {
		for end, next := range read {
			for len(r.ends) <= end {
				r.addEnd()
			}
			r.ends[end].next = next
		}
		r.writers = len(r.ends)
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
				// Deleted before its last bytes are returned (consumed).
				r.consumed(r.curKey, r.curSize)
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
		if r.skipped && ch != nil {
			// Idle ends were not looked at, and a wait on a store that
			// notifies ends only with a change: theirs may have come
			// before ch was made (a close, then no change ever again).
			// Look at every end first: a fetch after one without
			// progress skips none.
			continue
		}
		if !r.settled() && ch != nil {
			// Some ends were not looked at since the last progress: a
			// change before ch was made may wait there. Wait for the
			// next change, or a short while.
			if err := r.k.ns.waitBriefly(ctx, ch, r.closing); err != nil {
				return 0, fmt.Errorf("rack: read pipe %s: %w", r.pipe, err)
			}
			continue
		}
		if r.fifo && ch != nil {
			// A change wakes it, but a lapsed lease is no change under
			// the pipe: look again at least every pollMax (closeDeadEnds).
			ch = r.k.ns.changedOrAfter(ch, r.k.cfg.pollMax)
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
	// Not while listed segments are on their way (hintsAhead): the next
	// listing shows a new end's segments, and a look per 16 segments, one
	// round trip each, held up a reader of 100 ends' lines, all read
	// ahead, for 2 s on a loaded Swift.
	if r.fetches++; r.k.ns.notifier != nil || r.lock < 0 && r.stuck && r.stalls%4 == 3 || len(r.ends) == 0 || r.fetches%16 == 0 && r.hintsAhead == 0 {
		if err := r.discover(ctx); err != nil {
			return false, err
		}
	}
	progress, err := r.fetchKnown(ctx)
	if !progress && err == nil && r.fifo && time.Since(r.deadCheck) >= r.k.cfg.lease/2 {
		// Waiting: an end of a named pipe may belong to a process whose
		// kernel is gone, which nobody else would close.
		r.deadCheck = time.Now()
		progress, err = r.closeDeadEnds(ctx)
	}
	r.stuck = !progress && err == nil
	if r.stuck {
		r.stalls++
	} else {
		r.stalls = 0
	}
	return progress, err
}

// closeDeadEnds closes (closeEndOfDead) up to probeWindow of the named
// pipe's open ends whose kernels are gone, and reads their closes.
func (r *PipeReader) closeDeadEnds(ctx context.Context) (bool, error) {
	progress := false
	looked := 0
	for _, e := range r.active {
		if r.ends[e].closed || looked == probeWindow {
			continue
		}
		looked++
		if r.k.closeEndOfDead(ctx, r.pipe, e) {
			closed, err := r.readClose(ctx, e)
			if err != nil {
				return progress, err
			}
			progress = progress || closed
		}
	}
	return progress, nil
}

// addEnd appends a newly found end.
func (r *PipeReader) addEnd() {
	r.active = append(r.active, len(r.ends))
	r.ends = append(r.ends, readEnd{})
}

// compact takes the done ends out of active once they are half of it
// (amortised O(1) per end).
func (r *PipeReader) compact() {
	if r.nDone*2 < len(r.active) || r.nDone == 0 {
		return
	}
	live := r.active[:0]
	for _, e := range r.active {
		if !r.ends[e].done() {
			live = append(live, e)
		}
	}
	r.active, r.nDone, r.sweep = live, 0, 0
}

// noteDone counts end e as done, once, if it is.
func (r *PipeReader) noteDone(e int) {
	if end := &r.ends[e]; end.done() && !end.counted {
		end.counted = true
		r.nDone++
	}
}

// fetchKnown is fetch for the writer ends already discovered.
func (r *PipeReader) fetchKnown(ctx context.Context) (bool, error) {
	if r.lock >= 0 && r.ends[r.lock].done() {
		// The end closed in the middle of a Write whose next segment could
		// not be stored (the writer was told): do not wait for it.
		r.lock = -1
	}
	r.compact()
	r.skipped = false
	if r.lock < 0 && len(r.active)-r.nDone > manyEnds {
		return r.fetchMany(ctx)
	}
	if r.lock >= 0 {
		// In the middle of a Write: only its end matters.
		e := r.lock
		end := &r.ends[e]
		ok, err := r.open(ctx, e)
		if ok || err != nil {
			return ok, err
		}
		if !end.closed && (r.lockWaits%4 == 3 || r.lockWaits >= 8) {
			// Its next segment comes before any close: look for the
			// close every fourth of the quick looks, then at every slow
			// one.
			closed, err := r.readClose(ctx, e)
			if !closed || err != nil {
				return false, err
			}
			if ok, err := r.open(ctx, e); ok || err != nil {
				return ok, err
			}
			return true, nil
		}
		return false, nil
	}
	// Look at every end at once. The next segment usually comes before a
	// close: look for closes every other wait (on a store that notifies,
	// every time: a wait there ends only with a change). While some end
	// streams, an end that gave nothing the last two times it was looked
	// at is looked at, with its close, every fourth fetch only: each look
	// is a request, and an idle or closed writer's end would otherwise
	// cost one for every segment the others give (a reader of one writer
	// read 2 segments per segment, the closed end of its creator's writer
	// included). Once nothing streams (stuck), every end is looked at.
	n := len(r.active)
	first := sort.SearchInts(r.active, r.rr)
	order := make([]int, 0, n-r.nDone)
	var idle []int
	for i := 0; i < n; i++ {
		e := r.active[(first+i)%n]
		end := &r.ends[e]
		if end.done() {
			continue
		}
		if !r.stuck && end.idle >= 2 {
			if r.fetches%4 != 0 {
				r.skipped = true
				continue
			}
			idle = append(idle, e)
		}
		order = append(order, e)
	}
	closedNow, err := r.probe(ctx, order, true, r.k.ns.notifier != nil || r.stalls%2 == 1)
	if err != nil {
		return false, err
	}
	if len(idle) > 0 && !closedNow {
		if closedNow, err = r.probe(ctx, idle, false, true); err != nil {
			return false, err
		}
	}
	for _, e := range order {
		ok, err := r.open(ctx, e)
		if ok || err != nil {
			r.ends[e].idle = 0
			return ok, err
		}
		r.ends[e].idle++
	}
	if closedNow {
		return true, nil
	}
	if len(r.active) > r.nDone {
		return false, nil
	}
	if len(r.ends) == 0 || r.fifo && r.writers == 0 {
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

// readClose reads end e's close record, if there is one.
func (r *PipeReader) readClose(ctx context.Context, e int) (bool, error) {
	var c record.PipeClose
	err := r.k.ns.getRecord(ctx, record.PipeCloseKey(r.pipe, e), &c)
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r.learnClose(e, &c)
	return true, nil
}

// learnClose notes end e's close record c. A segment it asks to recheck
// (record.PipeClose.Recheck) that this reader has read already may have
// been stored again since: it is deleted. One not read yet is read, and
// deleted, in its turn: the writer's puts all ended before its close.
func (r *PipeReader) learnClose(e int, c *record.PipeClose) {
	end := &r.ends[e]
	end.closed, end.count = true, c.Segments
	for _, s := range c.Recheck {
		if s < end.next {
			r.consumed(record.PipeSegmentKey(r.pipe, e, s), -1) // stored again since: any size
		}
	}
	r.noteDone(e)
}

// consumed deletes segment key, of size bytes (-1: unknown), which this
// reader has read. An anonymous pipe has one reader: in the background
// (deleteSoon). A named pipe's session may have more, and a reader that
// opens later skips the segments gone (open): the delete is done before
// the Read that ends the segment returns, so bytes a Read returned are
// gone for every reader that opens after it, as on Linux. It is the same
// one DELETE, waited for: no request more, a round trip more per segment
// of a named pipe.
func (r *PipeReader) consumed(key string, size int64) {
	if !r.fifo {
		r.k.deleteSoon(key, size)
		return
	}
	err := r.k.ns.deleteSized(r.k.ctx, key, size)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		// Left (it expires by itself): a reader that opens later may
		// read it again.
		r.k.cfg.logger.Warn("rack: deleting a named pipe's read segment", "key", key, "err", err)
	}
}

// checkAll probes ends at once (probe) and opens the first of them that
// has a segment; it reports progress (a segment, or a close learned).
func (r *PipeReader) checkAll(ctx context.Context, ends []int) (bool, error) {
	closedNow, err := r.probe(ctx, ends, true, true)
	if err != nil {
		return false, err
	}
	for _, e := range ends {
		if r.ends[e].done() {
			continue
		}
		if ok, err := r.open(ctx, e); ok || err != nil {
			return ok, err
		}
	}
	return closedNow, nil
}

// fetchMany is fetchKnown for a pipe with many active ends (children
// forked with one writer): a poll that looked at each would cost requests
// in proportion to the ends that are idle. Instead it takes, in order:
// segments a listing of the pipe's segments showed (listed again once
// those are used up); the close of ends that just gave a segment (a
// writer usually closes soon after its last write); closes a rolling
// listing of the close records shows, a page per poll; and a sweep of a
// few ends by GETs. Listings only point at names to read: Swift's may
// miss new objects for a while, and the sweep, which reaches every end in
// turn, is what guarantees progress. A poll is bounded: a listing page or
// two and a few GETs, however many ends are idle or closed.
func (r *PipeReader) fetchMany(ctx context.Context) (bool, error) {
	progress, err := r.fetchHinted(ctx)
	if progress || err != nil {
		r.quiet = 0
		return progress, err
	}
	batch := make([]int, 0, sweepPerPoll)
	for i := 0; i < sweepPerPoll && i < len(r.active); i++ {
		if r.sweep >= len(r.active) {
			r.sweep = 0
		}
		if e := r.active[r.sweep]; !r.ends[e].done() {
			batch = append(batch, e)
		}
		r.sweep++
		r.quiet++
	}
	ok, err := r.checkAll(ctx, batch)
	if ok || err != nil {
		r.quiet = 0
	}
	return ok, err
}

// settled reports whether a wait for a notification can miss nothing:
// with few ends, each was looked at; with many, the sweep has been round
// all of them since the last progress.
func (r *PipeReader) settled() bool {
	return len(r.active)-r.nDone <= manyEnds || r.quiet >= len(r.active)
}

// fetchHinted is the part of fetchMany that listings point at.
func (r *PipeReader) fetchHinted(ctx context.Context) (bool, error) {
	for listed := false; ; listed = true {
		for len(r.hints) > 0 {
			h := r.hints[0]
			r.hints = r.hints[1:]
			if r.hintsAhead > 0 {
				r.hintsAhead--
				r.hintBytes -= max(h.size, 0)
			}
			r.readHintsAhead() // keep them on their way
			if h.end >= len(r.ends) || r.ends[h.end].done() || r.ends[h.end].next != h.seq {
				continue
			}
			if ok, err := r.open(ctx, h.end); ok || err != nil {
				return ok, err
			}
		}
		if listed {
			break
		}
		page, err := r.k.ns.store.List(ctx, r.k.cfg.container, backend.ListOptions{Prefix: record.PipePrefix(r.pipe) + "seg/", Limit: hintPage})
		if err != nil {
			return false, err
		}
		for _, o := range page {
			h, ok := r.parseSeg(o.Name)
			if !ok {
				continue
			}
			if h.end >= len(r.ends) {
				if err := r.discover(ctx); err != nil {
					return false, err
				}
			}
			if h.end < len(r.ends) && !r.ends[h.end].done() && h.seq >= r.ends[h.end].next {
				h.size = o.Size
				r.hints = append(r.hints, h)
			}
		}
		// Fetched together: the listing's segments cost a round trip,
		// not one each.
		r.readHintsAhead()
	}
	if len(r.suspects) > 0 {
		// Only their closes: a segment after the one read shows in the
		// listing of segments, or in the sweep.
		batch := append([]int(nil), r.suspects[:min(len(r.suspects), hintsAheadMax)]...)
		ok, err := r.probe(ctx, batch, false, true)
		if err != nil {
			return false, err
		}
		for _, e := range batch {
			if end := &r.ends[e]; end.closed && !end.done() {
				opened, err := r.open(ctx, e)
				if err != nil {
					return false, err
				}
				ok = ok || opened
				break // one segment at a time; the next fetch takes the others
			}
		}
		kept := r.suspects[len(batch):]
		for _, e := range batch {
			end := &r.ends[e]
			if end.suspect--; end.suspect > 0 && !end.done() {
				kept = append(kept, e) // to the back of the queue
			} else {
				end.suspect = 0
			}
		}
		r.suspects = kept
		if ok {
			return true, nil
		}
	}
	for listed := false; ; listed = true {
		if len(r.closeHints) > 0 {
			batch := r.closeHints[:min(len(r.closeHints), hintsAheadMax)]
			r.closeHints = r.closeHints[len(batch):]
			if ok, err := r.checkAll(ctx, batch); ok || err != nil {
				return ok, err
			}
			continue
		}
		if listed {
			return false, nil
		}
		prefix := record.PipePrefix(r.pipe) + "close/"
		page, err := r.k.ns.store.List(ctx, r.k.cfg.container, backend.ListOptions{Prefix: prefix, Marker: r.closeMark, Limit: hintPage})
		if err != nil {
			return false, err
		}
		r.closeMark = ""
		if len(page) == hintPage {
			r.closeMark = page[len(page)-1].Name
		}
		for _, o := range page {
			if n, err := strconv.Atoi(strings.TrimPrefix(o.Name, prefix)); err == nil && n >= 0 && n < len(r.ends) && !r.ends[n].closed {
				r.closeHints = append(r.closeHints, n)
			}
		}
	}
}

// readHintsAhead reads ahead the listed segments next in turn, up to
// hintsAheadMax of them and hintBytesAhead bytes (at least one).
func (r *PipeReader) readHintsAhead() {
	for r.hintsAhead < len(r.hints) && r.hintsAhead < hintsAheadMax {
		h := r.hints[r.hintsAhead]
		size := max(h.size, 0)
		if r.hintsAhead > 0 && r.hintBytes+size > hintBytesAhead {
			return
		}
		r.prefetch(h.end, h.seq, false)
		r.hintsAhead++
		r.hintBytes += size
	}
}

// parseSeg reads a segment's name (PipeSegmentKey) in this pipe.
func (r *PipeReader) parseSeg(name string) (segHint, bool) {
	rest, ok := strings.CutPrefix(name, record.PipePrefix(r.pipe)+"seg/")
	if !ok {
		return segHint{}, false
	}
	es, ss, ok := strings.Cut(rest, "/")
	if !ok {
		return segHint{}, false
	}
	e, err1 := strconv.Atoi(es)
	seq, err2 := strconv.Atoi(ss)
	if err1 != nil || err2 != nil || e < 0 || seq < 0 {
		return segHint{}, false
	}
	return segHint{end: e, seq: seq}, true
}

// discover finds writer ends registered since the last look.
func (r *PipeReader) discover(ctx context.Context) error {
	for {
		if len(r.ends) >= record.MaxPipeEnd {
			return fmt.Errorf("pipe %s: %w: over %d writer ends", r.pipe, record.ErrCorrupt, record.MaxPipeEnd)
		}
		info, err := r.k.ns.store.Head(ctx, r.k.cfg.container, record.PipeEndKey(r.pipe, len(r.ends)))
		if errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		// One record may register a block of ends (a ForkAll's).
		n, kind := 0, ""
		if r.fifo {
			n, kind, err = r.k.endKind(ctx, r.pipe, len(r.ends), info)
		} else {
			n, err = r.k.endsAt(ctx, r.pipe, len(r.ends), info)
		}
		if err != nil {
			return err
		}
		if len(r.ends)+n > record.MaxPipeEnd {
			return fmt.Errorf("pipe %s: %w: end %d registers %d ends, over %d in all", r.pipe, record.ErrCorrupt, len(r.ends), n, record.MaxPipeEnd)
		}
		for range n {
			r.addEnd()
			if kind != "" {
				// A named pipe's reader, or its session's end: no data.
				e := len(r.ends) - 1
				r.ends[e].closed = true
				r.noteDone(e)
			} else {
				r.writers++
				r.ends[len(r.ends)-1].next = r.moved0[len(r.ends)-1]
			}
		}
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
			} else if errors.Is(p.err, backend.ErrNotFound) && p.fetch == r.fetches && !end.closed {
				// Looked for during this fetch (probe): not there yet. (A
				// closed end's segments up to its count were stored first.)
				return false, nil
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
	if errors.Is(err, backend.ErrNotFound) && r.fifo && end.closed && end.next < end.count {
		// A closed end stored its segments before its close record: the
		// ones gone were read by another reader of the named pipe.
		end.next = end.count
		r.noteDone(e)
		return true, nil
	}
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	end.next++
	r.noteDone(e)
	r.cur, r.curKey, r.curLeft, r.curSize = rc, key, info.Size, info.Size
	if info.Metadata[moreKey] != "" {
		r.lock = e
		r.readAhead(e)
	} else {
		r.lock = -1
		r.rr = e + 1
		if !end.closed && end.suspect == 0 && len(r.active)-r.nDone > manyEnds {
			// Its writer may be done: look for its close soon.
			end.suspect = suspectTries
			r.suspects = append(r.suspects, e)
		}
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
	for i := 0; i < segmentsAhead; i++ {
		// The next segment is on its way (the one being read says so):
		// if it is not stored yet, look a few more times, soon. Those
		// after it may belong to no Write yet: one look.
		r.prefetch(e, r.ends[e].next+i, i == 0)
	}
}

// prefetch starts fetching segment seq of end e in the background, for
// open to take, unless it is on its way already. A promised segment (the
// next of a Write stored in several) is looked for a few times.
func (r *PipeReader) prefetch(e, seq int, promised bool) {
	if r.ahead == nil {
		r.ahead = make(map[string]chan prefetched)
	}
	key := record.PipeSegmentKey(r.pipe, e, seq)
	if _, ok := r.ahead[key]; ok {
		return
	}
	ch := make(chan prefetched, 1)
	fetch := r.fetches
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
		ch <- prefetched{data: data, info: info, err: err, fetch: fetch}
	})
	if started {
		r.ahead[key] = ch
	}
}

// probe looks at ends all at once, so that a poll of several ends costs
// one round trip, not one per end: the next segment of each (for open to
// take) and, if closes, the close record of each not known closed. It
// reports whether it found a close.
func (r *PipeReader) probe(ctx context.Context, ends []int, segs, closes bool) (bool, error) {
	type result struct {
		e     int
		c     record.PipeClose
		found bool
		err   error
	}
	var (
		wg      sync.WaitGroup
		results = make([]result, 0, len(ends))
		mu      sync.Mutex
	)
	for _, e := range ends {
		end := &r.ends[e]
		if end.done() {
			continue
		}
		if segs {
			r.prefetch(e, end.next, false)
		}
		if !closes || end.closed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := result{e: e}
			res.err = r.k.ns.getRecord(ctx, record.PipeCloseKey(r.pipe, e), &res.c)
			res.found = res.err == nil
			if errors.Is(res.err, backend.ErrNotFound) {
				res.err = nil
			}
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	found := false
	for _, res := range results {
		if res.err != nil {
			return found, res.err
		}
		if res.found && !r.ends[res.e].closed {
			r.learnClose(res.e, &res.c)
			found = true
		}
	}
	return found, nil
}

// Close closes the read end; a Read blocked in another goroutine returns.
func (r *PipeReader) Close() error {
	first := false
	r.closeOnce.Do(func() { close(r.closing); first = true })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.Close()
		r.cur = nil
	}
	r.owner.mu.Lock()
	delete(r.owner.readers, r)
	r.owner.mu.Unlock()
	if first && r.fifo && !r.moved {
		// A named pipe's reader is one of its session's ends.
		r.k.putClose(r.k.ctx, r.pipe, r.fifoEnd, 0)
		r.k.fifoEndClosed(r.owner.pid, r.pipe, r.fifoEnd, r.fifoEnd+1)
	}
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
		if end.next > 0 || e == len(r.ends)-1 {
			// The last end known, read or not, tells the new reader how
			// many ends it knows: where it looks for more is past a whole
			// block (one record may register several).
			read[e] = end.next
		}
	}
	r.moved = true
	r.owner.mu.Lock()
	delete(r.owner.readers, r)
	r.owner.mu.Unlock()
	return read, nil
}
