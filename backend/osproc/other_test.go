//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package osproc_test

import (
	"fmt"
	"os"
)

func serveTestChild(mode string) int {
	fmt.Fprintf(os.Stderr, "test child %q: not on this system\n", mode)
	return 2
}
