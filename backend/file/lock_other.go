//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package file

import "os"

// flock is a no-op where syscall.Flock is missing: there the store is safe
// for one process, and across processes for everything but the rare races
// described in the package documentation (lazy removal of an expired object
// racing an overwrite; DeleteContainer racing a Put).
func flock(f *os.File, exclusive, try bool) (bool, error) { return true, nil }

func sameFile(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

const haveFlock = false

func linked(fi os.FileInfo) bool { return true }
