package main

// The bridge: any program is a rack process.
//
// A command that is neither a builtin nor a rack app (grep, wc, sort, awk,
// a shell script...) runs as a rack process of bridgeProgram, a program
// registered in this binary: the shell forks it with Spec.Name and
// Spec.Args as typed (so ps shows "grep pi"), and the bridge execs the
// command and copies its standard streams to and from the process's rack
// streams (pipes and files), passes rack signals on to it and exits with
// its status (128+n when a signal n ended it, as bash reports). Because
// the bridge is rack code in the shell's own binary, a stage runs wherever
// the namespace runs processes: a goroutine of the shell on mem://, an OS
// process on file://, a Nova server of its own on openstack://, where the
// staged binary is the shell's and runs the bridge there.
//
// Where the command is found:
//
//   - mem:// and file:// (the bridge runs on the shell's machine): the
//     shell looks the name up first ($RACK_APPS, then PATH), so a missing
//     command fails at once with status 127 and forks nothing; a relative
//     path (./x, bin/x) is made absolute, since the bridge runs in a
//     private temporary directory. The bridge then resolves the name by
//     the PATH of the environment it gives the command.
//   - openstack:// (the command runs on a server): the name is sent as
//     typed and resolved on the server, by its PATH (the stock image's
//     coreutils, grep, awk, sed, sort...). A local absolute path would
//     mean nothing there; a relative one is refused. A command missing on
//     the server ends its stage with status 127.
//
// The command's environment: the bridge's own OS environment (on a
// server, the boot script's; locally, the shell's), overlaid with the
// process's Spec.Env, less every credential (osproc.Withheld: OS_*, ST_*,
// RACK_CREDENTIAL_*) and rack's hand-over variables (RACK_URL, RACK_PID):
// the command is not a rack process itself.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/osproc"
)

// bridgeProgram is the registered name of the bridge.
const bridgeProgram = "rack-exec"

// bridgePathEnv carries, in a bridged process's Spec.Env, the command as
// the bridge is to exec it, when that is not the process's name: a path
// (Spec.Name may not contain '/'). The command does not see it.
const bridgePathEnv = "RACK_EXEC_PATH"

func init() { rack.Register(bridgeProgram, runBridge) }

// external is a stage that runs a program that is not a rack app, through
// the bridge.
type external struct {
	path string // what the bridge execs: the name as typed, or an absolute path
}

// forked reports whether st runs as a forked rack process (an app or an
// external command), not in the shell.
func (st *stage) forked() bool { return st.exe != "" || st.ext != nil }

// runsElsewhere reports whether the namespace's processes run on other
// machines (openstack://): there, commands are resolved on the server, and
// a child's credential reaches no container but the namespace's.
func (sh *shell) runsElsewhere() bool {
	u, err := url.Parse(sh.url)
	return err == nil && u.Scheme == "openstack"
}

// lookExternal decides how name, which is neither a builtin nor a rack app
// (appErr says why lookApp refused it), runs through the bridge; the error
// is the one to report (status 127) when it cannot.
func (sh *shell) lookExternal(name string, appErr error) (*external, error) {
	if sh.runsElsewhere() {
		if strings.Contains(name, "/") && !filepath.IsAbs(name) {
			return nil, fmt.Errorf("rack: %s: a relative path names nothing on the server the command runs on", name)
		}
		return &external{path: name}, nil
	}
	if strings.Contains(name, "/") {
		// The bridge tells a missing file (127) from one it cannot run (126).
		abs, err := filepath.Abs(name)
		if err != nil {
			return nil, fmt.Errorf("rack: %s: %w", name, err)
		}
		return &external{path: abs}, nil
	}
	if sh.appsDir != "" {
		// A program in $RACK_APPS that is not a rack app still comes first.
		p := filepath.Join(sh.appsDir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return &external{path: p}, nil
		}
	}
	if _, err := exec.LookPath(name); err != nil {
		return nil, appErr
	}
	return &external{path: name}, nil
}

// childWrites reports whether st, the last stage, writes its > file
// itself (rack commits it when the process exits), rather than through a
// pipe that the shell copies into the file: an app does; an external
// command does where its credential reaches the file's container (not on
// a server).
func (sh *shell) childWrites(st *stage) bool {
	return st.exe != "" || (st.ext != nil && !sh.runsElsewhere())
}

// stageSpec returns the Spec that forks st, an app or an external command.
func (sh *shell) stageSpec(st *stage) rack.Spec {
	spec := rack.Spec{Name: st.name, Args: st.args, Env: st.env, Stdin: st.stdin, Stdout: st.stdout, Stderr: st.stderr}
	if st.ext == nil {
		spec.Options = appOptions(st.exe)
		return spec
	}
	spec.Program = bridgeProgram
	spec.Name = filepath.Base(st.name)
	if st.ext.path != spec.Name {
		env := make(map[string]string, len(st.env)+1)
		for k, v := range st.env {
			env[k] = v
		}
		env[bridgePathEnv] = st.ext.path
		spec.Env = env
	}
	return spec
}

// pumpFiles gives the external commands that run on servers pipes in place
// of the rack files they would read (<) or write (>) themselves, since
// their credential reaches only the namespace's containers: the shell
// copies between each file and its pipe. It returns the copies to start
// once the stages are forked (each calls wg.Done) and, for a > file, what
// to run after they all ended (committing the file); the pipe ends go to
// *closers, so that they are closed on every path.
func (sh *shell) pumpFiles(ctx context.Context, stages []*stage, closers *[]io.Closer) (pumps []func(wg *sync.WaitGroup), after []func() error, err error) {
	if !sh.runsElsewhere() {
		return nil, nil, nil
	}
	for _, st := range stages {
		if st.ext == nil {
			continue
		}
		if f, ok := st.stdin.(*rack.File); ok {
			r, w, err := sh.self.Pipe(ctx)
			if err != nil {
				return nil, nil, err
			}
			// Not a *rack.PipeWriter in closers: the shell closes it when
			// the copy ends, not once the stages are forked.
			*closers = append(*closers, heldWriter{w}, r)
			st.stdin = r
			pumps = append(pumps, func(wg *sync.WaitGroup) {
				defer wg.Done()
				if _, err := io.Copy(w, f); err != nil {
					sh.errorf("rack: %s: reading its input: %v", st.name, err)
				}
				_ = w.Close()
			})
		}
		if f, ok := st.stdout.(*rack.File); ok {
			r, w, err := sh.self.Pipe(ctx)
			if err != nil {
				return nil, nil, err
			}
			*closers = append(*closers, w, r)
			st.stdout = w
			var copyErr error
			pumps = append(pumps, func(wg *sync.WaitGroup) {
				defer wg.Done()
				defer r.Close()
				_, copyErr = io.Copy(f, r)
			})
			after = append(after, func() error {
				cerr := f.Close()
				if copyErr != nil {
					return copyErr
				}
				return cerr
			})
		}
	}
	return pumps, after, nil
}

// pipeGrace is how long a stage may run on once the stage that reads its
// output has ended, before endOrphanedWriters ends it.
const pipeGrace = time.Second

// endOrphanedWriters stands in for SIGPIPE, which rack pipes do not have
// (a writer is not told that its readers are gone): once a forked stage
// ended, the forked stage writing to it is sent SIGTERM if it is still
// running pipeGrace later, so that `yes | head -1` ends (Linux ends yes at
// its next write) and does not fill the store for ever. The grace lets a
// writer that is finishing on its own end with its own status. procs holds
// each stage's process, nil for a stage run in the shell.
func (sh *shell) endOrphanedWriters(ctx context.Context, procs []*rack.Process) {
	for i := 0; i+1 < len(procs); i++ {
		writer, reader := procs[i], procs[i+1]
		if writer == nil || reader == nil {
			continue
		}
		go func() {
			ctx := context.WithoutCancel(ctx)
			done := make(chan struct{})
			go func() {
				_ = writer.Wait(ctx)
				close(done)
			}()
			_ = reader.Wait(ctx)
			select {
			case <-done:
			case <-time.After(pipeGrace):
				_ = writer.Signal(ctx, rack.SIGTERM)
			}
		}()
	}
}

// heldWriter is a pipe end that start must not close with the stages'
// write ends: its copy closes it.
type heldWriter struct{ *rack.PipeWriter }

// runBridge is the bridge program: it execs the command its process was
// forked for, with the process's streams, signals and exit status.
func runBridge(ctx context.Context, self *rack.Self) error {
	// Signals first: one that comes before the command starts waits in
	// sigs and is passed on once it runs. One that came even earlier
	// cancelled ctx (below).
	sigs := make(chan rack.Signal, 16)
	for _, s := range forwardedSignals() {
		_ = self.Notify(sigs, s) // refused for a signal rack does not deliver to programs
	}
	defer self.StopNotify(sigs)
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx) // the exit rack gives a program ended by a signal
	}
	name := self.Name()
	if p := self.Getenv(bridgePathEnv); p != "" {
		name = p
	}
	env := bridgeEnv(os.Environ(), self.Environ())
	path, err := lookPathIn(name, envValue(env, "PATH"))
	if err != nil {
		return cannotRun(self, name, err)
	}
	dir, err := os.MkdirTemp("", "rack-exec-")
	if err != nil {
		return fmt.Errorf("%s: working directory: %w", name, err)
	}
	defer os.RemoveAll(dir)

	cmd := exec.Command(path, self.Args()...)
	cmd.Args[0] = name // argv[0] as typed, as a shell gives it
	cmd.Env = env
	cmd.Dir = dir
	setProcAttr(cmd)
	var files []*os.File // every end still open here
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return err
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return err
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW

	if err := cmd.Start(); err != nil {
		closeAll()
		return cannotRun(self, name, err)
	}
	// The command's ends are its own now.
	inR.Close()
	outW.Close()
	errW.Close()

	var copies sync.WaitGroup
	var outErr error
	copies.Add(2)
	go func() {
		defer copies.Done()
		outErr = coalesce(self.Stdout(), outR, 1<<20, 2*time.Millisecond)
		outR.Close()
	}()
	go func() {
		defer copies.Done()
		_ = coalesce(self.Stderr(), errR, 64<<10, 2*time.Millisecond)
		errR.Close()
	}()
	stdin := self.Stdin()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		_, _ = io.Copy(inW, stdin) // ends with an error once the command stops reading
		inW.Close()
	}()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	// ended is closed once rack ended the process (SIGKILL, SIGTERM's
	// grace run out, the kernel closing): the command goes with it.
	ended := make(chan struct{})
	go func() {
		_ = self.Wait(context.WithoutCancel(ctx))
		close(ended)
	}()
	// copied is closed at EOF of the command's output: once every holder
	// of its ends (what the command started, too) has ended or closed them.
	copied := make(chan struct{})
	go func() {
		copies.Wait()
		close(copied)
	}()
	cancelled := ctx.Done()
	var werr error
	for waited != nil || copied != nil {
		select {
		case s := <-sigs:
			signalCommand(cmd.Process, s) // its group, while the group lasts
		case <-cancelled:
			// A signal that came before Notify (rack's default action:
			// end the program) is passed on; SIGKILL ends the command.
			cancelled = nil
			var s rack.Signal
			if !errors.As(context.Cause(ctx), &s) {
				s = rack.SIGKILL
			}
			signalCommand(cmd.Process, s)
		case <-ended:
			ended = nil
			signalCommand(cmd.Process, rack.SIGKILL)
		case werr = <-waited:
			waited = nil
			// The command is gone: what it did not read of its input is
			// not wanted (its reader ends, as when a Linux process exits).
			inW.Close()
			if c, ok := stdin.(io.Closer); ok {
				_ = c.Close()
			}
			<-inDone
		case <-copied:
			copied = nil
		}
	}

	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return fmt.Errorf("%s: %w", name, werr)
		}
		if sig, ok := exitSignal(ee.ProcessState); ok {
			return rack.Exit(128+sig, fmt.Sprintf("%s: killed by signal %d", name, sig))
		}
		return rack.Exit(ee.ExitCode())
	}
	if outErr != nil {
		return fmt.Errorf("%s: writing its output: %w", name, outErr)
	}
	return nil
}

// cannotRun reports that command name could not be started, and returns
// the exit bash gives: 127 when it is not found, 126 when it cannot run.
func cannotRun(self *rack.Self, name string, err error) error {
	code := 126
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotFound) {
		code = 127
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is name
	}
	fmt.Fprintf(self.Stderr(), "rack: %s: %v\n", name, err)
	return rack.Exit(code, err.Error())
}

// forwardedSignals returns the signals the bridge asks rack for and passes
// on to the command's process group: every signal rack lets a program
// catch (Self.Notify refuses the others). Today that is SIGHUP, SIGINT,
// SIGUSR1, SIGUSR2 and SIGTERM; SIGKILL cannot be caught, and ends the
// command with the process (runBridge's ctx). A stop does not come this
// way: on file:// the compute stops the bridge's whole job, the command's
// group included (backend/osproc's Pause).
func forwardedSignals() []rack.Signal {
	out := make([]rack.Signal, 0, 30)
	for n := 1; n < 32; n++ {
		if s := rack.Signal(n); s != rack.SIGKILL {
			out = append(out, s)
		}
	}
	return out
}

// errNotFound says a command name is on no directory of PATH.
var errNotFound = errors.New("command not found")

// lookPathIn finds the executable of name as a shell does, with pathList
// as PATH: a name with a '/' is used as it is; relative PATH entries are
// skipped (the bridge runs in a temporary directory).
func lookPathIn(name, pathList string) (string, error) {
	if strings.Contains(name, "/") {
		if err := isExecutable(name); err != nil {
			return "", err
		}
		return name, nil
	}
	denied := false
	for _, dir := range filepath.SplitList(pathList) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		err := isExecutable(p)
		if err == nil {
			return p, nil
		}
		denied = denied || errors.Is(err, fs.ErrPermission)
	}
	if denied {
		return "", fmt.Errorf("%w: found on PATH, but not executable", fs.ErrPermission)
	}
	return "", errNotFound
}

// isExecutable says whether file is a file anyone may execute.
func isExecutable(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%w: is a directory", fs.ErrPermission)
	}
	if fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

// bridgeEnv returns the command's environment: osEnv (KEY=VALUE) overlaid
// with spec, less credentials and rack's hand-over variables, sorted.
func bridgeEnv(osEnv []string, spec map[string]string) []string {
	m := make(map[string]string, len(osEnv)+len(spec))
	for _, kv := range osEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	for k, v := range spec {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		if osproc.Withheld(k) || k == rack.URLEnv || k == rack.PIDEnv || k == bridgePathEnv {
			continue
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// envValue returns the value of key in env (KEY=VALUE entries).
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// coalesce copies src to dst until EOF, gathering what src gives within
// delay of its first bytes (up to size) into one Write: a command writes
// in small pieces (4 KiB through stdio), and each Write to a rack pipe is
// a store request. A src without read deadlines is copied as it comes. On
// a failed Write, src is closed (the command's next write fails, as after
// its reader went) and the error returned.
func coalesce(dst io.Writer, src *os.File, size int, delay time.Duration) error {
	buf := make([]byte, size)
	n := 0
	deadlines := true
	for {
		if deadlines {
			var d time.Time
			if n > 0 {
				d = time.Now().Add(delay)
			}
			if src.SetReadDeadline(d) != nil {
				deadlines = false
			}
		}
		m, err := src.Read(buf[n:])
		n += m
		timedOut := errors.Is(err, os.ErrDeadlineExceeded)
		if n > 0 && (n == len(buf) || err != nil || !deadlines) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return werr
			}
			n = 0
		}
		switch {
		case timedOut:
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
}
