package osfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files under a directory shared by processes that need not trust each
// other (a file:// store, its log directory) are opened through a Root:
// never through a symbolic link, whether in the last element of the path
// or in a directory on the way (openat2(2) with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS where Linux has it, O_NOFOLLOW on the last element
// elsewhere), never a FIFO or a device (an open that would block, or act,
// is refused: the opened file must be regular or a directory, as asked).

// ErrSymlink is wrapped by the errors of opens that met a symbolic link.
var ErrSymlink = errors.New("a symbolic link, which is never followed here")

// ErrNotRegular is wrapped by the errors of file opens that found
// something else than a regular file (a FIFO, a device, a socket, a
// directory).
var ErrNotRegular = errors.New("not a regular file")

// ErrNotOwned is wrapped by the errors of OpenOwned when the file belongs
// to another user or has other names (hard links).
var ErrNotOwned = errors.New("not a file of this user's alone")

// ErrUnsafeDir is wrapped by the errors of CheckDir and RestrictDir that
// refuse a directory (another user's, or one others may write in).
var ErrUnsafeDir = errors.New("refusing directory")

// Root is a directory under which files are opened without following
// symbolic links. Its methods are safe for concurrent use.
type Root struct {
	path string // absolute and clean
	sys  rootSys
}

// OpenRoot returns the Root of directory dir (absolute, or relative to the
// working directory; a symbolic link in dir itself is followed, once, now).
func OpenRoot(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r := &Root{path: abs}
	if err := r.sys.open(abs); err != nil {
		return nil, err
	}
	return r, nil
}

// Path returns the root's absolute path.
func (r *Root) Path() string { return r.path }

// Close releases the root's directory descriptor.
func (r *Root) Close() error { return r.sys.close() }

// paths returns name relative to the root, and absolute: name is
// absolute under the root, or relative to it.
func (r *Root) paths(name string) (rel, abs string, err error) {
	if !filepath.IsAbs(name) {
		if name == "." {
			return name, r.path, nil
		}
		return name, r.path + string(os.PathSeparator) + name, nil
	}
	if name == r.path {
		return ".", name, nil
	}
	if rest, ok := strings.CutPrefix(name, r.path); ok && len(rest) > 1 && os.IsPathSeparator(rest[0]) {
		return rest[1:], name, nil
	}
	return "", "", &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not under %s", r.path)}
}

// OpenFile opens the regular file name (absolute under the root, or
// relative to it) with flag (os.O_* flags) and, when it creates the file,
// perm. It fails with an error wrapping ErrSymlink if a symbolic link
// stands anywhere on the way below the root, and ErrNotRegular if the
// file is not a regular one; errors are *fs.PathError.
func (r *Root) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, _, err := r.openFile(name, flag, perm)
	return f, err
}

// OpenOwned is OpenFile for a file that must be this user's alone: of
// this effective user, with no other name (a hard link would let another
// user's name for one of this user's files become it). It fails with an
// error wrapping ErrNotOwned otherwise, having changed nothing: pass no
// os.O_TRUNC, but truncate once it returns.
func (r *Root) OpenOwned(name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, st, err := r.openFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if !st.owned() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: f.Name(), Err: ErrNotOwned}
	}
	return f, nil
}

// OpenDir opens the directory name (absolute under the root, or relative
// to it; "." or the root's path for the root) for reading its names.
func (r *Root) OpenDir(name string) (*os.File, error) {
	rel, abs, err := r.paths(name)
	if err != nil {
		return nil, err
	}
	return r.sys.openDir(rel, abs)
}

// ReadFile reads the regular file name whole (see OpenFile).
func (r *Root) ReadFile(name string) ([]byte, error) {
	f, err := r.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxReadFile))
}

// maxReadFile bounds ReadFile: it reads small files (markers, names).
const maxReadFile = 1 << 20

// openFile opens a regular file and returns what fstat told of it.
func (r *Root) openFile(name string, flag int, perm fs.FileMode) (*os.File, fileStat, error) {
	rel, abs, err := r.paths(name)
	if err != nil {
		return nil, fileStat{}, err
	}
	return r.sys.openFile(rel, abs, flag, perm)
}

// fileStat is what an open checked of the file it opened.
type fileStat struct {
	uid   uint64
	nlink uint64
	any   bool // no owner to check (a system without Unix owners)
}

// owned reports whether the file is this effective user's, with one name.
func (st fileStat) owned() bool {
	return st.any || st.uid == uint64(os.Geteuid()) && st.nlink == 1
}

// symlinkError is the error of an open that met a symbolic link: it is
// ErrSymlink, and the system's ELOOP.
type symlinkError struct{ errno error }

func (e symlinkError) Error() string { return ErrSymlink.Error() }

func (e symlinkError) Unwrap() []error { return []error{ErrSymlink, e.errno} }
