package main

import (
	"errors"

	"github.com/rackfork/rack"
)

// Signals sent to the shell's own process (kill PID of the shell, from
// itself or from another shell on the namespace) act as on bash: an
// interactive shell ignores SIGINT and SIGTERM (bash ignores SIGTERM when
// interactive, and SIGINT only interrupts the line being edited); SIGHUP,
// SIGUSR1 and SIGUSR2, and any of them for a shell that is not
// interactive, end it and its jobs, saying so, with status 128+n. SIGKILL
// ends it at once, saying so, with 137.

// watchOwnSignals passes the signals that end the shell to sh.ownSignal,
// until the returned stop.
func (sh *shell) watchOwnSignals(self *rack.Self) (stop func()) {
	ch := make(chan rack.Signal, 4)
	if err := self.Notify(ch, rack.SIGHUP, rack.SIGINT, rack.SIGTERM, rack.SIGUSR1, rack.SIGUSR2); err != nil {
		sh.errorf("rack: %v", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				if sh.interactive && (s == rack.SIGINT || s == rack.SIGTERM) {
					continue
				}
				select {
				case sh.ownSignal <- s:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		self.StopNotify(ch)
		close(done)
	}
}

// killedBy returns the signal that ended the shell's root process, from
// its Wait, or 0.
func killedBy(err error) rack.Signal {
	var ee *rack.ExitError
	if errors.As(err, &ee) {
		return ee.Signal()
	}
	return 0
}
