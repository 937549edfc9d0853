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
	"bytes"
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
	Base     time.Duration // first backoff
	Max      time.Duration // backoff cap
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

// do runs op until it succeeds, fails for good, or the attempts run out.
func (s *Store) do(ctx context.Context, op func() error) error {
	delay := s.policy.Base
	var err error
	for i := 0; i < s.policy.Attempts; i++ {
		if err = op(); err == nil || !errors.Is(err, backend.ErrTransient) {
			return err
		}
		if i == s.policy.Attempts-1 {
			break
		}
		// Full jitter keeps retrying clients from marching in step.
		sleep := time.Duration(mrand.Int64N(int64(delay)) + 1)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying after: %v)", context.Cause(ctx), err)
		case <-t.C:
		}
		if delay *= 2; delay > s.policy.Max {
			delay = s.policy.Max
		}
	}
	return fmt.Errorf("gave up after %d attempts: %w", s.policy.Attempts, err)
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
// never splices two versions).
func (s *Store) Get(ctx context.Context, c, n string, o *backend.GetOptions) (rc io.ReadCloser, info backend.ObjectInfo, err error) {
	err = s.do(ctx, func() (e error) { rc, info, e = s.Store.Get(ctx, c, n, o); return e })
	if err != nil {
		return nil, info, err
	}
	var opts backend.GetOptions
	if o != nil {
		opts = *o
	}
	return &resuming{s: s, ctx: ctx, c: c, n: n, opts: opts, etag: info.ETag, rc: rc}, info, nil
}

// resuming re-opens a cut download at the offset it reached.
type resuming struct {
	s    *Store
	ctx  context.Context
	c, n string
	opts backend.GetOptions
	etag string
	read int64
	rc   io.ReadCloser
}

func (r *resuming) Read(p []byte) (int, error) {
	for attempt := 0; ; attempt++ {
		n, err := r.rc.Read(p)
		r.read += int64(n)
		if err == nil || err == io.EOF || !errors.Is(err, backend.ErrTransient) || attempt >= r.s.policy.Attempts {
			return n, err
		}
		if n > 0 {
			return n, nil // deliver what came; the next Read resumes
		}
		r.rc.Close()
		resume := backend.GetOptions{Offset: r.opts.Offset + r.read}
		if r.opts.Length > 0 {
			if resume.Length = r.opts.Length - r.read; resume.Length <= 0 {
				return 0, io.EOF
			}
		}
		var info backend.ObjectInfo
		rerr := r.s.do(r.ctx, func() (e error) { r.rc, info, e = r.s.Store.Get(r.ctx, r.c, r.n, &resume); return e })
		if rerr == nil && r.etag != "" && info.ETag != r.etag {
			r.rc.Close()
			rerr = fmt.Errorf("resuming %s/%s: the object changed during the download", r.c, r.n)
		}
		if rerr != nil {
			r.rc = errReader{rerr}
			return 0, fmt.Errorf("%w (resuming after: %v)", rerr, err)
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
			body, ok = func() io.Reader { return chunkReader(chunks) }, true
		} else {
			r = io.MultiReader(chunkReader(chunks), r)
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

// bufferChunk is the unit in which Put holds a body to retry: chunks, not
// one doubling buffer, so that a body read up to Policy.Buffer costs about
// that much memory, not up to four times it in the buffer's growth (which
// a large streamed file, tried once, would pay for nothing).
const bufferChunk = 256 << 10

// readChunks reads up to limit bytes of r into chunks, stopping early at
// EOF; it returns the chunks and how many bytes they hold.
func readChunks(r io.Reader, limit int64) ([][]byte, int64, error) {
	var (
		chunks [][]byte
		total  int64
	)
	for total < limit {
		c := make([]byte, min(bufferChunk, limit-total))
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

// chunkReader reads chunks in order, afresh each time it is called.
func chunkReader(chunks [][]byte) io.Reader {
	rs := make([]io.Reader, len(chunks))
	for i, c := range chunks {
		rs[i] = bytes.NewReader(c)
	}
	return io.MultiReader(rs...)
}

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
