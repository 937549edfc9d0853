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

	status   int      // $?
	lastBG   rack.PID // $!
	exited   bool     // exit was run
	exitCode int

	mu   sync.Mutex
	fg   []*rack.Process // the foreground job's processes, for Ctrl-C
	jobs map[*job]struct{}
}

// job is a running pipeline.
type job struct {
	bg    bool // started with &
	procs []*rack.Process
	done  chan struct{} // closed once every stage ended and its output was copied
	code  int           // the last stage's status, once done
}

func newShell(k *rack.Kernel, cfg config) *shell {
	return &shell{
		k: k, url: cfg.url, appsDir: cfg.appsDir,
		stdout: &lockedWriter{w: cfg.stdout}, stderr: &lockedWriter{w: cfg.stderr},
		jobs: make(map[*job]struct{}),
	}
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
func (sh *shell) params() Params { return Params{Status: sh.status, LastBG: int64(sh.lastBG)} }

// errorf reports an error on the shell's stderr.
func (sh *shell) errorf(format string, args ...any) {
	fmt.Fprintf(sh.stderr, format+"\n", args...)
}

// runScript runs the lines of r until EOF or exit; it returns the last
// status.
func (sh *shell) runScript(ctx context.Context, r io.Reader) int {
	br := bufio.NewReader(r)
	for !sh.exited {
		text, err := br.ReadString('\n')
		if text != "" {
			sh.status = sh.runSource(ctx, strings.TrimSuffix(text, "\n"))
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
// its last pipeline.
func (sh *shell) runLine(ctx context.Context, line *Line) int {
	for _, pl := range line.Pipelines {
		for _, c := range pl.Cmds {
			if c.Append {
				sh.errorf("rack: >> is not supported: rack files are written whole")
				sh.status = 2
				return 2
			}
		}
	}
	for _, pl := range line.Pipelines {
		if sh.exited || ctx.Err() != nil {
			break
		}
		sh.status = sh.runPipeline(ctx, pl)
	}
	if sh.exited {
		return sh.exitCode
	}
	return sh.status
}

// stage is one command of a pipeline being started.
type stage struct {
	name    string
	args    []string
	builtin builtinFunc
	exe     string    // an app's absolute path
	ext     *external // a program that is not a rack app, run by the bridge (bridge.go)
	stdin   io.Reader
	stdout  io.Writer
}

// runPipeline starts a pipeline and, unless it is a background one, waits
// for it. Builtins run in the shell (as goroutines when in a pipeline);
// apps are forked.
func (sh *shell) runPipeline(ctx context.Context, pl *Pipeline) int {
	stages := make([]*stage, len(pl.Cmds))
	for i, c := range pl.Cmds {
		words := make([]string, len(c.Args))
		for j, w := range c.Args {
			words[j] = w.Expand(sh.params())
		}
		st := &stage{name: words[0], args: words[1:]}
		if b, ok := builtins[st.name]; ok {
			st.builtin = b
		} else {
			exe, err := sh.lookApp(st.name)
			if err != nil {
				// Not a rack app: any other program runs through the bridge.
				if st.ext, err = sh.lookExternal(st.name, err); err != nil {
					sh.errorf("%v", err)
					return 127
				}
			}
			st.exe = exe
		}
		stages[i] = st
	}
	// A lone builtin runs right here: it may change the shell (exit, wait).
	if len(stages) == 1 && stages[0].builtin != nil && !pl.Background {
		return sh.runLoneBuiltin(ctx, pl.Cmds[0], stages[0])
	}
	j, err := sh.start(ctx, pl, stages)
	if err != nil {
		sh.errorf("%v", err)
		return 1
	}
	if pl.Background {
		if n := len(j.procs); n > 0 {
			sh.lastBG = j.procs[n-1].PID()
			fmt.Fprintf(sh.stdout, "[%d]\n", sh.lastBG)
		}
		return 0
	}
	return sh.waitForeground(ctx, j)
}

// runLoneBuiltin runs a builtin with its redirections, in the shell.
func (sh *shell) runLoneBuiltin(ctx context.Context, c *Command, st *stage) int {
	env := &builtinEnv{sh: sh, stdin: eofReader{}, stdout: sh.stdout, stderr: sh.stderr}
	if c.Stdin != nil {
		f, err := sh.k.Open(ctx, c.Stdin.Expand(sh.params()))
		if err != nil {
			sh.errorf("rack: %v", err)
			return 1
		}
		defer f.Close()
		env.stdin = f
	}
	var out *rack.File
	if c.Stdout != nil {
		f, err := sh.k.Create(ctx, c.Stdout.Expand(sh.params()))
		if err != nil {
			sh.errorf("rack: %v", err)
			return 1
		}
		out, env.stdout = f, f
	}
	code := st.builtin(ctx, env, st.args)
	if out != nil {
		if err := out.Close(); err != nil {
			sh.errorf("rack: %v", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// start forks (or runs) every stage of pl, connected by rack pipes, and
// returns the running job.
func (sh *shell) start(ctx context.Context, pl *Pipeline, stages []*stage) (_ *job, err error) {
	j := &job{bg: pl.Background, done: make(chan struct{})}
	var (
		closers []io.Closer // the shell's ends, closed once every stage started
		wg      sync.WaitGroup
		codes   = make([]int, len(stages))
		after   []func() error // run once every stage started
		outFile *rack.File     // the last stage's > file, an app's
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
			if outFile != nil {
				_ = outFile.Close()
			}
		}
	}()

	// The apps' stderr goes to the shell's, through one pipe.
	var errR *rack.PipeReader
	var errW *rack.PipeWriter
	hasApp, hasRackApp := false, false
	for _, st := range stages {
		hasApp = hasApp || st.forked()
		hasRackApp = hasRackApp || st.exe != ""
	}
	if hasApp {
		if hasRackApp {
			if err := sh.checkApps(); err != nil {
				return nil, err
			}
		}
		if errR, errW, err = sh.self.Pipe(ctx); err != nil {
			return nil, err
		}
		closers = append(closers, errW)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer errR.Close()
			_, _ = io.Copy(sh.stderr, errR)
		}()
	}

	// Wire the streams: stdin of the first, stdout of the last, pipes
	// between.
	first, last := pl.Cmds[0], pl.Cmds[len(pl.Cmds)-1]
	if first.Stdin != nil {
		f, err := sh.k.Open(ctx, first.Stdin.Expand(sh.params()))
		if err != nil {
			return nil, fmt.Errorf("rack: %w", err)
		}
		closers = append(closers, f)
		stages[0].stdin = f
	}
	lastSt := stages[len(stages)-1]
	switch {
	case last.Stdout != nil && sh.childWrites(lastSt):
		// The app writes the file itself (rack commits it when it exits);
		// the shell's handle only creates it empty if the app wrote nothing.
		f, err := sh.createForChild(ctx, last.Stdout.Expand(sh.params()))
		if err != nil {
			return nil, err
		}
		outFile = f
		lastSt.stdout = f
	case last.Stdout != nil:
		f, err := sh.k.Create(ctx, last.Stdout.Expand(sh.params()))
		if err != nil {
			return nil, fmt.Errorf("rack: %w", err)
		}
		outFile = f
		lastSt.stdout = f
	default:
		r, w, err := sh.self.Pipe(ctx)
		if err != nil {
			return nil, err
		}
		closers = append(closers, w)
		lastSt.stdout = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			_, _ = io.Copy(sh.stdout, r)
		}()
	}
	for i := 0; i < len(stages)-1; i++ {
		r, w, err := sh.self.Pipe(ctx)
		if err != nil {
			return nil, err
		}
		closers = append(closers, w)
		stages[i].stdout = w
		stages[i+1].stdin = r
		if stages[i+1].builtin != nil {
			closers = append(closers, r) // read by the shell
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
		p, err := sh.self.Fork(ctx, sh.stageSpec(st, errW))
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
	builtinOut := map[*rack.PipeWriter]bool{}
	for i, st := range stages {
		if st.builtin == nil {
			continue
		}
		if w, ok := st.stdout.(*rack.PipeWriter); ok {
			builtinOut[w] = true
		}
		in := st.stdin
		if in == nil {
			in = eofReader{}
		}
		w := st.stdout
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := &builtinEnv{sh: sh, stdin: in, stdout: w, stderr: sh.stderr, inPipeline: true}
			codes[i] = st.builtin(ctx, env, st.args)
			if pw, ok := w.(*rack.PipeWriter); ok {
				_ = pw.Close()
			}
		}()
	}
	// The shell's copies of the apps' write ends: closed now, so that
	// readers see EOF once the stages' copies close. A builtin closes the
	// end it writes when it returns.
	for _, c := range closers {
		if w, ok := c.(*rack.PipeWriter); ok && !builtinOut[w] {
			_ = c.Close()
		}
	}
	if outFile != nil && lastSt.builtin != nil {
		after = append(after, outFile.Close)
	}
	if outFile != nil && sh.childWrites(lastSt) {
		after = append(after, func() error { return closeForChild(outFile) })
	}
	sh.mu.Lock()
	sh.jobs[j] = struct{}{}
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
				sh.errorf("rack: %v", err)
				if codes[len(codes)-1] == 0 {
					codes[len(codes)-1] = 1
				}
			}
		}
		j.code = codes[len(codes)-1]
		sh.mu.Lock()
		delete(sh.jobs, j)
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
		return nil, fmt.Errorf("rack: %w", err)
	}
	f, err := sh.k.OpenFile(ctx, path, rack.O_WRONLY|rack.O_CREATE|rack.O_EXCL)
	if err != nil {
		return nil, fmt.Errorf("rack: %w", err)
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
			sh.errorf("rack: %s[%d]: %s", ee.Name, ee.PID, ee.Reason)
		}
		return ee.Code()
	default:
		sh.errorf("%v", err)
		return 1
	}
}

// waitForeground waits for a foreground job; Ctrl-C (SIGINT to the shell,
// or ^C on its terminal) is passed on to the job's processes as SIGINT.
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
	for {
		select {
		case <-j.done:
			return j.code
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
			sh.errorf("rack: %v", err)
		}
	}
}

// stopJobs kills the background jobs still running when the shell ends.
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
				return "", fmt.Errorf("rack: %s: command not found (not a builtin, nor an app in $RACK_APPS or on $PATH; try help)", name)
			}
			path = p
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("rack: %s: %w", name, err)
	}
	if !isRackApp(abs) {
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
