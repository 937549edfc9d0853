package osfile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// LinkNoReplace gives tmp the name path unless path exists (an error
// wrapping fs.ErrExist). On Linux it renames with RENAME_NOREPLACE: one
// file-system operation where link and unlink take two. File systems
// without it get a link, and then tmp is still there for the caller to
// remove (moved reports which happened).
func LinkNoReplace(tmp, path string) (moved bool, err error) {
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return false, os.Link(tmp, path)
	}
	return false, &os.LinkError{Op: "renameat2", Old: tmp, New: path, Err: err}
}
