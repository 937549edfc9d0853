package rack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/handoff"
	"github.com/rackfork/rack/internal/record"
)

// A process learns who it is from its self handle (PID, PPID, Group,
// Args, Getenv, Stdin, Stdout, Stderr) or, deeper in its code, from the
// ctx its Program was given (FromContext, which returns the same *Self).
// Nothing is asked of a server.

type processKey struct{}

// mainProgramKey marks the ctx with which Main starts its root, whose
// program a new copy of the binary runs too.
type mainProgramKey struct{}

// FromContext returns the own handle of the process whose Program was
// given ctx (or a context derived from it), or nil. Files opened with such
// a ctx belong to that process: they are refused once it is killed.
func FromContext(ctx context.Context) *Self {
	pr, _ := ctx.Value(processKey{}).(*proc)
	if pr == nil {
		return nil
	}
	return pr.self()
}

func procFromContext(ctx context.Context) *proc {
	pr, _ := ctx.Value(processKey{}).(*proc)
	return pr
}

var (
	programsMu sync.RWMutex
	programs   = map[string]Program{}
)

// Register names a program so that Spec.Program can fork it. Call it from
// init or main before Main; it panics on an empty or duplicate name or a
// nil program, as flag does for a duplicate flag.
func Register(name string, p Program) {
	if err := validName("program name", name); err != nil {
		panic("rack: Register: " + err.Error())
	}
	if p == nil {
		panic("rack: Register " + name + ": nil program")
	}
	programsMu.Lock()
	defer programsMu.Unlock()
	if _, dup := programs[name]; dup {
		panic("rack: Register: program " + name + " registered twice")
	}
	programs[name] = p
}

func lookupProgram(name string) (Program, bool) {
	programsMu.RLock()
	defer programsMu.RUnlock()
	p, ok := programs[name]
	return p, ok
}

func defaultProgramName() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		if n := filepath.Base(os.Args[0]); validName("", n) == nil {
			return n
		}
	}
	return "main"
}

// URLEnv is the environment variable that names the namespace Main joins.
const URLEnv = "RACK_URL"

// PIDEnv carries, to a program started by rack as a forked child, the pid
// it is to run as; Main then runs that process instead of a new root.
const PIDEnv = "RACK_PID"

// Launched reports whether rack started this OS process, as a forked
// child (PIDEnv) or as a host (HostEnv): a TestMain that lets the test
// binary serve as the program then calls Main instead of running the tests.
func Launched() bool { return os.Getenv(PIDEnv) != "" || os.Getenv(HostEnv) != "" }

// Main runs p as a rack process and exits with its exit code: as a new
// root process (PPID 1) in the namespace that RACK_URL names (default
// mem://), with os.Args[1:] as its arguments. SIGINT, SIGTERM and SIGHUP
// sent to the OS process are passed on to it. Call it from func main.
func Main(p Program) {
	os.Exit(run(p))
}

func run(p Program) int {
	if os.Getenv(PIDEnv) != "" {
		return runChild(p)
	}
	if os.Getenv(HostEnv) != "" {
		return runHost(p) // hostserve.go
	}
	url := os.Getenv(URLEnv)
	if url == "" {
		url = "mem://"
	}
	ctx := context.Background()
	k, err := Open(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer k.Close()
	root, err := k.Start(context.WithValue(ctx, mainProgramKey{}, true), Spec{Args: os.Args[1:]}, p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- root.Wait(ctx) }()
	for {
		select {
		case s := <-sigs:
			_ = root.Signal(ctx, Signal(s.(syscall.Signal)))
		case err := <-done:
			return exitStatus(err)
		}
	}
}

// runChild runs, in a program that rack started as a forked child, the
// process that RACK_PID names, under a kernel of this OS process's own.
func runChild(main Program) int {
	pid, err := strconv.ParseInt(os.Getenv(PIDEnv), 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rack: %s=%q is not a pid\n", PIDEnv, os.Getenv(PIDEnv))
		return 1
	}
	ctx := context.Background()
	var opts []Option
	if id := os.Getenv(kernelEnv); id != "" {
		os.Unsetenv(kernelEnv) // not for this process's own children
		if len(id) != kernelIDLen || strings.Trim(id, "0123456789abcdef") != "" {
			fmt.Fprintf(os.Stderr, "rack: %s=%q is not a kernel id\n", kernelEnv, id)
			return 1
		}
		opts = append(opts, joinAs(id))
	}
	k, err := Open(ctx, os.Getenv(URLEnv), opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pr, err := k.adopt(ctx, PID(pid), main)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		k.Close()
		return 1
	}
	sigs := make(chan os.Signal, 4)
	var (
		once sync.Once
		code int
	)
	// end runs once the exit is recorded and the ends closed; the first
	// caller computes the OS exit code, which every caller then exits
	// with.
	end := func() int {
		once.Do(func() {
			// With nothing else here (no children, files or forks
			// queued), the OS process can end without Close: the lease
			// expires by itself, and tearing down the store's watches
			// costs milliseconds. Nor signal.Stop then: it waits for the
			// signal handler to go idle (a quarter of a millisecond).
			if !k.idle() {
				signal.Stop(sigs) // a Ctrl-C during a long Close ends it
				k.Close()
			}
			if k.orphaned.Load() {
				// Nobody is left to delete this machine: do it ourselves
				// (a server; other computes end with the OS process).
				if sd, ok := k.compute.(backend.SelfDeleter); ok {
					if err := sd.DeleteSelf(ctx); err != nil {
						fmt.Fprintln(os.Stderr, "rack: deleting this server after its parent died:", err)
					}
				}
			} else if sd, ok := k.compute.(backend.ExitSelfDeleter); ok {
				// The forker deletes this machine once it reads the exit;
				// if it does not, the machine deletes itself.
				if err := sd.DeleteSelfAfterExit(ctx); err != nil {
					fmt.Fprintln(os.Stderr, "rack: deleting this server after its exit:", err)
				}
			}
			code = pr.exit.Code
			if pr.exit.Lost || code < 0 {
				code = 1
			}
		})
		return code
	}
	go func() {
		// Here, not before the program starts: the first Notify waits
		// for a new thread (a quarter of a millisecond). A signal in
		// between ends the OS process, and its parent records it lost.
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		for {
			select {
			case s := <-sigs:
				k.deliver(ctx, pr, Signal(s.(syscall.Signal)))
			case <-pr.done:
				// Killed while its program goes on (a program may
				// ignore ctx): the OS process ends all the same.
				os.Exit(end())
			}
		}
	}()
	// The program runs on this goroutine, not a new one: starting and
	// ending it then needs no other thread woken (about 0.1 ms each here).
	k.run(k.ctx, pr)
	<-pr.done
	return end()
}

// adopt makes this kernel the host of pid, forked elsewhere; the caller
// runs its program (k.run). Where the child writes its host record, it is
// created once, so a retried start never runs a process twice; where the
// forker wrote it (a local child, registerChild), the compute's reserved
// instance name does that.
func (k *Kernel) adopt(ctx context.Context, pid PID, main Program) (*proc, error) {
	rec := recordFromEnv(pid)
	var err error
	if rec != nil {
		k.records.procs.Store(pid, rec)
	} else if rec, err = k.records.proc(ctx, pid); err != nil {
		return nil, fmt.Errorf("rack: join as process %d: %w", pid, err)
	}
	// Where the forker made this kernel (registerChild), it wrote the
	// host record too.
	pr, err := k.adoptRecord(ctx, rec, main, k.cfg.kernelID == "", nil)
	if err != nil {
		return nil, err
	}
	if k.cfg.kernelID != "" {
		// Not before: see New. A short program ends before its first
		// look (a signal sent before it ran waits pollMin).
		k.inbox.start(k.ctx, &k.wg, k.cfg.pollMin)
	}
	return pr, nil
}

// adoptRecord makes this kernel the host of the process rec describes
// (writing its host record when writeHost is set), as adopt does, and as
// a host does for each process it takes (release frees its slot there:
// see proc.release).
func (k *Kernel) adoptRecord(ctx context.Context, rec *record.Proc, main Program, writeHost bool, release func()) (*proc, error) {
	pid := PID(rec.PID)
	k.records.procs.Store(pid, rec)
	prog := main
	if rec.Program != "" {
		var ok bool
		if prog, ok = lookupProgram(rec.Program); !ok {
			return nil, fmt.Errorf("rack: process %d: %w: program %q is not registered in this binary", pid, ErrInvalid, rec.Program)
		}
	}
	if prog == nil {
		return nil, fmt.Errorf("rack: process %d: %w: no program to run", pid, ErrInvalid)
	}
	if writeHost {
		if err := k.claimProcess(ctx, pid); err != nil {
			return nil, err
		}
	}
	pr := &proc{k: k, pid: pid, rec: rec, prog: prog, done: make(chan struct{}), started: true, portable: true, adopted: true, release: release}
	pr.initSelf()
	pr.ctx, pr.cancel = context.WithCancelCause(context.WithValue(context.Background(), processKey{}, pr))
	if err := k.openStreams(pr); err != nil {
		return nil, fmt.Errorf("rack: process %d: %w", pid, err)
	}
	k.sched.adopt(pr)
	k.wg.Add(1)
	go k.watchParent(pr)
	return pr, nil
}

// errRunsElsewhere is claimProcess finding pid claimed by another kernel.
var errRunsElsewhere = errors.New("already runs elsewhere")

// claimProcess writes pid's host record, create-only: the one kernel
// whose write lands runs it.
func (k *Kernel) claimProcess(ctx context.Context, pid PID) error {
	host := &record.Host{PID: int64(pid), Kernel: k.id}
	err := k.ns.putSummarized(ctx, record.HostKey(int64(pid)), record.Encode(host), true, record.HostSummary(host))
	if errors.Is(err, backend.ErrExist) {
		return fmt.Errorf("rack: process %d %w: %w", pid, errRunsElsewhere, ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("rack: process %d: host record: %w", pid, err)
	}
	return nil
}

// recordEnv holds, for a child on the forker's machine, its process record
// when it is at most maxRecordEnv bytes.
const (
	recordEnv    = "RACK_PROC"
	maxRecordEnv = 16 << 10
)

// kernelEnv holds, for a child on the forker's machine, the id of the
// kernel it is to run under, whose lease and host record the forker made.
const kernelEnv = "RACK_KERNEL"

// joinAs gives the kernel the id its forker registered it under: New
// makes no lease for it, nor adopt a host record.
func joinAs(id string) Option { return func(c *config) { c.kernelID = id } }

// recordFromEnv returns the process record the forker handed over for
// pid, or nil (then the store has it): through the pipe of
// internal/handoff (osproc), else in the environment. One that does not
// decode, or names another process, is nil too: the store's is the record.
func recordFromEnv(pid PID) *record.Proc {
	data, ok := handoff.Get(recordEnv)
	if !ok {
		data = os.Getenv(recordEnv)
	}
	os.Unsetenv(recordEnv) // not for this process's own children
	if data == "" {
		return nil
	}
	var rec record.Proc
	if err := record.Decode(recordEnv, []byte(data), &rec); err != nil || rec.PID != int64(pid) {
		return nil
	}
	return &rec
}

// watchParent kills pr when the kernel that forked it stops renewing its
// lease: a dead parent's subtree must not run (and cost) forever.
func (k *Kernel) watchParent(pr *proc) {
	defer k.wg.Done()
	t := time.NewTicker(k.cfg.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-pr.done:
			return
		case <-k.ctx.Done():
			return
		case <-t.C:
			if pr.rec.Detached {
				continue
			}
			if alive, err := k.leases.aliveShared(k.ctx, pr.rec.Kernel, k.cfg.lease/6); err == nil && !alive {
				k.cfg.logger.Warn("rack: parent kernel gone, killing", "pid", pr.pid, "parent", pr.rec.Kernel)
				k.orphaned.Store(true)
				k.kill(k.ctx, pr, SIGKILL)
				return
			}
		}
	}
}

// exitStatus maps Wait's result to an OS exit code, reporting failures
// on stderr.
func exitStatus(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.Reason != "" && ee.Code() != 2 { // a panic printed its own stack
			fmt.Fprintln(os.Stderr, ee.Reason)
		}
		return ee.Code()
	default:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
}
