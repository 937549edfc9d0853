package osproc

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// linkNoReplace gives tmp the name path unless path exists (an error
// wrapping fs.ErrExist): one rename with RENAME_NOREPLACE where the file
// system has it, else a link (moved false: tmp is still there).
func linkNoReplace(tmp, path string) (moved bool, err error) {
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return false, os.Link(tmp, path)
	}
	return false, &os.LinkError{Op: "renameat2", Old: tmp, New: path, Err: err}
}
