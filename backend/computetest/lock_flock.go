//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package computetest

import (
	"errors"
	"os"
	"syscall"
)

const haveLocks = true

// lockExclusive takes an exclusive flock on f, waiting for it.
func lockExclusive(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// tryLock reports whether it could lock f exclusively, that is whether
// nobody else holds a lock on its file; it releases the lock at once.
func tryLock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		case !errors.Is(err, syscall.EINTR):
			return false, err
		}
	}
}
