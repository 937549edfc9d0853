package file

import "golang.org/x/sys/unix"

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
