package file

import (
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames old to new unless new exists.
func renameNoReplace(old, new string) error {
	return unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
}

// sparesHelp reports whether spare files pay in dir: not on a file system
// in memory, where making a file costs no more than renaming one.
func sparesHelp(dir string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false
	}
	switch fs.Type {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC:
		return false
	}
	return true
}

// lockRefill takes the pool's refill lock, held by whoever has dir (DIR/spare,
// open) until it is closed, or reports that another process holds it.
func lockRefill(dir *os.File) bool {
	return unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
}
