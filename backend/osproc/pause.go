package osproc

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/rackfork/rack/backend"
)

// Pause stops the instance with SIGSTOP (backend.Pauser): on Linux its
// whole job, as a shell stops one (its process group, and the groups its
// descendants lead: a command the shell's bridge runs in a group of its
// own stops too); elsewhere its OS process. It fails wrapping
// errors.ErrUnsupported where the system has no SIGSTOP.
func (c *Compute) Pause(ctx context.Context, name string) error {
	return c.sendStop(ctx, "pause", name, pauseSignal)
}

// Resume continues what Pause stopped with SIGCONT (backend.Pauser).
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
	if err := signalJob(in.cmd.Process, sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("osproc: %s %s: %w", op, name, backend.ErrNotFound)
		}
		return fmt.Errorf("osproc: %s %s: %w", op, name, err)
	}
	return nil
}

var _ backend.Pauser = (*Compute)(nil)
