// Package retry wraps a backend.Store so that transient failures are retried
// with jittered backoff, and an ambiguous create-only Put is told apart from
// a real conflict.
//
// It is the one layer that retries store operations: drivers are
// single-shot and report backend.ErrTransient (see package backend), so the
// number of requests for one operation against a store that keeps failing
// is Policy.Attempts, not Attempts times a driver's own retries.
package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/rackfork/rack/backend"
)

// Policy bounds the retries.
type Policy struct {
	// Attempts is the most tries of one operation. Zero with a Budget
	// means as many as the Budget allows; zero without one means 1.
	Attempts int
	Base     time.Duration // first backoff (at least 1 ns)
	Max      time.Duration // backoff cap (at least Base)
	// Budget bounds one operation in time: all its attempts, their
	// requests and the backoffs between them together (a Get's resumed
	// downloads get a new one each time the download makes progress). No
	// attempt starts once it is spent. Zero means no bound but Attempts
	// and the context. With a Budget, an operation that spends it on
	// transient failures marks the store down: until some request
	// succeeds again, operations are tried once, with a request timeout
	// of at most 1 s, so that a program that has failed cleans up
	// promptly instead of retrying each request for a whole Budget.
	Budget time.Duration
	// RequestTimeout abandons an attempt that makes no progress for
	// that long, as a transient failure (retried like any other): a
	// request without a body waits at most that long for its answer; a
	// Put's attempt, that long after the store last took a byte of the
	// body (the time spent reading the caller's body does not count)
	// and, once the body is sent, for the answer; a Get's body, that long
	// within one Read. A slow transfer that keeps moving is never cut.
	// Zero means none (the driver's own timeouts only).
	RequestTimeout time.Duration
	// Buffer is how much of a Put's body that cannot be read again (not an
	// io.ReaderAt and io.Seeker: a pipe, a stream) Put holds in memory so
	// that it can retry it: a body that ends within Buffer bytes is
	// retried like a rereadable one, a longer one is tried once. Zero
	// means DefaultBuffer, negative none.
	Buffer int64
}

// DefaultBuffer is Policy.Buffer's default: 8 MiB, as much as the Swift
// driver reads ahead to learn a body's size.
const DefaultBuffer = 8 << 20

// DefaultPolicy suits an object store: about 6 s of retries in all. The
// kernel's own default is time-bounded instead (see package rack's
// WithLease): Attempts 0, Budget the lease.
var DefaultPolicy = Policy{Attempts: 10, Base: 10 * time.Millisecond, Max: time.Second}

// Store is a backend.Store that retries transient failures.
type Store struct {
	backend.Store
	policy Policy
	// down: an operation spent its whole Budget on transient failures
	// and no request has succeeded since (see Policy.Budget).
	down atomic.Bool
}

// Down reports whether the store is taken as down: an operation spent its
// whole Budget on transient failures and no request has succeeded since.
func (s *Store) Down() bool { return s.down.Load() }

// Wrap returns s with retries. The result implements backend.Notifier when
// s does.
func Wrap(s backend.Store, p Policy) backend.Store {
	if p.Budget < 0 {
		p.Budget = 0
	}
	if p.RequestTimeout < 0 {
		p.RequestTimeout = 0
	}
	if p.Attempts < 1 && p.Budget == 0 {
		p.Attempts = 1
	}
	if p.Base < 1 {
		p.Base = 1 // jitter draws from [0, delay): never an empty range
	}
	if p.Max < p.Base {
		p.Max = p.Base
	}
	switch {
	case p.Buffer == 0:
		p.Buffer = DefaultBuffer
	case p.Buffer < 0:
		p.Buffer = 0
	}
	st := &Store{Store: s, policy: p}
	if n, ok := s.(backend.Notifier); ok {
		return &notifyingStore{st, n}
	}
	return st
}

type notifyingStore struct {
	*Store
	backend.Notifier
}

// budget is one operation's attempts, backoff and time: an operation and,
// for a Get, the re-opens that resume its download share one.
type budget struct {
	s     *Store
	p     Policy
	used  int
	delay time.Duration
	// end is when the Budget is spent (zero: no Budget).
	end time.Time
	// once: the store was down when the operation began: one attempt.
	once bool
}

func (s *Store) budget() *budget {
	b := &budget{s: s, p: s.policy, delay: s.policy.Base}
	if s.policy.Budget > 0 {
		b.end = time.Now().Add(s.policy.Budget)
		b.once = s.down.Load()
	}
	return b
}

// pause follows a transient failure err: it waits a jittered backoff and
// returns nil if an attempt is left, else the error to report.
func (b *budget) pause(ctx context.Context, err error) error {
	// Full jitter keeps retrying clients from marching in step.
	sleep := time.Duration(mrand.Int64N(int64(b.delay)) + 1)
	spent := b.once || (b.p.Attempts > 0 && b.used >= b.p.Attempts)
	if !spent && !b.end.IsZero() && time.Now().Add(sleep).After(b.end) {
		spent = true
	}
	if spent {
		if !b.end.IsZero() {
			b.s.down.Store(true)
			return fmt.Errorf("gave up after %d attempts in %v (retry budget %v): %w", b.used,
				(b.p.Budget - time.Until(b.end)).Round(time.Millisecond), b.p.Budget, err)
		}
		return fmt.Errorf("gave up after %d attempts: %w", b.used, err)
	}
	t := time.NewTimer(sleep)
	select {
	case <-ctx.Done():
		t.Stop()
		return fmt.Errorf("%w (retrying after: %v)", context.Cause(ctx), err)
	case <-t.C:
	}
	if b.delay *= 2; b.delay > b.p.Max {
		b.delay = b.p.Max
	}
	return nil
}

// fresh starts the budget afresh (a download made progress).
func (b *budget) fresh() {
	nb := b.s.budget()
	nb.once = false
	*b = *nb
}

// run runs op until it succeeds, fails for good, or b is spent. Each try
// runs under the policy's request timeout (see Store.try).
func (b *budget) run(ctx context.Context, op func(ctx context.Context) error) error {
	return b.loop(ctx, func() error { return b.s.try(ctx, op) })
}

// loop runs op until it succeeds, fails for good, or b is spent.
func (b *budget) loop(ctx context.Context, op func() error) error {
	for {
		b.used++
		err := op()
		if err == nil || !errors.Is(err, backend.ErrTransient) {
			if err == nil || !errors.Is(err, errTimedOut) {
				b.s.up(err)
			}
			return err
		}
		if err = b.pause(ctx, err); err != nil {
			return err
		}
	}
}

// up notes an answer from the store: the store is not down.
func (s *Store) up(err error) {
	if s.down.Load() && (err == nil || errors.Is(err, backend.ErrNotFound) || errors.Is(err, backend.ErrExist)) {
		s.down.Store(false)
	}
}

// errTimedOut marks a try the request timeout abandoned (timeoutError).
var errTimedOut = errors.New("store request made no progress within the request timeout")

// timeoutError reports a try the request timeout abandoned: transient.
type timeoutError struct {
	d   time.Duration
	err error // what the driver reported, if anything
}

func (e *timeoutError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("no progress within the request timeout (%v): %v", e.d, e.err)
	}
	return fmt.Sprintf("no progress within the request timeout (%v)", e.d)
}

func (e *timeoutError) Unwrap() []error { return []error{errTimedOut, backend.ErrTransient} }

// try runs one attempt of op, abandoning it (cancelling its context) if it
// takes longer than the request timeout.
func (s *Store) try(ctx context.Context, op func(ctx context.Context) error) error {
	d := s.requestTimeout()
	if d <= 0 {
		return op(ctx)
	}
	actx, cancel := context.WithTimeoutCause(ctx, d, &timeoutError{d: d})
	defer cancel()
	return s.timedOut(ctx, actx, op(actx))
}

// downTimeout caps the request timeout while the store is down (see
// Policy.Budget): an operation then fails anyway unless the store answers,
// and a program cleaning up after a store that never answers should not
// wait a whole request timeout for each request.
const downTimeout = time.Second

// requestTimeout is the request timeout for the next try.
func (s *Store) requestTimeout() time.Duration {
	d := s.policy.RequestTimeout
	if d > downTimeout && s.down.Load() {
		d = downTimeout
	}
	return d
}

// timedOut turns err, an attempt's result under actx, into a timeoutError
// when the request timeout (not the caller) ended actx.
func (s *Store) timedOut(ctx, actx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || !errors.Is(context.Cause(actx), errTimedOut) || errors.Is(err, errTimedOut) {
		return err
	}
	return &timeoutError{d: s.requestTimeout(), err: err}
}

// do runs op with a budget of its own.
func (s *Store) do(ctx context.Context, op func(ctx context.Context) error) error {
	return s.budget().run(ctx, op)
}

// watchdog abandons an attempt (cancels its context) once it has made no
// progress for the request timeout; the timer runs only between kick and
// pause.
type watchdog struct {
	d      time.Duration
	t      *time.Timer
	cancel context.CancelCauseFunc
}

// watch returns a context for one attempt, watched by a running watchdog
// (nil without a request timeout: then the context is ctx).
func (s *Store) watch(ctx context.Context) (context.Context, *watchdog) {
	d := s.requestTimeout()
	if d <= 0 {
		return ctx, nil
	}
	actx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{d: d, cancel: cancel}
	w.t = time.AfterFunc(d, func() { cancel(&timeoutError{d: d}) })
	return actx, w
}

func (w *watchdog) kick() {
	if w != nil {
		w.t.Reset(w.d)
	}
}

func (w *watchdog) pause() {
	if w != nil {
		w.t.Stop()
	}
}

// release ends the attempt's context.
func (w *watchdog) release() {
	if w != nil {
		w.t.Stop()
		w.cancel(context.Canceled)
	}
}

// watchedBody is a Put body whose reads by the store kick the watchdog:
// the timer runs while the store holds the bytes it was given (sending
// them, or waiting for the answer after the last), not while this reads
// the caller's body.
type watchedBody struct {
	r io.Reader
	w *watchdog
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.pause()
	n, err := b.r.Read(p)
	b.w.kick()
	return n, err
}

// watchedSection is a watchedBody that can be read afresh (an
// io.ReaderAt and io.Seeker, like the body it watches) and tells the
// bytes left, so that a driver learns its size and can resend it.
type watchedSection struct {
	watchedBody
	ra   io.ReaderAt
	sk   io.Seeker
	size int64 // the body's length from offset 0
}

// watchBody wraps body (as a try gets it) for w; nil w leaves it alone.
func watchBody(body io.Reader, w *watchdog) io.Reader {
	if w == nil {
		return body
	}
	wb := watchedBody{r: body, w: w}
	ra, ok := body.(io.ReaderAt)
	sk, ok2 := body.(io.Seeker)
	if !ok || !ok2 {
		return &wb
	}
	cur, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return &wb
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return &wb
	}
	if _, err := sk.Seek(cur, io.SeekStart); err != nil {
		return &wb
	}
	return &watchedSection{watchedBody: wb, ra: ra, sk: sk, size: end}
}

func (b *watchedSection) ReadAt(p []byte, off int64) (int, error) {
	b.w.pause()
	n, err := b.ra.ReadAt(p, off)
	b.w.kick()
	return n, err
}

func (b *watchedSection) Seek(offset int64, whence int) (int64, error) {
	return b.sk.Seek(offset, whence)
}

// Len returns the bytes left to read.
func (b *watchedSection) Len() int {
	cur, err := b.sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0
	}
	return int(max(b.size-cur, 0))
}

// watchedReader is a Get's body: each Read must make progress within the
// request timeout.
type watchedReader struct {
	rc        io.ReadCloser
	w         *watchdog
	s         *Store
	ctx, actx context.Context
}

func (r *watchedReader) Read(p []byte) (int, error) {
	r.w.kick()
	n, err := r.rc.Read(p)
	r.w.pause()
	if err != nil && err != io.EOF {
		err = r.s.timedOut(r.ctx, r.actx, err)
	}
	return n, err
}

func (r *watchedReader) Close() error {
	err := r.rc.Close()
	r.w.release()
	return err
}

// CreateContainer retries.
func (s *Store) CreateContainer(ctx context.Context, c string) error {
	return s.do(ctx, func(ctx context.Context) error { return s.Store.CreateContainer(ctx, c) })
}

// DeleteContainer retries; a not-found after an ambiguous try is success.
func (s *Store) DeleteContainer(ctx context.Context, c string) error {
	tried := false
	return s.do(ctx, func(ctx context.Context) error {
		err := s.Store.DeleteContainer(ctx, c)
		if tried && errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		tried = true
		return err
	})
}

// ListContainers retries.
func (s *Store) ListContainers(ctx context.Context, o backend.ListOptions) (out []backend.ObjectInfo, err error) {
	err = s.do(ctx, func(ctx context.Context) (e error) { out, e = s.Store.ListContainers(ctx, o); return e })
	return out, err
}

// Get retries opening the object, and its reader resumes a download cut
// by a transient failure from where it stopped (checking the ETag, so it
// never splices two versions). Opening and resuming share one budget of
// Policy.Attempts GETs (and Policy.Budget), with the policy's backoff
// between them, which starts afresh once a resumed download delivers bytes:
// a store that keeps cutting a download before any byte arrives costs at
// most Attempts GETs. With a RequestTimeout, a Read that waits that long
// for a byte cuts the download (and resumes it); a download that keeps
// delivering is never cut, however long it takes.
func (s *Store) Get(ctx context.Context, c, n string, o *backend.GetOptions) (rc io.ReadCloser, info backend.ObjectInfo, err error) {
	b := s.budget()
	err = b.loop(ctx, func() (e error) { rc, info, e = s.open(ctx, c, n, o); return e })
	if err != nil {
		return nil, info, err
	}
	var opts backend.GetOptions
	if o != nil {
		opts = *o
	}
	return &resuming{s: s, b: b, ctx: ctx, c: c, n: n, opts: opts, etag: info.ETag, rc: rc}, info, nil
}

// open makes one attempt to open c/n (the range o), under a watchdog that
// the reader it returns keeps watching each Read with.
func (s *Store) open(ctx context.Context, c, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	actx, w := s.watch(ctx)
	rc, info, err := s.Store.Get(actx, c, n, o)
	if err != nil {
		w.release()
		return nil, info, s.timedOut(ctx, actx, err)
	}
	if w == nil {
		return rc, info, nil
	}
	w.pause()
	return &watchedReader{rc: rc, w: w, s: s, ctx: ctx, actx: actx}, info, nil
}

// resuming re-opens a cut download at the offset it reached.
type resuming struct {
	s    *Store
	b    *budget // the attempts left since the download last made progress
	ctx  context.Context
	c, n string
	opts backend.GetOptions
	etag string
	read int64
	rc   io.ReadCloser
}

func (r *resuming) Read(p []byte) (int, error) {
	for {
		n, err := r.rc.Read(p)
		r.read += int64(n)
		if n > 0 && r.b.used > 0 {
			r.b.fresh() // progress: the next cut starts afresh
		}
		if err == nil || err == io.EOF || !errors.Is(err, backend.ErrTransient) {
			return n, err
		}
		if n > 0 {
			return n, nil // deliver what came; the next Read resumes
		}
		r.rc.Close()
		resume := backend.GetOptions{Offset: r.opts.Offset + r.read}
		if r.opts.Length > 0 {
			if resume.Length = r.opts.Length - r.read; resume.Length <= 0 {
				r.rc = errReader{io.EOF}
				return 0, io.EOF
			}
		}
		rerr := r.b.pause(r.ctx, err)
		if rerr == nil {
			var info backend.ObjectInfo
			rerr = r.b.loop(r.ctx, func() (e error) { r.rc, info, e = r.s.open(r.ctx, r.c, r.n, &resume); return e })
			if rerr == nil && r.etag != "" && info.ETag != r.etag {
				r.rc.Close()
				rerr = fmt.Errorf("resuming %s/%s: the object changed during the download", r.c, r.n)
			}
			if rerr != nil {
				rerr = fmt.Errorf("%w (resuming after: %v)", rerr, err)
			}
		}
		if rerr != nil {
			r.rc = errReader{rerr}
			return 0, rerr
		}
	}
}

func (r *resuming) Close() error { return r.rc.Close() }

// WriteTo keeps io.Copy from the underlying reader's own WriteTo, which
// could not resume.
func (r *resuming) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		n, err := r.Read(buf)
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
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
func (e errReader) Close() error             { return nil }

// Head retries.
func (s *Store) Head(ctx context.Context, c, n string) (info backend.ObjectInfo, err error) {
	err = s.do(ctx, func(ctx context.Context) (e error) { info, e = s.Store.Head(ctx, c, n); return e })
	return info, err
}

// List retries.
func (s *Store) List(ctx context.Context, c string, o backend.ListOptions) (out []backend.ObjectInfo, err error) {
	err = s.do(ctx, func(ctx context.Context) (e error) { out, e = s.Store.List(ctx, c, o); return e })
	return out, err
}

// Delete retries; a not-found after an ambiguous try is success.
func (s *Store) Delete(ctx context.Context, c, n string) error {
	return s.retryDelete(ctx, func(ctx context.Context) error { return s.Store.Delete(ctx, c, n) })
}

// DeleteSmall retries as Delete does (backend.SmallDeleter; a store
// without it deletes).
func (s *Store) DeleteSmall(ctx context.Context, c, n string) error {
	if sd, ok := s.Store.(backend.SmallDeleter); ok {
		return s.retryDelete(ctx, func(ctx context.Context) error { return sd.DeleteSmall(ctx, c, n) })
	}
	return s.Delete(ctx, c, n)
}

// retryDelete retries del; a not-found after an ambiguous try is success.
func (s *Store) retryDelete(ctx context.Context, del func(context.Context) error) error {
	tried := false
	return s.do(ctx, func(ctx context.Context) error {
		err := del(ctx)
		if tried && errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		tried = true
		return err
	})
}

// Put retries when r can be read again (see Rereadable), or when it ends
// within Policy.Buffer bytes (held in memory); otherwise it tries once. A
// create-only Put carries a unique writer token (backend.WriterTokenKey), so
// a retry that finds the object can tell its own earlier, ambiguous write
// (success) from someone else's (backend.ErrExist).
func (s *Store) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	var opts backend.PutOptions
	if o != nil {
		opts = *o
	}
	var token string
	if opts.CreateOnly {
		token = opts.Metadata[backend.WriterTokenKey]
		if token == "" {
			token = backend.NewWriterToken()
			md := make(map[string]string, len(opts.Metadata)+1)
			for k, v := range opts.Metadata {
				md[k] = v
			}
			md[backend.WriterTokenKey] = token
			opts.Metadata = md
		}
	}
	body, ok := Rereadable(r)
	if !ok && s.policy.Buffer > 0 {
		chunks, m, err := readChunks(r, s.policy.Buffer+1)
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return backend.ObjectInfo{}, fmt.Errorf("put %s/%s: reading the body: %w", c, n, err)
		}
		if m <= s.policy.Buffer {
			body, ok = func() io.Reader { return newChunkBody(chunks, m) }, true
		} else {
			r = io.MultiReader(newChunkBody(chunks, m), r)
		}
	}
	if !ok {
		// Tried once, under the watchdog.
		actx, w := s.watch(ctx)
		defer w.release()
		info, err := s.Store.Put(actx, c, n, watchBody(r, w), &opts)
		err = s.timedOut(ctx, actx, err)
		if err == nil || !errors.Is(err, errTimedOut) {
			s.up(err)
		}
		return info, err
	}
	ambiguous := false
	var info backend.ObjectInfo
	err := s.budget().loop(ctx, func() error {
		actx, w := s.watch(ctx)
		defer w.release()
		var err error
		info, err = s.Store.Put(actx, c, n, watchBody(body(), w), &opts)
		err = s.timedOut(ctx, actx, err)
		if err == nil && ambiguous {
			if again, _ := ctx.Value(soleWriterKey{}).(*atomic.Bool); again != nil {
				// Created by this attempt: the ambiguous one may have
				// been stored, and consumed, before it.
				again.Store(true)
			}
		}
		if errors.Is(err, backend.ErrExist) && ambiguous {
			var h backend.ObjectInfo
			herr := s.try(ctx, func(ctx context.Context) (e error) { h, e = s.Store.Head(ctx, c, n); return e })
			switch {
			case herr == nil && h.Metadata[backend.WriterTokenKey] == token:
				info, err = h, nil
			case errors.Is(herr, backend.ErrNotFound) && soleWriter(ctx):
				// Only this writer creates the name and its reader
				// deletes what it read: the object was this writer's
				// earlier attempt, written and consumed. Putting it
				// again would leave it behind for good.
				info, err = backend.ObjectInfo{Name: n}, nil
			case errors.Is(herr, backend.ErrNotFound):
				// There a moment ago, gone now (a consumed pipe segment):
				// whose it was is unknown, so put it again.
				return fmt.Errorf("create-only put found, then lost, the object: %w", backend.ErrTransient)
			case herr != nil:
				return herr // transient: try the whole thing again
			}
		}
		if errors.Is(err, backend.ErrTransient) {
			ambiguous = true
		}
		return err
	})
	return info, err
}

type soleWriterKey struct{}

// SoleWriter marks ctx's create-only Puts as ones of names that only their
// writer ever creates, and that their reader deletes once read (a pipe's
// segments). After an ambiguous attempt, such a Put that finds the object
// there (ErrExist) and then gone takes it as its own earlier attempt,
// written and consumed, and reports success instead of putting it again,
// which would leave a consumed object behind. One that creates the object
// on a retry cannot tell whether the ambiguous attempt was stored and
// consumed before it: it sets again (if not nil) so that the caller can
// have the reader delete a copy it will not read.
func SoleWriter(ctx context.Context, again *atomic.Bool) context.Context {
	if again == nil {
		again = new(atomic.Bool)
	}
	return context.WithValue(ctx, soleWriterKey{}, again)
}

func soleWriter(ctx context.Context) bool {
	v, _ := ctx.Value(soleWriterKey{}).(*atomic.Bool)
	return v != nil
}

// bufferChunk is the largest unit in which Put holds a body to retry:
// chunks, not one doubling buffer, so that a body read up to Policy.Buffer
// costs about that much memory, not up to four times it in the buffer's
// growth (which a large streamed file, tried once, would pay for nothing).
// The first chunk is firstChunk bytes, and each next one twice the last, up
// to bufferChunk, so that a small body costs a small buffer.
const (
	firstChunk  = 4 << 10
	bufferChunk = 256 << 10
)

// readChunks reads up to limit bytes of r into chunks, stopping early at
// EOF; it returns the chunks and how many bytes they hold.
func readChunks(r io.Reader, limit int64) ([][]byte, int64, error) {
	var (
		chunks [][]byte
		total  int64
		size   int64 = firstChunk
	)
	for total < limit {
		c := make([]byte, min(size, limit-total))
		size = min(2*size, bufferChunk)
		n, err := io.ReadFull(r, c)
		if n > 0 {
			chunks = append(chunks, c[:n])
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return chunks, total, nil
		}
		if err != nil {
			return nil, total, err
		}
	}
	return chunks, total, nil
}

// chunkBody reads chunks of size bytes in all. It is an io.ReaderAt and
// io.Seeker and tells the bytes left (Len), like a bytes.Reader, so that a
// driver learns the body's size, and can read it afresh, without copying
// it again.
type chunkBody struct {
	chunks [][]byte
	size   int64
	off    int64
}

func newChunkBody(chunks [][]byte, size int64) *chunkBody {
	return &chunkBody{chunks: chunks, size: size}
}

// Read implements io.Reader.
func (b *chunkBody) Read(p []byte) (int, error) {
	n, err := b.ReadAt(p, b.off)
	b.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt implements io.ReaderAt.
func (b *chunkBody) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("retry: read at negative offset %d", off)
	}
	n := 0
	for _, c := range b.chunks {
		if n == len(p) {
			break
		}
		if off >= int64(len(c)) {
			off -= int64(len(c))
			continue
		}
		m := copy(p[n:], c[off:])
		n += m
		off = 0
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek implements io.Seeker.
func (b *chunkBody) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, fmt.Errorf("retry: seek: invalid whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("retry: seek to negative offset %d", offset)
	}
	b.off = offset
	return offset, nil
}

// Len returns the bytes left to read.
func (b *chunkBody) Len() int { return int(max(b.size-b.off, 0)) }

// Rereadable returns a function giving, for each try, a fresh reader of
// what is left in r, if r is an io.ReaderAt and io.Seeker (a bytes.Reader,
// a file). Each try gets its own reader because an HTTP transport may still
// be reading the previous try's body after RoundTrip has returned; rewinding
// a shared reader would race with it.
func Rereadable(r io.Reader) (func() io.Reader, bool) {
	ra, ok := r.(io.ReaderAt)
	seeker, ok2 := r.(io.Seeker)
	if !ok || !ok2 {
		return nil, false
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false
	}
	end, err := seeker.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, false
	}
	if _, err := seeker.Seek(start, io.SeekStart); err != nil {
		return nil, false
	}
	return func() io.Reader { return io.NewSectionReader(ra, start, end-start) }, true
}
