package osproc

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/rackfork/rack/backend"
)

// Pause stops the instance's OS process with SIGSTOP (backend.Pauser).
// Only that process stops: the OS processes its program started go on, as
// with kill -STOP on Linux. It fails wrapping errors.ErrUnsupported where
// the system has no SIGSTOP.
func (c *Compute) Pause(ctx context.Context, name string) error {
	return c.sendStop(ctx, "pause", name, pauseSignal)
}

// Resume continues the instance's OS process with SIGCONT
// (backend.Pauser).
func (c *Compute) Resume(ctx context.Context, name string) error {
	return c.sendStop(ctx, "resume", name, resumeSignal)
}

func (c *Compute) sendStop(ctx context.Context, op, name string, sig os.Signal) error {
	if !canPause {
		return fmt.Errorf("osproc: %s %s: %w: no SIGSTOP on this system", op, name, errors.ErrUnsupported)
	}
	c.mu.Lock()
	in := c.procs[name]
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("osproc: %s %s: %w", op, name, ErrClosed)
	case in == nil:
		return fmt.Errorf("osproc: %s %s: %w", op, name, backend.ErrNotFound)
	}
	select {
	case <-in.ready:
	case <-ctx.Done():
		return fmt.Errorf("osproc: %s %s: %w", op, name, context.Cause(ctx))
	}
	if in.cmd == nil {
		return fmt.Errorf("osproc: %s %s: %w", op, name, backend.ErrNotFound)
	}
	if err := in.cmd.Process.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("osproc: %s %s: %w", op, name, backend.ErrNotFound)
		}
		return fmt.Errorf("osproc: %s %s: %w", op, name, err)
	}
	return nil
}

var _ backend.Pauser = (*Compute)(nil)
