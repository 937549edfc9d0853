//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"

	"github.com/rackfork/rack"
)

// setProcAttr puts the command in a process group of its own, so that a
// signal reaches what it started too (a shell script's children), as a
// terminal's job control does; see also setDeathSignal.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
}

// signalCommand sends s to the command's process group.
func signalCommand(p *os.Process, s rack.Signal) {
	if err := syscall.Kill(-p.Pid, syscall.Signal(s)); err != nil {
		_ = p.Signal(syscall.Signal(s))
	}
}

// exitSignal returns the signal that ended a command, if one did.
func exitSignal(ps *os.ProcessState) (int, bool) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return int(ws.Signal()), true
}
