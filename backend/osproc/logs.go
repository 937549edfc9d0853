package osproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/osfile"
)

// Logs.
//
// With WithLogDir(dir), an instance's OS stdout and stderr both go to
// dir/<instance name>.log: created mode 0600 (dir 0700, as needed; 0660
// and 0770 with WithGroupAccess), opened for appending, so a second
// instance of one name adds to the file. dir must be this user's, and
// writable by no other user (its group may with WithGroupAccess): Start
// and Logs refuse it otherwise. A log is never opened through a symbolic
// link, and one to append to must be a regular file of this user's with
// one link, else it is replaced.
//
// Whether an instance is still running is told by the file itself, so a
// reader needs no Compute in common with the writer: Start takes a shared
// flock(2) on the log's open file description before it starts the
// process, which inherits that description as its stdout and stderr; Start
// then closes its own copy. The lock is released by the operating system
// when the last copy closes: when the instance's process, and any process
// it passed its stdout or stderr on to, has ended, whichever way (exit,
// kill, or the death of the Compute's own process, which on Linux kills the
// instance through Pdeathsig). A follower at the end of the file tries the
// lock exclusively: if it gets it, no writer is left, and it returns what
// remains and then io.EOF. A new log file is made under a temporary name
// and locked before it is linked into place, so a follower never sees a
// log file of a starting instance unlocked.

// WithLogDir makes each instance's OS stdout and stderr go to the file
// dir/<instance name>.log (see Logs), instead of WithOutput's writers.
// Instance names must then be usable as file names (no '/', not "." or
// "..").
func WithLogDir(dir string) Option {
	return func(c *Compute) { c.logDir = dir }
}

// WithGroupAccess shares the log directory with its group: it is made
// 0770 and logs 0660, and a log directory its group may write in is
// accepted (see Logs).
func WithGroupAccess() Option {
	return func(c *Compute) { c.group = true }
}

// logRoot returns the log directory, made if need be and checked (once
// per Compute: nobody else can change it then).
func (c *Compute) logRoot() (*osfile.Root, error) {
	c.logOnce.Do(func() {
		c.logRootErr = c.openLogRoot()
	})
	return c.logDirRoot, c.logRootErr
}

func (c *Compute) openLogRoot() error {
	mode := fs.FileMode(0o700)
	if c.group {
		mode = 0o770
	}
	if err := os.MkdirAll(filepath.Dir(c.logDir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(c.logDir, mode); err == nil && c.group {
		// Whatever the umask, keeping a set-group-ID bit inherited.
		if fi, err := os.Lstat(c.logDir); err == nil && fi.Mode().Perm() != mode {
			os.Chmod(c.logDir, mode|fi.Mode()&fs.ModeSetgid)
		}
	} else if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := osfile.RestrictDir(c.logDir, c.group); err != nil {
		return err
	}
	r, err := osfile.OpenRoot(c.logDir)
	if err != nil {
		return err
	}
	c.logDirRoot = r
	return nil
}

// LogSuffix ends the name of each instance's log file in the log
// directory.
const LogSuffix = ".log"

// followPoll bounds the interval at which a follower at the end of a log
// looks for more output.
const (
	followPollMin = time.Millisecond
	followPollMax = 100 * time.Millisecond
)

// Logs opens the log of the instance named name, which this Compute or
// any other using the same log directory (in this OS process or another)
// started. Without follow the reader returns the log as it is and then
// io.EOF. With follow it also returns the output written later, waiting
// for it, until no process of the instance is left and the log has been
// read to its end; then io.EOF. Read fails with the cause of ctx once ctx
// is done, and with os.ErrClosed after Close, which may be called while a
// Read waits.
//
// Errors wrap errors.ErrUnsupported if the Compute has no log directory
// (or, for follow, the system has no flock(2)), backend.ErrNotFound if
// there is no log of that name (the instance was never started, or not
// yet), and backend.ErrInvalid for a name that cannot be a file name.
func (c *Compute) Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error) {
	if c.logDir == "" {
		return nil, fmt.Errorf("osproc: logs %s: %w: the compute has no log directory (WithLogDir)", name, errors.ErrUnsupported)
	}
	if err := checkLogName(name); err != nil {
		return nil, fmt.Errorf("osproc: logs: %w", err)
	}
	if follow && !osfile.HaveLocks {
		return nil, fmt.Errorf("osproc: logs %s: %w: following needs flock(2)", name, errors.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("osproc: logs %s: %w", name, context.Cause(ctx))
	}
	root, err := c.logRoot()
	if err != nil {
		return nil, fmt.Errorf("osproc: logs %s: %w", name, logError(err))
	}
	f, err := root.OpenFile(name+LogSuffix, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("osproc: logs %s: %w", name, backend.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("osproc: logs %s: %w", name, err)
	}
	if !follow {
		return f, nil
	}
	return &follower{f: f, ctx: ctx, closed: make(chan struct{})}, nil
}

// checkLogName accepts instance names that can name a file.
func checkLogName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("%w: instance name %q cannot name a log file", backend.ErrInvalid, name)
	}
	return nil
}

// openLog opens (creating it if need be) the log of instance name in the
// log directory for appending, with the shared lock taken.
func (c *Compute) openLog(name string) (*os.File, error) {
	root, err := c.logRoot()
	if err != nil {
		return nil, logError(err)
	}
	dir := root.Path()
	path := filepath.Join(dir, name+LogSuffix)
	for range 3 {
		// An existing log: append to it, if it is this user's own file.
		f, err := root.OpenOwned(path, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			if err := osfile.Lock(f, false); err != nil {
				f.Close()
				return nil, logError(err)
			}
			return f, nil
		}
		switch {
		case errors.Is(err, osfile.ErrSymlink), errors.Is(err, osfile.ErrNotOwned), errors.Is(err, osfile.ErrNotRegular):
			// Not a log of ours (a link, a FIFO, another user's file):
			// its name goes, whatever it named stays untouched.
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, logError(err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, logError(err)
		}
		// A new one: made and locked under a temporary name, then moved
		// (or linked) into place.
		tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
		if err != nil {
			return nil, logError(err)
		}
		// CreateTemp made it 0600 already.
		if c.group {
			err = tmp.Chmod(0o660)
		}
		if err == nil {
			err = osfile.Lock(tmp, false)
		}
		moved := false
		if err == nil {
			moved, err = osfile.LinkNoReplace(tmp.Name(), path)
		}
		if !moved {
			os.Remove(tmp.Name())
		}
		if err == nil {
			// Linked, and locked through tmp. CreateTemp did not open it
			// for appending: open it again so, and lock that before tmp
			// lets go.
			f, err := root.OpenOwned(path, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				err = osfile.Lock(f, false)
				if err != nil {
					f.Close()
				}
			}
			tmp.Close()
			if err != nil {
				return nil, logError(err)
			}
			return f, nil
		}
		tmp.Close()
		if !errors.Is(err, fs.ErrExist) {
			return nil, logError(err)
		}
		// Another Start of the name linked its log first: append to it.
	}
	return nil, logError(fmt.Errorf("%s keeps appearing and vanishing", path))
}

// logError classifies a failure to open a log.
func logError(err error) error {
	kind := backend.ErrTransient
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, osfile.ErrUnsafeDir) {
		kind = backend.ErrInvalid
	}
	return fmt.Errorf("instance log: %v: %w", err, kind)
}

// follower reads a log as it grows, until its writers are gone.
type follower struct {
	f   *os.File
	ctx context.Context

	mu     sync.Mutex // serialises Reads
	ended  bool       // no writer holds the lock: what is left is all there is
	delay  time.Duration
	once   sync.Once
	closed chan struct{}
}

// Read returns what the log holds past the last Read, waiting for more
// output while the instance lives.
func (r *follower) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		select {
		case <-r.closed:
			return 0, os.ErrClosed
		default:
		}
		if err := r.ctx.Err(); err != nil {
			return 0, context.Cause(r.ctx)
		}
		n, err := r.f.Read(p)
		if n > 0 {
			r.delay = 0
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		if r.ended {
			return 0, io.EOF
		}
		// At the end: if no writer is left, one more read drains what
		// they wrote before they went.
		free, err := osfile.TryLock(r.f)
		if err != nil {
			return 0, err
		}
		if free {
			r.ended = true
			continue
		}
		r.delay = min(max(2*r.delay, followPollMin), followPollMax)
		t := time.NewTimer(r.delay)
		select {
		case <-t.C:
		case <-r.closed:
			t.Stop()
			return 0, os.ErrClosed
		case <-r.ctx.Done():
			t.Stop()
			return 0, context.Cause(r.ctx)
		}
	}
}

// Close closes the log; a Read waiting for output returns os.ErrClosed.
func (r *follower) Close() error {
	err := os.ErrClosed
	r.once.Do(func() {
		close(r.closed)
		r.mu.Lock() // wait for a Read under way
		err = r.f.Close()
		r.mu.Unlock()
	})
	return err
}
