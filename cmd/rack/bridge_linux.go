package main

import "syscall"

// setDeathSignal has the command killed if the bridge's thread dies
// without killing it (the OS process ended at once, with SIGKILL say).
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
