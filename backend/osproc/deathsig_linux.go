package osproc

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes Linux kill the child when its parent thread dies.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
