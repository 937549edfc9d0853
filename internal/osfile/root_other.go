//go:build !unix

package osfile

import (
	"io/fs"
	"os"
	"sync/atomic"
)

// rootSys: a system without Unix symbolic-link controls or owners opens
// paths as they are, checking only that a file is regular.
type rootSys struct{}

// noOpenat2 is always true in effect here (the tests set it).
var noOpenat2 atomic.Bool

func (s *rootSys) open(abs string) error {
	_, err := os.Stat(abs)
	return err
}

func (s *rootSys) close() error { return nil }

func (s *rootSys) openFile(rel, abs string, flag int, perm fs.FileMode) (*os.File, fileStat, error) {
	fi, err := os.Lstat(abs)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fileStat{}, &fs.PathError{Op: "open", Path: abs, Err: ErrSymlink}
	}
	f, err := os.OpenFile(abs, flag, perm)
	if err != nil {
		return nil, fileStat{}, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fileStat{}, &fs.PathError{Op: "open", Path: abs, Err: ErrNotRegular}
	}
	return f, fileStat{any: true}, nil
}

func (s *rootSys) openDir(rel, abs string) (*os.File, error) {
	return os.Open(abs)
}
