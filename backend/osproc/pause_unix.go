//go:build unix

package osproc

import "syscall"

// Pause and Resume stop and continue the instance's OS process.
var pauseSignal, resumeSignal = syscall.SIGSTOP, syscall.SIGCONT

const canPause = true
