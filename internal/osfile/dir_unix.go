//go:build unix

package osfile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// CheckDir makes sure that the existing directory dir is this effective
// user's and that no other user can write in it: with group, its group
// may, and nobody else; without, nobody but its owner. Its errors name dir
// and say why.
func CheckDir(dir string, group bool) error {
	_, err := checkDir(dir, group)
	return err
}

// RestrictDir is CheckDir, and then takes away the read and search
// permissions that others (and without group, dir's group) have, so that
// nothing below dir can be read by them either; it keeps a set-group-ID
// bit.
func RestrictDir(dir string, group bool) error {
	fi, err := checkDir(dir, group)
	if err != nil || fi == nil {
		return err
	}
	want := fs.FileMode(0o700)
	if group {
		want = 0o770
	}
	if perm := fi.Mode().Perm(); perm&^want != 0 {
		mode := perm & want
		if fi.Mode()&fs.ModeSetgid != 0 {
			mode |= fs.ModeSetgid
		}
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("directory %s: taking away the other users' access (mode %#o): %w", dir, perm, err)
		}
	}
	return nil
}

// checkDir is CheckDir; it returns what it found of dir (nil where there
// is nothing to check).
func checkDir(dir string, group bool) (fs.FileInfo, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, nil
	}
	if me := os.Geteuid(); int64(st.Uid) != int64(me) {
		return nil, fmt.Errorf("%w %s: it belongs to user %d, not to this user (%d), who would write and read its files there", ErrUnsafeDir, dir, st.Uid, me)
	}
	perm := fi.Mode().Perm()
	if perm&0o002 != 0 {
		return nil, fmt.Errorf("%w %s: every user may write in it (mode %#o): another user could plant files or links there", ErrUnsafeDir, dir, perm)
	}
	if !group && perm&0o020 != 0 {
		return nil, fmt.Errorf("%w %s: its group may write in it (mode %#o): make it 0700, or share it with the group on purpose (a group-shared namespace)", ErrUnsafeDir, dir, perm)
	}
	return fi, nil
}
