package mem

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rackfork/rack/backend"
)

// chunkSize is the size of the chunks object data is stored in.
const chunkSize = 1 << 20

// object is one stored object version. It is immutable once stored: a Put
// replaces the pointer, so readers and listings holding an old version keep
// a consistent view of it.
type object struct {
	name     string
	size     int64
	etag     string
	ctype    string // "" for backend.DefaultContentType
	modified time.Time
	expires  int64 // mono time of expiry, 0 for never
	meta     map[string]string
	chunks   [][]byte // all full chunkSize except the last; none if empty
	one      [1][]byte
}

// expired reports whether o has expired at now.
func (o *object) expired(now int64) bool {
	return o.expires != 0 && now >= o.expires
}

// contentType returns o's content type.
func (o *object) contentType() string {
	if o.ctype == "" {
		return backend.DefaultContentType
	}
	return o.ctype
}

// info returns o's ObjectInfo with a copy of its metadata.
func (o *object) info() backend.ObjectInfo {
	info := backend.ObjectInfo{
		Name:         o.name,
		Size:         o.size,
		ETag:         o.etag,
		ContentType:  o.contentType(),
		LastModified: o.modified,
	}
	if len(o.meta) > 0 {
		info.Metadata = maps.Clone(o.meta)
	}
	return info
}

// Put stores the object read from r (to EOF), which becomes visible only
// once complete and committed. The body is copied into 1 MiB chunks as it
// is read, so r's buffers may be reused and memory grows only with the
// object. A create-only Put that finds a live object, either before reading
// the body or atomically at commit, fails with backend.ErrExist; among
// concurrent ones exactly one wins. Put fails with backend.ErrNotFound if
// the container does not exist (also if it was deleted while the body was
// read), and with backend.ErrInvalid for a bad name or metadata. If ctx is
// done or r fails, nothing is stored. The returned info has no Metadata.
func (s *Store) Put(ctx context.Context, container, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	const op = "put"
	after, err := s.enter(ctx, true)
	if err != nil {
		return backend.ObjectInfo{}, objectError(op, container, name, "", err)
	}
	info, err := s.put(ctx, container, name, r, opts)
	if after {
		return backend.ObjectInfo{}, objectError(op, container, name, "", faultAfter)
	}
	return info, err
}

// put is Put after the latency and fault injection.
func (s *Store) put(ctx context.Context, container, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	const op = "put"
	if d := backend.ContainerNameProblem(container); d != "" {
		return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.ObjectNameProblem(name); d != "" {
		return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
	}
	var (
		createOnly  bool
		deleteAfter time.Duration
		meta        map[string]string
		ctype       string
	)
	if opts != nil {
		createOnly = opts.CreateOnly
		deleteAfter = opts.DeleteAfter
		if d := backend.ContentTypeProblem(opts.ContentType); d != "" {
			return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
		}
		if opts.ContentType != backend.DefaultContentType {
			ctype = opts.ContentType
		}
		if len(opts.Metadata) > 0 {
			if d := backend.MetadataProblem(opts.Metadata); d != "" {
				return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
			}
			meta = maps.Clone(opts.Metadata)
		}
	}

	// Like Swift's proxy and object server, refuse early, before reading
	// the body, when the container is missing or a create-only Put would
	// fail anyway.
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return backend.ObjectInfo{}, objectError(op, container, name, "", ErrClosed)
	}
	c := s.containers[container]
	var old *object
	if c != nil && createOnly {
		old = c.objects[name]
	}
	s.mu.RUnlock()
	if c == nil {
		return backend.ObjectInfo{}, objectError(op, container, name, "no such container", backend.ErrNotFound)
	}
	if old != nil && !old.expired(mono()) {
		return backend.ObjectInfo{}, objectError(op, container, name, "create-only", backend.ErrExist)
	}

	o := &object{name: name, meta: meta, ctype: ctype}
	if err := readBody(ctx, r, o, !s.versions); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return backend.ObjectInfo{}, objectError(op, container, name, "", ctxErr)
		}
		return backend.ObjectInfo{}, objectError(op, container, name, "reading the body", err)
	}

	t := time.Now()
	now := int64(t.Sub(epoch))
	o.modified = t.UTC().Truncate(time.Microsecond)
	if deleteAfter > 0 {
		o.expires = now + int64(deleteAfter)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return backend.ObjectInfo{}, objectError(op, container, name, "", ErrClosed)
	}
	c = s.containers[container]
	if c == nil {
		s.mu.Unlock()
		return backend.ObjectInfo{}, objectError(op, container, name, "no such container", backend.ErrNotFound)
	}
	if createOnly {
		if old := c.objects[name]; old != nil && !old.expired(now) {
			s.mu.Unlock()
			return backend.ObjectInfo{}, objectError(op, container, name, "create-only", backend.ErrExist)
		}
	}
	c.objects[name] = o
	if s.lag == 0 {
		c.list.put(o)
	} else {
		c.pending.push(update{at: now + s.lag, name: name, obj: o})
		c.pending.apply(&c.list, now)
	}
	if o.expires != 0 {
		s.scheduleExpiry(container, name, o.expires, now)
	}
	s.mu.Unlock()
	s.watch.Notify(container, name)
	return backend.ObjectInfo{Name: name, Size: o.size, ETag: o.etag, ContentType: o.contentType(), LastModified: o.modified}, nil
}

// lookup returns the live object container/name, or an error.
func (s *Store) lookup(op, container, name string) (*object, error) {
	if d := backend.ContainerNameProblem(container); d != "" {
		return nil, objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.ObjectNameProblem(name); d != "" {
		return nil, objectError(op, container, name, d, backend.ErrInvalid)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, objectError(op, container, name, "", ErrClosed)
	}
	c := s.containers[container]
	if c == nil {
		s.mu.RUnlock()
		return nil, objectError(op, container, name, "no such container", backend.ErrNotFound)
	}
	o := c.objects[name]
	s.mu.RUnlock()
	if o == nil || o.expires != 0 && o.expired(mono()) {
		return nil, objectError(op, container, name, "", backend.ErrNotFound)
	}
	return o, nil
}

// Get opens the object, or the byte range opts selects (nil for all):
// Offset, then Length bytes (0 for the rest; a range past the end is cut
// short). An Offset at or beyond the end of a non-empty object fails with
// backend.ErrInvalid, as Swift answers 416. The returned info describes the
// whole object (Size is the object's size) and carries a copy of its
// metadata. The reader streams the stored chunks, sees the version that was
// current when Get was called whatever happens later, and fails once ctx is
// done; the caller must Close it.
func (s *Store) Get(ctx context.Context, container, name string, opts *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	const op = "get"
	if _, err := s.enter(ctx, false); err != nil {
		return nil, backend.ObjectInfo{}, objectError(op, container, name, "", err)
	}
	o, err := s.lookup(op, container, name)
	if err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	off, n := int64(0), o.size
	if opts != nil {
		if opts.Offset < 0 || opts.Length < 0 {
			return nil, backend.ObjectInfo{}, objectError(op, container, name, "negative range", backend.ErrInvalid)
		}
		if opts.Offset > 0 && opts.Offset >= o.size {
			return nil, backend.ObjectInfo{}, objectError(op, container, name,
				"range offset "+strconv.FormatInt(opts.Offset, 10)+" not below size "+strconv.FormatInt(o.size, 10),
				backend.ErrInvalid)
		}
		off = opts.Offset
		n = o.size - off
		if opts.Length > 0 && opts.Length < n {
			n = opts.Length
		}
	}
	return newReader(ctx, o, off, n), o.info(), nil
}

// Head returns the object's info with a copy of its metadata.
func (s *Store) Head(ctx context.Context, container, name string) (backend.ObjectInfo, error) {
	const op = "head"
	if _, err := s.enter(ctx, false); err != nil {
		return backend.ObjectInfo{}, objectError(op, container, name, "", err)
	}
	o, err := s.lookup(op, container, name)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	return o.info(), nil
}

// Delete removes the object: backend.ErrNotFound if it (or its container)
// is not there. Readers already opened on it keep working.
func (s *Store) Delete(ctx context.Context, container, name string) error {
	const op = "delete"
	after, err := s.enter(ctx, true)
	if err != nil {
		return objectError(op, container, name, "", err)
	}
	err = s.delete(container, name)
	if after {
		return objectError(op, container, name, "", faultAfter)
	}
	return err
}

// delete is Delete after the latency and fault injection.
func (s *Store) delete(container, name string) error {
	const op = "delete"
	if d := backend.ContainerNameProblem(container); d != "" {
		return objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.ObjectNameProblem(name); d != "" {
		return objectError(op, container, name, d, backend.ErrInvalid)
	}
	now := mono()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return objectError(op, container, name, "", ErrClosed)
	}
	c := s.containers[container]
	if c == nil {
		s.mu.Unlock()
		return objectError(op, container, name, "no such container", backend.ErrNotFound)
	}
	o := c.objects[name]
	if o == nil || o.expired(now) {
		// An expired object is already gone; the expiry timer purges it.
		s.mu.Unlock()
		return objectError(op, container, name, "", backend.ErrNotFound)
	}
	s.unlink(c, name, now)
	s.mu.Unlock()
	s.watch.Notify(container, name)
	return nil
}

// unlink removes the object name from c and (after the lag) its listing.
// s.mu must be held for writing.
func (s *Store) unlink(c *bucket, name string, now int64) {
	delete(c.objects, name)
	if s.lag == 0 {
		c.list.remove(name)
	} else {
		c.pending.push(update{at: now + s.lag, name: name})
		c.pending.apply(&c.list, now)
	}
}

// probeSize is the size of the buffer used to find out whether a reader of
// unknown length has more data after a full chunk.
const probeSize = 4096

var probePool = sync.Pool{New: func() any { return new([probeSize]byte) }}

// lenHint returns the number of bytes left in r if r is a reader whose
// length is known for sure, or -1.
func lenHint(r io.Reader) int {
	switch r := r.(type) {
	case *bytes.Reader:
		return r.Len()
	case *strings.Reader:
		return r.Len()
	case *bytes.Buffer:
		return r.Len()
	}
	return -1
}

// maxEmptyReads is how many successive (0, nil) reads readBody tolerates.
const maxEmptyReads = 100

// readBody reads r to EOF into o's chunks, and sets o's size and, with
// md5ETag, its ETag (else a version ETag is set by the caller's commit). It
// allocates exactly for readers of known length; otherwise it grows the
// first chunk geometrically (x8 from 512 bytes), allocates later chunks whole (after probing for
// more data), and trims the last chunk if much of it is unused. Data is
// never copied again once a chunk is full.
func readBody(ctx context.Context, r io.Reader, o *object, md5ETag bool) error {
	var (
		cur   []byte   // chunk being filled
		full  [][]byte // full chunks
		h     hash.Hash
		size  int64
		empty int
		known bool // cur was sized from lenHint
	)
read:
	for {
		if len(cur) == cap(cur) {
			hint := lenHint(r)
			switch {
			case hint == 0:
				break read
			case hint > 0:
				if len(cur) == chunkSize {
					h = hashChunk(h, cur, md5ETag)
					full = append(full, cur)
					cur = nil
				}
				cur = grow(cur, len(cur)+min(hint, chunkSize-len(cur)))
				known = true
				continue
			case cap(cur) < chunkSize:
				cur = grow(cur, min(max(8*cap(cur), 512), chunkSize))
				continue
			}
			// A full chunk from a reader of unknown length: probe for more
			// before allocating another chunk.
			p := probePool.Get().(*[probeSize]byte)
			n, err := r.Read(p[:])
			if n > 0 {
				h = hashChunk(h, cur, md5ETag)
				full = append(full, cur)
				cur = make([]byte, n, chunkSize)
				copy(cur, p[:n])
				size += int64(n)
				empty = 0
			}
			probePool.Put(p)
			if err == io.EOF {
				break read
			}
			if err != nil {
				return err
			}
			if n == 0 {
				if empty++; empty >= maxEmptyReads {
					return io.ErrNoProgress
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		n, err := r.Read(cur[len(cur):cap(cur)])
		if n < 0 || n > cap(cur)-len(cur) {
			return errors.New("reader returned an invalid count")
		}
		cur = cur[:len(cur)+n]
		size += int64(n)
		if err == io.EOF {
			break read
		}
		if err != nil {
			return err
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		} else {
			empty = 0
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !known && cap(cur)-len(cur) > probeSize && cap(cur)-len(cur) > len(cur)/4 {
		cur = grow(cur, len(cur)) // trim a mostly unused last chunk
	}
	var sum [md5.Size]byte
	switch {
	case full == nil:
		if md5ETag {
			sum = md5.Sum(cur)
		}
		if len(cur) > 0 {
			o.one[0] = cur
			o.chunks = o.one[:]
		}
	default:
		if len(cur) > 0 {
			if md5ETag {
				h.Write(cur)
			}
			full = append(full, cur)
		}
		if md5ETag {
			copy(sum[:], h.Sum(nil)) // not h.Sum(sum[:0]): sum would escape
		}
		o.chunks = full
	}
	o.size = size
	if !md5ETag {
		o.etag = "v" + strconv.FormatUint(etagVersion.Add(1), 10)
		return nil
	}
	var etag [2 * md5.Size]byte
	hex.Encode(etag[:], sum[:])
	o.etag = string(etag[:])
	return nil
}

// etagVersion numbers Puts for version ETags (unique in the process).
var etagVersion atomic.Uint64

// hashChunk adds a full chunk to the running MD5 h, creating it if needed
// (nothing when not hashing).
func hashChunk(h hash.Hash, chunk []byte, hashing bool) hash.Hash {
	if !hashing {
		return nil
	}
	if h == nil {
		h = md5.New()
	}
	h.Write(chunk)
	return h
}

// grow returns a copy of b with capacity n >= len(b).
func grow(b []byte, n int) []byte {
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}

// errReadClosed is returned by reads on a closed object reader.
var errReadClosed = errors.New("mem: read from closed object reader")

// reader reads a range of an object's chunks without copying them.
type reader struct {
	ctx    context.Context
	chunks [][]byte
	ci     int    // index of the chunk cur is in
	cur    []byte // unread part of chunk ci
	remain int64  // bytes left in the range
	closed bool
}

// newReader returns a reader of n bytes of o from off.
func newReader(ctx context.Context, o *object, off, n int64) *reader {
	r := &reader{ctx: ctx, chunks: o.chunks, remain: n}
	for i, c := range o.chunks {
		if off < int64(len(c)) {
			r.ci, r.cur = i, c[off:]
			break
		}
		off -= int64(len(c))
	}
	return r
}

// Read implements io.Reader. It returns io.EOF with the last bytes.
func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errReadClosed
	}
	if r.remain == 0 {
		return 0, io.EOF
	}
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) && r.remain > 0 {
		if len(r.cur) == 0 {
			r.ci++
			r.cur = r.chunks[r.ci]
		}
		b := r.cur
		if int64(len(b)) > r.remain {
			b = b[:r.remain]
		}
		m := copy(p[n:], b)
		n += m
		r.cur = r.cur[m:]
		r.remain -= int64(m)
	}
	if r.remain == 0 {
		return n, io.EOF
	}
	return n, nil
}

// WriteTo implements io.WriterTo, writing the stored chunks straight to w.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	if r.closed {
		return 0, errReadClosed
	}
	var total int64
	for r.remain > 0 {
		if err := r.ctx.Err(); err != nil {
			return total, err
		}
		if len(r.cur) == 0 {
			r.ci++
			r.cur = r.chunks[r.ci]
		}
		b := r.cur
		if int64(len(b)) > r.remain {
			b = b[:r.remain]
		}
		n, err := w.Write(b)
		total += int64(n)
		r.cur = r.cur[n:]
		r.remain -= int64(n)
		if err != nil {
			return total, err
		}
		if n < len(b) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// Close implements io.Closer; reads after Close fail.
func (r *reader) Close() error {
	r.closed = true
	r.chunks, r.cur = nil, nil
	return nil
}
