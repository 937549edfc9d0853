package rack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// How a process ends: finish records its exit once (closing its ends on
// its behalf and freeing its slot), a Program's result becomes an exit
// record, and a waiter turns one back into an error.

// exitFromError turns a Program's result into an exit record.
func exitFromError(pr *proc, err error) *record.Exit {
	if context.Cause(pr.ctx) == SIGKILL {
		// kill cancels the ctx before it records the exit: a program that
		// returns in between (even nil) was still killed.
		return &record.Exit{Code: 128 + int(SIGKILL), Signal: int(SIGKILL), Reason: "killed by " + SIGKILL.String()}
	}
	if err == nil {
		return &record.Exit{}
	}
	var ec *exitCode
	if errors.As(err, &ec) {
		return &record.Exit{Code: ec.code, Reason: ec.reason}
	}
	var sig Signal
	if cause := context.Cause(pr.ctx); errors.As(cause, &sig) && (errors.Is(err, context.Canceled) || errors.Is(err, sig)) {
		return &record.Exit{Code: 128 + int(sig), Signal: int(sig), Reason: "terminated by " + sig.String()}
	}
	return &record.Exit{Code: 1, Reason: err.Error()}
}

// finish ends a hosted process exactly once: it fences the program, closes
// its pipe ends on its behalf (so no reader hangs), records the exit (the
// first record in the store wins) and wakes waiters.
func (k *Kernel) finish(pr *proc, ex *record.Exit) {
	pr.once.Do(func() {
		pr.killed.Store(true)
		pr.cancel(ErrKilled)
		// Its host's slot is freed before the exit is seen, while its
		// ends close: neither waits for the other.
		var released chan struct{}
		if pr.release != nil {
			released = make(chan struct{})
			go func() {
				defer close(released)
				pr.release()
			}()
		}
		if err := k.closeEnds(pr, ex.Signal != int(SIGKILL) && !ex.Lost); err != nil && ex.By == "" && ex.Code == 0 && ex.Signal == 0 {
			// Its output was acknowledged to it but could not be
			// delivered: a success would hide the loss.
			ex.Code, ex.Reason = 1, "output lost at exit: "+err.Error()
		}
		pr.mu.Lock()
		if pr.grace != nil {
			pr.grace.Stop()
		}
		pr.notify = nil
		pr.mu.Unlock()
		if released != nil {
			<-released
		}
		ctx := context.WithoutCancel(k.ctx) // recorded even while the kernel closes
		if ex.By == "" {                    // not read from the store: ours to record
			ex.PID, ex.By, ex.Ended = int64(pr.pid), k.id, time.Now().UnixNano()
			ex.Stderr = pr.tail.String()
			err := k.persist(ctx, "exit record", pr.pid, func() (bool, error) {
				err := k.ns.putSummarized(ctx, record.ExitKey(int64(pr.pid)), record.Encode(ex), true, record.ExitSummary(ex))
				return err != nil, err
			})
			if errors.Is(err, backend.ErrExist) {
				var first record.Exit
				if err = k.ns.getRecord(ctx, record.ExitKey(int64(pr.pid)), &first); err == nil {
					ex = &first
				}
			}
			if err != nil {
				k.cfg.logger.Error("rack: recording exit", "pid", pr.pid, "err", err)
			}
			if pr.remote {
				// Its own kernel did not get to close its pipe ends.
				k.closeRecordedEnds(ctx, pr.rec)
			}
			if pr.adopted && err == nil && k.ns.notifier == nil {
				// Tell the forker at once (its inbox), as Linux sends
				// SIGCHLD: its stand-in need not poll for the exit. (A
				// store that notifies tells it without a note.)
				msg := record.Signal{PID: pr.rec.PPID, Signal: sigchld, From: k.id, Child: int64(pr.pid)}
				if ex.By == k.id && ex.Reason == "" && ex.Stderr == "" {
					// All of it fits the note's summary: the forker need
					// not read the record.
					e := *ex
					msg.Exit = &e
				}
				if err := k.sendMessage(ctx, pr.rec.Kernel, msg); err != nil {
					k.cfg.logger.Warn("rack: telling the forker of an exit", "pid", pr.pid, "err", err)
				}
			}
		}
		pr.exit = ex
		k.records.exits.Store(pr.pid, ex)
		if pr.remote && k.cfg.hosts.on {
			k.hostChildEnded(pr.pid)
		}
		if r, ok := k.compute.(backend.Reaper); ok && pr.remote && pr.launched.Load() && pr.host == "" {
			// Its instance may outlive its program (a server): end it now.
			r.Reap(k.instanceName(pr.pid))
		}
		next := k.sched.exit(pr)
		close(pr.done)
		if next != nil {
			go k.start(next)
		}
	})
}

// persistPause is the first pause between persist's tries, doubled up
// to persistPauseMax.
const (
	persistPause    = time.Second
	persistPauseMax = 5 * time.Second
)

// persist runs put, which reports whether to try again and its error, until
// it succeeds or fails for good: it tries again, after a pause, while put
// fails transiently (each try already retried through its own budget), this
// kernel's lease holds and the kernel is open. So what a live kernel
// acknowledged (an exit, a pipe's end) is recorded through any outage its
// lease survives; past the lease, its processes are lost to the others
// anyway.
func (k *Kernel) persist(ctx context.Context, what string, pid PID, put func() (bool, error)) error {
	pause := persistPause
	for {
		again, err := put()
		if err == nil || !again || !errors.Is(err, backend.ErrTransient) || !k.leases.held() || k.ctx.Err() != nil {
			return err
		}
		k.cfg.logger.Warn("rack: store unavailable, trying again", "what", what, "pid", pid, "err", err)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-k.ctx.Done():
			t.Stop()
			return err
		}
		pause = min(2*pause, persistPauseMax)
	}
}

func isDone(pr *proc) bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// closeEnds closes every pipe end and file the process still holds. Files
// it left open are discarded (their writes were never acknowledged), but
// a file given as its stdout is committed unless the process was killed.
// It returns what failed: output the process wrote but that could not be
// delivered.
func (k *Kernel) closeEnds(pr *proc, commit bool) error {
	var failed []error
	pr.mu.Lock()
	ws := make([]*PipeWriter, 0, len(pr.writers))
	for w := range pr.writers {
		ws = append(ws, w)
	}
	rs := make([]*PipeReader, 0, len(pr.readers))
	for r := range pr.readers {
		rs = append(rs, r)
	}
	fs := make([]*File, 0, len(pr.files))
	for f := range pr.files {
		fs = append(fs, f)
	}
	pr.mu.Unlock()
	for _, w := range ws {
		err := k.persist(context.WithoutCancel(k.ctx), "pipe close record", pr.pid, func() (bool, error) {
			err := w.close()
			// Closed despite an error: a flush failed, and trying again
			// would not bring its bytes back.
			return err != nil && !w.isClosed(), err
		})
		if err != nil {
			k.cfg.logger.Error("rack: closing pipe end on exit", "pid", pr.pid, "pipe", w.pipe, "err", err)
			failed = append(failed, err)
		}
	}
	for _, r := range rs {
		_ = r.Close()
	}
	for _, f := range fs {
		if commit && f.commitOnExit {
			if err := f.Close(); err != nil {
				k.cfg.logger.Error("rack: committing output file on exit", "pid", pr.pid, "err", err)
				failed = append(failed, err)
			}
			continue
		}
		f.abort(fmt.Errorf("rack: process %d ended before closing %s: %w", pr.pid, f.path, ErrKilled))
	}
	return errors.Join(failed...)
}

// awaitExit waits for pid's exit record, watching its kernel's lease so a
// vanished kernel cannot leave the waiter hanging.
func (k *Kernel) awaitExit(ctx context.Context, pid PID, rec *record.Proc) (*record.Exit, error) {
	var delay time.Duration
	leaseCheck := time.Now().Add(k.cfg.lease / 2)
	for {
		ch := k.ns.changed(record.ExitKey(int64(pid)))
		ex, err := k.records.exit(ctx, pid)
		if err == nil {
			return ex, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			if k.ctx.Err() != nil {
				// The kernel closed (its store with it) during the look.
				return nil, ErrClosed
			}
			return nil, err
		}
		if time.Now().After(leaseCheck) {
			leaseCheck = time.Now().Add(k.cfg.lease / 2)
			alive, err := k.leases.alive(ctx, rec.Kernel)
			if err == nil && !alive {
				k.recordLost(ctx, pid, "its kernel "+rec.Kernel+" stopped renewing its lease")
				continue
			}
		}
		if ch != nil {
			// Notified stores still need the occasional lease check.
			t := time.NewTimer(time.Until(leaseCheck))
			select {
			case <-ch:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, context.Cause(ctx)
			case <-k.ctx.Done():
				t.Stop()
				return nil, ErrClosed
			}
			t.Stop()
			continue
		}
		if delay, err = k.ns.waitChange(ctx, nil, nil, delay); err != nil {
			return nil, err
		}
	}
}

// recordLost records that pid was lost, unless its exit is already known.
func (k *Kernel) recordLost(ctx context.Context, pid PID, why string) {
	ex := &record.Exit{PID: int64(pid), Code: -1, Lost: true, Reason: why, Ended: time.Now().UnixNano(), By: k.id}
	// An exit there first (or landing at once) says what it says: putOnce.
	if err := k.ns.putOnce(ctx, record.ExitKey(int64(pid)), record.Encode(ex), record.ExitSummary(ex)); err != nil {
		k.cfg.logger.Warn("rack: recording lost process", "pid", pid, "err", err)
	}
}

func (p *Process) exitError(ex *record.Exit) error {
	switch {
	case ex.Lost:
		return fmt.Errorf("rack: process %v: %w: %s", p, ErrLost, ex.Reason)
	case ex.Code == 0 && ex.Signal == 0:
		return nil
	}
	return &ExitError{PID: p.pid, Name: p.rec.Name, code: ex.Code, signal: Signal(ex.Signal), Reason: ex.Reason, Stderr: ex.Stderr}
}

// ExitError reports a process that ran and failed.
type ExitError struct {
	PID  PID
	Name string
	// Reason is the returned error's text, the panic value, or the signal.
	Reason string
	// Stderr holds the last 4 KiB the process wrote to its stderr.
	Stderr string
	code   int
	signal Signal
}

// Code is the exit code: 1 for a returned error, 2 for a panic, 128+n
// when signal n ended it, or the code given to Exit.
func (e *ExitError) Code() int { return e.code }

// Signal is the signal that ended the process, or 0.
func (e *ExitError) Signal() Signal { return e.signal }

func (e *ExitError) Error() string {
	s := fmt.Sprintf("rack: process %s[%d] exited with code %d", e.Name, e.PID, e.code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Exit returns an error that makes the process exit with code; return it
// from a Program. The optional reason is shown in ExitError.
func Exit(code int, reason ...string) error {
	return &exitCode{code: code, reason: strings.Join(reason, " ")}
}

type exitCode struct {
	code   int
	reason string
}

func (e *exitCode) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("exit %d: %s", e.code, e.reason)
	}
	return fmt.Sprintf("exit %d", e.code)
}

// tailBuffer keeps the last stderrTailSize bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) >= stderrTailSize {
		t.buf = append(t.buf[:0], p[len(p)-stderrTailSize:]...)
		return len(p), nil
	}
	if over := len(t.buf) + len(p) - stderrTailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// isClosed reports whether w's close record is written.
func (w *PipeWriter) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}
