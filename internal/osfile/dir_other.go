//go:build !unix

package osfile

import (
	"fmt"
	"os"
)

// CheckDir makes sure that dir is a directory. A system without Unix
// owners and permission bits has nothing more to check here.
func CheckDir(dir string, group bool) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// RestrictDir is CheckDir here.
func RestrictDir(dir string, group bool) error { return CheckDir(dir, group) }
