package rack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rackfork/rack/backend"
)

// Stopping a process (SIGSTOP, SIGTSTP) and continuing it (SIGCONT).
//
// A process started as a new program (an OS process, a server) runs under
// a kernel of its own; its forker's kernel keeps a stand-in for it. A
// stopped kernel can neither read its inbox nor renew its lease, so the
// forker's kernel does the stopping, through its compute (backend.Pauser),
// and keeps the stopped kernel's lease, marked stopped, until it continues
// the program: the process is not declared lost while stopped, its own
// children (which watch its lease) go on, and ps shows it Stopped. If the
// forker's kernel dies, the lease lapses and the process is lost, as any
// whose forker died; on one machine the OS kills it with its forker
// (osproc's death signal), as Linux ends a stopped orphaned group with
// SIGHUP and SIGCONT.

// stopCont reports whether sig stops or continues a process.
func (s Signal) stopCont() bool { return s == SIGSTOP || s == SIGTSTP || s == SIGCONT }

// stopKeeper keeps a stopped child's kernel lease.
type stopKeeper struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// stopCont stops or continues pr, hosted here.
func (k *Kernel) stopCont(ctx context.Context, pr *proc, sig Signal) error {
	if !pr.remote {
		if pr.adopted && pr.rec.Kernel != "" && pr.rec.Kernel != k.id {
			// Sent to this kernel, which runs the program for a forker
			// elsewhere: the forker's kernel stops and continues it.
			if err := k.sendSignal(ctx, pr.rec.Kernel, pr.pid, sig); err != nil {
				return fmt.Errorf("rack: signal %d: %w", pr.pid, err)
			}
			return nil
		}
		return fmt.Errorf("rack: signal %d: cannot %s it: %w: it runs as a goroutine of its kernel (only a process started as a new program, e.g. an OS process on file://, can be stopped)",
			pr.pid, stopVerb(sig), errors.ErrUnsupported)
	}
	pa, ok := k.compute.(backend.Pauser)
	if !ok {
		return fmt.Errorf("rack: signal %d: cannot %s it: %w: this namespace's compute cannot pause a program", pr.pid, stopVerb(sig), errors.ErrUnsupported)
	}
	if isDone(pr) {
		return fmt.Errorf("rack: signal %d: %w", pr.pid, ErrFinished)
	}
	if !pr.launched.Load() {
		// Its instance is not started yet: the signal waits for it to
		// join, and comes back here through its kernel.
		pr.mu.Lock()
		pr.pendingSigs = append(pr.pendingSigs, sig)
		pr.mu.Unlock()
		return nil
	}
	name := k.instanceName(pr.pid)
	if sig == SIGCONT {
		return k.continueStopped(ctx, pr, pa)
	}
	host, _, err := k.records.host(ctx, pr.pid, pr.rec)
	if err != nil {
		return fmt.Errorf("rack: signal %d: %w", pr.pid, err)
	}
	pr.mu.Lock()
	if pr.stopped != nil {
		pr.mu.Unlock()
		return nil // already stopped
	}
	kctx, cancel := context.WithCancel(k.ctx)
	sk := &stopKeeper{cancel: cancel, done: make(chan struct{})}
	pr.stopped = sk
	pr.mu.Unlock()
	if err := pa.Pause(ctx, name); err != nil {
		cancel()
		close(sk.done)
		pr.mu.Lock()
		pr.stopped = nil
		pr.mu.Unlock()
		return fmt.Errorf("rack: signal %d: %w", pr.pid, err)
	}
	ttl := max(k.cfg.lease, defaultConfig().lease)
	if err := k.leases.putAs(ctx, host, ttl, true); err != nil {
		k.cfg.logger.Warn("rack: keeping a stopped process's lease", "pid", pr.pid, "err", err)
	}
	k.wg.Add(1)
	go k.keepStoppedLease(kctx, pr, sk, host, ttl)
	return nil
}

// keepStoppedLease renews the lease of stopped pr's kernel host until the
// process continues or ends.
func (k *Kernel) keepStoppedLease(ctx context.Context, pr *proc, sk *stopKeeper, host string, ttl time.Duration) {
	defer k.wg.Done()
	defer close(sk.done)
	t := time.NewTicker(ttl / renewEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pr.done:
			return
		case <-t.C:
			if err := k.leases.putAs(ctx, host, ttl, true); err != nil && ctx.Err() == nil {
				k.cfg.logger.Warn("rack: keeping a stopped process's lease", "pid", pr.pid, "err", err)
			}
		}
	}
}

// continueStopped continues pr if it is stopped.
func (k *Kernel) continueStopped(ctx context.Context, pr *proc, pa backend.Pauser) error {
	pr.mu.Lock()
	sk := pr.stopped
	pr.stopped = nil
	pr.mu.Unlock()
	if sk == nil {
		return nil // not stopped: SIGCONT does nothing
	}
	sk.cancel()
	<-sk.done
	if err := pa.Resume(ctx, k.instanceName(pr.pid)); err != nil {
		return fmt.Errorf("rack: signal %d: %w", pr.pid, err)
	}
	if host, _, err := k.records.host(ctx, pr.pid, pr.rec); err == nil {
		// Unmarked at once; its own kernel renews it from here.
		_ = k.leases.putAs(ctx, host, max(k.cfg.lease, defaultConfig().lease), false)
	}
	return nil
}

// continueForKill continues pr if it is stopped, so that it can act on
// the SIGKILL that follows (Linux wakes a stopped process to kill it).
func (k *Kernel) continueForKill(ctx context.Context, pr *proc) {
	if pa, ok := k.compute.(backend.Pauser); ok && pr.isStopped() {
		if err := k.continueStopped(ctx, pr, pa); err != nil {
			k.cfg.logger.Warn("rack: continuing a stopped process to kill it", "pid", pr.pid, "err", err)
		}
	}
}

// isStopped reports whether pr, a remote child's stand-in, is stopped.
func (pr *proc) isStopped() bool {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.stopped != nil
}

func stopVerb(sig Signal) string {
	if sig == SIGCONT {
		return "continue"
	}
	return "stop"
}
