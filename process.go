package rack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// Program is the code a rack process runs. ctx is cancelled when the
// process is signalled (context.Cause tells which Signal) or killed; self
// is the process's own handle, the only one that can fork, make pipes and
// set its status.
type Program func(ctx context.Context, self *Self) error

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
)

var signalNames = map[Signal]string{
	SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGKILL: "SIGKILL",
	SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGTERM: "SIGTERM",
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
	return 0, fmt.Errorf("%w: unknown signal %q (known: HUP INT KILL USR1 USR2 TERM)", ErrInvalid, s)
}

// Spec describes a process to fork or start.
type Spec struct {
	// Program is the name of a program registered with Register; empty
	// means the forker's own program (fork semantics).
	Program string
	// Name is what ps shows; the default is the program's name.
	Name string
	// Args and Env are the child's arguments and environment.
	Args []string
	Env  map[string]string
	// Stdin may be nil (empty input), a *PipeReader of the forker (which
	// moves to the child) or a *File (the child reads its path).
	Stdin io.Reader
	// Stdout and Stderr may be nil (inherit the forker's), a *PipeWriter of
	// the forker (duplicated for the child) or a *File (the child writes
	// its path). Anything else cannot cross machines and is refused.
	Stdout io.Writer
	Stderr io.Writer
	// Group puts the child in a group; nil inherits the forker's group.
	Group *Group
	// Detached children survive their parent's death.
	Detached bool
	// Options are compute settings for backends that use them (the OS
	// process compute: "exe" (backend.ExeOption), the program to start
	// instead of this one; image, flavor... for VMs); a child inherits
	// its parent's unless set.
	Options map[string]string
}

// Limits on what a Spec may carry.
const (
	maxArgsBytes   = 128 << 10
	maxEnvBytes    = 128 << 10
	maxStatusBytes = 4 << 10
	stderrTailSize = 4 << 10
)

// Process is a handle to a rack process, as *os.Process is: anyone holding
// one can read what the process was started with, Wait for it, Signal and
// Kill it. What only the process itself may do (fork, make pipes, set its
// status, catch signals, use its standard streams) is on Self.
type Process struct {
	k     *Kernel
	pid   PID
	rec   *record.Proc
	local *proc // set when this kernel hosts the process
}

// Self is a process's own handle: the one its Program is given, or that
// FromContext finds in its ctx. It embeds the process's *Process, so
// everything any holder may do works on self too (PID, Args, Getenv,
// Group, Signal...; Wait on oneself returns only once one was killed, or
// ctx ends), and adds what only the process itself may do: Fork, ForkAll,
// Pipe, OpenFifoReader, OpenFifoWriter, Notify, StopNotify, SetStatus,
// Stdin, Stdout and Stderr. A Self always acts as the process rack gave it
// for; one not made by rack refuses these calls with ErrInvalid.
type Self struct {
	*Process
	pr *proc // the hosted process; nil in a Self not made by rack
}

// self returns pr's own handle.
func (pr *proc) self() *Self {
	return &Self{Process: pr.handle(), pr: pr}
}

// proc is the state of a process hosted by this kernel.
type proc struct {
	k       *Kernel
	pid     PID
	rec     *record.Proc
	prog    Program
	ctx     context.Context
	cancel  context.CancelCauseFunc
	killed  atomic.Bool // fenced: the program's further writes are refused
	done    chan struct{}
	once    sync.Once
	exit    *record.Exit
	tail    tailBuffer
	started bool
	remote  bool // runs as a new program with a kernel of its own
	adopted bool // this kernel runs it for a forker in another kernel
	// launched: the compute has started the remote child's instance.
	launched atomic.Bool
	// portable: its program can be found by a new copy of the binary
	// (registered, or the one Main runs).
	portable bool
	// pendingSigs wait for a remote child to join its namespace.
	pendingSigs []Signal

	stdin          io.Reader
	stdout, stderr io.Writer

	mu       sync.Mutex
	writers  map[*PipeWriter]struct{}
	readers  map[*PipeReader]struct{}
	files    map[*File]struct{}
	notify   map[Signal][]chan<- Signal
	children []*proc // children forked by this process
	status   string
	grace    *time.Timer
}

// PID returns the process id.
func (p *Process) PID() PID { return p.pid }

// PPID returns the parent's pid (InitPID for a root process).
func (p *Process) PPID() PID { return PID(p.rec.PPID) }

// Name returns the name ps shows.
func (p *Process) Name() string { return p.rec.Name }

// Args returns a copy of the process's arguments.
func (p *Process) Args() []string { return append([]string(nil), p.rec.Args...) }

// Getenv returns the value of the process's environment variable key.
func (p *Process) Getenv(key string) string { return p.rec.Env[key] }

// Environ returns a copy of the process's environment.
func (p *Process) Environ() map[string]string {
	m := make(map[string]string, len(p.rec.Env))
	for k, v := range p.rec.Env {
		m[k] = v
	}
	return m
}

// Kernel returns the kernel this handle belongs to.
func (p *Process) Kernel() *Kernel { return p.k }

// Group returns the process's group, or nil.
func (p *Process) Group() *Group {
	if p.rec.Group == 0 {
		return nil
	}
	return p.k.groupHandle(PID(p.rec.Group))
}

// Stdin returns the process's standard input.
func (s *Self) Stdin() io.Reader {
	if s.pr == nil {
		return errStream{errNotMade("stdin")}
	}
	return s.pr.stdin
}

// Stdout returns the process's standard output.
func (s *Self) Stdout() io.Writer {
	if s.pr == nil {
		return errStream{errNotMade("stdout")}
	}
	return s.pr.stdout
}

// Stderr returns the process's standard error. Its last 4 KiB travel with
// the exit status (ExitError.Stderr).
func (s *Self) Stderr() io.Writer {
	if s.pr == nil {
		return errStream{errNotMade("stderr")}
	}
	return s.pr.stderr
}

// errStream is a standard stream of a Self not made by rack: every call
// fails with its error.
type errStream struct{ err error }

func (e errStream) Read([]byte) (int, error)  { return 0, e.err }
func (e errStream) Write([]byte) (int, error) { return 0, e.err }

// errNotMade is the error of a self-only call op on a Self not made by rack.
func errNotMade(op string) error {
	return fmt.Errorf("rack: %s: %w: a Self not made by rack (use the one a Program is given, or FromContext)", op, ErrInvalid)
}

// String describes the process as "name[pid]".
func (p *Process) String() string { return fmt.Sprintf("%s[%d]", p.rec.Name, p.pid) }

// selfProc returns the hosted state for calls only the process itself may
// make, refusing them once it was killed.
func (s *Self) selfProc(op string) (*proc, error) {
	pr := s.pr
	if pr == nil {
		return nil, errNotMade(op)
	}
	if pr.k.isClosed() {
		// Close killed the process too; say both.
		if pr.killed.Load() {
			return nil, fmt.Errorf("rack: %s: %v: %w: %w", op, pr.handle(), ErrClosed, ErrKilled)
		}
		return nil, fmt.Errorf("rack: %s: %w", op, ErrClosed)
	}
	if pr.killed.Load() {
		return nil, fmt.Errorf("rack: %s: %v: %w", op, pr.handle(), ErrKilled)
	}
	return pr, nil
}

// SetStatus sets the free text ps shows for this process (4 KiB at most).
func (s *Self) SetStatus(ctx context.Context, text string) error {
	pr, err := s.selfProc("set status")
	if err != nil {
		return err
	}
	if len(text) > maxStatusBytes || !utf8.ValidString(text) {
		return fmt.Errorf("rack: set status: %w: status must be valid UTF-8 of at most %d bytes", ErrInvalid, maxStatusBytes)
	}
	if err := pr.k.putSummarized(ctx, record.StatusKey(int64(pr.pid)), []byte(text), false, record.StatusSummary(text)); err != nil {
		return fmt.Errorf("rack: set status of %v: %w", pr.handle(), err)
	}
	pr.mu.Lock()
	pr.status = text
	pr.mu.Unlock()
	return nil
}

func (pr *proc) statusText() string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.status
}

// Fork starts a child process described by spec and returns its handle
// once it is recorded in the namespace; it may still be queued for a free
// slot (see WithMaxRunning).
func (s *Self) Fork(ctx context.Context, spec Spec) (*Process, error) {
	pr, err := s.selfProc("fork")
	if err != nil {
		return nil, err
	}
	child, err := pr.k.prepare(ctx, pr, spec, nil)
	if err != nil {
		return nil, err
	}
	pr.k.schedule(child)
	return child.handle(), nil
}

// ForkAll forks one child per spec, all or nothing: if one fork fails,
// the children already forked are killed and reaped before it returns the
// error.
func (s *Self) ForkAll(ctx context.Context, specs []Spec) ([]*Process, error) {
	pr, err := s.selfProc("fork")
	if err != nil {
		return nil, err
	}
	children := make([]*proc, 0, len(specs))
	for i, spec := range specs {
		c, err := pr.k.prepare(ctx, pr, spec, nil)
		if err != nil {
			// None has started yet: record them as never started.
			for _, c := range children {
				pr.k.finish(c, &record.Exit{Code: -1, Lost: true, Reason: "fork aborted: a sibling's fork failed"})
			}
			return nil, fmt.Errorf("rack: fork all: spec %d: %w", i, err)
		}
		children = append(children, c)
	}
	out := make([]*Process, len(children))
	for i, c := range children {
		pr.k.schedule(c)
		out[i] = c.handle()
	}
	return out, nil
}

func (pr *proc) handle() *Process {
	return &Process{k: pr.k, pid: pr.pid, rec: pr.rec, local: pr}
}

// Start starts a root process (PPID 1) running prog, or the program that
// spec.Program names when prog is nil. It is what Main does, for tests,
// tools and shells. A root's nil Stdin, Stdout and Stderr are this
// kernel's console.
func (k *Kernel) Start(ctx context.Context, spec Spec, prog Program) (*Process, error) {
	if k.isClosed() {
		return nil, fmt.Errorf("rack: start: %w", ErrClosed)
	}
	pr, err := k.prepare(ctx, nil, spec, prog)
	if err != nil {
		return nil, err
	}
	k.schedule(pr)
	return pr.handle(), nil
}

// prepare validates spec, allocates the pid, hands the pipe ends over and
// writes the process record: after it the process exists in the namespace.
func (k *Kernel) prepare(ctx context.Context, parent *proc, spec Spec, prog Program) (*proc, error) {
	rec := &record.Proc{PPID: int64(InitPID), Program: spec.Program, Kernel: k.id, Detached: spec.Detached}
	switch {
	case spec.Program != "":
		var ok bool
		if prog, ok = lookupProgram(spec.Program); !ok {
			return nil, fmt.Errorf("rack: fork: %w: program %q is not registered (see rack.Register)", ErrInvalid, spec.Program)
		}
	case prog != nil:
	case parent != nil:
		prog, rec.Program = parent.prog, parent.rec.Program
	default:
		return nil, fmt.Errorf("rack: start: %w: no program (pass one, or name a registered one in Spec.Program)", ErrInvalid)
	}
	rec.Name = spec.Name
	if rec.Name == "" {
		switch {
		case spec.Program != "":
			rec.Name = spec.Program
		case parent != nil:
			rec.Name = parent.rec.Name
		default:
			rec.Name = defaultProgramName()
		}
	}
	if err := validName("Spec.Name", rec.Name); err != nil {
		return nil, fmt.Errorf("rack: fork: %w", err)
	}
	if err := validArgs(spec.Args, spec.Env, "Spec.Env"); err != nil {
		return nil, fmt.Errorf("rack: fork %s: %w", rec.Name, err)
	}
	rec.Args = append([]string(nil), spec.Args...)
	if len(spec.Env) > 0 {
		rec.Env = make(map[string]string, len(spec.Env))
		for key, v := range spec.Env {
			rec.Env[key] = v
		}
	}
	if err := validArgs(nil, spec.Options, "Spec.Options"); err != nil {
		return nil, fmt.Errorf("rack: fork %s: %w", rec.Name, err)
	}
	switch {
	case len(spec.Options) > 0:
		rec.Options = make(map[string]string, len(spec.Options))
		for key, v := range spec.Options {
			rec.Options[key] = v
		}
	case parent != nil:
		rec.Options = parent.rec.Options // records never change: sharing is safe
	}
	if spec.Group != nil {
		if spec.Group.k != k {
			return nil, fmt.Errorf("rack: fork %s: %w: Spec.Group belongs to another kernel", rec.Name, ErrInvalid)
		}
		rec.Group = int64(spec.Group.gid)
	} else if parent != nil {
		rec.Group = parent.rec.Group
	}
	if parent != nil {
		rec.PPID = int64(parent.pid)
	}
	// Check the streams before anything is written, so a refused spec
	// leaves no trace.
	if err := k.checkStreams(parent, &spec); err != nil {
		return nil, fmt.Errorf("rack: fork %s: %w", rec.Name, err)
	}
	pid, err := k.allocPID(ctx)
	if err != nil {
		return nil, err
	}
	rec.PID = int64(pid)
	pr := &proc{k: k, pid: pid, rec: rec, prog: prog, done: make(chan struct{})}
	pr.ctx, pr.cancel = context.WithCancelCause(context.WithValue(context.Background(), processKey{}, pr))
	// Roots run here, whatever the compute: their Program is a Go value.
	// A child started as a new program must be able to find its code
	// there: by registered name, or as the program Main runs.
	pr.portable = spec.Program != "" || rec.Options[backend.ExeOption] != "" ||
		(parent == nil && ctx.Value(mainProgramKey{}) != nil) || (parent != nil && parent.portable)
	pr.remote = k.remote && parent != nil
	if pr.remote && !pr.portable {
		return nil, fmt.Errorf("rack: fork %s: %w: the forker runs a Program given to Kernel.Start, which a new OS process or VM cannot find: register it (rack.Register) and name it in Spec.Program", rec.Name, ErrInvalid)
	}
	if err := k.handStreams(ctx, parent, pr, &spec); err != nil {
		return nil, fmt.Errorf("rack: fork %s: %w", rec.Name, err)
	}
	rec.Started = time.Now().UnixNano()
	if err := k.putSummarized(ctx, record.ProcKey(int64(pid)), record.Encode(rec), true, record.ProcSummary(rec)); err != nil {
		k.closeEnds(pr, false)
		if errors.Is(err, backend.ErrExist) {
			// Another kernel uses this pid: both took its block (two
			// claims in flight at once on a store whose creates are
			// loose). Leave the block, so the next fork claims another.
			k.leaveBlock(pid)
			return nil, fmt.Errorf("rack: fork %s: pid %d is another kernel's (its block was claimed twice); fork again: %w", rec.Name, pid, err)
		}
		return nil, fmt.Errorf("rack: fork %s: record pid %d: %w", rec.Name, pid, err)
	}
	k.cache.Store(pid, rec)
	if rec.Group != 0 {
		k.addMember(PID(rec.Group), pid)
		if err := k.put(ctx, record.GroupMemberKey(rec.Group, int64(pid)), nil, true); err != nil {
			k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "could not join group: " + err.Error()})
			return nil, fmt.Errorf("rack: fork %s: join group %d: %w", rec.Name, rec.Group, err)
		}
	}
	if parent != nil {
		parent.mu.Lock()
		if parent.killed.Load() {
			// Killed while forking: kill has taken the subtree already.
			parent.mu.Unlock()
			k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "fork aborted: the parent was killed"})
			return nil, fmt.Errorf("rack: fork %s: parent %d: %w", rec.Name, parent.pid, ErrKilled)
		}
		if n := len(parent.children); n >= 64 && n&(n-1) == 0 {
			// Forget ended children now and then, so a long-lived parent
			// of many short children stays small (amortised O(1)).
			live := parent.children[:0]
			for _, c := range parent.children {
				if !isDone(c) {
					live = append(live, c)
				}
			}
			clear(parent.children[len(live):])
			parent.children = live
		}
		parent.children = append(parent.children, pr)
		parent.mu.Unlock()
	}
	return pr, nil
}

func validArgs(args []string, env map[string]string, envName string) error {
	n := 0
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
			return fmt.Errorf("%w: Spec.Args[%d] %q must be UTF-8 without NUL", ErrInvalid, i, a)
		}
		n += len(a)
	}
	if n > maxArgsBytes {
		return fmt.Errorf("%w: Spec.Args total %d bytes, over %d", ErrInvalid, n, maxArgsBytes)
	}
	n = 0
	for key, v := range env {
		if key == "" || strings.ContainsAny(key, "=\x00") || !utf8.ValidString(key) {
			return fmt.Errorf("%w: %s key %q must be non-empty UTF-8 without '=' or NUL", ErrInvalid, envName, key)
		}
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return fmt.Errorf("%w: %s[%q] must be UTF-8 without NUL", ErrInvalid, envName, key)
		}
		n += len(key) + len(v)
	}
	if n > maxEnvBytes {
		return fmt.Errorf("%w: %s total %d bytes, over %d", ErrInvalid, envName, n, maxEnvBytes)
	}
	return nil
}

// schedule starts pr now, or queues it when the kernel runs its maximum.
func (k *Kernel) schedule(pr *proc) {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "kernel closed before start"})
		return
	}
	if pr.killed.Load() { // killed with its parent before it was scheduled
		k.mu.Unlock()
		return
	}
	k.procs[pr.pid] = pr
	if k.cfg.maxRunning > 0 && k.running >= k.cfg.maxRunning {
		k.pending = append(k.pending, pr)
		k.mu.Unlock()
		return
	}
	k.running++
	pr.started = true
	k.mu.Unlock()
	if pr.remote {
		// A server's create takes a round trip or more, and waits for a
		// boot slot: Fork returns now (the process is recorded), so that
		// ForkAll's children boot together.
		go k.start(pr)
		return
	}
	k.start(pr)
}

// start asks the compute for an instance, retrying infrastructure failures;
// the instance name makes a retried start idempotent.
func (k *Kernel) start(pr *proc) {
	if k.remote && !pr.remote {
		go k.run(k.ctx, pr) // a root: it runs here, as a goroutine
		return
	}
	req := &backend.StartRequest{
		Namespace: k.cfg.namespace,
		PID:       int64(pr.pid),
		Name:      k.instanceName(pr.pid),
		Run:       func(ctx context.Context) { k.run(ctx, pr) },
		Env:       map[string]string{URLEnv: k.cfg.url, PIDEnv: strconv.FormatInt(int64(pr.pid), 10)},
		Options:   pr.rec.Options,
	}
	var registered chan error
	// settle waits for the registration, if any, so that its records land
	// before an exit recorded here.
	settle := func() {
		if registered != nil {
			<-registered
			registered = nil
		}
	}
	if k.sameMachine {
		// A child on this machine gets its (immutable) record with its
		// identity and need not read it back: one request less per fork.
		// Not through user-data: whoever reads that is not this user. Not
		// a large one either: Linux caps one environment string at 128 KiB.
		if data := record.Encode(pr.rec); len(data) <= maxRecordEnv {
			req.Env[recordEnv] = string(data)
		}
		// Its kernel's lease and host record are made here, while the
		// program loads, not by the child once it runs: a millisecond
		// of the OS's exec is idle time here. Only for this binary: a
		// program of another build may not know RACK_KERNEL.
		if pr.rec.Options[backend.ExeOption] == "" {
			kid := newID()
			req.Env[kernelEnv] = kid
			registered = make(chan error, 1)
			go func() { registered <- k.registerChild(pr.pid, kid) }()
		}
	}
	// The kernel owns the attempts of a Start, unless the compute does
	// (backend.StartRetrier): then one call, not attempts of attempts.
	attempts := k.cfg.retry.Attempts
	if sr, ok := k.compute.(backend.StartRetrier); ok && sr.RetriesStart() {
		attempts = 1
	}
	delay := k.cfg.retry.Base
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		_, err = k.compute.Start(k.ctx, req)
		started := err == nil || (attempt > 0 && errors.Is(err, backend.ErrExist))
		if started && registered != nil {
			if rerr := <-registered; rerr != nil {
				if serr := k.compute.Stop(k.ctx, req.Name); serr != nil && !errors.Is(serr, backend.ErrNotFound) {
					k.cfg.logger.Warn("rack: stopping the instance of a process that could not be registered", "pid", pr.pid, "err", serr)
				}
				k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "could not register it: " + rerr.Error()})
				return
			}
			registered = nil
		}
		if started {
			if isDone(pr) && pr.exit != nil && (pr.exit.Signal == int(SIGKILL) || pr.exit.Lost) {
				// Killed (or given up) while its instance was being made.
				if err := k.compute.Stop(k.ctx, req.Name); err != nil && !errors.Is(err, backend.ErrNotFound) {
					k.cfg.logger.Warn("rack: stopping the instance of a killed process", "pid", pr.pid, "err", err)
				}
				return
			}
			if pr.remote {
				pr.launched.Store(true)
				k.wakeRemotes()
				if k.notifier != nil {
					go k.awaitNotifiedExit(pr)
				}
			}
			return
		}
		if !errors.Is(err, backend.ErrTransient) || attempt == attempts-1 {
			break
		}
		select {
		case <-time.After(delay):
		case <-pr.done:
			settle()
			return
		case <-k.ctx.Done():
		}
		if delay *= 2; delay > k.cfg.retry.Max {
			delay = k.cfg.retry.Max
		}
	}
	settle()
	k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "could not start: " + err.Error()})
}

func (k *Kernel) instanceName(pid PID) string {
	return k.cfg.namespace + "-" + strconv.FormatInt(int64(pid), 10)
}

// registerChild makes, for local child pid, the lease of the kernel kid
// that it will run under (with the lease time a child opens its namespace
// with) and then its host record: what the child's kernel would otherwise
// write first.
func (k *Kernel) registerChild(pid PID, kid string) error {
	if err := k.putLease(k.ctx, kid, defaultConfig().lease); err != nil {
		return err
	}
	host := &record.Host{PID: int64(pid), Kernel: kid}
	return k.putSummarized(k.ctx, record.HostKey(int64(pid)), record.Encode(host), true, record.HostSummary(host))
}

// run is the body of a process on an in-process compute.
func (k *Kernel) run(instCtx context.Context, pr *proc) {
	if pr.killed.Load() {
		return // killed (or aborted) before it could start: its program never runs
	}
	stop := context.AfterFunc(instCtx, func() { pr.cancel(SIGKILL) })
	defer stop()
	self := pr.self()
	returned := false
	end := func(ex *record.Exit) {
		if pr.killed.Load() {
			// A kill is under way: it records the exit, after the
			// subtree's (leaves first). The program's own end does not count.
			<-pr.done
			return
		}
		k.finish(pr, ex)
	}
	defer func() {
		if v := recover(); v != nil {
			msg := fmt.Sprintf("panic: %v\n\n%s", v, debug.Stack())
			_, _ = io.WriteString(pr.stderr, msg)
			ex := &record.Exit{Code: 2, Reason: fmt.Sprintf("panic: %v", v)}
			if context.Cause(pr.ctx) == SIGKILL {
				ex = exitFromError(pr, nil) // killed first: the panic came after
			}
			end(ex)
		} else if !returned {
			// runtime.Goexit (t.FailNow, log... in a program): no return,
			// no panic, but the process ended all the same.
			ex := &record.Exit{Code: 2, Reason: "the program called runtime.Goexit"}
			if context.Cause(pr.ctx) == SIGKILL {
				ex = exitFromError(pr, nil)
			}
			end(ex)
		}
	}()
	err := pr.prog(pr.ctx, self)
	returned = true
	end(exitFromError(pr, err))
}

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
		ctx := context.WithoutCancel(k.ctx) // recorded even while the kernel closes
		if ex.By == "" {                    // not read from the store: ours to record
			ex.PID, ex.By, ex.Ended = int64(pr.pid), k.id, time.Now().UnixNano()
			ex.Stderr = pr.tail.String()
			err := k.putSummarized(ctx, record.ExitKey(int64(pr.pid)), record.Encode(ex), true, record.ExitSummary(ex))
			if errors.Is(err, backend.ErrExist) {
				var first record.Exit
				if err = k.getRecord(ctx, record.ExitKey(int64(pr.pid)), &first); err == nil {
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
			if pr.adopted && err == nil && k.notifier == nil {
				// Tell the forker at once (its inbox), as Linux sends
				// SIGCHLD: its stand-in need not poll for the exit. (A
				// store that notifies tells it without a note.)
				msg := record.Signal{PID: pr.rec.PPID, Signal: sigchld, From: k.id, Child: int64(pr.pid)}
				if err := k.sendMessage(ctx, pr.rec.Kernel, msg); err != nil {
					k.cfg.logger.Warn("rack: telling the forker of an exit", "pid", pr.pid, "err", err)
				}
			}
		}
		pr.exit = ex
		k.exits.Store(pr.pid, ex)
		var next *proc
		k.mu.Lock()
		delete(k.procs, pr.pid)
		if pr.started {
			k.running--
			for len(k.pending) > 0 && next == nil && !k.closed { // Close kills the queue: start none
				next, k.pending = k.pending[0], k.pending[1:]
				if next.killed.Load() { // ending (finish sets killed first); next.exit is not ours to read
					next = nil
				}
			}
			if next != nil {
				k.running++
				next.started = true
			}
		} else {
			for i, q := range k.pending {
				if q == pr {
					k.pending = append(k.pending[:i], k.pending[i+1:]...)
					break
				}
			}
		}
		k.mu.Unlock()
		close(pr.done)
		if next != nil {
			go k.start(next)
		}
	})
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
		if err := w.close(); err != nil {
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

// Wait waits for the process to end and returns nil for exit code 0, an
// *ExitError when it ran and failed, or an error wrapping ErrLost when the
// infrastructure failed it. Any holder of a handle may Wait, any number of
// times.
func (p *Process) Wait(ctx context.Context) error {
	if pr := p.local; pr != nil {
		select {
		case <-pr.done:
			return p.exitError(pr.exit)
		case <-ctx.Done():
			return fmt.Errorf("rack: wait %v: %w", p, context.Cause(ctx))
		}
	}
	ex, err := p.k.awaitExit(ctx, p.pid, p.rec)
	if err != nil {
		return fmt.Errorf("rack: wait %v: %w", p, err)
	}
	return p.exitError(ex)
}

// awaitExit waits for pid's exit record, watching its kernel's lease so a
// vanished kernel cannot leave the waiter hanging.
func (k *Kernel) awaitExit(ctx context.Context, pid PID, rec *record.Proc) (*record.Exit, error) {
	var delay time.Duration
	leaseCheck := time.Now().Add(k.cfg.lease / 2)
	for {
		ch := k.changed(record.ExitKey(int64(pid)))
		ex, err := k.exitRecord(ctx, pid)
		if err == nil {
			return ex, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return nil, err
		}
		if time.Now().After(leaseCheck) {
			leaseCheck = time.Now().Add(k.cfg.lease / 2)
			alive, err := k.leaseAlive(ctx, rec.Kernel)
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
		if delay, err = k.waitChange(ctx, nil, nil, delay); err != nil {
			return nil, err
		}
	}
}

// recordLost records that pid was lost, unless its exit is already known.
func (k *Kernel) recordLost(ctx context.Context, pid PID, why string) {
	ex := &record.Exit{PID: int64(pid), Code: -1, Lost: true, Reason: why, Ended: time.Now().UnixNano(), By: k.id}
	if err := k.putSummarized(ctx, record.ExitKey(int64(pid)), record.Encode(ex), true, record.ExitSummary(ex)); err != nil && !errors.Is(err, backend.ErrExist) {
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

// Signal sends sig to the process. SIGTERM, SIGINT, SIGHUP, SIGUSR1 and
// SIGUSR2 cancel the target's ctx (unless it asked for them with Notify);
// SIGTERM escalates to SIGKILL after the grace period; SIGKILL ends the
// process and its non-detached descendants at once, leaves first.
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
		k.deliver(ctx, pr, sig)
		return nil
	}
	if _, err := k.exitRecord(ctx, pid); err == nil {
		return fmt.Errorf("rack: signal %d: %w", pid, ErrFinished)
	}
	host, _, err := k.hostOf(ctx, pid, rec)
	if err != nil {
		return fmt.Errorf("rack: signal %d: %w", pid, err)
	}
	if host == k.id {
		// Hosted here once and no longer: it has just finished.
		return fmt.Errorf("rack: signal %d: %w", pid, ErrFinished)
	}
	if err := k.sendSignal(ctx, host, pid, sig); err != nil {
		return fmt.Errorf("rack: signal %d: %w", pid, err)
	}
	return nil
}

// deliver acts on a signal for a process hosted here.
func (k *Kernel) deliver(ctx context.Context, pr *proc, sig Signal) {
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
// process's ctx, as os/signal.Notify does; sends never block. SIGKILL
// cannot be caught.
func (s *Self) Notify(ch chan<- Signal, sigs ...Signal) error {
	pr, err := s.selfProc("notify")
	if err != nil {
		return err
	}
	if ch == nil {
		return fmt.Errorf("rack: notify: %w: nil channel", ErrInvalid)
	}
	for _, s := range sigs {
		if !s.valid() || s == SIGKILL {
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

// Processes started as new programs (computes that are not in-process)
// run under a kernel of their own, which writes a host record when it
// adopts the process. The forker keeps a stand-in for each, which
// watchRemote ends when the exit record appears, or when the child turns
// out lost (its program ended without recording an exit, or its kernel's
// lease lapsed).

// hostOf returns the kernel that runs pid and whether it has started:
// its host record, or else the forker's kernel.
func (k *Kernel) hostOf(ctx context.Context, pid PID, rec *record.Proc) (string, bool, error) {
	if v, ok := k.hosts.Load(pid); ok {
		return v.(string), true, nil
	}
	var h record.Host
	err := k.getRecord(ctx, record.HostKey(int64(pid)), &h)
	switch {
	case err == nil:
		k.hosts.Store(pid, h.Kernel)
		return h.Kernel, true, nil
	case errors.Is(err, backend.ErrNotFound):
		return rec.Kernel, false, nil
	}
	return "", false, err
}

// sendSignal puts sig for pid into kernel host's inbox.
func (k *Kernel) sendSignal(ctx context.Context, host string, pid PID, sig Signal) error {
	return k.sendMessage(ctx, host, record.Signal{PID: int64(pid), Signal: int(sig), From: k.id})
}

// sendMessage puts msg into kernel host's inbox.
func (k *Kernel) sendMessage(ctx context.Context, host string, msg record.Signal) error {
	key := fmt.Sprintf("%s%010d.%s.%012d", record.SignalInbox(host), msg.PID, k.id, k.seq.Add(1))
	return k.put(ctx, key, record.Encode(msg), true)
}

// sigchld is the signal number of the note a kernel leaves in a forker's
// inbox when a child it ran has exited. Programs do not see it.
const sigchld = 17

// signalRemote passes sig on to the kernel that runs pr; a signal for a
// child that has not joined yet waits for it (watchRemote delivers it).
func (k *Kernel) signalRemote(ctx context.Context, pr *proc, sig Signal) {
	if sig == SIGKILL {
		k.killRemote(ctx, pr)
		return
	}
	host, started, err := k.hostOf(ctx, pr.pid, pr.rec)
	if err == nil && started {
		err = k.sendSignal(ctx, host, pr.pid, sig)
	}
	if err != nil || !started {
		pr.mu.Lock()
		pr.pendingSigs = append(pr.pendingSigs, sig)
		pr.mu.Unlock()
	}
}

// killRemote asks pr's kernel to kill it (and so its subtree), and falls
// back to stopping its instance and recording the kill itself.
func (k *Kernel) killRemote(ctx context.Context, pr *proc) {
	if isDone(pr) {
		return
	}
	pr.killed.Store(true)
	if host, started, err := k.hostOf(ctx, pr.pid, pr.rec); err == nil && started {
		if k.sendSignal(ctx, host, pr.pid, SIGKILL) == nil {
			t := time.NewTimer(k.cfg.grace)
			select {
			case <-pr.done:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	if isDone(pr) {
		return
	}
	if err := k.compute.Stop(ctx, k.instanceName(pr.pid)); err != nil && !errors.Is(err, backend.ErrNotFound) {
		k.cfg.logger.Warn("rack: stopping instance", "pid", pr.pid, "err", err)
	}
	k.finish(pr, &record.Exit{Code: 128 + int(SIGKILL), Signal: int(SIGKILL), Reason: "killed by " + SIGKILL.String()})
}

// childExited ends the stand-in of remote child pid, whose kernel has
// recorded its exit and left a note in this kernel's inbox.
func (k *Kernel) childExited(pid PID) {
	pr := k.hosted(pid)
	if pr == nil || !pr.remote {
		return
	}
	if ex, err := k.exitRecord(k.ctx, pid); err == nil {
		k.finish(pr, ex)
	}
}

// awaitNotifiedExit ends remote child pr's stand-in when its exit record
// appears, on a store that notifies (where children leave no SIGCHLD
// note): waiting costs no request.
func (k *Kernel) awaitNotifiedExit(pr *proc) {
	for !isDone(pr) {
		ch := k.changed(record.ExitKey(int64(pr.pid)))
		if ex, err := k.exitRecord(k.ctx, pr.pid); err == nil {
			k.finish(pr, ex)
			return
		}
		select {
		case <-ch:
		case <-pr.done:
		case <-k.ctx.Done():
			return
		}
	}
}

// watchRemotes watches, for the whole kernel, the children started as new
// programs. Their exits arrive as notes in the inbox (childExited); this
// loop catches the children that end otherwise. A round costs one compute
// listing and no store request; every half lease, a listing of their host
// records and one of leases find children whose kernel died. The cost does
// not grow with the number of children.
func (k *Kernel) watchRemotes() {
	defer k.wg.Done()
	delay := k.cfg.pollMin
	var leasesChecked time.Time
	for {
		var tick <-chan time.Time
		var t *time.Timer
		if k.remoteCount() > 0 {
			t = time.NewTimer(delay)
			tick = t.C
		}
		select {
		case <-k.remoteWake:
			delay = k.cfg.pollMin
		case <-tick:
			delay = min(2*delay, k.cfg.pollMax)
		case <-k.ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		}
		if t != nil {
			t.Stop()
		}
		pending := k.remoteChildren()
		if len(pending) == 0 {
			continue
		}
		checkLeases := time.Since(leasesChecked) >= k.cfg.lease/2
		if checkLeases {
			leasesChecked = time.Now()
		}
		k.checkRemotes(k.ctx, pending, checkLeases)
	}
}

// wakeRemotes makes watchRemotes look soon (a child has just started).
func (k *Kernel) wakeRemotes() {
	select {
	case k.remoteWake <- struct{}{}:
	default:
	}
}

// remoteChildren returns the stand-ins of running remote children whose
// instance has been started.
func (k *Kernel) remoteChildren() []*proc {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*proc
	for _, pr := range k.procs {
		if pr.remote && pr.launched.Load() {
			out = append(out, pr)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

func (k *Kernel) remoteCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, pr := range k.procs {
		if pr.remote && pr.launched.Load() {
			n++
		}
	}
	return n
}

// checkRemotes delivers signals queued for children that have joined, and
// ends the stand-ins of children that are gone without a note.
func (k *Kernel) checkRemotes(ctx context.Context, pending []*proc, checkLeases bool) {
	for _, pr := range pending {
		pr.mu.Lock()
		queued := len(pr.pendingSigs) > 0
		pr.mu.Unlock()
		if !queued {
			continue
		}
		if host, started, err := k.hostOf(ctx, pr.pid, pr.rec); err == nil && started {
			pr.mu.Lock()
			sigs := pr.pendingSigs
			pr.pendingSigs = nil
			pr.mu.Unlock()
			for _, s := range sigs {
				_ = k.sendSignal(ctx, host, pr.pid, s)
			}
		}
	}
	live, err := k.compute.List(ctx, k.cfg.namespace)
	if err != nil {
		if ctx.Err() == nil {
			k.cfg.logger.Warn("rack: listing instances", "err", err)
		}
		return
	}
	names := make(map[string]bool, len(live))
	for _, in := range live {
		names[in.Name] = true
	}
	for _, pr := range pending {
		if isDone(pr) || names[k.instanceName(pr.pid)] {
			continue
		}
		// Its program has ended: the exit it recorded, if any, is in the
		// store (its note may still be on the way).
		ex, err := k.exitRecord(ctx, pr.pid)
		if err == nil {
			k.finish(pr, ex)
			continue
		}
		if !errors.Is(err, backend.ErrNotFound) {
			continue
		}
		_, started, err := k.hostOf(ctx, pr.pid, pr.rec)
		if err != nil {
			continue
		}
		why := "its program ended before joining the namespace"
		if started {
			why = "its program ended without recording an exit"
		}
		if fr, ok := k.compute.(backend.FailureReporter); ok {
			if reason, failed := fr.Failure(k.instanceName(pr.pid)); failed {
				why = "its instance failed: " + reason
			}
		}
		k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: why})
	}
	if checkLeases {
		k.checkRemoteLeases(ctx, pending)
	}
}

// checkRemoteLeases ends the stand-ins of children whose kernel has
// stopped renewing its lease (a hung program on a live machine): two
// listings, whatever the number of children.
func (k *Kernel) checkRemoteLeases(ctx context.Context, pending []*proc) {
	v := &psView{k: k, hosts: map[PID]string{}, leaseSeen: map[string]leaseEntry{}}
	lo, hi := pending[0].pid, pending[len(pending)-1].pid
	hosts, err := k.listRange(ctx, record.Hosts, record.HostKey(int64(lo)-1), record.HostKey(int64(hi)))
	if err != nil {
		return
	}
	for _, o := range hosts {
		if n, err := record.ParseNumber(o.Name); err == nil {
			if host, ok := record.ParseHostSummary(o.ContentType); ok {
				v.hosts[PID(n)] = host
			}
		}
	}
	if err := v.listLeases(ctx); err != nil {
		return
	}
	for _, pr := range pending {
		host := v.hosts[pr.pid]
		if host == "" || isDone(pr) {
			continue // not joined yet (or not listed yet): the compute tells
		}
		if alive, err := v.alive(ctx, pr.pid, pr.rec); err == nil && !alive {
			k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "its kernel " + host + " stopped renewing its lease"})
		}
	}
}

// closeRecordedEnds closes, on behalf of a lost process, the pipe writer
// ends handed to it at fork, counting the segments it did store.
func (k *Kernel) closeRecordedEnds(ctx context.Context, rec *record.Proc) {
	for _, s := range []record.Stream{rec.Stdout, rec.Stderr} {
		if s.Kind != "pipe" || s.End < 0 {
			continue
		}
		n := 0
		for {
			_, err := k.store.Head(ctx, k.cfg.container, record.PipeSegmentKey(s.Pipe, s.End, n))
			if err != nil {
				if !errors.Is(err, backend.ErrNotFound) {
					k.cfg.logger.Warn("rack: counting a lost writer's segments", "pipe", s.Pipe, "err", err)
				}
				break
			}
			n++
		}
		err := k.put(ctx, record.PipeCloseKey(s.Pipe, s.End), record.Encode(record.PipeClose{Segments: n}), true)
		if err != nil && !errors.Is(err, backend.ErrExist) {
			k.cfg.logger.Warn("rack: closing a lost writer's pipe end", "pipe", s.Pipe, "err", err)
		}
	}
}
