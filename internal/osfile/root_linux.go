package osfile

import (
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2(2) has answered ENOSYS (Linux before 5.6,
// or a sandbox that filters it): opens then use O_NOFOLLOW alone, which
// checks only the last element of a path.
var noOpenat2 atomic.Bool

// rootSys holds the root directory's descriptor (O_PATH), which openat2
// resolves paths beneath; mu keeps it from being closed (and its number
// reused) while in use.
type rootSys struct {
	mu     sync.RWMutex
	fd     int
	closed bool
}

func (s *rootSys) open(abs string) error {
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	s.fd = fd
	return nil
}

func (s *rootSys) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return os.ErrClosed
	}
	s.closed = true
	return unix.Close(s.fd)
}

// openat opens rel (abs is the same path, absolute) beneath the root
// without following any symbolic link on the way.
func (s *rootSys) openat(rel, abs string, flags int, perm fs.FileMode) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
		if flags&unix.O_CREAT != 0 {
			how.Mode = uint64(perm.Perm())
		}
		for attempt := 0; ; attempt++ {
			s.mu.RLock()
			if s.closed {
				s.mu.RUnlock()
				return -1, os.ErrClosed
			}
			fd, err := unix.Openat2(s.fd, rel, &how)
			s.mu.RUnlock()
			switch {
			case err == nil:
				return fd, nil
			case err == unix.EINTR, err == unix.EAGAIN && attempt < 16:
				// EAGAIN: a rename or mount raced the lookup.
				continue
			case err == unix.ELOOP:
				return -1, symlinkError{err}
			case err == unix.EXDEV:
				return -1, fmt.Errorf("path leads out of %s: %w", s.path(abs, rel), err)
			case err == unix.ENOSYS:
				noOpenat2.Store(true)
			default:
				return -1, err
			}
			break
		}
	}
	for {
		fd, err := unix.Open(abs, flags, uint32(perm.Perm()))
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR:
			continue
		case err == unix.ELOOP:
			return -1, symlinkError{err}
		}
		return -1, err
	}
}

// path returns the root's path, from a path under it and that path
// relative to it.
func (s *rootSys) path(abs, rel string) string {
	if len(abs) > len(rel) {
		return abs[:len(abs)-len(rel)]
	}
	return abs
}

func (s *rootSys) openFile(rel, abs string, flag int, perm fs.FileMode) (*os.File, fileStat, error) {
	// O_NONBLOCK: a FIFO or a device opens at once (and is then refused)
	// instead of blocking the open.
	fd, err := s.openat(rel, abs, flag|unix.O_NONBLOCK, perm)
	if err != nil {
		return nil, fileStat{}, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fileStat{}, &fs.PathError{Op: "fstat", Path: abs, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fileStat{}, &fs.PathError{Op: "open", Path: abs, Err: ErrNotRegular}
	}
	if flag&unix.O_NONBLOCK == 0 {
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return nil, fileStat{}, &fs.PathError{Op: "fcntl", Path: abs, Err: err}
		}
	}
	return os.NewFile(uintptr(fd), abs), fileStat{uid: uint64(st.Uid), nlink: uint64(st.Nlink)}, nil
}

func (s *rootSys) openDir(rel, abs string) (*os.File, error) {
	fd, err := s.openat(rel, abs, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	return os.NewFile(uintptr(fd), abs), nil
}
