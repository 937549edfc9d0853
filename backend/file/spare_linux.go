package file

import (
	"os"
	"syscall"
	"time"

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

// fsTopdirFL is FS_TOPDIR_FL (chattr +T), which x/sys/unix does not name.
const fsTopdirFL = 0x00020000

// spreadDirs marks dir, the store's directory, as the top of a directory
// hierarchy for ext2/3/4's Orlov allocator (chattr +T), so that the
// directories made in it (DIR/spare, DIR/tmp, DIR/c: where new files get
// their inodes) go to block groups with many free inodes, not to its own:
// on an ext4 without a journal, a group where many files were deleted in
// the last minute (the machine's temporary files) makes each new inode
// cost 100-250 µs of kernel time (recently_deleted), against 20-30 µs in
// a fresh group. A hint only: elsewhere, or if it fails, nothing changes.
func spreadDirs(dir *os.File) {
	fd := int(dir.Fd())
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFL != 0 {
		return
	}
	_ = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags|fsTopdirFL)
}

// changed returns when the file fi describes last changed: written, or
// renamed (its change time). A spare taken into DIR/tmp keeps the
// modification time it was made with until its first write.
func changed(fi os.FileInfo) time.Time {
	t := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if c := time.Unix(st.Ctim.Unix()); c.After(t) {
			t = c
		}
	}
	return t
}
