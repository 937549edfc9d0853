package file

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// linkNoReplace gives tmp the name final unless final exists (then an
// error wrapping fs.ErrExist). On Linux it renames with RENAME_NOREPLACE:
// one file-system operation where link and unlink take two, which a fork
// pays three times. File systems without it get link, and tmp stays for
// the caller to remove (moved reports which happened).
func linkNoReplace(tmp, final string) (moved bool, err error) {
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return false, os.Link(tmp, final)
	}
	return false, &os.LinkError{Op: "renameat2", Old: tmp, New: final, Err: err}
}
