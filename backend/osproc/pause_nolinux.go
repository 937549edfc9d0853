//go:build !linux

package osproc

import "os"

// signalJob sends sig to the instance's OS process (on Linux, to its
// whole job: pause_linux.go).
func signalJob(p *os.Process, sig os.Signal) error { return p.Signal(sig) }
