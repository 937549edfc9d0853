package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/rackfork/rack"
)

// Job control, as in bash: a job is a pipeline; jobs lists them, fg and bg
// continue one (%N, default the current one: the last stopped, else the
// newest), Ctrl-Z stops the foreground one (SIGTSTP to its processes;
// where the namespace cannot stop them, it goes on in the background), an
// interactive shell reports a background job's end before the next prompt
// ("[1]+  Done", "[1]+  Exit 3"), and exit (or ^D) with jobs left warns
// once: a second exit ends them.

// jobState returns what jobs shows of j (sh.mu held).
func (j *job) stateText() string {
	switch {
	case j.stopped:
		return "Stopped"
	case j.finished:
		return doneText(j.code)
	}
	return "Running"
}

// doneText is bash's word for a job that ended with code.
func doneText(code int) string {
	switch {
	case code == 0:
		return "Done"
	case code > 128 && code < 128+32:
		switch rack.Signal(code - 128) {
		case rack.SIGHUP:
			return "Hangup"
		case rack.SIGINT:
			return "Interrupt"
		case rack.SIGKILL:
			return "Killed"
		case rack.SIGTERM:
			return "Terminated"
		case rack.SIGUSR1:
			return "User defined signal 1"
		case rack.SIGUSR2:
			return "User defined signal 2"
		}
	}
	return "Exit " + strconv.Itoa(code)
}

// jobText is the command line jobs shows for the stages of a pipeline.
func jobText(stages []*stage) string {
	parts := make([]string, len(stages))
	for i, st := range stages {
		words := []string{quoteArg(st.name)}
		for _, a := range st.args {
			words = append(words, quoteArg(a))
		}
		parts[i] = strings.Join(words, " ")
	}
	return strings.Join(parts, " | ")
}

// addJobLocked numbers j and adds it to the job table (sh.mu held): one
// more than the highest number in use, as bash does.
func (sh *shell) addJobLocked(j *job) {
	n := 0
	for o := range sh.jobs {
		n = max(n, o.id)
	}
	for _, o := range sh.finished {
		n = max(n, o.id)
	}
	j.id = n + 1
	sh.jobs[j] = struct{}{}
}

// jobEndedLocked takes j, which has ended, out of the job table (sh.mu
// held); a background one is kept to be reported.
func (sh *shell) jobEndedLocked(j *job) {
	delete(sh.jobs, j)
	j.finished = true
	if j.bg && sh.interactive {
		sh.finished = append(sh.finished, j)
	}
}

// jobList returns the jobs, by number.
func (sh *shell) jobList() []*job {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.jobListLocked()
}

func (sh *shell) jobListLocked() []*job {
	out := make([]*job, 0, len(sh.jobs))
	for j := range sh.jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out
}

// currentLocked returns the current job (bash's %+): the last one
// stopped, else the newest; nil when there is none (sh.mu held).
func (sh *shell) currentLocked() *job {
	var cur *job
	for _, j := range sh.jobListLocked() {
		if cur == nil || j.stopped && (!cur.stopped || j.stopSeq > cur.stopSeq) || !cur.stopped && !j.stopped && j.id > cur.id {
			cur = j
		}
	}
	return cur
}

// marker is bash's + for the current job, - for the others.
func marker(j, cur *job) byte {
	if j == cur {
		return '+'
	}
	return '-'
}

// jobLine formats a line of jobs, or a notice.
func jobLine(j *job, mark byte, state string) string {
	amp := ""
	if !j.stopped && !j.finished {
		amp = " &"
	}
	return fmt.Sprintf("[%d]%c  %-24s%s%s\n", j.id, mark, state, j.cmd, amp)
}

// reportJobs prints, before a prompt, the background jobs that ended
// since the last one.
func (sh *shell) reportJobs() {
	sh.mu.Lock()
	done := sh.finished
	sh.finished = nil
	cur := sh.currentLocked()
	sh.mu.Unlock()
	for i, j := range done {
		mark := byte('-')
		if cur == nil && i == len(done)-1 {
			mark = '+'
		}
		fmt.Fprint(sh.stdout, jobLine(j, mark, doneText(j.code)))
	}
}

// exitBlocked reports whether exit (or ^D) must not end the shell yet:
// the first one with jobs left warns, as bash does; one right after it
// ends the jobs and the shell.
func (sh *shell) exitBlocked() bool {
	if !sh.interactive {
		return false
	}
	sh.mu.Lock()
	stopped, running := false, false
	for j := range sh.jobs {
		if j.stopped {
			stopped = true
		} else {
			running = true
		}
	}
	sh.mu.Unlock()
	if !stopped && !running || sh.exitWarned == sh.lines && sh.lines > 0 {
		return false
	}
	sh.exitWarned = sh.lines + 1 // the next line may exit
	if stopped {
		fmt.Fprintln(sh.stderr, "There are stopped jobs.")
	} else {
		fmt.Fprintln(sh.stderr, "There are running jobs.")
	}
	return true
}

// findJob returns the job a spec names: %N, N, %+ or %%, or "" for the
// current one.
func (sh *shell) findJob(name, spec string) (*job, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if spec == "" || spec == "%+" || spec == "%%" || spec == "%" {
		if cur := sh.currentLocked(); cur != nil {
			return cur, nil
		}
		return nil, fmt.Errorf("%s: current: no such job", name)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(spec, "%"))
	if err == nil {
		for j := range sh.jobs {
			if j.id == n {
				return j, nil
			}
		}
	}
	return nil, fmt.Errorf("%s: %s: no such job", name, spec)
}

// signalJob sends sig to j's processes; the first error is returned.
func (sh *shell) signalJob(ctx context.Context, j *job, sig rack.Signal) error {
	var first error
	for _, p := range j.procs {
		if err := p.Signal(ctx, sig); err != nil && !errors.Is(err, rack.ErrFinished) && first == nil {
			first = err
		}
	}
	return first
}

// stopForeground stops foreground job j (Ctrl-Z). It returns false if
// the job could not be stopped: it then goes on in the background.
func (sh *shell) stopForeground(ctx context.Context, j *job) bool {
	var stopped []*rack.Process
	var failed error
	for _, p := range j.procs {
		err := p.Signal(ctx, rack.SIGTSTP)
		switch {
		case err == nil:
			stopped = append(stopped, p)
		case errors.Is(err, rack.ErrFinished):
		default:
			failed = err
		}
	}
	if failed == nil && len(j.procs) > 0 {
		sh.mu.Lock()
		sh.stopSeq++
		j.stopped, j.bg, j.stopSeq = true, false, sh.stopSeq
		sh.mu.Unlock()
		fmt.Fprint(sh.stdout, "\n"+jobLine(j, '+', "Stopped"))
		return true
	}
	for _, p := range stopped {
		_ = p.Signal(ctx, rack.SIGCONT)
	}
	sh.mu.Lock()
	j.bg = true
	sh.mu.Unlock()
	why := "it has no process to stop"
	if failed != nil {
		why = failed.Error()
	}
	sh.errorf("\nrack: cannot stop job %d (%s); it goes on in the background: %s", j.id, j.cmd, why)
	fmt.Fprint(sh.stdout, jobLine(j, '+', "Running"))
	return false
}

func builtinJobs(_ context.Context, e *builtinEnv, args []string) int {
	if len(args) > 0 {
		return e.errorf("jobs: usage: jobs")
	}
	sh := e.sh
	sh.mu.Lock()
	cur := sh.currentLocked()
	jobs := sh.jobListLocked()
	var lines []string
	for _, j := range jobs {
		lines = append(lines, jobLine(j, marker(j, cur), j.stateText()))
	}
	done := sh.finished
	sh.finished = nil
	sh.mu.Unlock()
	for _, j := range done {
		lines = append(lines, jobLine(j, '-', doneText(j.code)))
	}
	for _, l := range lines {
		fmt.Fprint(e.stdout, l)
	}
	return 0
}

func builtinFG(ctx context.Context, e *builtinEnv, args []string) int {
	if e.inPipeline || !e.sh.interactive {
		return e.errorf("fg: no job control")
	}
	if len(args) > 1 {
		return e.errorf("fg: usage: fg [%%N]")
	}
	j, err := e.sh.findJob("fg", strings.Join(args, ""))
	if err != nil {
		return e.errorf("%v", err)
	}
	fmt.Fprintln(e.stdout, j.cmd)
	e.sh.mu.Lock()
	wasStopped := j.stopped
	j.stopped, j.bg = false, false
	e.sh.mu.Unlock()
	if wasStopped {
		if err := e.sh.signalJob(ctx, j, rack.SIGCONT); err != nil {
			e.errorf("fg: %v", err)
		}
	}
	return e.sh.waitForeground(ctx, j)
}

func builtinBG(ctx context.Context, e *builtinEnv, args []string) int {
	if e.inPipeline || !e.sh.interactive {
		return e.errorf("bg: no job control")
	}
	if len(args) > 1 {
		return e.errorf("bg: usage: bg [%%N]")
	}
	j, err := e.sh.findJob("bg", strings.Join(args, ""))
	if err != nil {
		return e.errorf("%v", err)
	}
	e.sh.mu.Lock()
	wasStopped := j.stopped
	j.stopped, j.bg = false, true
	cur := e.sh.currentLocked()
	e.sh.mu.Unlock()
	if !wasStopped {
		return e.errorf("bg: job %d already in background", j.id)
	}
	if err := e.sh.signalJob(ctx, j, rack.SIGCONT); err != nil {
		return e.errorf("bg: %v", err)
	}
	fmt.Fprintf(e.stdout, "[%d]%c %s &\n", j.id, marker(j, cur), j.cmd)
	return 0
}

func init() {
	builtins["jobs"] = builtinJobs
	builtins["fg"] = builtinFG
	builtins["bg"] = builtinBG
	builtinHelp = append(builtinHelp[:len(builtinHelp):len(builtinHelp)],
		struct{ usage, text string }{"jobs", "list the shell's jobs (running, stopped)"},
		struct{ usage, text string }{"fg [%N]", "continue a job in the foreground (default: the current one)"},
		struct{ usage, text string }{"bg [%N]", "continue a stopped job in the background"},
	)
}
