package rack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
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
//
// The exported Process field is the process's handle to itself. Code that
// reassigns it changes what the methods of *Process called through the
// Self (PID, Wait, Signal...) act on, but not the self-only methods above,
// which always act as the process rack gave the Self for. rack gives a
// process one Self (its Program's and FromContext's are the same), so a
// reassignment is seen by every holder of it.
type Self struct {
	*Process
	pr *proc // the hosted process; nil in a Self not made by rack
}

// self returns pr's own handle, made with pr (initSelf): no allocation.
func (pr *proc) self() *Self { return &pr.own }

// initSelf makes pr's own handle, once, as pr is made (before anyone
// else can see pr).
func (pr *proc) initSelf() {
	pr.ownHandle = Process{k: pr.k, pid: pr.pid, rec: pr.rec, local: pr}
	pr.own = Self{Process: &pr.ownHandle, pr: pr}
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
	// host: the kernel of the host it was placed on, and when (set before
	// launched).
	host     string
	placedAt time.Time
	// release, on a host, frees the process's slot (finish calls it
	// before it records the exit).
	release func()
	// portable: its program can be found by a new copy of the binary
	// (registered, or the one Main runs).
	portable bool
	// pendingSigs wait for a remote child to join its namespace.
	pendingSigs []Signal
	// stopped is set while a remote child's program is stopped (stop.go);
	// under mu.
	stopped *stopKeeper
	// own is the process's Self, over ownHandle (see initSelf): one
	// allocation with the proc.
	own       Self
	ownHandle Process

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

// Forked reports whether the process was forked (Self.Fork, ForkAll) by a
// process running the same program as itself: the same executable and
// the same Program (both the one Main runs or Kernel.Start was given, or
// both the one registered under the same Spec.Program name). It is how a
// program tells the children it forked from a copy started any other
// way, which PPID cannot tell: a root from rack.Main or Kernel.Start, an
// app the rack shell starts (the shell forks it as another executable),
// and a child forked with another Spec.Program or Spec.Options["exe"]
// are not Forked; a Forked child that forks itself again gives a Forked
// grandchild. It is read from the process record, set by the forker; a
// record from a rack release before Forked says false.
func (p *Process) Forked() bool { return p.rec.Forked }

// sameProgram reports whether the child of parent that spec describes,
// with the record rec made so far, runs parent's program.
func sameProgram(parent *proc, spec Spec, rec *record.Proc) bool {
	if spec.Program != "" && spec.Program != parent.rec.Program {
		return false
	}
	exe := rec.Options[backend.ExeOption]
	return exe == "" || exe == parent.rec.Options[backend.ExeOption] || isRunningProgram(exe)
}

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
	if err := pr.k.ns.putSummarized(ctx, record.StatusKey(int64(pr.pid)), []byte(text), false, record.StatusSummary(text)); err != nil {
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
//
// Its requests do not wait for one another: the children's ends of each
// pipe writer they share are claimed with one record, and their process
// records are written at once.
func (s *Self) ForkAll(ctx context.Context, specs []Spec) ([]*Process, error) {
	pr, err := s.selfProc("fork")
	if err != nil {
		return nil, err
	}
	k := pr.k
	need := map[*PipeWriter]int{}
	for i := range specs {
		if k.checkStreams(pr, &specs[i]) != nil {
			continue // prepareLocal says why
		}
		for _, w := range pipeSources(pr, &specs[i]) {
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if !closed { // a closed one is refused by dup
				need[w]++
			}
		}
	}
	pool := endPool{}
	children := make([]*proc, 0, len(specs))
	// abort ends the children made so far (none has started): those
	// recorded are recorded as never started, the others' ends closed.
	abort := func(recorded []bool) {
		for i, c := range children {
			if recorded != nil && recorded[i] {
				k.finish(c, &record.Exit{Code: -1, Lost: true, Reason: "fork aborted: a sibling's fork failed"})
			} else if recorded == nil {
				k.closeEnds(c, false)
			}
		}
		pool.closeUnused(k)
	}
	if len(need) > 0 {
		if err := pool.claim(ctx, k, pr, need); err != nil {
			abort(nil)
			return nil, fmt.Errorf("rack: fork all: %w", err)
		}
	}
	for i, spec := range specs {
		c, err := k.prepareLocal(ctx, pr, spec, nil, pool)
		if err != nil {
			// Those before it were forked, as far as anyone can tell:
			// they are recorded, and reaped as never started.
			pool.closeUnused(k)
			recorded, _ := k.recordAll(ctx, pr, children)
			abort(recorded)
			return nil, fmt.Errorf("rack: fork all: spec %d: %w", i, err)
		}
		children = append(children, c)
	}
	pool.closeUnused(k) // a source closed since its ends were claimed
	onHosts := 0
	for _, c := range children {
		if k.onHosts(c) {
			onHosts++
		}
	}
	if room := k.sched.room(); room >= 0 {
		onHosts = min(onHosts, room) // the others wait in the queue (WithMaxRunning)
	}
	var ahead chan struct{}
	// Their new hosts start side by side (host.go), planned from a
	// listing of the hosts made while the records are written, not after:
	// two round trips less before the first child is placed. Should a
	// record fail, a host started for it idles out.
	if onHosts > 1 && k.sched.whileOpen(func() { k.wg.Add(1) }) {
		ahead = make(chan struct{})
		go func() {
			defer k.wg.Done()
			defer close(ahead)
			k.bootAhead(k.ctx, onHosts)
		}()
	}
	recorded, errs := k.recordAll(ctx, pr, children)
	if ahead != nil {
		<-ahead
	}
	for i, err := range errs {
		if err != nil {
			abort(recorded)
			return nil, fmt.Errorf("rack: fork all: spec %d: %w", i, err)
		}
	}
	out := make([]*Process, len(children))
	for i, c := range children {
		out[i] = c.handle()
	}
	// Scheduled last, with nothing allocated after: each child on a
	// compute of OS processes or servers starts in a goroutine of its
	// own, and ForkAll's, once preempted among a thousand of them, waited
	// seconds for its turn.
	for _, c := range children {
		k.schedule(c)
	}
	return out, nil
}

// recordAll writes the records of children at once (recordProc), and
// says which were recorded, with the errors of the others.
func (k *Kernel) recordAll(ctx context.Context, parent *proc, children []*proc) ([]bool, []error) {
	recorded := make([]bool, len(children))
	errs := make([]error, len(children))
	sem := make(chan struct{}, forkAllInFlight)
	var wg sync.WaitGroup
	for i, c := range children {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = k.recordProc(ctx, parent, c)
			recorded[i] = errs[i] == nil
		}()
	}
	wg.Wait()
	return recorded, errs
}

// forkAllInFlight bounds the process records ForkAll writes at once.
const forkAllInFlight = 64

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
	pr, err := k.prepareLocal(ctx, parent, spec, prog, nil)
	if err != nil {
		return nil, err
	}
	if err := k.recordProc(ctx, parent, pr); err != nil {
		return nil, err
	}
	return pr, nil
}

// prepareLocal is prepare up to the process record: the pid and the pipe
// ends (from pool, when ForkAll claimed them) are the only requests.
func (k *Kernel) prepareLocal(ctx context.Context, parent *proc, spec Spec, prog Program, pool endPool) (*proc, error) {
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
		if err := checkInheritedExe(parent); err != nil {
			return nil, fmt.Errorf("rack: fork %s: %w", rec.Name, err)
		}
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
		rec.Forked = sameProgram(parent, spec, rec)
	}
	// Check the streams before anything is written, so a refused spec
	// leaves no trace.
	if err := k.checkStreams(parent, &spec); err != nil {
		return nil, fmt.Errorf("rack: fork %s: %w", rec.Name, err)
	}
	pid, err := k.pids.alloc(ctx)
	if err != nil {
		return nil, err
	}
	rec.PID = int64(pid)
	pr := &proc{k: k, pid: pid, rec: rec, prog: prog, done: make(chan struct{})}
	pr.initSelf()
	pr.ctx, pr.cancel = context.WithCancelCause(context.WithValue(context.Background(), processKey{}, pr))
	// Roots run here, whatever the compute: their Program is a Go value.
	// A child started as a new program must be able to find its code
	// there: by registered name, or as the program Main runs.
	pr.portable = spec.Program != "" || rec.Options[backend.ExeOption] != "" || rec.Options[backend.ProgramOption] != "" ||
		(parent == nil && ctx.Value(mainProgramKey{}) != nil) || (parent != nil && parent.portable)
	pr.remote = k.remote && parent != nil && !k.reserveOwnSlot(pr) // hostfork.go: a host's own free slot
	if pr.remote && !pr.portable {
		return nil, fmt.Errorf("rack: fork %s: %w: the forker runs a Program given to Kernel.Start, which a new OS process or VM cannot find: register it (rack.Register) and name it in Spec.Program", rec.Name, ErrInvalid)
	}
	if err := k.handStreams(ctx, parent, pr, &spec, pool); err != nil {
		k.unreserveOwnSlot(pr)
		return nil, fmt.Errorf("rack: fork %s: %w", rec.Name, err)
	}
	return pr, nil
}

// recordProc writes the record of pr, made by prepareLocal, and enters it
// in its group and among its parent's children. On failure pr's ends are
// closed (and pr is finished if it had a record).
func (k *Kernel) recordProc(ctx context.Context, parent *proc, pr *proc) error {
	rec, pid := pr.rec, pr.pid
	rec.Started = time.Now().UnixNano()
	data := record.Encode(rec)
	if err := record.Check(record.ProcKey(int64(pid)), data); err != nil {
		// Readers would refuse it (over 131,072 args and env entries, or
		// a reader moved after reading from that many writer ends).
		k.closeEnds(pr, false)
		k.unreserveOwnSlot(pr)
		return fmt.Errorf("rack: fork %s: %w: %v", rec.Name, ErrInvalid, err)
	}
	recorded := k.startOwnClaim(pr, data) // hostfork.go: a slot of this host, claimed at once
	// Its pid is this kernel's (pidAlloc): no rival writes the record.
	err := k.ns.putWith(ctx, record.ProcKey(int64(pid)), data,
		&backend.PutOptions{CreateOnly: true, NoRival: true, ContentType: record.ProcSummary(rec)})
	if recorded != nil {
		recorded(err == nil)
	}
	if err != nil {
		k.closeEnds(pr, false)
		k.unreserveOwnSlot(pr)
		if errors.Is(err, backend.ErrExist) {
			// Another kernel uses this pid: both took its block (two
			// claims in flight at once on a store whose creates are
			// loose). Leave the block, so the next fork claims another.
			k.pids.leave(pid)
			return fmt.Errorf("rack: fork %s: pid %d is another kernel's (its block was claimed twice); fork again: %w", rec.Name, pid, err)
		}
		return fmt.Errorf("rack: fork %s: record pid %d: %w", rec.Name, pid, err)
	}
	k.records.procs.Store(pid, rec)
	if rec.Group != 0 {
		k.addMember(PID(rec.Group), pid)
		// Only this kernel, which owns pid, writes its member record.
		if err := k.ns.putOnce(ctx, record.GroupMemberKey(rec.Group, int64(pid)), nil, ""); err != nil {
			k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "could not join group: " + err.Error()})
			return fmt.Errorf("rack: fork %s: join group %d: %w", rec.Name, rec.Group, err)
		}
	}
	if parent != nil {
		parent.mu.Lock()
		if parent.killed.Load() {
			// Killed while forking: kill has taken the subtree already.
			parent.mu.Unlock()
			k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "fork aborted: the parent was killed"})
			return fmt.Errorf("rack: fork %s: parent %d: %w", rec.Name, parent.pid, ErrKilled)
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
	return nil
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

// start asks the compute for an instance, retrying infrastructure failures;
// the instance name makes a retried start idempotent.
func (k *Kernel) start(pr *proc) {
	if k.remote && !pr.remote {
		go k.runHere(pr) // a root, or a child in its host's own slot (hostfork.go): it runs here, as a goroutine
		return
	}
	if k.onHosts(pr) {
		k.startOnHost(pr) // host.go
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
	if k.startRetrier {
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
				if k.ns.notifier != nil {
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
	if err := k.leases.put(k.ctx, kid, defaultConfig().lease); err != nil {
		return err
	}
	host := &record.Host{PID: int64(pid), Kernel: kid}
	return k.ns.putSummarized(k.ctx, record.HostKey(int64(pid)), record.Encode(host), true, record.HostSummary(host))
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
			if pr.adopted && pr.rec.Stderr.Kind != "console" {
				// It runs in an OS process (or server) of its own, whose
				// console is its log (Kernel.Logs): the stack goes there
				// too, not only to its stderr stream (a pipe, a file).
				_, _ = io.WriteString(k.console(k.cfg.stderr), msg)
			}
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
