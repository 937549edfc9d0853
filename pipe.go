package rack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
	"github.com/rackfork/rack/internal/retry"
)

// A pipe is a byte stream in the store. Each writer end appends numbered,
// create-only segments (so a retried write lands exactly once) and, when
// closed, records how many it wrote. Ends are numbered densely from 0 by
// create-only claims, and an end handed to a child is claimed by the
// forker before the child starts. A reader reaches EOF when every end it
// can find is closed and every segment they wrote has been read: all by
// reads at computable names, never by trusting a listing.

const moreKey = "rack-more" // segment metadata: the Write continues in the next segment

// PipeWriter is the write end of a pipe: an io.WriteCloser. Small writes
// are batched into one segment (bounded in size and delay); each Write's
// bytes reach the reader contiguous. When its process ends, for any reason,
// the kernel flushes and closes the end on its behalf.
type PipeWriter struct {
	k     *Kernel
	owner *proc
	pipe  string
	end   int
	// claims is shared by the ends of this pipe this kernel claimed: where
	// the next claim starts looking.
	claims *endClaims

	mu     sync.Mutex
	buf    []byte
	seq    int
	closed bool
	err    error // sticky: a failed flush loses the stream's integrity
	timer  *time.Timer
	// recheck: segments that may have been stored twice (see
	// record.PipeClose.Recheck); guarded by recheckMu, as segments of one
	// Write are stored at once.
	recheckMu sync.Mutex
	recheck   []int
}

// ErrClosedPipe is returned by operations on a closed pipe end.
var ErrClosedPipe = fmt.Errorf("%w pipe end", ErrClosed)

// Pipe creates an anonymous pipe owned by the calling process. Pass its
// ends to children through Spec.Stdin, Stdout or Stderr; close the ends
// you do not use, as on Linux, or the reader waits for them.
func (s *Self) Pipe(ctx context.Context) (*PipeReader, *PipeWriter, error) {
	pr, err := s.selfProc("pipe")
	if err != nil {
		return nil, nil, err
	}
	k := pr.k
	id := k.id + "-" + strconv.FormatInt(k.seq.Add(1), 36)
	w, err := k.claimWriter(ctx, pr, id, -1, &endClaims{})
	if err != nil {
		return nil, nil, fmt.Errorf("rack: pipe: %w", err)
	}
	r, err := k.newReader(pr, id, -1, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("rack: pipe: %w", err)
	}
	return r, w, nil
}

// endClaims remembers, for the ends of one pipe that this kernel claims,
// the number past every end it knows to be claimed. Claims form a prefix
// of whole records (a record registers one end or a block of them, and a
// claim is made at the first number past those its claimer found), so a
// claim starts there instead of stepping over every end claimed before:
// from its source's end it cost N*N/2 refused creates for N children.
type endClaims struct {
	mu   sync.Mutex
	next int
}

func (c *endClaims) start() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// claimed notes that the record at n registers count ends.
func (c *endClaims) claimed(n, count int) {
	c.mu.Lock()
	c.next = max(c.next, n+count)
	c.mu.Unlock()
}

// endsAt returns how many ends the record at end n registers, from its
// summary (info, of a HEAD) or, without one, the record.
func (k *Kernel) endsAt(ctx context.Context, pipe string, n int, info backend.ObjectInfo) (int, error) {
	if c, ok := record.ParseEndsSummary(info.ContentType); ok {
		return c, nil
	}
	var e record.PipeEnd
	if err := k.ns.getRecord(ctx, record.PipeEndKey(pipe, n), &e); err != nil {
		return 0, err
	}
	return max(e.Count, 1), nil
}

// claimEnds registers count new writer ends of pipe, duplicated from end
// from (-1: none), with one create-only record, and returns the first
// one's number.
func (k *Kernel) claimEnds(ctx context.Context, pid PID, pipe string, from, count int, claims *endClaims) (int, error) {
	rec := record.PipeEnd{PID: int64(pid), Kernel: k.id, From: from}
	if count > 1 {
		rec.Count = count
	}
	data := record.Encode(rec)
	for {
		n := claims.start()
		if n+count > record.MaxPipeEnd {
			return 0, fmt.Errorf("pipe %s: %w: over %d writer ends", pipe, ErrInvalid, record.MaxPipeEnd)
		}
		key := record.PipeEndKey(pipe, n)
		err := k.ns.putSummarized(ctx, key, data, true, record.EndsSummary(count))
		if err == nil {
			claims.claimed(n, count)
			return n, nil
		}
		if !errors.Is(err, backend.ErrExist) {
			return 0, err
		}
		// Another claim took n: step over its ends.
		info, err := k.ns.store.Head(ctx, k.cfg.container, key)
		if err != nil {
			return 0, err
		}
		c, err := k.endsAt(ctx, pipe, n, info)
		if err != nil {
			return 0, err
		}
		claims.claimed(n, c)
	}
}

// claimWriter registers a new writer end of pipe for owner, duplicated
// from end from (-1: none).
func (k *Kernel) claimWriter(ctx context.Context, owner *proc, pipe string, from int, claims *endClaims) (*PipeWriter, error) {
	n, err := k.claimEnds(ctx, owner.pid, pipe, from, 1, claims)
	if err != nil {
		return nil, err
	}
	return k.adoptWriter(owner, pipe, n, claims)
}

// adoptWriter makes owner the writer of end n of pipe, claimed for it.
func (k *Kernel) adoptWriter(owner *proc, pipe string, n int, claims *endClaims) (*PipeWriter, error) {
	w := &PipeWriter{k: k, owner: owner, pipe: pipe, end: n, claims: claims}
	owner.mu.Lock()
	if owner.writers == nil {
		owner.writers = make(map[*PipeWriter]struct{})
	}
	owner.writers[w] = struct{}{}
	owner.mu.Unlock()
	if owner.killed.Load() {
		// finish sets killed before closeEnds takes its snapshot of
		// owner's ends: this one may have come too late to be in it.
		_ = w.close()
		return nil, fmt.Errorf("pipe %s: process %d: %w", pipe, owner.pid, ErrKilled)
	}
	return w, nil
}

// Write appends p to the pipe. It returns once p is buffered in the
// kernel: a process that dies afterwards still delivers it.
func (w *PipeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.owner.killed.Load(): // before closed: the kernel closed a killed process's ends itself
		return 0, fmt.Errorf("rack: write to pipe %s: %w", w.pipe, ErrKilled)
	case w.closed:
		return 0, fmt.Errorf("rack: write to pipe %s: %w", w.pipe, ErrClosedPipe)
	case w.err != nil:
		return 0, w.err
	}
	size := w.k.cfg.segmentSize
	if len(w.buf)+len(p) > size && len(w.buf) > 0 {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) >= size {
		// Large writes go straight out, in consecutive segments that the
		// reader takes together, several stored at once.
		return w.putSegments(p, size)
	}
	w.buf = append(w.buf, p...)
	if w.k.cfg.flushDelay <= 0 {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	} else if w.timer == nil {
		w.timer = time.AfterFunc(w.k.cfg.flushDelay, w.timedFlush)
	}
	return len(p), nil
}

func (w *PipeWriter) timedFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.closed {
		_ = w.flushLocked()
	}
}

func (w *PipeWriter) flushLocked() error {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.buf) == 0 || w.err != nil {
		return w.err
	}
	err := w.putSegment(w.buf, false)
	w.buf = w.buf[:0]
	return err
}

func (w *PipeWriter) putSegment(data []byte, more bool) error {
	if err := w.storeSegment(w.seq, data, more); err != nil {
		w.err = fmt.Errorf("rack: write to pipe %s: %w", w.pipe, err)
		return w.err
	}
	w.seq++
	return nil
}

// storeSegment stores segment seq of this end.
func (w *PipeWriter) storeSegment(seq int, data []byte, more bool) error {
	opts := &backend.PutOptions{CreateOnly: true, NoRival: true, DeleteAfter: w.k.cfg.recordTTL}
	if more {
		opts.Metadata = map[string]string{moreKey: "1"}
	}
	// The kernel's context, not the process's: acknowledged bytes are
	// delivered even when the process is being killed.
	// Only this end writes the segment, and its reader deletes it once
	// read: a retry must not put back one that was read meanwhile.
	var again atomic.Bool
	ctx := retry.SoleWriter(w.k.ctx, &again)
	_, err := w.k.ns.store.Put(ctx, w.k.cfg.container, record.PipeSegmentKey(w.pipe, w.end, seq), bytesReader(data), opts)
	if err == nil && again.Load() {
		// Maybe stored twice, the first copy consumed: the close record
		// asks the reader to delete what is left once it has read past.
		w.recheckMu.Lock()
		if len(w.recheck) < record.MaxRecheck {
			w.recheck = append(w.recheck, seq)
		}
		w.recheckMu.Unlock()
	}
	return err
}

// segmentDeletes deletes consumed pipe segments in the background
// (deleteSoon): up to deleteWorkers at once, the others queued by name.
type segmentDeletes struct {
	mu      sync.Mutex
	queue   []sizedKey
	workers int
}

type sizedKey struct {
	key  string
	size int64
}

// deleteWorkers bounds the deletes of consumed segments in flight;
// deleteQueueMax the ones queued behind them, past which a reader deletes
// at once (a store whose deletes lag its reads far behind).
const (
	deleteWorkers  = 32
	deleteQueueMax = 4096
)

// deleteSoon deletes key, of size bytes (-1: unknown), in the background:
// consumed segments are garbage, and a reader should not wait a round
// trip for each. Queued, not waited for, past deleteWorkers in flight: a
// reader of 100 ends on a loaded Swift that waited for a delete once 32
// were in flight (each took a second there) read its last lines seconds
// after they were stored.
func (k *Kernel) deleteSoon(key string, size int64) {
	d := &k.deletes
	d.mu.Lock()
	if len(d.queue) >= deleteQueueMax {
		d.mu.Unlock()
		_ = k.ns.deleteSized(k.ctx, key, size)
		return
	}
	d.queue = append(d.queue, sizedKey{key, size})
	if d.workers >= deleteWorkers {
		d.mu.Unlock()
		return
	}
	d.workers++
	d.mu.Unlock()
	if !k.background(k.runDeletes) {
		// Closing: the segments expire by themselves.
		d.mu.Lock()
		d.workers--
		if d.workers == 0 {
			d.queue = nil
		}
		d.mu.Unlock()
	}
}

// runDeletes deletes queued segments until the queue is empty.
func (k *Kernel) runDeletes() {
	d := &k.deletes
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.queue = nil // let go of a long queue's array
			d.workers--
			d.mu.Unlock()
			return
		}
		s := d.queue[0]
		d.queue[0] = sizedKey{}
		d.queue = d.queue[1:]
		d.mu.Unlock()
		_ = k.ns.deleteSized(k.ctx, s.key, s.size)
	}
}

// background runs f in a goroutine that Close waits for, unless the kernel
// is closing (then it reports false and f does not run).
func (k *Kernel) background(f func()) bool {
	return k.sched.whileOpen(func() {
		k.wg.Add(1)
		go func() {
			defer k.wg.Done()
			f()
		}()
	})
}

// segmentsInFlight bounds the segments of one large Write stored at once:
// on Swift one PUT at a time leaves the link idle for its latency, but
// segments stored together land together, and the reader waits for the
// last of them. With writer and reader on links of their own
// (bench/swift-netns.sh, 400 Mbit/s, 3 runs of each build side by side)
// 2 at once streamed at 0.88x a raw PUT, 1 at 0.83x, 4 at 0.70x; on the
// unshaped loopback 2 and 4 tie.
const segmentsInFlight = 2

// putSegments stores p as consecutive segments of size bytes, all but the
// last marked as continued, up to segmentsInFlight at once. On failure the
// writer keeps the segments stored before the first failed one (the close
// record counts only those) and reports how many bytes they hold.
func (w *PipeWriter) putSegments(p []byte, size int) (int, error) {
	n := (len(p) + size - 1) / size
	errs := make([]error, n)
	sem := make(chan struct{}, segmentsInFlight)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			off := i * size
			end := min(off+size, len(p))
			errs[i] = w.storeSegment(w.seq+i, p[off:end], end < len(p))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			w.seq += i
			w.err = fmt.Errorf("rack: write to pipe %s: %w", w.pipe, err)
			return i * size, w.err
		}
	}
	w.seq += n
	return len(p), nil
}

// ReadFrom copies r into the pipe in large writes, so that io.Copy stores
// several segments at once instead of one small segment per 32 KiB. Each
// chunk is acknowledged once stored, as a Write is.
func (w *PipeWriter) ReadFrom(r io.Reader) (int64, error) {
	return copyInChunks(writerOnly{w}, r, segmentsInFlight*w.k.cfg.segmentSize)
}

// writerOnly hides a writer's ReadFrom, so copyInChunks cannot recurse.
type writerOnly struct{ io.Writer }

// copyInChunks copies r to w in writes of whatever r gives, up to chunk
// bytes: a slow source's data still flows at once. Its buffer starts small
// and grows to chunk only while r fills it.
func copyInChunks(w io.Writer, r io.Reader, chunk int) (int64, error) {
	buf := make([]byte, min(64<<10, chunk))
	var total int64
	for {
		n, err := r.Read(buf)
		full := n == len(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if full && len(buf) < chunk {
			buf = make([]byte, min(4*len(buf), chunk))
		}
	}
}

// Close flushes and closes this writer end. The reader sees EOF once every
// end is closed.
func (w *PipeWriter) Close() error {
	if w.owner.killed.Load() {
		// The kernel closes a killed process's ends itself.
		return fmt.Errorf("rack: close pipe %s: %w", w.pipe, ErrKilled)
	}
	return w.close()
}

func (w *PipeWriter) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	ferr := w.flushLocked()
	// The close record counts only segments that were stored, so a failed
	// flush still lets the reader finish (without the lost bytes, and the
	// writer was told).
	w.recheckMu.Lock()
	var recheck []int
	for _, s := range w.recheck {
		if s < w.seq { // a segment of a failed Write is not counted
			recheck = append(recheck, s)
		}
	}
	w.recheckMu.Unlock()
	// One closed on our behalf already (ErrExist, or a reaper's close in
	// flight at once) does as well: putOnce.
	err := w.k.ns.putOnce(w.k.ctx, record.PipeCloseKey(w.pipe, w.end), record.Encode(record.PipeClose{Segments: w.seq, Recheck: recheck}), "")
	if err != nil {
		return fmt.Errorf("rack: close pipe %s: %w", w.pipe, err)
	}
	w.closed = true
	w.owner.mu.Lock()
	delete(w.owner.writers, w)
	w.owner.mu.Unlock()
	if isFifoPipe(w.pipe) {
		w.k.fifoEndClosed(w.owner.pid, w.pipe, w.end, w.recordsKnown())
	}
	return ferr
}

// recordsKnown returns where, in w's pipe, a record of ends is known to
// start past w's end: past the records this kernel claimed for the pipe,
// else 0.
func (w *PipeWriter) recordsKnown() int {
	if n := w.claims.start(); n > w.end {
		return n
	}
	return 0
}

// dup registers a new writer end for child, duplicated from w: one of the
// ends pool holds for w (claimed for a ForkAll), else one claimed now.
func (w *PipeWriter) dup(ctx context.Context, child *proc, pool endPool) (*PipeWriter, error) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("pipe %s: %w", w.pipe, ErrClosedPipe)
	}
	if b := pool[w]; b != nil && b.used < b.count {
		n := b.first + b.used
		b.used++
		return w.k.adoptWriter(child, w.pipe, n, w.claims)
	}
	return w.k.claimWriter(ctx, child, w.pipe, w.end, w.claims)
}

// endBlock is a block of ends claimed from one writer for a ForkAll's
// children, used in order.
type endBlock struct{ first, count, used int }

// endPool holds the blocks claimed for a ForkAll, by source writer; nil
// for a single fork.
type endPool map[*PipeWriter]*endBlock

// claim registers, with one record per source writer (in parallel), the
// ends that specs will take from each.
func (pool endPool) claim(ctx context.Context, k *Kernel, parent *proc, need map[*PipeWriter]int) error {
	type result struct {
		w   *PipeWriter
		n   int
		err error
	}
	results := make(chan result, len(need))
	for w, count := range need {
		go func() {
			n, err := k.claimEnds(ctx, parent.pid, w.pipe, w.end, count, w.claims)
			results <- result{w, n, err}
		}()
	}
	var errs []error
	for range need {
		r := <-results
		if r.err != nil {
			errs = append(errs, fmt.Errorf("pipe %s: %w", r.w.pipe, r.err))
			continue
		}
		pool[r.w] = &endBlock{first: r.n, count: need[r.w]}
	}
	return errors.Join(errs...)
}

// closeUnused closes the ends of the pool that no child took (its fork
// failed first), so that no reader waits for them.
func (pool endPool) closeUnused(k *Kernel) {
	var wg sync.WaitGroup
	for w, b := range pool {
		for n := b.first + b.used; n < b.first+b.count; n++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := k.ns.putOnce(k.ctx, record.PipeCloseKey(w.pipe, n), record.Encode(record.PipeClose{}), "")
				if err != nil {
					k.cfg.logger.Warn("rack: closing an unused pipe end", "pipe", w.pipe, "end", n, "err", err)
				} else if isFifoPipe(w.pipe) {
					k.fifoEndClosed(w.owner.pid, w.pipe, n, w.recordsKnown())
				}
			}()
		}
		b.used = b.count
	}
	wg.Wait()
}

// Mkfifo creates the named pipe name; it fails with an error wrapping
// fs.ErrExist if it exists. Open its ends with OpenFifoReader and
// OpenFifoWriter. As on Linux, it holds no data while nobody has it open:
// once every end opened since it was last unused is closed (or its
// process ended), the data no reader took is dropped, and the next open
// starts afresh. In the file tree it is /NAMESPACE/name (NAMESPACE is
// Namespace()): ReadDir and Stat show it with fs.ModeNamedPipe, and
// Remove removes it (ends already open go on working, as after unlink).
func (k *Kernel) Mkfifo(ctx context.Context, name string) error {
	if err := validName("fifo name", name); err != nil {
		return fmt.Errorf("rack: mkfifo: %w", err)
	}
	if k.isClosed() {
		return fmt.Errorf("rack: mkfifo: %w", ErrClosed)
	}
	id := k.id + "-" + strconv.FormatInt(k.seq.Add(1), 36)
	err := k.ns.put(ctx, record.FifoKey(name), record.Encode(record.Fifo{Name: name, Pipe: id}), true)
	if errors.Is(err, backend.ErrExist) {
		return fmt.Errorf("rack: mkfifo %q: %w", name, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("rack: mkfifo %q: %w", name, err)
	}
	return nil
}

func (k *Kernel) fifo(ctx context.Context, name string) (string, error) {
	if err := validName("fifo name", name); err != nil {
		return "", err
	}
	var f record.Fifo
	err := k.ns.getRecord(ctx, record.FifoKey(name), &f)
	if errors.Is(err, backend.ErrNotFound) {
		return "", fmt.Errorf("fifo %q: %w", name, fs.ErrNotExist)
	}
	if err == nil && isFifoPipe(f.Pipe) {
		err = fmt.Errorf("fifo %q: %w: pipe id %q", name, record.ErrCorrupt, f.Pipe)
	}
	return f.Pipe, err
}

// OpenFifoReader opens the read end of the named pipe name. Its Read
// waits until some writer has opened the pipe, and returns io.EOF once
// all writers that opened it have closed (or their processes ended). A
// reader that opens after the writers are gone, while another reader
// still has the pipe open, gets EOF at once; once nobody has the pipe
// open, a new reader waits for a new writer, as on Linux. Readers open at
// the same time share the data; one reader at a time is what rack keeps
// exact (two may both get a segment that neither has finished reading).
func (s *Self) OpenFifoReader(ctx context.Context, name string) (*PipeReader, error) {
	pr, err := s.selfProc("open fifo")
	if err != nil {
		return nil, err
	}
	base, err := pr.k.fifo(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo: %w", err)
	}
	pipe, n, _, err := pr.k.joinFifo(ctx, pr.pid, base, record.EndReader)
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo %q: %w", name, err)
	}
	r, err := pr.k.newReader(pr, pipe, n, nil)
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo %q: %w", name, err)
	}
	return r, nil
}

// OpenFifoWriter opens a new write end of the named pipe name. As open(2)
// of a FIFO for writing, it waits until a reader has the pipe open (or
// ctx ends), so that what it writes has someone to read it.
func (s *Self) OpenFifoWriter(ctx context.Context, name string) (*PipeWriter, error) {
	pr, err := s.selfProc("open fifo")
	if err != nil {
		return nil, err
	}
	base, err := pr.k.fifo(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo: %w", err)
	}
	pipe, n, reader, err := pr.k.joinFifo(ctx, pr.pid, base, "")
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo %q: %w", name, err)
	}
	w, err := pr.k.adoptWriter(pr, pipe, n, &endClaims{next: n + 1})
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo %q: %w", name, err)
	}
	if reader {
		return w, nil
	}
	if err := pr.k.awaitFifoReader(ctx, pipe, n+1, pr.done); err != nil {
		_ = w.close()
		return nil, fmt.Errorf("rack: open fifo %q: waiting for a reader: %w", name, err)
	}
	return w, nil
}
