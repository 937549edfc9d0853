// Package osproc is a backend.Compute whose instances are OS processes:
// the running program's own executable, started again with the child's
// identity in its environment (rack.Main picks it up). There is no inbound
// channel to a child: it coordinates through the namespace's store like
// any kernel.
package osproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"sync"
	"time"

	"github.com/rackfork/rack/backend"
)

// ErrClosed is returned by calls on a closed Compute.
var ErrClosed = errors.New("osproc: compute closed")

// ExeOption is the StartRequest option naming another program to start (a
// binary built with rack.Main), e.g. an app the rack shell runs.
const ExeOption = "exe"

// Compute starts instances as OS processes.
type Compute struct {
	exe            string
	args           []string
	stdout, stderr io.Writer

	mu     sync.Mutex
	closed bool
	procs  map[string]*instance
}

type instance struct {
	info backend.Instance
	cmd  *exec.Cmd
	done chan struct{}
}

// Option configures a Compute.
type Option func(*Compute)

// WithExecutable sets the program started for each instance (default:
// os.Executable(), the running program) and its arguments.
func WithExecutable(path string, args ...string) Option {
	return func(c *Compute) { c.exe, c.args = path, args }
}

// WithOutput sets where the instances' own OS stdout and stderr go
// (default: this process's).
func WithOutput(stdout, stderr io.Writer) Option {
	return func(c *Compute) { c.stdout, c.stderr = stdout, stderr }
}

// New returns a Compute that starts copies of the running program.
func New(opts ...Option) (*Compute, error) {
	c := &Compute{stdout: os.Stdout, stderr: os.Stderr, procs: make(map[string]*instance)}
	for _, o := range opts {
		o(c)
	}
	if c.exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("osproc: finding the running program: %w", err)
		}
		c.exe = exe
	}
	return c, nil
}

// Start starts the program with req.Env added to this process's
// environment. The child ends when this process dies (Pdeathsig on Linux),
// in addition to rack's lease watchdog.
func (c *Compute) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	if req == nil || req.Name == "" {
		return backend.Instance{}, fmt.Errorf("osproc: start: %w: an instance needs a name", backend.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %w", req.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %w", req.Name, ErrClosed)
	}
	if _, dup := c.procs[req.Name]; dup {
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %w", req.Name, backend.ErrExist)
	}
	exe, args := c.exe, c.args
	if e := req.Options[ExeOption]; e != "" {
		exe, args = e, nil
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = os.Environ()
	for k, v := range req.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		// Resource exhaustion (EAGAIN, ENOMEM) passes; a missing program does not.
		kind := backend.ErrTransient
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			kind = backend.ErrInvalid
		}
		return backend.Instance{}, fmt.Errorf("osproc: start %s: %v: %w", req.Name, err, kind)
	}
	in := &instance{
		info: backend.Instance{Name: req.Name, Namespace: req.Namespace, PID: req.PID, Created: time.Now()},
		cmd:  cmd, done: make(chan struct{}),
	}
	c.procs[req.Name] = in
	go func() {
		_ = cmd.Wait()
		c.mu.Lock()
		if c.procs[req.Name] == in {
			delete(c.procs, req.Name)
		}
		c.mu.Unlock()
		close(in.done)
	}()
	return in.info, nil
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
	if err := in.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("osproc: stop %s: %w", name, err)
	}
	return nil
}

// List returns the live instances of namespace ("" for all), by PID.
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

// Close kills every instance and waits for them to be reaped.
func (c *Compute) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ins := make([]*instance, 0, len(c.procs))
	for _, in := range c.procs {
		ins = append(ins, in)
	}
	c.mu.Unlock()
	for _, in := range ins {
		_ = in.cmd.Process.Kill()
		<-in.done
	}
	return nil
}
