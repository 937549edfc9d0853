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
	"time"

	"github.com/rackfork/rack/backend"
)

// Policy bounds the retries.
type Policy struct {
	Attempts int           // total tries, at least 1
	Base     time.Duration // first backoff (at least 1 ns)
	Max      time.Duration // backoff cap (at least Base)
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

// DefaultPolicy suits an object store: about 6 s of retries in all.
var DefaultPolicy = Policy{Attempts: 10, Base: 10 * time.Millisecond, Max: time.Second}

// Store is a backend.Store that retries transient failures.
type Store struct {
	backend.Store
	policy Policy
}

// Wrap returns s with retries. The result implements backend.Notifier when
// s does.
func Wrap(s backend.Store, p Policy) backend.Store {
	if p.Attempts < 1 {
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

// budget is one operation's attempts and backoff: an operation and, for a
// Get, the re-opens that resume its download share one.
type budget struct {
	p     Policy
	used  int
	delay time.Duration
}

func (s *Store) budget() *budget { return &budget{p: s.policy, delay: s.policy.Base} }

// pause follows a transient failure err: it waits a jittered backoff and
// returns nil if an attempt is left, else the error to report.
func (b *budget) pause(ctx context.Context, err error) error {
	if b.used >= b.p.Attempts {
		return fmt.Errorf("gave up after %d attempts: %w", b.used, err)
	}
	// Full jitter keeps retrying clients from marching in step.
	sleep := time.Duration(mrand.Int64N(int64(b.delay)) + 1)
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

// run runs op until it succeeds, fails for good, or b's attempts run out.
func (b *budget) run(ctx context.Context, op func() error) error {
	for {
		b.used++
		err := op()
		if err == nil || !errors.Is(err, backend.ErrTransient) {
			return err
		}
		if err = b.pause(ctx, err); err != nil {
			return err
		}
	}
}

// do runs op with a budget of its own.
func (s *Store) do(ctx context.Context, op func() error) error {
	return s.budget().run(ctx, op)
}

// CreateContainer retries.
func (s *Store) CreateContainer(ctx context.Context, c string) error {
	return s.do(ctx, func() error { return s.Store.CreateContainer(ctx, c) })
}

// DeleteContainer retries; a not-found after an ambiguous try is success.
func (s *Store) DeleteContainer(ctx context.Context, c string) error {
	tried := false
	return s.do(ctx, func() error {
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
	err = s.do(ctx, func() (e error) { out, e = s.Store.ListContainers(ctx, o); return e })
	return out, err
}

// Get retries opening the object, and its reader resumes a download cut
// by a transient failure from where it stopped (checking the ETag, so it
// never splices two versions). Opening and resuming share one budget of
// Policy.Attempts GETs, with the policy's backoff between them, which
// starts afresh once a resumed download delivers bytes: a store that keeps
// cutting a download before any byte arrives costs at most Attempts GETs.
func (s *Store) Get(ctx context.Context, c, n string, o *backend.GetOptions) (rc io.ReadCloser, info backend.ObjectInfo, err error) {
	b := s.budget()
	err = b.run(ctx, func() (e error) { rc, info, e = s.Store.Get(ctx, c, n, o); return e })
	if err != nil {
		return nil, info, err
	}
	var opts backend.GetOptions
	if o != nil {
		opts = *o
	}
	return &resuming{s: s, b: b, ctx: ctx, c: c, n: n, opts: opts, etag: info.ETag, rc: rc}, info, nil
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
			*r.b = budget{p: r.s.policy, delay: r.s.policy.Base} // progress: the next cut starts afresh
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
			rerr = r.b.run(r.ctx, func() (e error) { r.rc, info, e = r.s.Store.Get(r.ctx, r.c, r.n, &resume); return e })
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
	err = s.do(ctx, func() (e error) { info, e = s.Store.Head(ctx, c, n); return e })
	return info, err
}

// List retries.
func (s *Store) List(ctx context.Context, c string, o backend.ListOptions) (out []backend.ObjectInfo, err error) {
	err = s.do(ctx, func() (e error) { out, e = s.Store.List(ctx, c, o); return e })
	return out, err
}

// Delete retries; a not-found after an ambiguous try is success.
func (s *Store) Delete(ctx context.Context, c, n string) error {
	tried := false
	return s.do(ctx, func() error {
		err := s.Store.Delete(ctx, c, n)
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
		return s.Store.Put(ctx, c, n, r, &opts)
	}
	ambiguous := false
	var info backend.ObjectInfo
	err := s.do(ctx, func() error {
		var err error
		info, err = s.Store.Put(ctx, c, n, body(), &opts)
		if errors.Is(err, backend.ErrExist) && ambiguous {
			h, herr := s.Store.Head(ctx, c, n)
			switch {
			case herr == nil && h.Metadata[backend.WriterTokenKey] == token:
				info, err = h, nil
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
