//go:build unix

package handoff

import (
	"os"
	"syscall"
)

// Supported reports whether this system can hand variables over through
// an inherited descriptor (exec.Cmd.ExtraFiles).
const Supported = true

// isPipe reports whether fd is an open pipe: a stray FDEnv must not make
// the program read, and close, a descriptor it holds for something else.
func isPipe(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFIFO
}

// WriteNow writes data into the pipe w without blocking, and reports how
// much it wrote: a hand-over larger than the pipe's buffer is written on
// by the caller once the program runs.
func WriteNow(w *os.File, data []byte) int {
	rc, err := w.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Write(func(fd uintptr) bool {
		for n < len(data) {
			m, err := syscall.Write(int(fd), data[n:])
			if err == syscall.EINTR {
				continue
			}
			if err != nil || m <= 0 {
				break
			}
			n += m
		}
		return true // one attempt, whatever it wrote
	})
	return n
}
