package rack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Files are ordinary objects of the store, named /container/object as in
// RACK's fopen: /output/result.txt is object result.txt in container
// output, readable by any Swift client.

// Flags for OpenFile (the os package's values).
const (
	O_RDONLY = os.O_RDONLY
	O_WRONLY = os.O_WRONLY
	O_RDWR   = os.O_RDWR
	O_CREATE = os.O_CREATE
	O_EXCL   = os.O_EXCL
	O_TRUNC  = os.O_TRUNC
)

const (
	maxContainerLen = 256
	maxObjectLen    = 1024
)

// File is an open rack file. Opened for reading it is an io.Reader,
// io.ReaderAt and io.Seeker; opened for writing an io.Writer whose content
// becomes visible, whole, at Close (as on Swift). Writes stream to the
// store: memory stays bounded whatever the size.
type File struct {
	k         *Kernel
	owner     *proc // the process that opened it, if any: fenced with it
	path      string
	container string
	object    string
	write     bool

	mu     sync.Mutex
	closed bool
	// reading
	info backend.ObjectInfo
	rc   io.ReadCloser
	off  int64
	// writing
	pw           *io.PipeWriter
	done         chan error
	size         int64
	commitOnExit bool
}

// Create creates or truncates the file at path for writing.
func (k *Kernel) Create(ctx context.Context, path string) (*File, error) {
	return k.OpenFile(ctx, path, O_WRONLY|O_CREATE|O_TRUNC)
}

// Open opens the file at path for reading.
func (k *Kernel) Open(ctx context.Context, path string) (*File, error) {
	return k.OpenFile(ctx, path, O_RDONLY)
}

// OpenFile opens path with flag: O_RDONLY, or O_WRONLY with O_CREATE,
// O_EXCL and O_TRUNC. Files are replaced whole, so writing an existing
// file needs O_TRUNC. With O_EXCL the create is atomic at Close, which
// fails with an error wrapping fs.ErrExist if another writer won: the
// primitive for locks and leader election. If ctx belongs to a process
// (see FromContext), the file is that process's: refused once it is
// killed, and discarded if the process ends before closing it.
func (k *Kernel) OpenFile(ctx context.Context, path string, flag int) (*File, error) {
	op := "open"
	if flag&(O_WRONLY|O_RDWR) != 0 {
		op = "create"
	}
	container, object, err := splitPath(path, false)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: path, Err: err}
	}
	if k.isClosed() {
		return nil, &fs.PathError{Op: op, Path: path, Err: ErrClosed}
	}
	owner := procFromContext(ctx)
	if owner != nil && owner.killed.Load() {
		return nil, &fs.PathError{Op: op, Path: path, Err: ErrKilled}
	}
	f := &File{k: k, owner: owner, path: path, container: container, object: object}
	if flag&O_RDWR != 0 {
		return nil, &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: O_RDWR: rack files are read or written, not both", fs.ErrInvalid)}
	}
	if flag&O_WRONLY == 0 {
		f.info, err = k.ns.store.Head(ctx, container, object)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: path, Err: fsError(err)}
		}
		if err := k.track(f); err != nil {
			return nil, &fs.PathError{Op: op, Path: path, Err: err}
		}
		return f, nil
	}
	if container == k.cfg.container {
		return nil, &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: container %q holds the namespace's records", fs.ErrPermission, container)}
	}
	if flag&O_EXCL != 0 && flag&O_CREATE == 0 {
		return nil, &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: O_EXCL needs O_CREATE", fs.ErrInvalid)}
	}
	if flag&O_TRUNC == 0 || flag&O_CREATE == 0 || flag&O_EXCL != 0 {
		_, err := k.ns.store.Head(ctx, container, object)
		exists := err == nil
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return nil, &fs.PathError{Op: op, Path: path, Err: fsError(err)}
		}
		switch {
		case exists && flag&O_EXCL != 0:
			return nil, &fs.PathError{Op: op, Path: path, Err: fs.ErrExist}
		case exists && flag&O_TRUNC == 0:
			return nil, &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: rack files are replaced whole: add O_TRUNC", fs.ErrInvalid)}
		case !exists && flag&O_CREATE == 0:
			return nil, &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
		}
	}
	if err := k.ns.store.CreateContainer(ctx, container); err != nil {
		return nil, &fs.PathError{Op: op, Path: path, Err: fsError(err)}
	}
	pr, pw := io.Pipe()
	f.write, f.pw, f.done = true, pw, make(chan error, 1)
	opts := &backend.PutOptions{CreateOnly: flag&O_EXCL != 0}
	go func() {
		// The kernel's context: the write outlives the OpenFile call.
		_, err := k.ns.store.Put(k.ctx, container, object, pr, opts)
		pr.CloseWithError(err)
		f.done <- err
	}()
	if err := k.track(f); err != nil {
		return nil, &fs.PathError{Op: op, Path: path, Err: err}
	}
	return f, nil
}

// track makes a process's open file close with it; a file opened outside
// any process is the kernel's, discarded at Kernel.Close if still open.
// If the process was killed (or the kernel closed) meanwhile, too late for
// it to see the file, track discards f and fails with ErrKilled (ErrClosed).
func (k *Kernel) track(f *File) error {
	if f.owner == nil {
		// Close collects the kernel's files after closing the scheduler.
		if !k.sched.whileOpen(func() { k.files.add(f) }) {
			f.abort(fmt.Errorf("rack: kernel closed while opening %s: %w", f.path, ErrClosed))
			return ErrClosed
		}
		return nil
	}
	f.owner.mu.Lock()
	if f.owner.files == nil {
		f.owner.files = make(map[*File]struct{})
	}
	f.owner.files[f] = struct{}{}
	f.owner.mu.Unlock()
	if f.owner.killed.Load() {
		// finish sets killed before closeEnds takes its snapshot of the
		// process's files: this one may have come too late to be in it.
		f.abort(fmt.Errorf("rack: process %d was killed while opening %s: %w", f.owner.pid, f.path, ErrKilled))
		return ErrKilled
	}
	return nil
}

// fileSet is the kernel's own open files: those opened outside any
// process, which Close discards if they are still open.
type fileSet struct {
	mu    sync.Mutex
	files map[*File]struct{}
}

func (s *fileSet) add(f *File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		s.files = make(map[*File]struct{})
	}
	s.files[f] = struct{}{}
}

func (s *fileSet) remove(f *File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, f)
}

func (s *fileSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files)
}

func (s *fileSet) all() []*File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*File, 0, len(s.files))
	for f := range s.files {
		out = append(out, f)
	}
	return out
}

func (f *File) untrack() {
	if f.owner == nil {
		f.k.files.remove(f)
		return
	}
	f.owner.mu.Lock()
	delete(f.owner.files, f)
	f.owner.mu.Unlock()
}

// Name returns the path the file was opened with.
func (f *File) Name() string { return f.path }

func (f *File) check(op string, write bool) error {
	switch {
	case f.owner != nil && f.owner.killed.Load() && !f.commitOnExit:
		// Before closed: the kernel discarded a killed process's files itself.
		return &fs.PathError{Op: op, Path: f.path, Err: ErrKilled}
	case f.closed:
		return &fs.PathError{Op: op, Path: f.path, Err: fs.ErrClosed}
	case f.write != write:
		return &fs.PathError{Op: op, Path: f.path, Err: fmt.Errorf("%w: file is open for %s", fs.ErrInvalid, map[bool]string{true: "writing", false: "reading"}[f.write])}
	}
	return nil
}

// Write streams p to the file.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	n, err := f.pw.Write(p)
	f.size += int64(n)
	if err != nil {
		return n, &fs.PathError{Op: "write", Path: f.path, Err: fsError(err)}
	}
	return n, nil
}

// Read reads from the current offset.
func (f *File) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.off >= f.info.Size {
		return 0, io.EOF
	}
	if f.rc == nil {
		rc, info, err := f.k.ns.store.Get(f.k.ctx, f.container, f.object, &backend.GetOptions{Offset: f.off})
		if err == nil {
			err = f.sameVersion(rc, info)
		}
		if err != nil {
			return 0, &fs.PathError{Op: "read", Path: f.path, Err: fsError(err)}
		}
		f.rc = rc
	}
	n, err := f.rc.Read(p)
	f.off += int64(n)
	if err == io.EOF && f.off < f.info.Size {
		err = &fs.PathError{Op: "read", Path: f.path, Err: io.ErrUnexpectedEOF}
	}
	return n, err
}

// sameVersion refuses (and closes) a ranged read of another version of
// the object than the one opened: a reader must not mix two versions.
func (f *File) sameVersion(rc io.ReadCloser, info backend.ObjectInfo) error {
	if info.ETag == f.info.ETag && info.Size == f.info.Size {
		return nil
	}
	rc.Close()
	return fmt.Errorf("%w: the file was replaced since it was opened", fs.ErrNotExist)
}

// ReadAt reads len(p) bytes at off (one ranged request).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	err := f.check("read", false)
	size := f.info.Size
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "readat", Path: f.path, Err: fmt.Errorf("%w: negative offset", fs.ErrInvalid)}
	}
	if off >= size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), size-off)
	rc, info, err := f.k.ns.store.Get(f.k.ctx, f.container, f.object, &backend.GetOptions{Offset: off, Length: want})
	if err == nil {
		err = f.sameVersion(rc, info)
	}
	if err != nil {
		return 0, &fs.PathError{Op: "readat", Path: f.path, Err: fsError(err)}
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p[:want])
	if err == nil && int64(n) < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

// Seek sets the read offset.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("seek", false); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.info.Size
	case io.SeekStart:
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fmt.Errorf("%w: whence %d", fs.ErrInvalid, whence)}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fmt.Errorf("%w: negative offset", fs.ErrInvalid)}
	}
	if offset != f.off && f.rc != nil {
		f.rc.Close()
		f.rc = nil
	}
	f.off = offset
	return offset, nil
}

// Stat describes the file (for a file being written: what was written so far).
func (f *File) Stat() (fs.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.write {
		return fileInfo{name: path.Base(f.object), size: f.size, mod: time.Now()}, nil
	}
	return fileInfo{name: path.Base(f.object), size: f.info.Size, mod: f.info.LastModified}, nil
}

// Close closes the file; for a written file it commits the content and
// reports whether that succeeded (fs.ErrExist when O_EXCL lost).
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.write && f.owner != nil && f.owner.killed.Load() && !f.commitOnExit {
		return &fs.PathError{Op: "close", Path: f.path, Err: ErrKilled}
	}
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.path, Err: fs.ErrClosed}
	}
	f.closed = true
	f.untrack()
	if !f.write {
		if f.rc != nil {
			return f.rc.Close()
		}
		return nil
	}
	f.pw.Close()
	if err := <-f.done; err != nil {
		return &fs.PathError{Op: "close", Path: f.path, Err: fsError(err)}
	}
	return nil
}

// abort discards a file left open by a process that ended.
func (f *File) abort(cause error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	f.untrack()
	if f.write {
		f.pw.CloseWithError(cause)
		<-f.done
	} else if f.rc != nil {
		f.rc.Close()
	}
}

// Stat describes the file or directory at path. Containers and name
// prefixes ending at a '/' are directories.
func (k *Kernel) Stat(ctx context.Context, path string) (fs.FileInfo, error) {
	container, object, err := splitPath(path, true)
	if err == nil && k.isClosed() {
		err = ErrClosed
	}
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if container == "" {
		return fileInfo{name: "/", dir: true}, nil
	}
	if container == k.cfg.container {
		return k.statFifo(ctx, path, object)
	}
	if object != "" {
		info, err := k.ns.store.Head(ctx, container, object)
		if err == nil {
			return fileInfo{name: pathBase(object), size: info.Size, mod: info.LastModified}, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return nil, &fs.PathError{Op: "stat", Path: path, Err: fsError(err)}
		}
	}
	prefix := ""
	if object != "" {
		prefix = object + "/"
	}
	page, err := k.ns.store.List(ctx, container, backend.ListOptions{Prefix: prefix, Limit: 1})
	if err != nil || (object != "" && len(page) == 0) {
		if err == nil {
			err = backend.ErrNotFound
		}
		return nil, &fs.PathError{Op: "stat", Path: path, Err: fsError(err)}
	}
	name := container
	if object != "" {
		name = pathBase(object)
	}
	return fileInfo{name: name, dir: true}, nil
}

// Remove deletes the file at path, an empty container, or a named pipe
// (/NAMESPACE/name, see Mkfifo).
func (k *Kernel) Remove(ctx context.Context, path string) error {
	container, object, err := splitPath(path, true)
	if err == nil && container == "" {
		err = fmt.Errorf("%w: cannot remove /", fs.ErrInvalid)
	}
	if err == nil && container == k.cfg.container && object != "" && !k.isClosed() {
		return k.removeFifo(ctx, path, object)
	}
	if err == nil && container == k.cfg.container {
		err = fmt.Errorf("%w: container %q holds the namespace's records", fs.ErrPermission, container)
	}
	if err == nil && k.isClosed() {
		err = ErrClosed
	}
	if err != nil {
		return &fs.PathError{Op: "remove", Path: path, Err: err}
	}
	if object == "" {
		err = k.ns.store.DeleteContainer(ctx, container)
	} else {
		err = k.ns.store.Delete(ctx, container, object)
	}
	if err != nil {
		return &fs.PathError{Op: "remove", Path: path, Err: fsError(err)}
	}
	return nil
}

// ReadDir lists the directory at path ("/" lists containers), sorted by
// name. Listings are eventually consistent: a file created a moment ago
// may be missing. The namespace's own container (Namespace) lists its
// named pipes, with fs.ModeNamedPipe; "/" shows it when it has some.
func (k *Kernel) ReadDir(ctx context.Context, path string) ([]fs.DirEntry, error) {
	container, object, err := splitPath(path, true)
	if err == nil && k.isClosed() {
		err = ErrClosed
	}
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: path, Err: err}
	}
	if container != "" && container == k.cfg.container {
		return k.readFifos(ctx, path, object)
	}
	var out []fs.DirEntry
	marker := ""
	prefix := ""
	if object != "" {
		prefix = object + "/"
	}
	for {
		var page []backend.ObjectInfo
		if container == "" {
			page, err = k.ns.store.ListContainers(ctx, backend.ListOptions{Marker: marker})
		} else {
			page, err = k.ns.store.List(ctx, container, backend.ListOptions{Prefix: prefix, Delimiter: "/", Marker: marker})
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: path, Err: fsError(err)}
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			name := strings.TrimSuffix(strings.TrimPrefix(o.Name, prefix), "/")
			if name == "" {
				continue
			}
			if container == "" && name == k.cfg.container {
				// The namespace's own records are not files: shown only
				// as the directory of its named pipes, if it has some.
				if fifos, err := k.ns.store.List(ctx, k.cfg.container, backend.ListOptions{Prefix: record.Fifos, Limit: 1}); err != nil || len(fifos) == 0 {
					continue
				}
			}
			dir := container == "" || o.Subdir
			mod := o.LastModified
			if dir {
				mod = time.Time{} // as Stat says: directories have no time of their own
			}
			out = append(out, fs.FileInfoToDirEntry(fileInfo{name: name, size: o.Size, mod: mod, dir: dir}))
		}
		marker = page[len(page)-1].Name
	}
	if object != "" && len(out) == 0 {
		return nil, &fs.PathError{Op: "readdir", Path: path, Err: fs.ErrNotExist}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// splitPath checks a /container/object path: absolute, no empty, "." or
// ".." segments, valid UTF-8 without NUL, within Swift's length limits.
// With dir, "/" and "/container" are allowed.
func splitPath(p string, dir bool) (container, object string, err error) {
	bad := func(why string) (string, string, error) {
		// Quoted: the path may be empty, or hold NUL or invalid UTF-8.
		return "", "", fmt.Errorf("%w: %.64q: %s", fs.ErrInvalid, p, why)
	}
	if !utf8.ValidString(p) {
		return bad("path is not valid UTF-8")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return bad("path contains NUL")
	}
	if !strings.HasPrefix(p, "/") {
		return bad("path must start with /container/")
	}
	if p == "/" {
		if dir {
			return "", "", nil
		}
		return bad("/ is not a file")
	}
	segs := strings.Split(p[1:], "/")
	for _, s := range segs {
		switch s {
		case "":
			return bad("path has an empty segment (// or a trailing /)")
		case ".", "..":
			return bad("path may not contain . or .. segments")
		}
	}
	container = segs[0]
	object = strings.Join(segs[1:], "/")
	if len(container) > maxContainerLen {
		return bad(fmt.Sprintf("container name is %d bytes, over %d", len(container), maxContainerLen))
	}
	if len(object) > maxObjectLen {
		return bad(fmt.Sprintf("object name is %d bytes, over %d", len(object), maxObjectLen))
	}
	if object == "" && !dir {
		return bad("path names a container, not a file (want /container/object)")
	}
	return container, object, nil
}

func validContainer(c string) error {
	if _, _, err := splitPath("/"+c, true); err != nil || c == "" || strings.Contains(c, "/") {
		return fmt.Errorf("%w: container name %q", ErrInvalid, c)
	}
	return nil
}

func pathBase(object string) string { return path.Base(object) }

// fsError maps store errors to the io/fs ones: the error reads as the
// store's (which says what failed, once) and errors.Is finds both the
// io/fs error and the store's.
func fsError(err error) error {
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return &storeError{fs: fs.ErrNotExist, err: err}
	case errors.Is(err, backend.ErrExist):
		return &storeError{fs: fs.ErrExist, err: err}
	case errors.Is(err, backend.ErrInvalid):
		return &storeError{fs: fs.ErrInvalid, err: err}
	}
	return err
}

// storeError is a store error that is also an io/fs one.
type storeError struct {
	fs  error // fs.ErrNotExist...
	err error
}

func (e *storeError) Error() string   { return e.err.Error() }
func (e *storeError) Unwrap() []error { return []error{e.fs, e.err} }

type fileInfo struct {
	name string
	size int64
	mod  time.Time
	dir  bool
	fifo bool
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) ModTime() time.Time { return fi.mod }
func (fi fileInfo) IsDir() bool        { return fi.dir }
func (fi fileInfo) Sys() any           { return nil }
func (fi fileInfo) Mode() fs.FileMode {
	if fi.dir {
		return fs.ModeDir | 0o555
	}
	if fi.fifo {
		return fs.ModeNamedPipe | 0o666
	}
	return 0o444
}

// FS returns the namespace's files as an fs.FS, for fs.WalkDir,
// fs.ReadFile and friends. Names are paths without the leading slash
// ("output/result.txt"); "." is the list of containers.
func (k *Kernel) FS(ctx context.Context) fs.FS { return rackFS{k: k, ctx: ctx} }

type rackFS struct {
	k   *Kernel
	ctx context.Context
}

func (r rackFS) abs(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return "/", nil
	}
	return "/" + name, nil
}

// Open opens a file or directory.
func (r rackFS) Open(name string) (fs.File, error) {
	p, err := r.abs("open", name)
	if err != nil {
		return nil, err
	}
	if p != "/" {
		if f, err := r.k.OpenFile(r.ctx, p, O_RDONLY); err == nil {
			return f, nil
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
			return nil, err
		}
	}
	info, err := r.k.Stat(r.ctx, p)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.Unwrap(err)}
	}
	if !info.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: a named pipe (open it with OpenFifoReader or OpenFifoWriter)", fs.ErrInvalid)}
	}
	return &dirFile{fs: r, path: p, info: info}, nil
}

// ReadDir implements fs.ReadDirFS.
func (r rackFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := r.abs("readdir", name)
	if err != nil {
		return nil, err
	}
	return r.k.ReadDir(r.ctx, p)
}

// Stat implements fs.StatFS.
func (r rackFS) Stat(name string) (fs.FileInfo, error) {
	p, err := r.abs("stat", name)
	if err != nil {
		return nil, err
	}
	return r.k.Stat(r.ctx, p)
}

type dirFile struct {
	fs      rackFS
	path    string
	info    fs.FileInfo
	entries []fs.DirEntry
	read    bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: fmt.Errorf("%w: is a directory", fs.ErrInvalid)}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		entries, err := d.fs.k.ReadDir(d.fs.ctx, d.path)
		if err != nil {
			return nil, err
		}
		d.entries, d.read = entries, true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n]
	d.entries = d.entries[n:]
	return out, nil
}

// statFifo is Stat in the namespace's own container: the directory of its
// named pipes, or one of them.
func (k *Kernel) statFifo(ctx context.Context, path, name string) (fs.FileInfo, error) {
	if name == "" {
		return fileInfo{name: k.cfg.container, dir: true}, nil
	}
	if validName("", name) != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
	}
	info, err := k.ns.store.Head(ctx, k.cfg.container, record.FifoKey(name))
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: fsError(err)}
	}
	return fileInfo{name: name, mod: info.LastModified, fifo: true}, nil
}

// readFifos is ReadDir in the namespace's own container: its named pipes.
func (k *Kernel) readFifos(ctx context.Context, path, object string) ([]fs.DirEntry, error) {
	if object != "" {
		if _, err := k.statFifo(ctx, path, object); err == nil {
			return nil, &fs.PathError{Op: "readdir", Path: path, Err: fmt.Errorf("%w: a named pipe, not a directory", fs.ErrInvalid)}
		}
		return nil, &fs.PathError{Op: "readdir", Path: path, Err: fs.ErrNotExist}
	}
	objs, err := k.ns.listAll(ctx, record.Fifos)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: path, Err: fsError(err)}
	}
	out := make([]fs.DirEntry, 0, len(objs))
	for _, o := range objs {
		name := strings.TrimPrefix(o.Name, record.Fifos)
		if validName("", name) == nil {
			out = append(out, fs.FileInfoToDirEntry(fileInfo{name: name, mod: o.LastModified, fifo: true}))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// removeFifo removes the named pipe name (at path): new opens fail, ends
// already open go on (as after unlink(2)); its sessions' records are
// garbage for GC once their ends are closed.
func (k *Kernel) removeFifo(ctx context.Context, path, name string) error {
	if validName("", name) != nil {
		return &fs.PathError{Op: "remove", Path: path, Err: fmt.Errorf("%w: not a named pipe (the namespace's container holds only its named pipes as files)", fs.ErrNotExist)}
	}
	key := record.FifoKey(name)
	if _, err := k.ns.store.Head(ctx, k.cfg.container, key); err != nil {
		return &fs.PathError{Op: "remove", Path: path, Err: fsError(err)}
	}
	if err := k.ns.store.Delete(ctx, k.cfg.container, key); err != nil {
		return &fs.PathError{Op: "remove", Path: path, Err: fsError(err)}
	}
	return nil
}
