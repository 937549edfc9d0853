package osproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes Linux kill the child when its parent thread dies,
// and puts the child in a process group of its own, so that a terminal's
// Ctrl-C reaches only the program the user started: rack passes signals
// on to its children itself.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// setHostAttrs starts a host (backend.HostOption) in a session of its
// own, with no death signal: it outlives its forker, and no terminal's
// hang-up or Ctrl-C reaches it.
func setHostAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
}
