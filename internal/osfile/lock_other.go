//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package osfile

import "os"

// HaveLocks reports whether this system has flock(2): not this one, where
// Lock does nothing and TryLock always succeeds.
const HaveLocks = false

// Lock does nothing without flock(2).
func Lock(*os.File, bool) error { return nil }

// TryLock always succeeds without flock(2).
func TryLock(*os.File) (bool, error) { return true, nil }
