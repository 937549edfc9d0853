//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package computetest

import (
	"errors"
	"os"
)

const haveLocks = false

func lockExclusive(*os.File) error   { return errors.ErrUnsupported }
func tryLock(*os.File) (bool, error) { return false, errors.ErrUnsupported }
