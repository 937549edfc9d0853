// Package osproc is a backend.Compute whose instances are OS processes:
// the running program's own executable, started again with the child's
// identity in its environment (rack.Main picks it up). There is no inbound
// channel to a child: it coordinates through the namespace's store like
// any kernel.
//
// An instance's own OS stdout and stderr (what it writes outside rack's
// streams: a panic of the runtime, a library's log) go to this process's,
// or, with WithLogDir, to a log file per instance that Logs reads.
//
// # Environment
//
// An instance inherits this process's environment, as a child of a Unix
// process does, less the variables that hold cloud credentials or are
// rack's own hand-over (see Withheld): a program started in a local
// namespace has no use for the OpenStack password of the shell that
// started it, and should not be able to read it. StartRequest.Env is
// added; rack's process record (the process's Spec.Args and Spec.Env,
// which may hold secrets) is handed over through an inherited pipe, not
// the environment, which stays readable in /proc/PID/environ for the
// program's whole life.
package osproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/handoff"
	"github.com/rackfork/rack/internal/osfile"
)

// ErrClosed is returned by calls on a closed Compute.
var ErrClosed = errors.New("osproc: compute closed")

// ExeOption is the StartRequest option naming another program to start (a
// binary built with rack.Main), e.g. an app the rack shell runs. It is
// backend.ExeOption.
const ExeOption = backend.ExeOption

// Compute starts instances as OS processes.
type Compute struct {
	exeOnce        sync.Once // finds the running program, unless exe is set
	exe            string
	exeErr         error
	args           []string
	stdout, stderr io.Writer
	logDir         string
	group          bool // WithGroupAccess
	logOnce        sync.Once
	logDirRoot     *osfile.Root // logDir, checked, once opened
	logRootErr     error
	exitHook       func(backend.Instance, *os.ProcessState)

	mu     sync.Mutex
	closed bool
	procs  map[string]*instance
}

// instance is one started (or starting) OS process.
type instance struct {
	info  backend.Instance
	host  bool          // a host (backend.HostOption): Close leaves it running
	ready chan struct{} // closed once cmd is started, or failed to (cmd nil)
	cmd   *exec.Cmd     // set before ready is closed
	done  chan struct{} // closed once reaped
}

// Option configures a Compute.
type Option func(*Compute)

// WithExecutable sets the program started for each instance (default:
// os.Executable(), the running program) and its arguments.
func WithExecutable(path string, args ...string) Option {
	return func(c *Compute) { c.exe, c.args = path, args }
}

// WithOutput sets where the instances' own OS stdout and stderr go
// (default: this process's). WithLogDir overrides it.
func WithOutput(stdout, stderr io.Writer) Option {
	return func(c *Compute) { c.stdout, c.stderr = stdout, stderr }
}

// WithExitHook sets a function that is called when an instance's OS
// process has ended and been reaped, with its final state (exit status,
// signal, resource usage). It is called once per started instance, after
// the instance has left List, from a goroutine of the Compute; Close
// waits for the calls under way. It must not call Close.
func WithExitHook(f func(inst backend.Instance, state *os.ProcessState)) Option {
	return func(c *Compute) { c.exitHook = f }
}

// New returns a Compute that starts copies of the running program. The
// program is found at the first Start that needs it (most kernels of a
// local namespace never fork), and a failure to find it fails that Start
// with an error wrapping backend.ErrInvalid.
func New(opts ...Option) (*Compute, error) {
	c := &Compute{stdout: os.Stdout, stderr: os.Stderr, procs: make(map[string]*instance)}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// SameMachine reports true: each instance is an OS process on this
// machine, started at once with StartRequest.Env in its environment, the
// process record through a pipe (see Start) (backend.SameMachine).
func (c *Compute) SameMachine() bool { return true }

// executable returns the program to start by default.
func (c *Compute) executable() (string, error) {
	c.exeOnce.Do(func() {
		if c.exe == "" {
			if c.exe, c.exeErr = os.Executable(); c.exeErr != nil {
				c.exeErr = fmt.Errorf("finding the running program: %v: %w", c.exeErr, backend.ErrInvalid)
			}
		}
	})
	return c.exe, c.exeErr
}

// Start starts the program with req.Env added to the environment it
// inherits from this process (see the package documentation), except
// rack's process record (RACK_PROC), which it hands over through an
// inherited pipe (internal/handoff) where the system has them, so that it
// does not stay readable in the child's /proc/PID/environ. The child ends when this process dies (Pdeathsig on Linux),
// in addition to rack's lease watchdog. The name is reserved at once, so
// concurrent Starts of one name start one process; starts of different
// names run in parallel.
func (c *Compute) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	if req == nil || req.Name == "" {
		return backend.Instance{}, fmt.Errorf("osproc: start: %w: an instance needs a name", backend.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %w", req.Name, err)
	}
	if c.logDir != "" {
		if err := checkLogName(req.Name); err != nil {
			return backend.Instance{}, fmt.Errorf("osproc: start: %w", err)
		}
	}
	in := &instance{
		info:  backend.Instance{Name: req.Name, Namespace: req.Namespace, PID: req.PID, Created: time.Now()},
		host:  req.Options[backend.HostOption] != "",
		ready: make(chan struct{}),
		done:  make(chan struct{}),
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %w", req.Name, ErrClosed)
	case c.procs[req.Name] != nil:
		c.mu.Unlock()
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %w", req.Name, backend.ErrExist)
	}
	c.procs[req.Name] = in
	c.mu.Unlock()

	cmd, err := c.startProcess(req)
	if err != nil {
		c.mu.Lock()
		delete(c.procs, req.Name)
		c.mu.Unlock()
		close(in.ready)
		close(in.done)
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %w", req.Name, err)
	}
	in.cmd = cmd
	close(in.ready)
	go c.reap(in)
	return in.info, nil
}

// startProcess starts the OS process for req.
func (c *Compute) startProcess(req *backend.StartRequest) (*exec.Cmd, error) {
	var exe string
	args := c.args
	if e := req.Options[ExeOption]; e != "" {
		exe, args = e, nil
	} else {
		var err error
		if exe, err = c.executable(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = inheritedEnv(len(req.Env))
	var private map[string]string
	for k, v := range req.Env {
		if handoff.Supported && handoff.Private(k) {
			if private == nil {
				private = make(map[string]string)
			}
			private[k] = v
			continue
		}
		cmd.Env = append(cmd.Env, k+"="+v) // os/exec keeps the last of duplicate keys
	}
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	if c.logDir != "" {
		log, err := c.openLog(req.Name)
		if err != nil {
			return nil, err
		}
		// The child shares log's open file description, and with it the
		// lock that tells followers it is alive (see Logs); ours goes.
		defer log.Close()
		cmd.Stdout, cmd.Stderr = log, log
	}
	// The private variables go through a pipe the child inherits as fd 3
	// (see internal/handoff): what fits in the pipe's buffer is written
	// now, the rest once the child runs.
	var rest []byte
	var hw *os.File
	if private != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("%v: %w", err, backend.ErrTransient)
		}
		defer r.Close() // the child's copy stays
		data := handoff.Encode(private)
		if n := handoff.WriteNow(w, data); n < len(data) {
			rest, hw = data[n:], w
		} else {
			w.Close()
		}
		cmd.ExtraFiles = []*os.File{r}
		cmd.Env = append(cmd.Env, handoff.FDEnv+"=3")
	}
	if req.Options[backend.HostOption] != "" {
		setHostAttrs(cmd) // outlives this process: no death signal
	} else {
		setDeathSignal(cmd)
	}
	if err := cmd.Start(); err != nil {
		if hw != nil {
			hw.Close()
		}
		// Resource exhaustion (EAGAIN, ENOMEM) passes; a missing program does not.
		kind := backend.ErrTransient
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			kind = backend.ErrInvalid
		}
		return nil, fmt.Errorf("%v: %w", err, kind)
	}
	if hw != nil {
		// A program that never reads it (one not built with rack) ends
		// the write when it exits.
		go func() {
			hw.Write(rest)
			hw.Close()
		}()
	}
	return cmd, nil
}

// inheritedEnv returns the environment an instance inherits from this
// process, with room for n more variables: all of it, less the
// variables that hold credentials or are rack's own hand-over to a
// child (see the package documentation).
func inheritedEnv(n int) []string {
	env := os.Environ()
	out := make([]string, 0, len(env)+n+1)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !Withheld(k) {
			out = append(out, kv)
		}
	}
	return out
}

// Withheld reports whether the environment variable key of this process
// is kept from the instances a Compute starts: the OpenStack clients'
// settings and credentials (OS_*: OS_PASSWORD, OS_TOKEN,
// OS_APPLICATION_CREDENTIAL_SECRET...), python-swiftclient's (ST_AUTH,
// ST_USER, ST_KEY), and rack's own hand-over to a child (RACK_PROC,
// RACK_KERNEL, RACK_CREDENTIAL_*, RACK_HANDOFF_FD), which a child
// receives anew from its own forker.
func Withheld(key string) bool {
	switch {
	case strings.HasPrefix(key, "OS_"), strings.HasPrefix(key, "RACK_CREDENTIAL_"):
		return true
	}
	switch key {
	case "ST_AUTH", "ST_USER", "ST_KEY", "RACK_PROC", "RACK_KERNEL", handoff.FDEnv:
		return true
	}
	return false
}

// reap waits for in's process to end, removes it from List, and calls the
// exit hook.
func (c *Compute) reap(in *instance) {
	_ = in.cmd.Wait()
	c.mu.Lock()
	if c.procs[in.info.Name] == in {
		delete(c.procs, in.info.Name)
	}
	c.mu.Unlock()
	if c.exitHook != nil {
		c.exitHook(in.info, in.cmd.ProcessState)
	}
	close(in.done)
}

// Stop kills the instance's process (SIGKILL: rack delivers the gentler
// signals itself, through the store).
func (c *Compute) Stop(ctx context.Context, name string) error {
	c.mu.Lock()
	in := c.procs[name]
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("osproc: stop %s: %w", name, ErrClosed)
	case in == nil:
		return fmt.Errorf("osproc: stop %s: %w", name, backend.ErrNotFound)
	}
	select {
	case <-in.ready:
	case <-ctx.Done():
		return fmt.Errorf("osproc: stop %s: %w", name, context.Cause(ctx))
	}
	if in.cmd == nil {
		return fmt.Errorf("osproc: stop %s: %w", name, backend.ErrNotFound) // its start failed
	}
	if err := in.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("osproc: stop %s: %w", name, err)
	}
	return nil
}

// List returns the live instances of namespace ("" for all), by PID. An
// instance is listed from the moment its Start reserves its name until
// its process has been reaped.
func (c *Compute) List(ctx context.Context, namespace string) ([]backend.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	var out []backend.Instance
	for _, in := range c.procs {
		if namespace == "" || in.info.Namespace == namespace {
			out = append(out, in.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// Close kills every instance but hosts (backend.HostOption), which end
// themselves, and waits for them to be reaped.
func (c *Compute) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ins := make([]*instance, 0, len(c.procs))
	for _, in := range c.procs {
		if !in.host { // a host ends itself (backend.HostOption)
			ins = append(ins, in)
		}
	}
	c.mu.Unlock()
	for _, in := range ins {
		<-in.ready
		if in.cmd != nil {
			_ = in.cmd.Process.Kill()
		}
	}
	for _, in := range ins {
		<-in.done
	}
	return nil
}
