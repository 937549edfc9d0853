//go:build !unix

package main

import (
	"os"
	"os/exec"

	"github.com/rackfork/rack"
)

// setProcAttr does nothing: process groups are a Unix notion.
func setProcAttr(*exec.Cmd) {}

// signalCommand kills the command on SIGKILL, SIGINT and SIGTERM, the
// signals a process can be sent here; others are dropped.
func signalCommand(p *os.Process, s rack.Signal) {
	switch s {
	case rack.SIGKILL, rack.SIGTERM:
		_ = p.Kill()
	case rack.SIGINT:
		_ = p.Signal(os.Interrupt)
	}
}

// exitSignal reports no signal: the exit code says it all here.
func exitSignal(*os.ProcessState) (int, bool) { return 0, false }
