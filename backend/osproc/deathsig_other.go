//go:build !linux

package osproc

import "os/exec"

// setDeathSignal does nothing where there is no Pdeathsig: the lease
// watchdog alone ends orphans.
func setDeathSignal(*exec.Cmd) {}

// setHostAttrs does nothing here: a host outlives its forker anyway.
func setHostAttrs(*exec.Cmd) {}
