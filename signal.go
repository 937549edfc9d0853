package rack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Signal is a signal number, as on Linux. It implements error so that it
// can be the cause of a cancelled context.
type Signal int

// The signals rack delivers.
const (
	SIGHUP  Signal = 1
	SIGINT  Signal = 2
	SIGKILL Signal = 9
	SIGUSR1 Signal = 10
	SIGUSR2 Signal = 12
	SIGTERM Signal = 15
	// SIGCONT continues a stopped process; SIGSTOP and SIGTSTP stop one
	// (see Process.Signal and the README's "Stopping a process").
	SIGCONT Signal = 18
	SIGSTOP Signal = 19
	SIGTSTP Signal = 20
)

var signalNames = map[Signal]string{
	SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGKILL: "SIGKILL",
	SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGTERM: "SIGTERM",
	SIGCONT: "SIGCONT", SIGSTOP: "SIGSTOP", SIGTSTP: "SIGTSTP",
}

// String returns the signal's name, e.g. "SIGTERM".
func (s Signal) String() string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	return "signal " + strconv.Itoa(int(s))
}

// Error makes a Signal usable as a context cancellation cause; it is the
// signal's name, like String (fmt prefers Error).
func (s Signal) Error() string { return s.String() }

func (s Signal) valid() bool { _, ok := signalNames[s]; return ok }

// ParseSignal reads a signal given as "TERM", "SIGTERM" or "15".
func ParseSignal(s string) (Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if sig := Signal(n); sig.valid() {
			return sig, nil
		}
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for sig, n := range signalNames {
		if n == name {
			return sig, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown signal %q (known: HUP INT KILL USR1 USR2 TERM CONT STOP TSTP)", ErrInvalid, s)
}

// Signal sends sig to the process. SIGTERM, SIGINT, SIGHUP, SIGUSR1 and
// SIGUSR2 cancel the target's ctx (unless it asked for them with Notify);
// SIGTERM escalates to SIGKILL after the grace period; SIGKILL ends the
// process and its non-detached descendants at once, leaves first.
//
// SIGSTOP and SIGTSTP stop the process's program, as Linux's SIGSTOP
// does (neither can be caught; its descendants go on), and SIGCONT
// continues it; signals sent meanwhile wait for it, as on Linux, except
// SIGKILL, which continues and kills it. Only a process started as a new
// program on a compute that can pause one (backend.Pauser: OS processes,
// file://) can be stopped; for others the error wraps
// errors.ErrUnsupported. While stopped, the process's kernel cannot renew
// its lease: its forker's kernel keeps it, marked stopped (ps shows state
// Stopped), and the lease lapses with the forker, so a stopped process
// never outlives the kernel that stopped it.
func (p *Process) Signal(ctx context.Context, sig Signal) error {
	if !sig.valid() {
		return fmt.Errorf("rack: signal %v: %w: %d is not a signal rack delivers", p, ErrInvalid, int(sig))
	}
	return p.k.signal(ctx, p.pid, p.rec, sig)
}

// Kill sends SIGKILL; it returns once a process hosted by this kernel has
// ended (a remote one ends as soon as its kernel sees the signal).
func (p *Process) Kill(ctx context.Context) error { return p.Signal(ctx, SIGKILL) }

// ErrFinished is returned when signalling a process that already ended.
var ErrFinished = errors.New("rack: process already finished")

func (k *Kernel) signal(ctx context.Context, pid PID, rec *record.Proc, sig Signal) error {
	if k.isClosed() {
		return fmt.Errorf("rack: signal %d: %w", pid, ErrClosed)
	}
	if pr := k.hosted(pid); pr != nil {
		if sig.stopCont() {
			return k.stopCont(ctx, pr, sig)
		}
		k.deliver(ctx, pr, sig)
		return nil
	}
	if _, err := k.records.exit(ctx, pid); err == nil {
		return fmt.Errorf("rack: signal %d: %w", pid, ErrFinished)
	}
	host, _, err := k.records.host(ctx, pid, rec)
	if err != nil {
		return fmt.Errorf("rack: signal %d: %w", pid, err)
	}
	if host == k.id {
		// Hosted here once and no longer: it has just finished.
		return fmt.Errorf("rack: signal %d: %w", pid, ErrFinished)
	}
	if sig.stopCont() && rec == nil {
		rec, _ = k.records.proc(ctx, pid)
	}
	if sig.stopCont() && rec != nil && rec.Kernel != "" {
		// The forker's kernel stops and continues the program (a stopped
		// kernel reads no inbox).
		host = rec.Kernel
	}
	if err := k.sendSignal(ctx, host, pid, sig); err != nil {
		return fmt.Errorf("rack: signal %d: %w", pid, err)
	}
	return nil
}

// deliver acts on a signal for a process hosted here.
func (k *Kernel) deliver(ctx context.Context, pr *proc, sig Signal) {
	if sig.stopCont() {
		if err := k.stopCont(ctx, pr, sig); err != nil {
			k.cfg.logger.Warn("rack: signal", "pid", pr.pid, "signal", sig.String(), "err", err)
		}
		return
	}
	if pr.remote {
		k.signalRemote(ctx, pr, sig)
		return
	}
	if sig == SIGKILL {
		k.kill(ctx, pr, SIGKILL)
		return
	}
	pr.mu.Lock()
	chans := pr.notify[sig]
	if len(chans) > 0 {
		pr.mu.Unlock()
		for _, ch := range chans {
			select { // like os/signal: never block the sender
			case ch <- sig:
			default:
			}
		}
		return
	}
	if sig == SIGTERM && pr.grace == nil {
		pr.grace = time.AfterFunc(k.cfg.grace, func() {
			kctx, cancel := context.WithTimeout(k.ctx, time.Minute)
			defer cancel()
			k.kill(kctx, pr, SIGKILL)
		})
	}
	pr.mu.Unlock()
	pr.cancel(sig)
}

// kill ends pr and its non-detached descendants, leaves first.
func (k *Kernel) kill(ctx context.Context, pr *proc, sig Signal) {
	if isDone(pr) {
		return
	}
	if pr.remote {
		k.killRemote(ctx, pr)
		return
	}
	// Fence first: from here the process can fork no child that this
	// snapshot misses (prepare checks killed under pr.mu), and its own
	// exit is recorded below, after its subtree's (see run).
	pr.killed.Store(true)
	pr.mu.Lock()
	children := append([]*proc(nil), pr.children...)
	pr.mu.Unlock()
	for _, c := range children {
		if c.rec.Detached || isDone(c) {
			continue
		}
		if c.k == k { // ours, running, queued or not scheduled yet
			k.kill(ctx, c, sig)
			continue
		}
		if err := k.signal(ctx, c.pid, c.rec, sig); err == nil {
			_, _ = k.awaitExit(ctx, c.pid, c.rec)
		}
	}
	pr.cancel(sig)
	k.finish(pr, &record.Exit{Code: 128 + int(sig), Signal: int(sig), Reason: "killed by " + sig.String()})
	if err := k.compute.Stop(ctx, k.instanceName(pr.pid)); err != nil && !errors.Is(err, backend.ErrNotFound) {
		k.cfg.logger.Warn("rack: stopping instance", "pid", pr.pid, "err", err)
	}
}

// Notify asks for sigs to be delivered to ch instead of cancelling the
// process's ctx, as os/signal.Notify does; sends never block. SIGKILL,
// SIGSTOP, SIGTSTP and SIGCONT cannot be caught (the program's forker
// stops and continues it from outside).
func (s *Self) Notify(ch chan<- Signal, sigs ...Signal) error {
	pr, err := s.selfProc("notify")
	if err != nil {
		return err
	}
	if ch == nil {
		return fmt.Errorf("rack: notify: %w: nil channel", ErrInvalid)
	}
	for _, s := range sigs {
		if !s.valid() || s == SIGKILL || s.stopCont() {
			return fmt.Errorf("rack: notify: %w: %v cannot be caught", ErrInvalid, s)
		}
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.notify == nil {
		pr.notify = make(map[Signal][]chan<- Signal)
	}
	for _, s := range sigs {
		pr.notify[s] = append(pr.notify[s], ch)
	}
	return nil
}

// StopNotify undoes Notify for ch: its signals take their default action
// again. A Self not made by rack has no Notify channels to stop.
func (s *Self) StopNotify(ch chan<- Signal) {
	pr := s.pr
	if pr == nil {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for s, chans := range pr.notify {
		kept := chans[:0]
		for _, c := range chans {
			if c != ch {
				kept = append(kept, c)
			}
		}
		pr.notify[s] = kept
	}
}

// sendSignal puts sig for pid into kernel host's inbox.
func (k *Kernel) sendSignal(ctx context.Context, host string, pid PID, sig Signal) error {
	return k.sendMessage(ctx, host, record.Signal{PID: int64(pid), Signal: int(sig), From: k.id})
}

// sendMessage puts msg into kernel host's inbox.
func (k *Kernel) sendMessage(ctx context.Context, host string, msg record.Signal) error {
	key := fmt.Sprintf("%s%010d.%s.%012d", record.SignalInbox(host), msg.PID, k.id, k.seq.Add(1))
	// The name is this kernel's own (its id, its sequence): no rival
	// writes it, so the create needs no read-back. The summary carries
	// the message: the inbox's listing delivers it without a read.
	return k.ns.putWith(ctx, key, record.Encode(msg),
		&backend.PutOptions{CreateOnly: true, NoRival: true, ContentType: record.SignalSummary(&msg)})
}

// sigchld is the signal number of the note a kernel leaves in a forker's
// inbox when a child it ran has exited. Programs do not see it.
const sigchld = 17
