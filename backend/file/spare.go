package file

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Spare files. On some disks making a file costs far more than renaming
// one. The ext4 of this project's virtual machines has no journal, and
// then Linux will not reuse an inode freed in the last minutes: after many
// deletes it reads past each of them, and allocating an inode takes
// 80-250 µs of kernel time where a rename takes 10 µs (on tmpfs, or an
// ext4 with a journal, both take 5-15 µs).
// A fork writes about six new files (records), so Stores keep
// empty files ready in DIR/spare/, made off the critical path, and a new
// file is a spare renamed into place when there is one. Any Store, in any
// process, may take any spare: rename(2) moves it to exactly one of them.
// A Store refills the pool only once it has lived spareDelay, so that a
// short-lived process takes spares and never pays for making them, and
// only once it is down to spareLow, in a batch. (Not on a thread of
// lowest priority: one that holds DIR/spare's lock in a create, starved by
// busier threads, stalls every Put renaming a spare out of it, a lease's
// too.) On tmpfs making a file is as cheap as renaming one: no spares
// there.

const (
	spareTries  = 16                    // spares one take tries before it makes the file
	spareTarget = 64                    // spares a refill leaves in DIR/spare
	spareLow    = spareTarget / 2       // a refill with this many spares left makes none
	spareLook   = 256                   // names read from DIR/spare at a time
	spareDelay  = 50 * time.Millisecond // a Store younger than this does not refill
	// takes between two wakes of the refill loop (spares of other
	// processes' takes are not counted: a wake may find fewer than
	// spareLow - spareWakeEvery left)
	spareWakeEvery = 8
)

type spares struct {
	s       *Store
	dir     string // DIR/spare
	off     bool   // spares do not pay here (sparesHelp)
	born    time.Time
	mu      sync.Mutex
	names   []string      // seen in DIR/spare, some maybe taken since
	looking bool          // a take reads DIR/spare
	empty   time.Time     // when a look last found none
	takes   int           // spares taken by this Store
	refills chan struct{} // wakes the refill loop; nil until the first take
	stop    chan struct{} // closed by close
	stopped bool
	wg      sync.WaitGroup // the refill loop
}

func (p *spares) init(s *Store, dir string, on bool) {
	p.s, p.dir, p.born, p.stop, p.off = s, dir, time.Now(), make(chan struct{}), !on
}

// take renames a spare to path, which must not exist, and reports whether
// it did; if not, the caller makes the file. Puts of one Store take at
// once: the lock is held only to pick a name, not for the rename (a Put
// that found it held made its file instead, at 100-250 µs of kernel time
// on this project's ext4, and a warm host's fork puts several records at
// once).
func (p *spares) take(path string) bool {
	if p.off {
		return false
	}
	for range spareTries {
		name, ok := p.next()
		if !ok {
			p.wake() // none left: make some
			return false
		}
		spare := filepath.Join(p.dir, name)
		err := renameNoReplace(spare, path)
		if err == nil {
			p.taken()
			return true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false
		}
		if _, serr := os.Lstat(spare); serr == nil {
			return false // the spare is there: path's directory is not
		}
		// Taken by another Store: try the next.
	}
	p.wake()
	return false
}

// taken counts a take, and wakes the refill loop every spareWakeEvery
// takes, the first included: a wake reads DIR/spare (under its lock) to
// count the spares, and once a take was a directory read beside every Put.
func (p *spares) taken() {
	p.mu.Lock()
	p.takes++
	n := p.takes
	p.mu.Unlock()
	if n%spareWakeEvery == 1 {
		p.wake()
	}
}

// next picks the name of a spare, reading DIR/spare when none is left, or
// reports that there is none: none was found a moment ago (the directory
// is not read at every call), or another take of this Store is reading
// it (making the file is faster than queueing behind it: hundreds of
// Puts at once queued here while hundreds of processes raced for the
// pool).
func (p *spares) next() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.names) == 0 {
		if p.looking || time.Since(p.empty) < spareDelay {
			return "", false
		}
		p.looking = true
		p.mu.Unlock()
		names := p.look()
		p.mu.Lock()
		p.looking = false
		p.names = append(p.names, names...)
		if len(p.names) == 0 {
			p.empty = time.Now()
			return "", false
		}
	}
	name := p.names[len(p.names)-1]
	p.names = p.names[:len(p.names)-1]
	return name, true
}

// look reads up to spareLook names of DIR/spare, in random order so that
// Stores taking at once mostly take different ones.
func (p *spares) look() []string {
	f, err := p.s.root.OpenDir(p.dir)
	if err != nil {
		return nil
	}
	names, _ := f.Readdirnames(spareLook)
	f.Close()
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	return names
}

// wake asks the refill loop to top the pool up, starting it the first
// time (never after close, nor while the Store is young: a goroutine
// started at once would cost a short-lived process a thread).
func (p *spares) wake() {
	if time.Since(p.born) < spareDelay {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if p.refills == nil {
		p.refills = make(chan struct{}, 1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.refill()
		}()
	}
	select {
	case p.refills <- struct{}{}:
	default:
	}
}

// refill makes spares up to spareTarget whenever woken, until close.
func (p *spares) refill() {
	id := strconv.FormatInt(rand.Int64(), 36) + "-"
	seq := 0
	for {
		select {
		case <-p.stop:
			return
		case <-p.refills:
		}
		f, err := p.s.root.OpenDir(p.dir)
		if errors.Is(err, fs.ErrNotExist) {
			err = p.s.mkdir(p.dir)
			if err == nil || errors.Is(err, fs.ErrExist) {
				f, err = p.s.root.OpenDir(p.dir)
			}
		}
		if err != nil {
			continue
		}
		if !lockRefill(f) {
			// Another process refills the pool: hundreds of short-lived
			// children each topping it up at once made ~64 files apiece
			// and spent the machine in inode allocation.
			f.Close()
			continue
		}
		names, _ := f.Readdirnames(spareTarget)
		if len(names) >= spareLow {
			f.Close()
			continue
		}
		for n := len(names); n < spareTarget; n++ {
			select {
			case <-p.stop:
				f.Close()
				return
			default:
			}
			seq++
			name := filepath.Join(p.dir, id+strconv.Itoa(seq))
			sf, err := p.s.create(name)
			if err != nil {
				break
			}
			sf.Close()
		}
		f.Close() // and the refill lock with it
	}
}

// close stops the refill loop and waits for it (once: Store.Close calls
// it once), so that no spare is made after Close.
func (p *spares) close() {
	p.mu.Lock()
	p.stopped = true
	close(p.stop)
	p.mu.Unlock()
	p.wg.Wait()
}

// createFile makes the new file path (a fresh name of this Store's) for
// writing, from a spare when there is one. A spare is used only if it is
// a regular file of this user's with no other name, checked on the opened
// descriptor (anyone who can write in DIR/spare could have put a link to
// another file there); else its name is removed, which leaves whatever it
// named alone. One that is not empty is truncated; an empty one is not:
// on ext4, truncating a file to nothing marks it to have its data written
// out when it is closed (auto_da_alloc, for programs that rewrite a file
// without fsync), which cost each Put a disk write even WithoutSync.
// cleanTmp goes by a file's change time, which the rename made now.
func (s *Store) createFile(path string) (*os.File, error) {
	if s.spare.take(path) {
		f, err := s.root.OpenOwned(path, os.O_WRONLY, 0)
		if err == nil {
			var fi os.FileInfo
			if fi, err = f.Stat(); err == nil && fi.Size() != 0 {
				err = f.Truncate(0)
			}
			if err == nil {
				return f, nil
			}
			f.Close()
		}
		os.RemoveAll(path) // not a spare of ours: a link, a directory...
	}
	return s.create(path)
}
