package rack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
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

	mu     sync.Mutex
	buf    []byte
	seq    int
	closed bool
	err    error // sticky: a failed flush loses the stream's integrity
	timer  *time.Timer
}

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
	lock    int // -1, or the end whose Write continues in its next segment
	rr      int
	eof     bool
	moved   bool
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
	w, err := k.claimWriter(ctx, pr, id, -1, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("rack: pipe: %w", err)
	}
	r := k.newReader(pr, id, false, nil)
	return r, w, nil
}

// claimWriter registers a new writer end of pipe for owner, taking the
// first free end number at or after hint.
func (k *Kernel) claimWriter(ctx context.Context, owner *proc, pipe string, from, hint int) (*PipeWriter, error) {
	data := record.Encode(record.PipeEnd{PID: int64(owner.pid), Kernel: k.id, From: from})
	for n := hint; ; n++ {
		err := k.put(ctx, record.PipeEndKey(pipe, n), data, true)
		if errors.Is(err, backend.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		w := &PipeWriter{k: k, owner: owner, pipe: pipe, end: n}
		owner.mu.Lock()
		if owner.writers == nil {
			owner.writers = make(map[*PipeWriter]struct{})
		}
		owner.writers[w] = struct{}{}
		owner.mu.Unlock()
		return w, nil
	}
}

func (k *Kernel) newReader(owner *proc, pipe string, fifo bool, read map[int]int) *PipeReader {
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
	return r
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
	opts := &backend.PutOptions{CreateOnly: true, DeleteAfter: w.k.cfg.recordTTL}
	if more {
		opts.Metadata = map[string]string{moreKey: "1"}
	}
	// The kernel's context, not the process's: acknowledged bytes are
	// delivered even when the process is being killed.
	_, err := w.k.store.Put(w.k.ctx, w.k.cfg.container, record.PipeSegmentKey(w.pipe, w.end, seq), bytesReader(data), opts)
	return err
}

// deleteSoon deletes key in the background: consumed segments are
// garbage, and a reader should not wait a round trip for each. Past a few
// deletes in flight it deletes at once, which bounds them.
func (k *Kernel) deleteSoon(key string) {
	select {
	case k.deletes <- struct{}{}:
		if !k.background(func() {
			defer func() { <-k.deletes }()
			_ = k.store.Delete(k.ctx, k.cfg.container, key)
		}) {
			<-k.deletes // closing: the segment expires by itself
		}
	default:
		_ = k.store.Delete(k.ctx, k.cfg.container, key)
	}
}

// background runs f in a goroutine that Close waits for, unless the kernel
// is closing (then it reports false and f does not run).
func (k *Kernel) background(f func()) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return false
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		f()
	}()
	return true
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
	err := w.k.put(w.k.ctx, record.PipeCloseKey(w.pipe, w.end), record.Encode(record.PipeClose{Segments: w.seq}), true)
	if errors.Is(err, backend.ErrExist) {
		err = nil // closed on our behalf already
	}
	if err != nil {
		return fmt.Errorf("rack: close pipe %s: %w", w.pipe, err)
	}
	w.closed = true
	w.owner.mu.Lock()
	delete(w.owner.writers, w)
	w.owner.mu.Unlock()
	return ferr
}

// dup registers a new writer end for child, duplicated from w.
func (w *PipeWriter) dup(ctx context.Context, child *proc) (*PipeWriter, error) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("pipe %s: %w", w.pipe, ErrClosedPipe)
	}
	return w.k.claimWriter(ctx, child, w.pipe, w.end, w.end+1)
}

// Read reads from the pipe, waiting for data; it returns io.EOF once every
// writer end is closed and drained.
func (r *PipeReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.moved {
		return 0, fmt.Errorf("rack: read pipe %s: %w: the reader was handed to a child", r.pipe, ErrClosedPipe)
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
		ch := r.k.changed(record.PipePrefix(r.pipe))
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
		if delay, err = r.k.waitChange(ctx, ch, r.closing, delay); err != nil {
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
	if r.fetches++; r.k.notifier != nil || r.lock < 0 && r.stuck && r.stalls%4 == 3 || len(r.ends) == 0 || r.fetches%16 == 0 {
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
		if !end.closed && (r.k.notifier != nil || r.lock < 0 && r.stalls%2 == 1 || r.lock >= 0 && (r.lockWaits%4 == 3 || r.lockWaits >= 8)) {
			// The next segment usually comes before a close: look for
			// the close every other wait (mid-Write, whose next segment
			// comes before any close, every fourth of the quick looks,
			// then at every slow one).
			var c record.PipeClose
			err := r.k.getRecord(ctx, record.PipeCloseKey(r.pipe, e), &c)
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
		_, err := r.k.store.Head(ctx, r.k.cfg.container, record.PipeEndKey(r.pipe, len(r.ends)))
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
		rc, info, err = r.k.store.Get(ctx, r.k.cfg.container, key, nil)
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
				rc, info, err = r.k.store.Get(r.k.ctx, r.k.cfg.container, key, nil)
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

// Mkfifo creates the named pipe name; it fails with an error wrapping
// fs.ErrExist if it exists. Open its ends with OpenFifoReader and
// OpenFifoWriter.
func (k *Kernel) Mkfifo(ctx context.Context, name string) error {
	if err := validName("fifo name", name); err != nil {
		return fmt.Errorf("rack: mkfifo: %w", err)
	}
	if k.isClosed() {
		return fmt.Errorf("rack: mkfifo: %w", ErrClosed)
	}
	id := k.id + "-" + strconv.FormatInt(k.seq.Add(1), 36)
	err := k.put(ctx, record.FifoKey(name), record.Encode(record.Fifo{Name: name, Pipe: id}), true)
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
	err := k.getRecord(ctx, record.FifoKey(name), &f)
	if errors.Is(err, backend.ErrNotFound) {
		return "", fmt.Errorf("fifo %q: %w", name, fs.ErrNotExist)
	}
	return f.Pipe, err
}

// OpenFifoReader opens the read end of the named pipe name. Its Read
// waits until some writer has opened the pipe, and returns io.EOF once all
// writers that opened it have closed.
func (s *Self) OpenFifoReader(ctx context.Context, name string) (*PipeReader, error) {
	pr, err := s.selfProc("open fifo")
	if err != nil {
		return nil, err
	}
	id, err := pr.k.fifo(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo: %w", err)
	}
	return pr.k.newReader(pr, id, true, nil), nil
}

// OpenFifoWriter opens a new write end of the named pipe name.
func (s *Self) OpenFifoWriter(ctx context.Context, name string) (*PipeWriter, error) {
	pr, err := s.selfProc("open fifo")
	if err != nil {
		return nil, err
	}
	id, err := pr.k.fifo(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo: %w", err)
	}
	w, err := pr.k.claimWriter(ctx, pr, id, -1, 0)
	if err != nil {
		return nil, fmt.Errorf("rack: open fifo %q: %w", name, err)
	}
	return w, nil
}
