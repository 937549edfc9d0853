package file

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/osfile"
)

// Object file header (see the package documentation).
const (
	magic       = "rackobj1"
	fixedHeader = 8 + 4 + 8 + 8 + 8 + 16 + 2
	// maxHeader bounds a header: the fixed part and the largest metadata.
	maxHeader = fixedHeader + backend.MaxMetaCount*4 + backend.MaxMetaOverallSize + 2 + backend.MaxContentTypeLength
)

// header is an object file's header.
type header struct {
	hlen     int64
	size     int64
	modified int64 // Unix nanoseconds
	expires  int64 // Unix nanoseconds, 0 for never
	md5      [16]byte
	meta     map[string]string
	ctype    string // "" for backend.DefaultContentType
}

// expired reports whether h has expired at now (Unix nanoseconds).
func (h *header) expired(now int64) bool { return h.expires != 0 && now >= h.expires }

// info returns the ObjectInfo of object name with header h.
func (h *header) info(name string, withMeta bool) backend.ObjectInfo {
	info := backend.ObjectInfo{
		Name:         name,
		Size:         h.size,
		ETag:         hex.EncodeToString(h.md5[:]),
		ContentType:  h.ctype,
		LastModified: time.Unix(0, h.modified).UTC(),
	}
	if info.ContentType == "" {
		info.ContentType = backend.DefaultContentType
	}
	if withMeta && len(h.meta) > 0 {
		info.Metadata = h.meta
	}
	return info
}

// appendHeader appends the encoding of h to dst.
func appendHeader(dst []byte, h *header) []byte {
	start := len(dst)
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint32(dst, 0) // length, below
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.size))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.modified))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.expires))
	dst = append(dst, h.md5[:]...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(h.meta)))
	for _, k := range slices.Sorted(maps.Keys(h.meta)) {
		v := h.meta[k]
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(k)))
		dst = append(dst, k...)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(v)))
		dst = append(dst, v...)
	}
	// The content type follows the metadata, when there is one (headers
	// written without it stay valid).
	if h.ctype != "" {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(h.ctype)))
		dst = append(dst, h.ctype...)
	}
	binary.LittleEndian.PutUint32(dst[start+8:], uint32(len(dst)-start))
	return dst
}

// errCorrupt is wrapped by the errors for object files that cannot be
// decoded.
var errCorrupt = errors.New("corrupt object file")

// readHeader reads the header of the object file f, using buf (of at least
// fixedHeader bytes) if it is large enough.
func readHeader(f *os.File, buf []byte, withMeta bool) (header, error) {
	n, err := f.ReadAt(buf, 0)
	if n < fixedHeader {
		if err == nil || err == io.EOF {
			err = errCorrupt
		}
		return header{}, err
	}
	if string(buf[:8]) != magic {
		return header{}, errCorrupt
	}
	le := binary.LittleEndian
	h := header{
		hlen:     int64(le.Uint32(buf[8:])),
		size:     int64(le.Uint64(buf[12:])),
		modified: int64(le.Uint64(buf[20:])),
		expires:  int64(le.Uint64(buf[28:])),
	}
	copy(h.md5[:], buf[36:52])
	nmeta := int(le.Uint16(buf[52:]))
	if h.hlen < fixedHeader || h.hlen > maxHeader || h.size < 0 {
		return header{}, errCorrupt
	}
	if h.hlen == fixedHeader {
		return h, nil
	}
	if int64(n) < h.hlen {
		buf = make([]byte, h.hlen)
		if _, err := f.ReadAt(buf, 0); err != nil {
			if err == io.EOF {
				err = errCorrupt
			}
			return header{}, err
		}
	}
	p := buf[fixedHeader:h.hlen]
	if withMeta && nmeta > 0 {
		h.meta = make(map[string]string, nmeta)
	}
	for range nmeta {
		if len(p) < 2 {
			return header{}, errCorrupt
		}
		kl := int(le.Uint16(p))
		if len(p) < 2+kl+2 {
			return header{}, errCorrupt
		}
		k := string(p[2 : 2+kl])
		p = p[2+kl:]
		vl := int(le.Uint16(p))
		if len(p) < 2+vl {
			return header{}, errCorrupt
		}
		if h.meta != nil {
			h.meta[k] = string(p[2 : 2+vl])
		}
		p = p[2+vl:]
	}
	if len(p) > 0 {
		if len(p) < 2 || len(p) != 2+int(le.Uint16(p)) {
			return header{}, errCorrupt
		}
		h.ctype = string(p[2:])
	}
	return h, nil
}

// Buffers for headers and bodies.
var (
	headerBufs = sync.Pool{New: func() any { b := make([]byte, 2048); return &b }}
	bodyBufs   = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
)

// statObject reads the header of the object file at path. It reports
// fs.ErrNotExist (wrapped) if there is no such file.
func (s *Store) statObject(path string, withMeta bool) (header, error) {
	f, err := s.root.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return header{}, err
	}
	bp := headerBufs.Get().(*[]byte)
	h, err := readHeader(f, *bp, withMeta)
	headerBufs.Put(bp)
	f.Close()
	return h, err
}

// objectPath returns the path of object name in container directory cpath.
func objectPath(cpath, name string) string {
	b := make([]byte, 0, len(cpath)+len(name)+16)
	b = append(b, cpath...)
	return string(appendObjectPath(b, name))
}

// Put stores the object read from r. The body goes to a temporary file
// that is committed only once whole (see the package documentation): a
// create-only Put fails with backend.ErrExist if a live object has the
// name (an expired one is removed first). Put fails with
// backend.ErrNotFound if the container does not exist, with
// backend.ErrInvalid for a bad name or metadata, and with the reader's
// error, or ctx's, if the body cannot be read to the end.
func (s *Store) Put(ctx context.Context, container, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	const op = "put"
	if err := s.enter(ctx); err != nil {
		return backend.ObjectInfo{}, objectError(op, container, name, "", err)
	}
	if opts == nil {
		opts = &backend.PutOptions{}
	}
	if d := backend.ContainerNameProblem(container); d != "" {
		return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.ObjectNameProblem(name); d != "" {
		return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.MetadataProblem(opts.Metadata); d != "" {
		return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.ContentTypeProblem(opts.ContentType); d != "" {
		return backend.ObjectInfo{}, objectError(op, container, name, d, backend.ErrInvalid)
	}
	if opts.DeleteAfter < 0 {
		return backend.ObjectInfo{}, objectError(op, container, name, "negative DeleteAfter", backend.ErrInvalid)
	}
	cpath := s.containerPath(container)
	if _, err := os.Stat(cpath); err != nil {
		if notExist(err) {
			return backend.ObjectInfo{}, objectError(op, container, name, "", backend.ErrNotFound)
		}
		return backend.ObjectInfo{}, objectError(op, container, name, "", fsErr(err))
	}

	tmp := s.tempName("put")
	h, err := s.writeTemp(ctx, tmp, r, opts)
	if err != nil {
		os.Remove(tmp)
		return backend.ObjectInfo{}, objectError(op, container, name, "", err)
	}
	moved, err := s.commit(cpath, name, tmp, opts.CreateOnly)
	if !moved {
		os.Remove(tmp)
	}
	switch {
	case err == errNoContainer:
		return backend.ObjectInfo{}, objectError(op, container, name, "", backend.ErrNotFound)
	case err == errExist:
		return backend.ObjectInfo{}, objectError(op, container, name, "", backend.ErrExist)
	case err != nil:
		return backend.ObjectInfo{}, objectError(op, container, name, "", fsErr(err))
	}
	s.changed(container, cpath, name)
	return h.info(name, false), nil
}

// writeTemp writes the object file for r to path and returns its header.
func (s *Store) writeTemp(ctx context.Context, path string, r io.Reader, opts *backend.PutOptions) (header, error) {
	f, err := s.createFile(path)
	if err != nil {
		return header{}, fsErr(err)
	}
	defer f.Close()
	h := header{meta: opts.Metadata}
	if opts.ContentType != backend.DefaultContentType {
		h.ctype = opts.ContentType
	}
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	buf := *bp
	hdr := appendHeader(buf[:0], &h)
	h.hlen = int64(len(hdr))
	sum := md5.New()

	// Fill the buffer after the header; a body that fits is written with
	// its header in one write.
	n := len(hdr)
	var rerr error
	for n < len(buf) && rerr == nil {
		if err := ctx.Err(); err != nil {
			return header{}, err
		}
		var m int
		m, rerr = r.Read(buf[n:])
		n += m
	}
	if rerr != nil && rerr != io.EOF {
		return header{}, rerr
	}
	sum.Write(buf[len(hdr):n])
	h.size = int64(n - len(hdr))
	if rerr == nil {
		// A large body: stream it, then rewrite the header.
		if _, err := f.Write(buf[:n]); err != nil {
			return header{}, fsErr(err)
		}
		for {
			if err := ctx.Err(); err != nil {
				return header{}, err
			}
			m, err := r.Read(buf)
			if m > 0 {
				sum.Write(buf[:m])
				h.size += int64(m)
				if _, werr := f.Write(buf[:m]); werr != nil {
					return header{}, fsErr(werr)
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return header{}, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return header{}, err
	}
	now := time.Now()
	h.modified = now.UnixNano()
	if opts.DeleteAfter > 0 {
		h.expires = now.Add(opts.DeleteAfter).UnixNano()
	}
	sum.Sum(h.md5[:0])
	if rerr == nil {
		var hb [maxHeader]byte
		if _, err := f.WriteAt(appendHeader(hb[:0], &h), 0); err != nil {
			return header{}, fsErr(err)
		}
	} else {
		appendHeader(buf[:0], &h) // same length as before
		if _, err := f.Write(buf[:n]); err != nil {
			return header{}, fsErr(err)
		}
	}
	if !s.noSync {
		if err := f.Sync(); err != nil {
			return header{}, fsErr(err)
		}
	}
	if err := f.Close(); err != nil {
		return header{}, fsErr(err)
	}
	return h, nil
}

// errExist is returned by commit when a create-only Put loses.
var errExist = errors.New("exists")

// commit moves the finished temporary file tmp to object name in container
// directory cpath: by link(2) for a create-only Put, by rename(2) otherwise,
// holding the container lock shared.
func (s *Store) commit(cpath, name, tmp string, createOnly bool) (moved bool, err error) {
	final := objectPath(cpath, name)
	lk, err := s.lockContainer(cpath, false, false)
	if err != nil {
		return false, err
	}
	defer func() { unlock(lk) }()
	for attempt := 0; ; attempt++ {
		if createOnly {
			moved, err = osfile.LinkNoReplace(tmp, final)
		} else {
			err = os.Rename(tmp, final)
			moved = err == nil
		}
		if err == nil {
			return moved, nil
		}
		if attempt >= 20 {
			return false, err
		}
		switch {
		case notExist(err):
			// A parent directory is missing (or was just removed by a
			// Delete that emptied it). Another Delete may remove a parent
			// again while mkdirs makes its child: then go round again.
			if err := s.mkdirs(cpath, name); err != nil && !(notExist(err) && !errors.Is(err, errNoContainer)) {
				return false, err
			}
		case createOnly && errors.Is(err, fs.ErrExist):
			h, herr := s.statObject(final, false)
			switch {
			case herr == nil && !h.expired(time.Now().UnixNano()):
				return false, errExist
			case herr != nil && !notExist(herr):
				return false, herr
			case herr == nil:
				// Expired: remove it, holding the lock exclusively.
				unlock(lk)
				lk = nil
				s.reap(cpath, "", name, false)
				if lk, err = s.lockContainer(cpath, false, false); err != nil {
					return false, err
				}
			}
		default:
			return false, err
		}
	}
}

// mkdirs makes the directories of object name under container directory
// cpath. It fails with errNoContainer if cpath is gone.
func (s *Store) mkdirs(cpath, name string) error {
	p := []byte(cpath)
	var err error
	segments(name, func(seg string, last bool) bool {
		if last {
			return false
		}
		p = appendSegment(append(p, '/'), seg, false)
		if e := s.mkdir(string(p)); e != nil && !errors.Is(e, fs.ErrExist) {
			if notExist(e) {
				if _, serr := os.Stat(cpath); notExist(serr) {
					e = errNoContainer
				}
			}
			err = e
			return false
		}
		return true
	})
	return err
}

// removeParents removes the directories of object name under cpath that
// are now empty, deepest first.
func removeParents(cpath, name string) {
	path := objectPath(cpath, name)
	for {
		i := len(path) - 1
		for i >= 0 && path[i] != '/' {
			i--
		}
		if i <= len(cpath) {
			return
		}
		path = path[:i]
		if os.Remove(path) != nil {
			return
		}
	}
}

// reap removes the object file of name if it has expired, holding the
// container lock exclusively (waiting for it unless try). container is
// for notifications ("" to look it up from .name when needed).
func (s *Store) reap(cpath, container, name string, try bool) {
	lk, err := s.lockContainer(cpath, true, try)
	if err != nil || lk == nil {
		return
	}
	defer unlock(lk)
	s.reapLocked(cpath, container, name)
}

// reapLocked is reap with the lock held.
func (s *Store) reapLocked(cpath, container, name string) {
	path := objectPath(cpath, name)
	h, err := s.statObject(path, false)
	if err != nil || !h.expired(time.Now().UnixNano()) {
		return
	}
	if os.Remove(path) != nil {
		return
	}
	removeParents(cpath, name)
	if container == "" {
		data, err := s.root.ReadFile(cpath + "/.name")
		if err != nil {
			return
		}
		container = string(data)
	}
	s.changed(container, cpath, name)
}

// open opens object name and reads its header, hiding (and lazily
// removing) it if it has expired.
func (s *Store) open(op, container, name string, withMeta bool) (*os.File, header, string, error) {
	if d := backend.ContainerNameProblem(container); d != "" {
		return nil, header{}, "", objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.ObjectNameProblem(name); d != "" {
		return nil, header{}, "", objectError(op, container, name, d, backend.ErrInvalid)
	}
	cpath := s.containerPath(container)
	f, err := s.root.OpenFile(objectPath(cpath, name), os.O_RDONLY, 0)
	if err != nil {
		if notExist(err) {
			return nil, header{}, "", objectError(op, container, name, "", backend.ErrNotFound)
		}
		return nil, header{}, "", objectError(op, container, name, "", fsErr(err))
	}
	bp := headerBufs.Get().(*[]byte)
	h, err := readHeader(f, *bp, withMeta)
	headerBufs.Put(bp)
	if err != nil {
		f.Close()
		return nil, header{}, "", objectError(op, container, name, "", fsErr(err))
	}
	if h.expired(time.Now().UnixNano()) {
		f.Close()
		s.reap(cpath, container, name, true)
		return nil, header{}, "", objectError(op, container, name, "expired", backend.ErrNotFound)
	}
	return f, h, cpath, nil
}

// Get opens the object, or the range opts selects: Offset, then Length
// bytes (0 for the rest; a range past the end is cut short). An Offset at
// or beyond the end of a non-empty object fails with backend.ErrInvalid,
// as Swift answers 416. The reader streams from the version that was
// current when Get opened it, whatever happens to the name later.
func (s *Store) Get(ctx context.Context, container, name string, opts *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	const op = "get"
	if err := s.enter(ctx); err != nil {
		return nil, backend.ObjectInfo{}, objectError(op, container, name, "", err)
	}
	if opts != nil && (opts.Offset < 0 || opts.Length < 0) {
		return nil, backend.ObjectInfo{}, objectError(op, container, name, "negative range", backend.ErrInvalid)
	}
	f, h, _, err := s.open(op, container, name, true)
	if err != nil {
		return nil, backend.ObjectInfo{}, err
	}
	off, n := int64(0), h.size
	if opts != nil {
		if opts.Offset > 0 && opts.Offset >= h.size {
			f.Close()
			return nil, backend.ObjectInfo{}, objectError(op, container, name,
				"range offset "+strconv.FormatInt(opts.Offset, 10)+" not below size "+strconv.FormatInt(h.size, 10),
				backend.ErrInvalid)
		}
		off = opts.Offset
		n = h.size - off
		if opts.Length > 0 && opts.Length < n {
			n = opts.Length
		}
	}
	return &reader{f: f, r: io.NewSectionReader(f, h.hlen+off, n)}, h.info(name, true), nil
}

// reader reads one object version from its open file.
type reader struct {
	f *os.File
	r *io.SectionReader
}

func (r *reader) Read(p []byte) (int, error) { return r.r.Read(p) }

func (r *reader) Close() error { return r.f.Close() }

// Head returns the object's info and metadata.
func (s *Store) Head(ctx context.Context, container, name string) (backend.ObjectInfo, error) {
	const op = "head"
	if err := s.enter(ctx); err != nil {
		return backend.ObjectInfo{}, objectError(op, container, name, "", err)
	}
	f, h, _, err := s.open(op, container, name, true)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	f.Close()
	return h.info(name, true), nil
}

// Delete removes the object: backend.ErrNotFound if it (or its container)
// is not there. Deleting an object that has expired but was not yet
// removed succeeds.
func (s *Store) Delete(ctx context.Context, container, name string) error {
	const op = "delete"
	if err := s.enter(ctx); err != nil {
		return objectError(op, container, name, "", err)
	}
	if d := backend.ContainerNameProblem(container); d != "" {
		return objectError(op, container, name, d, backend.ErrInvalid)
	}
	if d := backend.ObjectNameProblem(name); d != "" {
		return objectError(op, container, name, d, backend.ErrInvalid)
	}
	cpath := s.containerPath(container)
	if err := os.Remove(objectPath(cpath, name)); err != nil {
		if notExist(err) {
			return objectError(op, container, name, "", backend.ErrNotFound)
		}
		return objectError(op, container, name, "", fsErr(err))
	}
	removeParents(cpath, name)
	s.changed(container, cpath, name)
	return nil
}
