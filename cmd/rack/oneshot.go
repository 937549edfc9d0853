package main

import "context"

// One-shot commands (rack ps, rack gc, rack kill N, rack -c 'ls /x') made
// of builtins alone run without a root process: a root process would leave
// its record in the namespace (ps -a shows it, gc must reap it) and its
// kernel would claim a block of pids (one create-only object, 100 pids)
// that nothing uses. A builtin acts on the namespace through the kernel
// (ps, kill, cat, ls, rm, gc, install...); only forks and pipes need a
// process, so any line with an app, a pipe or a background job starts the
// root process "rack" as before (ps then shows the shell and its
// children).

// oneShotLine returns the line that cfg asks to run (rack COMMAND ARGS...
// or rack -c LINE) when it needs no process: every pipeline of it is one
// builtin in the foreground, with a literal name, or there is none (an
// empty line, a comment); hasC says -c was given. A line that does not
// parse needs none either: line is then nil, and running it reports the
// syntax error. ok is false otherwise.
func oneShotLine(cfg config, hasC bool) (line *Line, ok bool) {
	switch {
	case hasC:
		l, err := Parse(cfg.command)
		if err != nil {
			return nil, true
		}
		line = l
	case len(cfg.args) > 0:
		words := make([]Word, len(cfg.args))
		for i, a := range cfg.args {
			words[i] = Lit(a)
		}
		line = &Line{Pipelines: []*Pipeline{{Cmds: []*Command{{Args: words, Col: 1}}}}}
	default:
		return nil, false
	}
	for _, pl := range line.Pipelines {
		if pl.Background || len(pl.Cmds) != 1 || len(pl.Cmds[0].Args) == 0 {
			return nil, false
		}
		name, literal := literalWord(pl.Cmds[0].Args[0])
		if _, builtin := builtins[name]; !literal || !builtin {
			return nil, false
		}
	}
	return line, true
}

// literalWord returns the text of w if it has no parameter in it (its
// value does not depend on what ran before).
func literalWord(w Word) (string, bool) {
	s := ""
	for _, part := range w {
		if part.Param != 0 {
			return "", false
		}
		s += part.Lit
	}
	return s, true
}

// runOneShot runs a line that needs no process (see oneShotLine) and
// returns its status; a nil line is -c's text, which does not parse.
func (sh *shell) runOneShot(ctx context.Context, cfg config, line *Line) int {
	if line == nil {
		return sh.runSource(ctx, cfg.command)
	}
	return sh.runLine(ctx, line)
}
