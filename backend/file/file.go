// Package file is a backend.Store kept in a directory, safe for any number
// of OS processes sharing that directory on one machine: the store behind
// rack's local mode (file://DIR URLs).
//
// # Layout
//
//	DIR/rack-store            marker: "rack file store 1"
//	DIR/tmp/                  bodies being written, containers being made or removed
//	DIR/spare/                empty files made ahead, to be renamed into place (see spare.go)
//	DIR/c/<container>,c/      one directory per container, its name escaped (or
//	DIR/c/~<sha256>,h/        for names whose escape is over 240 bytes; .name holds it)
//	    .name                 the container's name
//	    .lock                 flock(2) target (see Atomicity)
//	    .notify/j-<n>         the change journal, one for all writers (see Notifications)
//	    <object tree>
//
// On Linux, a new store's DIR gets the "top of a directory hierarchy"
// attribute (chattr +T), a hint to ext2/3/4 to put DIR's directories, and
// so the inodes of the files made in them, in block groups with many
// free inodes (see spreadDirs).
//
// An object name is cut into segments at each '/' (kept with the segment
// before it) and every 80 bytes without one; every segment but the last is
// a directory, the last the object file. Segment bytes other than a-z, 0-9,
// '-', '_' and '.' are written %XX (upper case letters too, so that
// case-insensitive file systems keep names apart), and a suffix tells what
// an entry is: ",o" object, ",d" directory for a segment ending in '/',
// ",p" directory for an 80-byte part of a longer segment. So "procs/101"
// is "procs,d/101,o", "a" and "a/b" are "a,o" and "a,d/b,o", "trailing/" is
// "trailing%2F,o", and any valid name (1024 bytes, any UTF-8, '%', leading
// dots, "..") maps to a path whose elements are at most 242 bytes. The
// layout is walked in byte order of names (see List).
//
// An object file is a small binary header followed by the data:
//
//	"rackobj1" | header length u32 | size i64 | modified i64 | expires i64 |
//	MD5 [16] | metadata count u16 | (key length u16, key, value length u16, value)...
//
// (little endian; times in Unix nanoseconds, expires 0 for never). Metadata,
// expiry and data live in one file, so they change together.
//
// # Atomicity
//
// A Put streams the body (memory is bounded by a 64 KiB buffer) into a new
// file in DIR/tmp, fsyncs it (unless WithoutSync) and then commits it with
// one system call: a create-only Put links it to the object's path
// (link(2) fails with EEXIST if the name exists, so among racing processes
// exactly one wins, with no stat-then-rename window), an overwrite renames
// it over the path (rename(2) replaces atomically). A reader opens one
// inode and sees one whole version: header and data together, even if the
// object is overwritten while it reads. A failed or cancelled Put removes
// its temporary file and leaves nothing.
//
// Expired objects are hidden at once by Get, Head and List (the deadline
// is in the header; clocks are the machine's) and removed lazily by the
// call that finds them, and by a create-only Put that needs the name. To
// remove exactly the expired version, and not a newer one an overwrite
// puts in its place meanwhile, removal holds an exclusive flock(2) on the
// container's .lock file while Puts hold it shared around their commit
// (one system call). DeleteContainer also holds it exclusively while it
// checks that the container is empty and renames it away, so no Put can
// slip into a container being deleted. Where flock is missing (Windows,
// Solaris) those two rare races are not excluded.
//
// # Notifications
//
// A Store implements backend.Notifier. Changes made through the same Store
// close the matching channels at once, before Put or Delete returns. For
// changes made by other processes (or other Stores on the same DIR), every
// Store appends the names it changes to the container's journal file in its
// .notify directory, each tagged with the Store's id; a Store with watchers
// follows the journal and closes the channels of the names other Stores
// wrote there. It learns of appends through inotify on Linux (latency well
// under a millisecond: see TestCrossProcessNotify), with a 30 s safety
// scan, and elsewhere, or if inotify fails (a user has 128 inotify
// instances by default, so past 128 processes the rest poll) or
// WithoutInotify is given, by polling the journal's size every 20 ms
// (WithPollInterval). A journal is rotated at 1 MiB; a
// watcher that cannot tell what changed (a journal rotated or removed under
// it, an inotify overflow) wakes every watcher of that container, so
// changes are never missed, though a wake-up may be spurious. The expiry of
// an object does not close channels.
//
// Consistency: Get and Head see the latest committed Put or Delete of any
// process at once; List walks the directory tree, so it is strongly
// consistent too, except that it may list an object being deleted, and
// lists a Subdir without checking every object under it for expiry.
package file

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/internal/watch"
	"github.com/rackfork/rack/internal/osfile"
)

// Interface checks.
var (
	_ backend.Store    = (*Store)(nil)
	_ backend.Notifier = (*Store)(nil)
)

// markerName and markerText identify a directory as a store.
const (
	markerName = "rack-store"
	markerText = "rack file store 1\n"
)

// config holds the settings Options change.
type config struct {
	noSync       bool
	noInotify    bool
	group        bool
	pollInterval time.Duration
}

// An Option configures a Store made by New.
type Option func(*config)

// WithoutSync skips the fsync of each object before it is committed: a
// crash of the machine (not of a process) may then lose or truncate
// recently written objects. For scratch namespaces and tests.
func WithoutSync() Option { return func(c *config) { c.noSync = true } }

// WithGroupAccess shares the store with the members of its directory's
// group: directories are made 0770 and files 0660 (whatever the umask),
// and a directory its group may write in is accepted. Without it the
// store is private to its owner: directories 0700, files 0600, and a
// directory its group may write in is refused. Every member of the group
// can then read and forge every record of the namespace: share it only
// with users who may run programs as you.
func WithGroupAccess() Option { return func(c *config) { c.group = true } }

// WithoutInotify makes the Store poll for other processes' changes even
// where inotify is available.
func WithoutInotify() Option { return func(c *config) { c.noInotify = true } }

// WithPollInterval sets how often the Store polls for other processes'
// changes when it cannot use inotify (default 20 ms).
func WithPollInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.pollInterval = d
		}
	}
}

// Store is a backend.Store and backend.Notifier kept in a directory. Make
// one with New. All methods are safe for concurrent use, and any number of
// Stores, in any number of processes, may share a directory.
type Store struct {
	dir      string       // absolute
	root     *osfile.Root // dir, for opening files beneath it
	cdir     string       // dir/c
	tmp      string       // dir/tmp
	id       string       // this Store's writer id (journal names, temp names)
	noSync   bool
	group    bool        // WithGroupAccess
	dirMode  fs.FileMode // 0700, or 0770 with WithGroupAccess
	fileMode fs.FileMode // 0600, or 0660 with WithGroupAccess

	closed atomic.Bool

	watch   watch.Registry
	journal journal
	x       xwatch
	spare   spares
}

// New opens the store in dir, creating dir if needed. A dir that exists,
// is not empty and is not a store already is refused, so that a mistyped
// path does not litter a home directory.
//
// # Security
//
// The store is private to the user who runs it (see WithGroupAccess for
// a group-shared one): dir must be this user's, and no other user may
// write in it (the error says which of these fails); New takes away the
// others' read and search permissions on dir (mode 0700), and makes every
// directory 0700 and every file 0600. Nothing under dir is ever opened
// through a symbolic link (openat2(2) with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS where Linux has it, O_NOFOLLOW otherwise), nor a
// FIFO or a device; a file this Store writes into after another process
// could have named it (a spare, a journal) must be a regular file of this
// user's with one link, checked on the opened descriptor, else it is
// discarded and a new one made.
func New(dir string, opts ...Option) (*Store, error) {
	cfg := config{pollInterval: 20 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file: store directory %q: %w", dir, err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("file: store directory %q: %w", dir, err)
	}
	s := &Store{
		cdir:     filepath.Join(abs, "c"),
		tmp:      filepath.Join(abs, "tmp"),
		id:       hex.EncodeToString(b[:]),
		noSync:   cfg.noSync,
		group:    cfg.group,
		dirMode:  0o700,
		fileMode: 0o600,
	}
	if cfg.group {
		s.dirMode, s.fileMode = 0o770, 0o660
	}
	if err := s.initDir(abs); err != nil {
		if s.root != nil {
			s.root.Close()
		}
		return nil, fmt.Errorf("file: store directory %q: %w", dir, err)
	}
	s.x.init(s, cfg.pollInterval, !cfg.noInotify)
	s.spare.init(s, filepath.Join(s.dir, "spare"), sparesHelp(s.dir))
	go s.cleanTmp()
	return s, nil
}

// initDir checks dir, makes it a store if it is not one yet, and sets
// s.dir and s.root.
func (s *Store) initDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := s.mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := osfile.CheckDir(dir, s.group); err != nil {
		return err
	}
	// The store's own paths lead to the directory the checks saw, even if
	// dir is a symbolic link that changes later.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	if s.root, err = osfile.OpenRoot(real); err != nil {
		return err
	}
	s.dir, s.cdir, s.tmp = real, filepath.Join(real, "c"), filepath.Join(real, "tmp")
	dir = real
	marker := filepath.Join(dir, markerName)
	data, err := s.root.ReadFile(marker)
	// Another process may have just made the marker and not yet written
	// it (create, then write): a prefix of it is read again, for a while.
	for i := 0; i < 100 && err == nil && len(data) < len(markerText) && strings.HasPrefix(markerText, string(data)); i++ {
		time.Sleep(10 * time.Millisecond)
		data, err = s.root.ReadFile(marker)
	}
	switch {
	case err == nil:
		if string(data) != markerText {
			return fmt.Errorf("%s holds %q, not %q: not a store of this version", marker, data, markerText)
		}
	case errors.Is(err, fs.ErrNotExist):
		names, err := s.readNames(dir)
		if err != nil {
			return err
		}
		if len(names) > 0 && !slices.Contains(names, markerName) {
			return errors.New("directory is not empty and is not a rack file store (no " + markerName + " file)")
		}
		if f, err := s.root.OpenDir("."); err == nil {
			spreadDirs(f) // before its directories are made (spare_linux.go)
			f.Close()
		}
		f, err := s.create(marker)
		if err == nil {
			_, err = f.WriteString(markerText)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		} else if errors.Is(err, fs.ErrExist) {
			err = nil // another process made it at the same time
		}
		if err != nil {
			return err
		}
	default:
		return err
	}
	// A store now (or empty, as made): the others lose their access to it.
	if err := osfile.RestrictDir(dir, s.group); err != nil {
		return err
	}
	for _, sub := range []string{"tmp", "c"} {
		if err := s.mkdir(filepath.Join(dir, sub)); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// mkdir makes directory path with the store's mode (0700, or 0770 with
// WithGroupAccess whatever the umask, keeping a set-group-ID bit the new
// directory inherits).
func (s *Store) mkdir(path string) error {
	if err := os.Mkdir(path, s.dirMode); err != nil {
		return err
	}
	if s.group {
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != s.dirMode {
			return os.Chmod(path, s.dirMode|fi.Mode()&fs.ModeSetgid)
		}
	}
	return nil
}

// create makes the new file path for writing, with the store's mode
// (0600, or 0660 with WithGroupAccess whatever the umask); it fails if
// path exists, whatever it is.
func (s *Store) create(path string) (*os.File, error) {
	f, err := s.root.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, s.fileMode)
	if err != nil {
		return nil, err
	}
	if s.group {
		if err := f.Chmod(s.fileMode); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
	}
	return f, nil
}

// writeNew makes the new file path holding data (see create).
func (s *Store) writeNew(path string, data []byte) error {
	f, err := s.create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readNames returns the names in directory dir, unsorted.
func (s *Store) readNames(dir string) ([]string, error) {
	f, err := s.root.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	return names, err
}

// staleTmp is the age (since the last write, or rename: see changed)
// after which a leftover in DIR/tmp is removed: it belongs to a process
// that crashed.
const staleTmp = time.Hour

// cleanTmp removes stale leftovers of crashed processes from DIR/tmp.
func (s *Store) cleanTmp() {
	names, err := s.readNames(s.tmp)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-staleTmp)
	for _, n := range names {
		p := filepath.Join(s.tmp, n)
		if fi, err := os.Lstat(p); err == nil && changed(fi).Before(cutoff) {
			os.RemoveAll(p)
		}
	}
}

// PipeHints advises 1 MiB pipe segments (a local request costs little
// more than its bytes) and no batching: the writer's OS process could die
// with a batch while its reader, another OS process, lives on
// (backend.PipeHinter).
func (s *Store) PipeHints() backend.PipeHints {
	return backend.PipeHints{SegmentSize: 1 << 20}
}

// Close stops the Store's following of other processes' journals and
// closes every channel returned by Changed. Later calls fail with an error
// wrapping ErrClosed; readers returned by Get keep working. The directory,
// its objects and the Store's journals stay (idle journals are removed by
// the watchers of other Stores). Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.x.close()
	s.spare.close()
	s.watch.Close()
	s.journal.forget()
	s.root.Close() // after the loops that use it; a late cleanTmp fails
	return nil
}

// enter starts a call: it fails if ctx is done or the Store is closed.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// containerPath returns the directory of container c.
func (s *Store) containerPath(c string) string {
	return s.cdir + string(os.PathSeparator) + containerDirName(c)
}

// tempName returns a fresh name in DIR/tmp.
func (s *Store) tempName(kind string) string {
	var b [8]byte
	rand.Read(b[:])
	return filepath.Join(s.tmp, kind+"-"+s.id+"-"+hex.EncodeToString(b[:]))
}

// errNoContainer is returned by helpers when the container is missing.
var errNoContainer = errors.New("no container")

// lockContainer opens container directory cpath's .lock file and locks it,
// shared or exclusively; with try it returns (nil, nil) if the lock is
// held elsewhere. It fails with errNoContainer if the container is gone,
// and retries if the container was replaced while it waited.
func (s *Store) lockContainer(cpath string, exclusive, try bool) (*os.File, error) {
	path := cpath + "/.lock"
	for range 100 {
		f, err := s.root.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			if notExist(err) {
				return nil, errNoContainer
			}
			return nil, err
		}
		ok, err := flock(f, exclusive, try)
		if err != nil || !ok {
			f.Close()
			return nil, err
		}
		same, err := sameFile(f, path)
		if same {
			return f, nil
		}
		f.Close()
		if err != nil {
			if notExist(err) {
				return nil, errNoContainer
			}
			return nil, err
		}
	}
	return nil, errors.New("container replaced too often while locking")
}

// unlock releases a lock taken by lockContainer (closing the file drops it).
func unlock(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// CreateContainer creates container; it succeeds if it exists already. The
// directory is made in DIR/tmp and renamed into place, so other processes
// see a container whole or not at all.
func (s *Store) CreateContainer(ctx context.Context, container string) error {
	const op = "create"
	if err := s.enter(ctx); err != nil {
		return containerError(op, container, "", err)
	}
	if d := backend.ContainerNameProblem(container); d != "" {
		return containerError(op, container, d, backend.ErrInvalid)
	}
	cpath := s.containerPath(container)
	if _, err := os.Stat(cpath); err == nil {
		return nil
	}
	tmp := s.tempName("container")
	err := s.mkdir(tmp)
	if err == nil {
		err = s.mkdir(tmp + "/.notify")
	}
	if err == nil {
		err = s.writeNew(tmp+"/.lock", nil)
	}
	if err == nil {
		err = s.writeNew(tmp+"/.name", []byte(container))
	}
	if err == nil {
		err = os.Rename(tmp, cpath)
		if err != nil && (errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist)) {
			err = nil // made by someone else meanwhile
		}
	}
	os.RemoveAll(tmp)
	if err != nil {
		return containerError(op, container, "", fsErr(err))
	}
	return nil
}

// DeleteContainer deletes an empty container: backend.ErrNotFound if it
// does not exist, backend.ErrExist if it holds an object that has not
// expired. Expired objects are removed on the way.
func (s *Store) DeleteContainer(ctx context.Context, container string) error {
	const op = "delete"
	if err := s.enter(ctx); err != nil {
		return containerError(op, container, "", err)
	}
	if d := backend.ContainerNameProblem(container); d != "" {
		return containerError(op, container, d, backend.ErrInvalid)
	}
	cpath := s.containerPath(container)
	lk, err := s.lockContainer(cpath, true, false)
	if err != nil {
		if err == errNoContainer {
			return containerError(op, container, "", backend.ErrNotFound)
		}
		return containerError(op, container, "", fsErr(err))
	}
	l := lister{s: s, ctx: ctx, container: container, cpath: cpath, limit: 1, locked: true, now: time.Now().UnixNano()}
	if err := l.run(); err != nil {
		unlock(lk)
		return containerError(op, container, "", err)
	}
	if len(l.out) > 0 {
		unlock(lk)
		return containerError(op, container, "container is not empty", backend.ErrExist)
	}
	dead := s.tempName("deleted")
	err = os.Rename(cpath, dead)
	unlock(lk)
	if err != nil {
		if notExist(err) {
			return containerError(op, container, "", backend.ErrNotFound)
		}
		return containerError(op, container, "", fsErr(err))
	}
	os.RemoveAll(dead)
	return nil
}

// ListContainers returns one page of the container names in byte order
// (see backend.ListOptions). Only Name is set.
func (s *Store) ListContainers(ctx context.Context, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	const op = "list containers"
	if err := s.enter(ctx); err != nil {
		return nil, storeError(op, "", err)
	}
	limit, d := backend.ListOptionsProblem(&opts)
	if d != "" {
		return nil, storeError(op, d, backend.ErrInvalid)
	}
	entries, err := s.readNames(s.cdir)
	if err != nil {
		return nil, storeError(op, "", fsErr(err))
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		var name string
		switch {
		case strings.HasSuffix(e, sufCont):
			n, ok := unescape(e[:len(e)-len(sufCont)])
			if !ok {
				continue
			}
			name = n
		case strings.HasSuffix(e, sufHashed):
			data, err := s.root.ReadFile(filepath.Join(s.cdir, e, ".name"))
			if err != nil || containerDirName(string(data)) != e {
				continue
			}
			name = string(data)
		default:
			continue
		}
		if strings.HasPrefix(name, opts.Prefix) && name > opts.Marker {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []backend.ObjectInfo
	last := ""
	for _, n := range names {
		if len(out) == limit {
			break
		}
		if opts.Delimiter != "" {
			if i := strings.Index(n[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				dir := n[:len(opts.Prefix)+i+len(opts.Delimiter)]
				if dir != last && dir != opts.Marker {
					out = append(out, backend.ObjectInfo{Name: dir, Subdir: true})
				}
				last = dir
				continue
			}
		}
		out = append(out, backend.ObjectInfo{Name: n})
	}
	return out, nil
}
