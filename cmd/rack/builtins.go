package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rackfork/rack"
)

// builtinFunc runs a builtin and returns its status.
type builtinFunc func(ctx context.Context, env *builtinEnv, args []string) int

// builtinEnv is what a builtin runs with.
type builtinEnv struct {
	sh             *shell
	stdin          io.Reader
	stdout, stderr io.Writer
	inPipeline     bool // exit and wait act on the shell only when false
}

func (e *builtinEnv) errorf(format string, args ...any) int {
	fmt.Fprintf(e.stderr, "rack: "+format+"\n", args...)
	return 1
}

// builtins maps names to builtins; help lists them in this order.
var builtins map[string]builtinFunc

var builtinHelp = []struct{ usage, text string }{
	{"ps [-a] [-f] [--json]", "list running processes (-a: also ended ones; -f: as a tree, with each one's host; --json)"},
	{"kill [-SIG] PID...", "send a signal (default TERM; HUP INT KILL USR1 USR2 TERM CONT STOP TSTP or a number)"},
	{"wait [PID...]", "wait for processes (default: every background job); sets $?"},
	{"cat [PATH...]", "print rack files (/container/object), or the input"},
	{"ls [-l] [PATH...]", "list a rack directory (default /: the containers)"},
	{"rm PATH...", "remove rack files (or empty containers)"},
	{"logs [-f] PID", "print what a process printed outside rack (-f: follow until it ends)"},
	{"gc [-a] [-n] [--min-age DUR]", "remove what dead processes left behind (-a: also dead namespaces and their servers; -n: only report; default age 1m)"},
	{"echo [-n] [WORD...]", "print the words (-n: no newline)"},
	{"export [NAME[=VALUE]...]", "set and export variables to the apps' environment (alone: list them)"},
	{"unset NAME...", "remove variables"},
	{"true, false", "succeed, fail"},
	{"help", "this text"},
	{"exit [CODE]", "leave the shell (default: the last status)"},
}

func init() {
	builtins = map[string]builtinFunc{
		"ps": builtinPS, "kill": builtinKill, "wait": builtinWait, "cat": builtinCat,
		"ls": builtinLS, "rm": builtinRM, "echo": builtinEcho, "help": builtinHelpFunc,
		"gc": builtinGC, "logs": builtinLogs,
		"exit":   builtinExit,
		"export": builtinExport, "unset": builtinUnset, ":": builtinColon,
		"true":  func(context.Context, *builtinEnv, []string) int { return 0 },
		"false": func(context.Context, *builtinEnv, []string) int { return 1 },
	}
}

func builtinHelpFunc(_ context.Context, e *builtinEnv, _ []string) int {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Builtins:")
	for _, h := range builtinHelp {
		fmt.Fprintf(tw, "  %s\t%s\n", h.usage, h.text)
	}
	fmt.Fprintln(tw, "Apps:")
	fmt.Fprintln(tw, "  NAME ARGS...\tfork NAME, from $RACK_APPS or $PATH: a rack app as itself, any other program through the bridge")
	fmt.Fprintln(tw, "  a | b\tconnect a's output to b's input through a rack pipe")
	fmt.Fprintln(tw, "  cmd > PATH, cmd < PATH\twrite, read a rack file")
	fmt.Fprintln(tw, "  cmd >> PATH\tappend (the file is read and written again when cmd ends)")
	fmt.Fprintln(tw, "  2> PATH, 2>&1, >&2, &> PATH\tredirect the errors, or both outputs")
	fmt.Fprintln(tw, "  a && b, a || b, a; b\trun b if a succeeded, if it failed, after it")
	fmt.Fprintln(tw, "  cmd &\trun in the background; wait waits for it")
	fmt.Fprintln(tw, "  $NAME, ${NAME}, NAME=VALUE\tvariables (NAME=VALUE cmd: for cmd only)")
	fmt.Fprintln(tw, "  /c/*.txt\tglob over rack paths")
	fmt.Fprintln(tw, "  $?, $!, $$\tthe last status, the last background pid, the shell's pid")
	fmt.Fprintln(tw, "  Ctrl-C\tsend SIGINT to the foreground job")
	if err := tw.Flush(); err != nil {
		return 1
	}
	return 0
}

// builtinEcho prints its words; -n: without the newline (as bash's echo,
// whose -e and -E it does not have).
func builtinEcho(_ context.Context, e *builtinEnv, args []string) int {
	end := "\n"
	for len(args) > 0 && args[0] == "-n" {
		end, args = "", args[1:]
	}
	if _, err := fmt.Fprint(e.stdout, strings.Join(args, " ")+end); err != nil {
		return e.errorf("echo: %s", cleanError(err))
	}
	return 0
}

func builtinExit(_ context.Context, e *builtinEnv, args []string) int {
	code := e.sh.status
	switch len(args) {
	case 0:
	case 1:
		// As bash: the status modulo 256; a word that is not a number
		// is an error, and the shell still exits, with 2.
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			code = e.errorf("exit: %s: numeric argument required", args[0]) + 1
		} else {
			code = int(uint8(n))
		}
	default:
		// bash exits with 1, except at an interactive prompt.
		code = e.errorf("exit: too many arguments")
		if e.sh.interactive {
			return code
		}
	}
	if !e.inPipeline {
		if e.sh.exitBlocked() { // jobs left: warn once (jobs.go)
			return 1
		}
		e.sh.exited, e.sh.exitCode = true, code
	}
	return code
}

// psRow is a ps line, and its --json form.
type psRow struct {
	PID      rack.PID   `json:"pid"`
	PPID     rack.PID   `json:"ppid"`
	Group    rack.PID   `json:"group,omitempty"`
	State    string     `json:"state"`
	ExitCode *int       `json:"exit_code,omitempty"`
	Signal   string     `json:"signal,omitempty"`
	Status   string     `json:"status,omitempty"`
	Name     string     `json:"name"`
	Args     []string   `json:"args"`
	Started  time.Time  `json:"started"`
	Ended    *time.Time `json:"ended,omitempty"`
	Host     string     `json:"host,omitempty"` // the host's kernel id (see hosts)
	children []*psRow   // for -f
}

func (r *psRow) cmd() string {
	parts := []string{quoteArg(r.Name)}
	for _, a := range r.Args {
		parts = append(parts, quoteArg(a))
	}
	return strings.Join(parts, " ")
}

func (r *psRow) state() string {
	if r.ExitCode == nil {
		return r.State
	}
	if r.Signal != "" {
		return fmt.Sprintf("exit %d %s", *r.ExitCode, r.Signal)
	}
	return fmt.Sprintf("exit %d", *r.ExitCode)
}

func builtinPS(ctx context.Context, e *builtinEnv, args []string) int {
	var all, tree, asJSON bool
	for _, a := range args {
		switch {
		case a == "--json":
			asJSON = true
		case strings.HasPrefix(a, "-") && len(a) > 1 && !strings.HasPrefix(a, "--"):
			for _, c := range a[1:] {
				switch c {
				case 'a', 'e':
					all = true
				case 'f':
					tree = true
				default:
					return e.errorf("ps: unknown option -%c (usage: ps [-a] [-f] [--json])", c)
				}
			}
		default:
			return e.errorf("ps: unknown argument %q (usage: ps [-a] [-f] [--json])", a)
		}
	}
	infos, err := e.sh.k.Processes(ctx)
	if err != nil {
		return e.errorf("ps: %s", cleanError(err))
	}
	rows := make([]*psRow, 0, len(infos))
	for _, in := range infos {
		if !all && in.State != rack.Running && in.State != rack.Stopped {
			continue
		}
		r := &psRow{PID: in.PID, PPID: in.PPID, Group: in.Group, State: string(in.State), Status: in.Status,
			Name: in.Name, Args: in.Args, Started: in.Started, Host: in.Host}
		if r.Args == nil {
			r.Args = []string{}
		}
		if in.State == rack.Exited {
			code := in.ExitCode
			r.ExitCode = &code
			if in.Signal != 0 {
				r.Signal = in.Signal.String()
			}
		}
		if in.State != rack.Running && in.State != rack.Stopped && !in.Ended.IsZero() {
			t := in.Ended
			r.Ended = &t
		}
		rows = append(rows, r)
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return e.errorf("ps: %s", cleanError(err))
		}
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if tree {
		fmt.Fprintln(tw, "PID\tPPID\tSTATE\tSTATUS\tHOST\tCMD")
	} else {
		fmt.Fprintln(tw, "PID\tPPID\tSTATE\tSTATUS\tCMD")
	}
	line := func(r *psRow, prefix string) {
		status := strings.Map(func(c rune) rune {
			if c < ' ' || c == 0x7f {
				return ' '
			}
			return c
		}, r.Status)
		if tree { // -f: the host of each process (empty: its forker's kernel runs it)
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s%s\n", r.PID, r.PPID, r.state(), status, printable(r.Host), prefix, r.cmd())
			return
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s%s\n", r.PID, r.PPID, r.state(), status, prefix, r.cmd())
	}
	if !tree {
		for _, r := range rows {
			line(r, "")
		}
	} else {
		byPID := make(map[rack.PID]*psRow, len(rows))
		for _, r := range rows {
			byPID[r.PID] = r
		}
		var roots []*psRow
		for _, r := range rows { // rows are sorted by pid, and so are children
			if p, ok := byPID[r.PPID]; ok && r.PPID != r.PID {
				p.children = append(p.children, r)
			} else {
				roots = append(roots, r)
			}
		}
		var walk func(r *psRow, depth int)
		walk = func(r *psRow, depth int) {
			prefix := ""
			if depth > 0 {
				prefix = strings.Repeat("    ", depth-1) + " \\_ "
			}
			line(r, prefix)
			for _, c := range r.children {
				walk(c, depth+1)
			}
		}
		for _, r := range roots {
			walk(r, 0)
		}
	}
	if err := tw.Flush(); err != nil {
		return e.errorf("ps: %s", cleanError(err))
	}
	return 0
}

func builtinKill(ctx context.Context, e *builtinEnv, args []string) int {
	sig := rack.SIGTERM
	if len(args) > 0 && args[0] == "-l" {
		fmt.Fprintln(e.stdout, "HUP INT KILL USR1 USR2 TERM CONT STOP TSTP")
		return 0
	}
	if len(args) > 0 && args[0] == "-s" {
		if len(args) < 2 {
			return e.errorf("kill: -s needs a signal")
		}
		args = append([]string{"-" + args[1]}, args[2:]...)
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && len(args[0]) > 1 {
		s, err := rack.ParseSignal(args[0][1:])
		if err != nil {
			return e.errorf("kill: %s: invalid signal specification", args[0][1:])
		}
		sig, args = s, args[1:]
	}
	if len(args) == 0 {
		return e.errorf("kill: usage: kill [-SIG] PID...")
	}
	status := 0
	for _, a := range args {
		pid, err := parsePID(a)
		if err != nil {
			status = e.errorf("kill: %s: arguments must be process or job IDs", a)
			continue
		}
		p, err := e.sh.k.Process(ctx, pid)
		if err == nil {
			err = p.Signal(ctx, sig)
		}
		if err != nil {
			status = e.errorf("kill: %s", processError(pid, err))
		}
	}
	return status
}

func parsePID(s string) (rack.PID, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a pid", s)
	}
	return rack.PID(n), nil
}

// builtinWait waits for the given processes (any in the namespace) or for
// every background job; Ctrl-C stops waiting, not the processes.
func builtinWait(ctx context.Context, e *builtinEnv, args []string) int {
	intr, stop := e.sh.interrupts()
	defer stop()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-intr:
			cancel()
		case <-wctx.Done():
		}
	}()
	if len(args) == 0 {
		code := 0
		for _, j := range e.sh.backgroundJobs() {
			select {
			case <-j.done:
				code = j.code
			case <-wctx.Done():
				return 130
			}
		}
		return code
	}
	code := 0
	for _, a := range args {
		pid, err := parsePID(a)
		if err != nil {
			code = e.errorf("wait: `%s': not a pid or valid job spec", a) + 1
			continue
		}
		if j := e.sh.jobOf(pid); j != nil && j.procs[len(j.procs)-1].PID() == pid {
			// The last process of one of our jobs: its status, once its
			// output is copied too.
			select {
			case <-j.done:
				code = j.code
			case <-wctx.Done():
				return 130
			}
			continue
		}
		p, err := e.sh.k.Process(wctx, pid)
		if err != nil {
			code = e.errorf("wait: %s", processError(pid, err)) + 126 // 127: no such process
			continue
		}
		err = p.Wait(wctx)
		if wctx.Err() != nil && ctx.Err() == nil {
			return 130
		}
		code = e.sh.statusOf(err, p)
	}
	return code
}

// jobOf returns the running job that pid belongs to, if any.
func (sh *shell) jobOf(pid rack.PID) *job {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for j := range sh.jobs {
		for _, p := range j.procs {
			if p.PID() == pid {
				return j
			}
		}
	}
	return nil
}

func builtinCat(ctx context.Context, e *builtinEnv, args []string) int {
	if len(args) == 0 {
		if _, err := io.Copy(e.stdout, e.stdin); err != nil {
			return e.errorf("cat: %s", cleanError(err))
		}
		return 0
	}
	status := 0
	for _, path := range args {
		f, err := e.sh.k.Open(ctx, path)
		if err != nil {
			if fi, serr := e.sh.k.Stat(ctx, path); serr == nil && fi.IsDir() {
				status = e.errorf("cat: %s: Is a directory", path)
			} else {
				status = e.errorf("cat: %s", fileError(path, err))
			}
			continue
		}
		_, err = io.Copy(e.stdout, f)
		f.Close()
		if err != nil {
			status = e.errorf("cat: %s", fileError(path, err))
		}
	}
	return status
}

func builtinLS(ctx context.Context, e *builtinEnv, args []string) int {
	long := false
	var paths []string
	for _, a := range args {
		if a == "-l" {
			long = true
			continue
		}
		if strings.HasPrefix(a, "-") {
			return e.errorf("ls: unknown option %q (usage: ls [-l] [PATH...])", a)
		}
		paths = append(paths, a)
	}
	if len(paths) == 0 {
		paths = []string{"/"}
	}
	status := 0
	for i, p := range paths {
		entries, err := e.sh.k.ReadDir(ctx, p)
		if err != nil {
			// A file: list it alone, as ls does.
			if fi, serr := e.sh.k.Stat(ctx, p); serr == nil && !fi.IsDir() {
				if long && fi.Mode()&fs.ModeNamedPipe != 0 {
					fmt.Fprintf(e.stdout, "%10s  %s  %s\n", "p", fi.ModTime().Format("2006-01-02 15:04"), p) // a named pipe, as ls -l marks it
				} else if long {
					fmt.Fprintf(e.stdout, "%10d  %s  %s\n", fi.Size(), fi.ModTime().Format("2006-01-02 15:04"), p)
				} else {
					fmt.Fprintln(e.stdout, p)
				}
				continue
			}
			status = e.errorf("ls: cannot access '%s': %s", p, reason(err))
			continue
		}
		if len(paths) > 1 {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			fmt.Fprintf(e.stdout, "%s:\n", p)
		}
		sort.Slice(entries, func(a, b int) bool { return entries[a].Name() < entries[b].Name() })
		for _, d := range entries {
			name := d.Name()
			if d.IsDir() {
				name += "/"
			}
			if !long {
				fmt.Fprintln(e.stdout, name)
				continue
			}
			fi, err := d.Info()
			if err != nil {
				status = e.errorf("ls: cannot access '%s': %s", p+"/"+d.Name(), reason(err))
				continue
			}
			when := "                "
			if !fi.ModTime().IsZero() {
				when = fi.ModTime().Format("2006-01-02 15:04")
			}
			if d.IsDir() {
				fmt.Fprintf(e.stdout, "%10s  %s  %s\n", "-", when, name)
			} else if d.Type()&fs.ModeNamedPipe != 0 {
				fmt.Fprintf(e.stdout, "%10s  %s  %s\n", "p", when, name) // a named pipe, as ls -l marks it
			} else {
				fmt.Fprintf(e.stdout, "%10d  %s  %s\n", fi.Size(), when, name)
			}
		}
	}
	return status
}

func builtinRM(ctx context.Context, e *builtinEnv, args []string) int {
	if len(args) == 0 {
		return e.errorf("rm: usage: rm PATH...")
	}
	status := 0
	for _, p := range args {
		if err := e.sh.k.Remove(ctx, p); err != nil {
			why := reason(err)
			switch {
			case errors.Is(err, fs.ErrExist):
				why = "Directory not empty" // only a container can exist in the way
			case p == "/":
				why = "Is a directory"
			}
			status = e.errorf("rm: cannot remove '%s': %s", p, why)
		}
	}
	return status
}

func builtinGC(ctx context.Context, e *builtinEnv, args []string) int {
	opts := &rack.GCOptions{}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-n":
			opts.DryRun = true
		case a == "-a":
			opts.Namespaces = true
		case a == "--min-age" && i+1 < len(args):
			d, err := time.ParseDuration(args[i+1])
			if err != nil || d <= 0 {
				return e.errorf("gc: --min-age %q: want a positive duration such as 30s or 5m", args[i+1])
			}
			opts.MinAge = d
			i++
		default:
			return e.errorf("gc: %q: usage: gc [-a] [-n] [--min-age DUR]", a)
		}
	}
	rep, err := e.sh.k.GC(ctx, opts)
	if err != nil {
		return e.errorf("%s", cleanError(err))
	}
	done := fmt.Sprintf("%d objects removed", rep.Objects)
	if opts.DryRun {
		done = "nothing removed: -n"
	}
	fmt.Fprintf(e.stdout, "lost: %d, reaped: %d, pipes: %d, dead kernels: %d, instances stopped: %d (%s)\n",
		len(rep.Lost), len(rep.Reaped), rep.Pipes, rep.Kernels, len(rep.Instances), done)
	if opts.Namespaces {
		fmt.Fprintf(e.stdout, "dead namespaces: %s; instances swept: %d\n", strings.Join(rep.DeadNamespaces, " "), len(rep.Swept))
	}
	return 0
}

func builtinLogs(ctx context.Context, e *builtinEnv, args []string) int {
	follow := false
	if len(args) > 0 && args[0] == "-f" {
		follow, args = true, args[1:]
	}
	if len(args) != 1 {
		return e.errorf("logs: usage: logs [-f] PID")
	}
	pid, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || pid <= 0 {
		return e.errorf("logs: %q is not a pid", args[0])
	}
	rc, err := e.sh.k.Logs(ctx, rack.PID(pid), follow)
	if err != nil {
		if errors.Is(err, rack.ErrNotFound) {
			if _, perr := e.sh.k.Process(ctx, rack.PID(pid)); perr != nil {
				return e.errorf("logs: %s", processError(rack.PID(pid), perr))
			}
		}
		return e.errorf("%s", cleanError(err))
	}
	defer rc.Close()
	if _, err := io.Copy(e.stdout, rc); err != nil {
		return e.errorf("logs: %s", cleanError(err))
	}
	return 0
}
