package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rackfork/rack"
)

// rackModule is the module an app must be built with.
const rackModule = "github.com/rackfork/rack"

// shell runs lines on a namespace, as the root process self.
type shell struct {
	k           *rack.Kernel
	self        *rack.Self
	url         string
	appsDir     string
	stdout      io.Writer // safe for concurrent use
	stderr      io.Writer
	interactive bool
	term        atomic.Pointer[terminal] // interactive only
	market      *market                  // the published apps (appstore.go)

	vars     *vars    // the shell's variables
	status   int      // $?
	lastBG   rack.PID // $!
	exited   bool     // exit was run
	exitCode int

	// Job control (jobs.go).
	lines      int // lines read by the interactive shell
	exitWarned int // the line up to which exit warned of jobs left
	ownSignal  chan rack.Signal

	mu       sync.Mutex
	fg       []*rack.Process // the foreground job's processes, for Ctrl-C
	jobs     map[*job]struct{}
	finished []*job // background jobs ended and not reported yet
	stopSeq  int    // counts Ctrl-Z, for the current job
}

// job is a running pipeline.
type job struct {
	bg    bool // in the background (started with &, or bg); under sh.mu
	procs []*rack.Process
	done  chan struct{} // closed once every stage ended and its output was copied
	code  int           // the last stage's status, once done

	id       int    // its number for jobs, fg, bg (%N)
	cmd      string // its command line, as jobs shows it
	stopped  bool   // under sh.mu
	stopSeq  int    // when it was stopped last (sh.stopSeq)
	finished bool   // under sh.mu
}

func newShell(k *rack.Kernel, cfg config) *shell {
	sh := &shell{
		k: k, url: cfg.url, appsDir: cfg.appsDir,
		stdout: &lockedWriter{w: cfg.stdout}, stderr: &lockedWriter{w: cfg.stderr},
		jobs: make(map[*job]struct{}), ownSignal: make(chan rack.Signal, 1), vars: newVars(),
	}
	if cfg.getenv != nil {
		sh.vars = environVars(cfg.getenv)
	}
	return sh
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// params returns the values of $? and $!.
func (sh *shell) params() Params {
	p := Params{Status: sh.status, LastBG: int64(sh.lastBG), Lookup: sh.vars.lookup}
	if sh.self != nil {
		p.PID = int64(sh.self.PID())
	}
	return p
}

// errorf reports an error on the shell's stderr.
func (sh *shell) errorf(format string, args ...any) {
	fmt.Fprintf(sh.stderr, format+"\n", args...)
}

// runScript runs the lines of r until EOF or exit; it returns the last
// status.
func (sh *shell) runScript(ctx context.Context, r io.Reader) int {
	br := bufio.NewReader(r)
	pending := "" // lines of a command not complete yet (an open quote...)
	for !sh.exited {
		text, err := br.ReadString('\n')
		if text != "" || pending != "" {
			text = pending + strings.TrimSuffix(text, "\n")
			pending = ""
			var se *SyntaxError
			if _, perr := Parse(text); errors.As(perr, &se) && se.Incomplete && err == nil {
				pending = text + "\n" // as bash, read on
				continue
			}
			sh.status = sh.runSource(ctx, text)
		}
		if err != nil {
			if err != io.EOF {
				sh.errorf("rack: reading input: %v", err)
				return 1
			}
			break
		}
		if ctx.Err() != nil {
			return 1
		}
	}
	if sh.exited {
		return sh.exitCode
	}
	return sh.status
}

// runSource parses and runs one line, and returns its status.
func (sh *shell) runSource(ctx context.Context, text string) int {
	line, err := Parse(text)
	if err != nil {
		sh.errorf("%v", err)
		sh.status = 2
		return 2
	}
	return sh.runLine(ctx, line)
}

// runLine runs a parsed line and returns (and records as $?) the status of
// its last pipeline. A pipeline after && runs only if the status is 0, one
// after || only if it is not; a skipped one leaves the status as it is.
func (sh *shell) runLine(ctx context.Context, line *Line) int {
	if sh.vars == nil {
		sh.vars = newVars() // a shell made without newShell
	}
	for _, pl := range line.Pipelines {
		if sh.exited || ctx.Err() != nil {
			break
		}
		if (pl.Op == OpAnd && sh.status != 0) || (pl.Op == OpOr && sh.status == 0) {
			continue
		}
		code := sh.runPipeline(ctx, pl)
		if pl.Negate && !pl.Background {
			code = boolStatus(code != 0)
		}
		sh.status = code
	}
	if sh.exited {
		return sh.exitCode
	}
	return sh.status
}

// boolStatus is 0 for true, 1 for false.
func boolStatus(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

// stage is one command of a pipeline being started.
type stage struct {
	name    string
	args    []string
	builtin builtinFunc
	exe     string            // an app's absolute path
	ext     *external         // a program that is not a rack app, run by the bridge (bridge.go)
	env     map[string]string // an app's environment: exported variables and NAME=VALUE prefixes
	fds     fdTable           // after the redirections
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

// runPipeline starts a pipeline and, unless it is a background one, waits
// for it. Builtins run in the shell (as goroutines when in a pipeline);
// apps are forked.
func (sh *shell) runPipeline(ctx context.Context, pl *Pipeline) int {
	stages := make([]*stage, len(pl.Cmds))
	for i, c := range pl.Cmds {
		p := sh.params()
		words := sh.expandArgs(ctx, c.Args, p)
		st := &stage{}
		if len(words) == 0 {
			// Only assignments and redirections: a lone one sets shell
			// variables and makes its redirections' files.
			st.name, st.builtin = ":", builtinColon
			if len(pl.Cmds) == 1 && !pl.Background {
				for _, a := range c.Assigns {
					sh.vars.set(a.Name, a.Value.Expand(sh.params()))
				}
			}
			stages[i] = st
			continue
		}
		st.name, st.args = words[0], words[1:]
		if b, ok := builtins[st.name]; ok {
			st.builtin = b
		} else {
			exe, err := sh.lookApp(st.name)
			if err != nil {
				// Not a rack app: any other program runs through the
				// bridge. Else, as in bash, the other stages run; this
				// one reports on its stderr and fails with 127.
				if st.ext, err = sh.lookExternal(st.name, err); err != nil {
					st.builtin = notFound(err)
					stages[i] = st
					continue
				}
			}
			st.exe = exe
			var prefix map[string]string
			for _, a := range c.Assigns {
				if prefix == nil {
					prefix = make(map[string]string)
				}
				prefix[a.Name] = a.Value.Expand(p)
			}
			st.env = sh.vars.environ(prefix)
		}
		stages[i] = st
	}
	// A lone builtin runs right here: it may change the shell (exit, wait,
	// export).
	if len(stages) == 1 && stages[0].builtin != nil && !pl.Background {
		return sh.runLoneBuiltin(ctx, pl.Cmds[0], stages[0])
	}
	j, err := sh.start(ctx, pl, stages, jobText(stages))
	if err != nil {
		sh.report(err)
		return 1
	}
	if pl.Background {
		if n := len(j.procs); n > 0 {
			sh.lastBG = j.procs[n-1].PID()
			if sh.interactive {
				fmt.Fprintf(sh.stdout, "[%d] %d\n", j.id, sh.lastBG)
			} else {
				fmt.Fprintf(sh.stdout, "[%d]\n", sh.lastBG)
			}
		}
		return 0
	}
	return sh.waitForeground(ctx, j)
}

// notFound is a command that could not be found: it prints err on its
// stderr and fails with status 127.
func notFound(err error) builtinFunc {
	return func(_ context.Context, e *builtinEnv, _ []string) int {
		fmt.Fprintf(e.stderr, "rack: %s\n", cleanError(err))
		return 127
	}
}

// expandArgs expands a command's words into its arguments. As in bash,
// the NAME=VALUE arguments of export are assignments: neither split nor
// globbed.
func (sh *shell) expandArgs(ctx context.Context, args []Word, p Params) []string {
	if len(args) == 0 {
		return nil
	}
	if name, ok := args[0].plain(); !ok || name != "export" {
		return Fields(args, p, sh.glob(ctx))
	}
	words := []string{"export"}
	for _, w := range args[1:] {
		if a, ok := assignment(w); ok {
			words = append(words, a.Name+"="+a.Value.Expand(p))
			continue
		}
		words = append(words, Fields([]Word{w}, p, sh.glob(ctx))...)
	}
	return words
}

// builtinColon is ":" (and a command of assignments only): it succeeds.
func builtinColon(context.Context, *builtinEnv, []string) int { return 0 }

// glob expands rack path patterns (nil: none, as with no kernel).
func (sh *shell) glob(ctx context.Context) Globber {
	if sh.k == nil {
		return nil
	}
	return globFS(sh.k.FS(ctx))
}

// runLoneBuiltin runs a builtin with its redirections, in the shell.
func (sh *shell) runLoneBuiltin(ctx context.Context, c *Command, st *stage) int {
	t, err := sh.applyRedirects(ctx, c, fdTable{out: &sink{kind: sinkShellOut}, err: &sink{kind: sinkShellErr}})
	if err != nil {
		sh.report(err)
		return 1
	}
	env := &builtinEnv{sh: sh, stdin: eofReader{}, stdout: sh.stdout, stderr: sh.stderr}
	if t.inPath != "" {
		f, err := sh.k.Open(ctx, t.inPath)
		if err != nil {
			sh.errorf("rack: %s", fileError(t.inPath, err))
			return 1
		}
		defer f.Close()
		env.stdin = f
	}
	type openFile struct {
		path string
		f    io.WriteCloser
	}
	var files []openFile
	opened := map[*sink]io.Writer{}
	writer := func(s *sink) (io.Writer, error) {
		switch s.kind {
		case sinkShellOut:
			return sh.stdout, nil
		case sinkShellErr:
			return sh.stderr, nil
		case sinkNull:
			return io.Discard, nil
		}
		if w, ok := opened[s]; ok {
			return w, nil
		}
		f, err := sh.openSink(ctx, s)
		if err != nil {
			return nil, errors.New("rack: " + fileError(s.path, err))
		}
		files = append(files, openFile{s.path, f})
		opened[s] = f
		return f, nil
	}
	code := 0
	if env.stdout, err = writer(t.out); err == nil {
		env.stderr, err = writer(t.err)
	}
	if err != nil {
		sh.report(err)
		code = 1
	} else {
		code = st.builtin(ctx, env, st.args)
	}
	for _, f := range files {
		if err := f.f.Close(); err != nil {
			sh.errorf("rack: %s", fileError(f.path, err))
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// start forks (or runs) every stage of pl, connected by rack pipes, and
// returns the running job.
//
// Each stage starts with its input from the previous stage's pipe (or
// none), its output to the next stage's pipe (or the shell's stdout) and
// its errors to the shell's stderr; its redirections then change that
// table in order. A builtin writes files itself. An app writes a > file
// itself (rack commits it when the app ends); its >> files, and a file
// that both its outputs share, go through a pipe to the shell, which
// writes the file once the app ends.
func (sh *shell) start(ctx context.Context, pl *Pipeline, stages []*stage, cmd string) (_ *job, err error) {
	j := &job{bg: pl.Background, done: make(chan struct{}), cmd: cmd}
	var (
		closers []io.Closer // the shell's ends, closed once every stage started
		wg      sync.WaitGroup
		codes   = make([]int, len(stages))
		after   []func() error // run once every stage ended
	)
	cleanup := func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	defer func() {
		if err != nil {
			for _, p := range j.procs {
				_ = p.Kill(context.WithoutCancel(ctx))
			}
			cleanup()
			for _, f := range after {
				_ = f()
			}
		}
	}()

	hasRackApp := false
	for _, st := range stages {
		hasRackApp = hasRackApp || st.exe != ""
	}
	if hasRackApp {
		if err := sh.checkAppStages(stages); err != nil {
			return nil, err
		}
	}
	// copyTo makes a pipe whose reader the shell copies to w.
	copyTo := func(w io.Writer) (*rack.PipeWriter, error) {
		r, pw, err := sh.self.Pipe(ctx)
		if err != nil {
			return nil, err
		}
		closers = append(closers, pw)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			_, _ = io.Copy(w, r)
		}()
		return pw, nil
	}

	// The descriptor tables: pipes between the stages, then the
	// redirections.
	readers := make([]*rack.PipeReader, len(stages))
	for i, st := range stages {
		st.fds = fdTable{inPipe: readers[i], out: &sink{kind: sinkShellOut}, err: &sink{kind: sinkShellErr}}
		if i < len(stages)-1 {
			r, w, err := sh.self.Pipe(ctx)
			if err != nil {
				return nil, err
			}
			closers = append(closers, w)
			readers[i+1] = r
			st.fds.out = &sink{kind: sinkPipe, pw: w}
		}
		if st.fds, err = sh.applyRedirects(ctx, pl.Cmds[i], st.fds); err != nil {
			return nil, err
		}
	}
	// A pipe reader no stage reads (its input came from a file) is
	// closed once the stages started, so its writer is not left blocked;
	// one a builtin reads is closed by the shell at the end; an app's
	// moves to the app.
	var unread []*rack.PipeReader
	for i, r := range readers {
		switch {
		case r == nil:
		case stages[i].fds.inPipe != r:
			unread = append(unread, r)
		case stages[i].builtin != nil:
			closers = append(closers, r)
		}
	}
	defer func() {
		if err != nil {
			for _, r := range unread {
				_ = r.Close()
			}
		}
	}()

	// The shell's own stdout and stderr, for the apps: pipes it copies.
	var outW, errW *rack.PipeWriter
	builtinOut := map[*rack.PipeWriter]bool{}
	for _, st := range stages {
		if t := st.fds; t.inPath != "" {
			f, err := sh.k.Open(ctx, t.inPath)
			if err != nil {
				return nil, errors.New("rack: " + fileError(t.inPath, err))
			}
			closers = append(closers, f)
			st.stdin = f
		} else if t.inPipe != nil {
			st.stdin = t.inPipe
		}
		opened := map[*sink]io.Writer{}
		writer := func(s *sink) (io.Writer, error) {
			if w, ok := opened[s]; ok {
				return w, nil
			}
			var w io.Writer
			switch s.kind {
			case sinkShellOut, sinkShellErr:
				dst := sh.stdout
				if s.kind == sinkShellErr {
					dst = sh.stderr
				}
				if st.builtin != nil {
					w = dst
					break
				}
				pw := &outW
				if s.kind == sinkShellErr {
					pw = &errW
				}
				if *pw == nil {
					p, err := copyTo(dst)
					if err != nil {
						return nil, err
					}
					*pw = p
				}
				w = *pw
			case sinkPipe:
				w = s.pw
				if st.builtin != nil {
					builtinOut[s.pw] = true
				}
			case sinkNull:
				w = io.Discard
				if st.forked() {
					p, err := copyTo(io.Discard)
					if err != nil {
						return nil, err
					}
					w = p
				}
			case sinkFile:
				if sh.childWrites(st) && !s.append && st.fds.out != st.fds.err {
					// The app writes the file itself (rack commits it
					// when it exits); the shell's handle only creates it
					// empty if the app wrote nothing. Other files go
					// through a pipe the shell copies.
					f, err := sh.createForChild(ctx, s.path)
					if err != nil {
						return nil, err
					}
					after = append(after, func() error { return closeForChild(f) })
					w = f
					break
				}
				f, err := sh.openSink(ctx, s)
				if err != nil {
					return nil, errors.New("rack: " + fileError(s.path, err))
				}
				after = append(after, func() error {
					if err := f.Close(); err != nil {
						return errors.New("rack: " + fileError(s.path, err))
					}
					return nil
				})
				if st.builtin != nil {
					w = f
					break
				}
				p, err := copyTo(f)
				if err != nil {
					return nil, err
				}
				w = p
			}
			opened[s] = w
			return w, nil
		}
		if st.stdout, err = writer(st.fds.out); err != nil {
			return nil, err
		}
		if st.stderr, err = writer(st.fds.err); err != nil {
			return nil, err
		}
	}

	// Fork the apps first, then run the builtins, so that a failed fork
	// leaves no builtin half-run.
	type running struct {
		i int
		p *rack.Process
	}
	var apps []running
	pumps, pumped, err := sh.pumpFiles(ctx, stages, &closers)
	if err != nil {
		return nil, err
	}
	after = append(after, pumped...)
	for i, st := range stages {
		if !st.forked() {
			continue
		}
		p, err := sh.self.Fork(ctx, sh.stageSpec(st))
		if err != nil {
			return nil, err
		}
		j.procs = append(j.procs, p)
		apps = append(apps, running{i, p})
	}
	for _, pump := range pumps {
		wg.Add(1)
		go pump(&wg)
	}
	byStage := make([]*rack.Process, len(stages))
	for _, a := range apps {
		byStage[a.i] = a.p
	}
	sh.endOrphanedWriters(ctx, byStage) // bridge.go: SIGPIPE, nearly
	for _, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[a.i] = sh.statusOf(a.p.Wait(context.WithoutCancel(ctx)), a.p)
		}()
	}
	for i, st := range stages {
		if st.builtin == nil {
			continue
		}
		in := st.stdin
		if in == nil {
			in = eofReader{}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := &builtinEnv{sh: sh, stdin: in, stdout: st.stdout, stderr: st.stderr, inPipeline: true}
			codes[i] = st.builtin(ctx, env, st.args)
			// The pipe ends it writes: closed once, now that it is done.
			for _, w := range []io.Writer{st.stdout, st.stderr} {
				if pw, ok := w.(*rack.PipeWriter); ok && builtinOut[pw] {
					_ = pw.Close()
				}
			}
		}()
	}
	// The shell's copies of the apps' write ends: closed now, so that
	// readers see EOF once the stages' copies close. A builtin closes the
	// ends it writes when it returns.
	for _, c := range closers {
		if w, ok := c.(*rack.PipeWriter); ok && !builtinOut[w] {
			_ = c.Close()
		}
	}
	for _, r := range unread {
		_ = r.Close()
	}
	sh.mu.Lock()
	sh.addJobLocked(j)
	sh.mu.Unlock()
	go func() {
		wg.Wait()
		for _, c := range closers {
			if _, ok := c.(*rack.PipeWriter); !ok {
				_ = c.Close()
			}
		}
		for _, f := range after {
			if err := f(); err != nil {
				sh.report(err)
				if codes[len(codes)-1] == 0 {
					codes[len(codes)-1] = 1
				}
			}
		}
		j.code = codes[len(codes)-1]
		sh.mu.Lock()
		sh.jobEndedLocked(j)
		sh.mu.Unlock()
		close(j.done)
	}()
	return j, nil
}

// createForChild opens path for an app's stdout. rack has the child open
// and commit the file itself (when it first writes, and at its exit); the
// shell's *File only names it. Its content must not replace the child's:
// it is opened create-only (O_EXCL), so that closing it after the child
// ended creates the file empty if the child wrote nothing, and fails
// harmlessly (fs.ErrExist) if the child wrote it. An existing file is
// removed first, as > truncates.
func (sh *shell) createForChild(ctx context.Context, path string) (*rack.File, error) {
	if err := sh.k.Remove(ctx, path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("rack: " + fileError(path, err))
	}
	f, err := sh.k.OpenFile(ctx, path, rack.O_WRONLY|rack.O_CREATE|rack.O_EXCL)
	if err != nil {
		return nil, errors.New("rack: " + fileError(path, err))
	}
	return f, nil
}

// closeForChild closes the shell's handle of a file an app wrote.
func closeForChild(f *rack.File) error {
	if err := f.Close(); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// checkApps refuses to run apps where the namespace cannot start programs.
func (sh *shell) checkApps() error {
	u, err := url.Parse(sh.url)
	if err != nil || u.Scheme != "file" {
		return errors.New("rack: apps need a file:// namespace (this one is " + redactURL(sh.url) + ")")
	}
	return nil
}

// redactURL hides a URL's credentials.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); i >= 0 && j > i {
			return s[:i+3] + "xxxxx" + s[j:]
		}
		return s
	}
	return u.Redacted()
}

// statusOf maps a Wait result to a status, reporting failures that the app
// did not report itself.
func (sh *shell) statusOf(err error, p *rack.Process) int {
	var ee *rack.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		// A returned error (code 1) is known only to the exit record.
		if ee.Code() == 1 && ee.Signal() == 0 && ee.Reason != "" {
			sh.errorf("rack: %s[%d]: %s", ee.Name, ee.PID, strings.TrimPrefix(ee.Reason, "rack: "))
		}
		return ee.Code()
	default:
		sh.report(err)
		return 1
	}
}

// waitForeground waits for a foreground job; Ctrl-C (SIGINT to the shell,
// or ^C on its terminal) is passed on to the job's processes as SIGINT;
// Ctrl-Z stops it (see stopForeground) and returns 148 (128+SIGTSTP), as
// bash does, or leaves it in the background where it cannot be stopped.
func (sh *shell) waitForeground(ctx context.Context, j *job) int {
	sh.mu.Lock()
	sh.fg = j.procs
	sh.mu.Unlock()
	defer func() {
		sh.mu.Lock()
		sh.fg = nil
		sh.mu.Unlock()
	}()
	intr, stop := sh.interrupts()
	defer stop()
	var stops <-chan struct{}
	if tm := sh.term.Load(); tm != nil {
		select { // forget a ^Z typed before this wait began
		case <-tm.stops:
		default:
		}
		stops = tm.stops
	}
	for {
		select {
		case <-j.done:
			return j.code
		case <-stops:
			if sh.stopForeground(ctx, j) {
				return 128 + int(rack.SIGTSTP)
			}
			return 0
		case <-intr:
			sh.signalForeground(ctx, rack.SIGINT)
		case <-ctx.Done():
			sh.signalForeground(context.WithoutCancel(ctx), rack.SIGKILL)
			<-j.done
			return j.code
		}
	}
}

// signalForeground sends sig to the foreground job's processes.
func (sh *shell) signalForeground(ctx context.Context, sig rack.Signal) {
	sh.mu.Lock()
	fg := append([]*rack.Process(nil), sh.fg...)
	sh.mu.Unlock()
	for _, p := range fg {
		if err := p.Signal(ctx, sig); err != nil && !errors.Is(err, rack.ErrFinished) {
			sh.report(err)
		}
	}
}

// stopJobs kills the jobs still running, or stopped, when the shell ends
// (a stopped one is continued to be killed, see rack.Process.Signal).
func (sh *shell) stopJobs(ctx context.Context) {
	sh.mu.Lock()
	var jobs []*job
	for j := range sh.jobs {
		jobs = append(jobs, j)
	}
	sh.mu.Unlock()
	for _, j := range jobs {
		for _, p := range j.procs {
			_ = p.Kill(context.WithoutCancel(ctx))
		}
		<-j.done
	}
}

// lookApp finds the executable of app name: a path, or a name in
// $RACK_APPS or on $PATH. It must be a Go program built with rack.
func (sh *shell) lookApp(name string) (string, error) {
	var path string
	if strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil {
			return "", fmt.Errorf("rack: %s: %w", name, errors.Unwrap(err))
		}
		path = p
	} else {
		if sh.appsDir != "" {
			p := filepath.Join(sh.appsDir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				path = p
			}
		}
		if path == "" {
			p, err := exec.LookPath(name)
			if err != nil {
				if exe, ok, err := sh.installedApp(name); ok || err != nil {
					return exe, err // published in the store (install.go)
				}
				return "", fmt.Errorf("rack: %s: command not found (not a builtin, nor an app in $RACK_APPS, on $PATH or installed; try help)", name)
			}
			path = p
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("rack: %s: %w", name, err)
	}
	if !isRackApp(abs) {
		if !strings.Contains(name, "/") {
			if exe, ok, err := sh.installedApp(name); ok || err != nil {
				return exe, err // published in the store (install.go)
			}
		}
		return "", fmt.Errorf("rack: %s: %s is not a rack app (a Go program built with %s)", name, abs, rackModule)
	}
	return abs, nil
}

var (
	appCacheMu sync.Mutex
	appCache   = map[string]appCheck{}
)

type appCheck struct {
	size, mod int64
	ok        bool
}

// isRackApp reports whether the executable at path is a Go program that
// depends on rack (or is rack itself), from its embedded build info.
func isRackApp(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	appCacheMu.Lock()
	c, hit := appCache[path]
	appCacheMu.Unlock()
	if hit && c.size == fi.Size() && c.mod == fi.ModTime().UnixNano() {
		return c.ok
	}
	ok := false
	if bi, err := buildinfo.ReadFile(path); err == nil {
		ok = bi.Main.Path == rackModule || strings.HasPrefix(bi.Path, rackModule+"/")
		for _, d := range bi.Deps {
			ok = ok || d.Path == rackModule
		}
	}
	appCacheMu.Lock()
	appCache[path] = appCheck{size: fi.Size(), mod: fi.ModTime().UnixNano(), ok: ok}
	appCacheMu.Unlock()
	return ok
}

// eofReader is an empty input.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// backgroundJobs returns the background jobs still running.
func (sh *shell) backgroundJobs() []*job {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []*job
	for j := range sh.jobs {
		if j.bg {
			out = append(out, j)
		}
	}
	return out
}
