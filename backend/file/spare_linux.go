package file

import "golang.org/x/sys/unix"

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
