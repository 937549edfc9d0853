//go:build unix && !linux

package osfile

import (
	"errors"
	"io/fs"
	"os"
	"sync/atomic"
	"syscall"
)

// rootSys: without openat2, opens use O_NOFOLLOW, which checks only the
// last element of a path.
type rootSys struct{}

// noOpenat2 is always true in effect here (the tests set it).
var noOpenat2 atomic.Bool

func (s *rootSys) open(abs string) error {
	fi, err := os.Stat(abs)
	if err == nil && !fi.IsDir() {
		err = &fs.PathError{Op: "open", Path: abs, Err: syscall.ENOTDIR}
	}
	return err
}

func (s *rootSys) close() error { return nil }

func (s *rootSys) openFile(rel, abs string, flag int, perm fs.FileMode) (*os.File, fileStat, error) {
	f, err := os.OpenFile(abs, flag|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		return nil, fileStat{}, symlinkErr(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fileStat{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fileStat{}, &fs.PathError{Op: "open", Path: abs, Err: ErrNotRegular}
	}
	st := fileStat{any: true}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st = fileStat{uid: uint64(sys.Uid), nlink: uint64(sys.Nlink)}
	}
	return f, st, nil
}

func (s *rootSys) openDir(rel, abs string) (*os.File, error) {
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	return f, symlinkErr(err)
}

// symlinkErr marks an ELOOP as a symbolic link met.
func symlinkErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && errors.Is(pe.Err, syscall.ELOOP) {
		pe.Err = symlinkError{pe.Err}
	}
	return err
}
