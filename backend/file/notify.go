package file

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack/internal/osfile"
)

// Changed returns a channel closed at the next Put or Delete of an object in
// container named key or, when key ends in '/', whose name starts with key,
// by this Store or by any other process using the same directory (see
// Notifications in the package documentation); the lazy removal of an
// expired object counts as a Delete. Call Changed before checking the
// store, then wait on the channel, so as not to miss a change. The empty key
// matches nothing. On a closed store the channel is already closed.
func (s *Store) Changed(container, key string) <-chan struct{} {
	ch := s.watch.Changed(container, key)
	// Follow the other processes' journals from now on (a no-op if this
	// Store already does).
	s.x.watch(container)
	return ch
}

// changed records a change this Store made to container/name: it appends
// the name to the Store's journal and wakes the local watchers.
func (s *Store) changed(container, cpath, name string) {
	s.journal.append(s, cpath, name)
	s.watch.Notify(container, name)
}

// Journals.
//
// Every Store appends the names it changes in a container to the
// container's one journal, .notify/j-<generation>: each record is the
// Store's id, a space, the name and NUL (which no name contains), written
// with one O_APPEND write, which the kernel makes atomic among processes.
// A writer moves to the next generation once the journal holds journalMax
// bytes. Journal files idle for journalIdle are removed by the watchers
// that follow them, under an exclusive flock that the writer takes shared
// while it appends (and checks that the file it opened is still linked), so
// an append is never lost in a removed file.
//
// One journal for all writers, rather than one per writer, keeps a
// watcher's work per change constant: with a journal per process, each of
// N processes looked at N journals (N² stats per safety scan, and every
// poll of a Store without inotify, which is every Store past the user's
// inotify instances: 128 by default), and at 1,000 processes that took the
// whole machine. Files in .notify not named j-<n> are journals of older
// versions: their records are bare names.
const (
	journalMax  = 1 << 20
	journalIdle = 5 * time.Minute
	// cleanAfter: a watcher that observed a journal fully read at least
	// this long after its last write treats its removal as clean.
	cleanAfter = 2 * time.Second
	// journalPrefix starts the names of journal files.
	journalPrefix = "j-"
)

// journal is a Store's writing side of the journals.
type journal struct {
	mu sync.Mutex
	m  map[string]*journalState // by container directory
}

type journalState struct {
	gen   int
	found bool // gen has been set from the journals present
}

// append appends name to the journal in container directory cpath.
// Failures are ignored: the container may be gone.
func (j *journal) append(s *Store, cpath, name string) {
	rec := make([]byte, 0, len(s.id)+len(name)+2)
	rec = append(append(append(append(rec, s.id...), ' '), name...), 0)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = make(map[string]*journalState)
	}
	st := j.m[cpath]
	if st == nil {
		st = &journalState{}
		j.m[cpath] = st
	}
	if !st.found {
		st.gen, st.found = lastJournal(s, cpath+"/.notify"), true
	}
	for range 3 {
		path := cpath + "/.notify/" + journalPrefix + strconv.Itoa(st.gen)
		// The journal must be a regular file of this user's own (or, in
		// group mode, of the group's): a name another user planted (a
		// link to one of this user's files) is removed, and a new
		// journal made.
		f, err := s.root.OpenOwned(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, s.fileMode)
		if err != nil {
			if errors.Is(err, osfile.ErrNotOwned) || errors.Is(err, osfile.ErrSymlink) || errors.Is(err, osfile.ErrNotRegular) {
				os.Remove(path)
				continue
			}
			return
		}
		if s.group {
			f.Chmod(s.fileMode) // whatever the umask
		}
		if ok, err := flock(f, false, false); err != nil || !ok {
			f.Close()
			return
		}
		fi, err := f.Stat()
		if err == nil && haveFlock && !linked(fi) {
			f.Close() // removed by a watcher's clean-up: make a new one
			continue
		}
		n, _ := f.Write(rec)
		f.Close()
		if err == nil && fi.Size()+int64(n) >= journalMax {
			st.gen++
		}
		break
	}
}

// lastJournal returns the latest generation of the journals in directory
// dir (0 if there is none).
func lastJournal(s *Store, dir string) int {
	f, err := s.root.OpenDir(dir)
	if err != nil {
		return 0
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	last := 0
	for _, n := range names {
		if g, ok := journalGen(n); ok && g > last {
			last = g
		}
	}
	return last
}

// journalGen returns the generation of the journal file named fname.
func journalGen(fname string) (int, bool) {
	g, ok := strings.CutPrefix(fname, journalPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(g)
	return n, err == nil && n >= 0
}

// forget drops the journal state (on Close).
func (j *journal) forget() {
	j.mu.Lock()
	j.m = nil
	j.mu.Unlock()
}

// xwatch follows the journals (other Stores' records in them) in the
// containers this Store watches.
type xwatch struct {
	s          *Store
	poll       time.Duration
	useInotify bool

	mu      sync.Mutex
	cs      map[string]*cstate // by container
	ino     *inotify           // nil when polling
	wds     map[int32]*cstate
	started bool
	closed  bool
	stop    chan struct{}
	done    sync.WaitGroup
}

// cstate is the following of one container's journals.
type cstate struct {
	container string
	dir       string // the .notify directory
	files     map[string]*jfile
	wd        int32
	watched   bool // by inotify
	lastUsed  time.Time
}

// jfile is how far a journal file has been read.
type jfile struct {
	off   int64     // read up to here (a record boundary)
	size  int64     // size when last seen
	mtime time.Time // modification time when last seen
	seen  time.Time // when last seen
}

func (x *xwatch) init(s *Store, poll time.Duration, useInotify bool) {
	x.s = s
	x.poll = poll
	x.useInotify = useInotify
	x.cs = make(map[string]*cstate)
	x.wds = make(map[int32]*cstate)
	x.stop = make(chan struct{})
}

// watch starts following container's journals, if this Store does not
// already. Changes appended after it returns will be seen.
func (x *xwatch) watch(container string) {
	now := time.Now()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	if cs := x.cs[container]; cs != nil {
		cs.lastUsed = now
		return
	}
	if !x.started {
		x.started = true
		if x.useInotify {
			if ino, err := newInotify(); err == nil {
				x.ino = ino
				x.done.Add(1)
				go x.readEvents()
			}
		}
		x.done.Add(1)
		go x.ticker()
	}
	cs := &cstate{
		container: container,
		dir:       x.s.containerPath(container) + "/.notify",
		files:     make(map[string]*jfile),
		lastUsed:  now,
	}
	x.cs[container] = cs
	x.addWatch(cs) // before the first scan, so no append falls between
	x.scanAll(cs, true)
}

// addWatch adds an inotify watch on cs's directory. x.mu must be held.
func (x *xwatch) addWatch(cs *cstate) {
	if x.ino == nil || cs.watched {
		return
	}
	wd, err := x.ino.add(cs.dir)
	if err != nil {
		return
	}
	cs.wd, cs.watched = wd, true
	x.wds[wd] = cs
}

// readEvents handles inotify events until the inotify file is closed.
func (x *xwatch) readEvents() {
	defer x.done.Done()
	buf := make([]byte, 64<<10)
	for {
		evs, err := x.ino.read(buf)
		if err != nil {
			return
		}
		x.mu.Lock()
		// A journal is read to its end when its first event of the batch
		// is handled, so its later appends in the batch are read then:
		// with many writers and a busy machine a batch holds many events
		// per journal, and each would otherwise reopen it.
		var scanned map[jname]bool
		for _, ev := range evs {
			if ev.overflow {
				for _, cs := range x.cs {
					x.s.watch.NotifyContainer(cs.container)
					x.scanAll(cs, false)
				}
				continue
			}
			cs := x.wds[ev.wd]
			if cs == nil {
				continue
			}
			switch {
			case ev.ignored:
				delete(x.wds, ev.wd)
				cs.watched = false
			case ev.name == "":
				x.scanAll(cs, false)
			case ev.removed:
				delete(scanned, jname{cs, ev.name})
				x.removed(cs, ev.name)
			default:
				if scanned[jname{cs, ev.name}] {
					continue
				}
				if scanned == nil {
					scanned = make(map[jname]bool)
				}
				scanned[jname{cs, ev.name}] = true
				x.scanFile(cs, ev.name, false)
			}
		}
		x.mu.Unlock()
	}
}

// jname names one journal file of one followed container.
type jname struct {
	cs   *cstate
	name string
}

// sweepEvery is how often a Store whose inotify watch on a container's
// journals is in place looks at every journal anyway: to collect idle ones,
// and as a safety net. Each look costs a stat per journal, and every
// process has a journal, so with N processes a sweep each second cost N²
// stats a second (at N = 300 it was 70 % of the machine's CPU).
const sweepEvery = 30 * time.Second

// ticker polls (or, with inotify, sweeps now and then), re-adds watches
// lost to a container being deleted and made again, and drops containers
// no longer watched.
func (x *xwatch) ticker() {
	defer x.done.Done()
	every := x.poll
	x.mu.Lock()
	if x.ino != nil {
		every = time.Second
	}
	x.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-x.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		sweep := now.Sub(lastSweep) >= sweepEvery
		if sweep {
			lastSweep = now
		}
		x.mu.Lock()
		for c, cs := range x.cs {
			if now.Sub(cs.lastUsed) > 30*time.Second && !x.s.watch.Watched(c) {
				if cs.watched {
					x.ino.remove(cs.wd)
					delete(x.wds, cs.wd)
				}
				delete(x.cs, c)
				continue
			}
			was := cs.watched
			x.addWatch(cs)
			// With the watch in place inotify reports every append, and
			// an overflow or a lost watch (re-added above only after an
			// event that cleared cs.watched) makes a scan; without it,
			// this is polling.
			if !was || sweep {
				x.scanAll(cs, false)
			}
		}
		x.mu.Unlock()
	}
}

// scanAll reads what is new in every journal of cs; initial only records
// the current sizes. x.mu must be held.
func (x *xwatch) scanAll(cs *cstate, initial bool) {
	f, err := x.s.root.OpenDir(cs.dir)
	if err != nil {
		clear(cs.files) // the container is gone (and was empty)
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
		if jf := cs.files[n]; jf != nil && !initial && jf.off == jf.size {
			// A journal only grows (and a new one under the same name
			// has a later modification time): one read to its end and
			// unchanged since need not be opened, unless idle.
			fi, err := os.Lstat(cs.dir + "/" + n)
			if err == nil && fi.Size() == jf.size && fi.ModTime().Equal(jf.mtime) {
				now := time.Now()
				jf.seen = now
				if now.Sub(jf.mtime) <= journalIdle {
					continue
				}
			}
		}
		x.scanFile(cs, n, initial)
	}
	for n := range cs.files {
		if !present[n] {
			x.removed(cs, n)
		}
	}
}

// scanFile reads what is new in journal fname of cs and wakes the
// watchers of the names it finds. x.mu must be held.
func (x *xwatch) scanFile(cs *cstate, fname string, initial bool) {
	if initial && cs.files[fname] == nil {
		// A first look reads nothing (it starts at the end): a stat
		// does, unless the journal is idle and may be collected. Every
		// new watcher looks at every journal, so this matters.
		fi, err := os.Lstat(cs.dir + "/" + fname)
		if err != nil {
			return
		}
		if now := time.Now(); now.Sub(fi.ModTime()) <= journalIdle {
			cs.files[fname] = &jfile{off: fi.Size(), size: fi.Size(), mtime: fi.ModTime(), seen: now}
			return
		}
	}
	f, err := x.s.root.OpenFile(cs.dir+"/"+fname, os.O_RDONLY, 0)
	if err != nil {
		if notExist(err) {
			x.removed(cs, fname)
		}
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	now := time.Now()
	jf := cs.files[fname]
	if jf == nil {
		jf = &jfile{}
		cs.files[fname] = jf
		if initial {
			jf.off = fi.Size()
		}
	}
	_, shared := journalGen(fname)
	size := fi.Size()
	if size < jf.off {
		// Cannot happen with this package's writers: be safe.
		x.s.watch.NotifyContainer(cs.container)
		jf.off = 0
	}
	if size > jf.off {
		bp := bodyBufs.Get().(*[]byte)
		buf := *bp
		for jf.off < size {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), size-jf.off)], jf.off)
			end := bytes.LastIndexByte(buf[:n], 0)
			if end < 0 {
				break // a record still being written
			}
			for rec := range bytes.SplitSeq(buf[:end], []byte{0}) {
				if shared {
					// "writer name": a change of this Store's own has
					// been notified here already.
					w, name, ok := bytes.Cut(rec, []byte{' '})
					if !ok || string(w) == x.s.id {
						continue
					}
					rec = name
				}
				if len(rec) > 0 {
					x.s.watch.Notify(cs.container, string(rec))
				}
			}
			jf.off += int64(end + 1)
			if err != nil && err != io.EOF {
				break
			}
		}
		bodyBufs.Put(bp)
	}
	jf.size, jf.mtime, jf.seen = size, fi.ModTime(), now
	if jf.off == size && now.Sub(jf.mtime) > journalIdle {
		x.collectFile(cs, fname, f)
	}
}

// removed handles the disappearance of journal fname of cs: if it may have
// held records this Store did not read, every watcher of the container is
// woken. x.mu must be held.
func (x *xwatch) removed(cs *cstate, fname string) {
	jf := cs.files[fname]
	if jf == nil {
		return
	}
	delete(cs.files, fname)
	if jf.off == jf.size && jf.seen.Sub(jf.mtime) >= cleanAfter {
		return // read to the end long after its last write
	}
	x.s.watch.NotifyContainer(cs.container)
}

// collectFile removes the idle journal fname (open as f), unless its writer
// is appending to it.
func (x *xwatch) collectFile(cs *cstate, fname string, f *os.File) {
	if !haveFlock {
		return // no way to exclude a writer
	}
	if ok, err := flock(f, true, true); err != nil || !ok {
		return
	}
	if fi, err := f.Stat(); err == nil && time.Since(fi.ModTime()) > journalIdle {
		os.Remove(cs.dir + "/" + fname)
	}
}

// close stops following journals.
func (x *xwatch) close() {
	x.mu.Lock()
	x.closed = true
	started := x.started
	close(x.stop)
	if x.ino != nil {
		x.ino.close()
	}
	x.mu.Unlock()
	if started {
		x.done.Wait()
	}
}
