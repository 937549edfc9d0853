package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/rackfork/rack"
)

// sinkKind is where an output descriptor writes.
type sinkKind int

const (
	sinkShellOut sinkKind = iota // the shell's stdout
	sinkShellErr                 // the shell's stderr
	sinkPipe                     // the pipe to the next stage
	sinkFile                     // a rack file (> or >>)
	sinkNull                     // /dev/null: discarded
)

// devNull is the one local path redirections know: output to it is
// discarded, input from it is empty (rather than a rack file /dev/null).
const devNull = "/dev/null"

// sink is the target of a stage's stdout or stderr. Both descriptors
// share one sink after 2>&1, >&2 or &>.
type sink struct {
	kind   sinkKind
	pw     *rack.PipeWriter // sinkPipe
	path   string           // sinkFile
	append bool             // sinkFile: >>
}

// fdTable is a stage's standard descriptors: its input (a pipe reader, a
// file path, or none) and its two outputs.
type fdTable struct {
	inPipe *rack.PipeReader
	inPath string
	out    *sink
	err    *sink
}

// redirectError is a redirection that cannot be made; status 1.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return "rack: " + e.msg }

// applyRedirects applies c's redirections, in order, to t.
func (sh *shell) applyRedirects(ctx context.Context, c *Command, t fdTable) (fdTable, error) {
	target := func(r Redirect) (string, error) {
		f := Fields([]Word{r.Target}, sh.params(), sh.glob(ctx))
		if len(f) != 1 {
			return "", &redirectError{fmt.Sprintf("%s: ambiguous redirect", r.Target.Expand(sh.params()))}
		}
		return f[0], nil
	}
	for _, r := range c.Redirs {
		if r.Fd > 2 || (r.Op == RedirDup && r.DupFd > 2) {
			fd := r.Fd
			if r.Fd <= 2 {
				fd = r.DupFd
			}
			return t, &redirectError{fmt.Sprintf("%d: Bad file descriptor (only 0, 1 and 2 exist)", fd)}
		}
		switch r.Op {
		case RedirIn:
			p, err := target(r)
			if err != nil {
				return t, err
			}
			if r.Fd != 0 {
				return t, &redirectError{fmt.Sprintf("%d<: only the input (0) can read a file", r.Fd)}
			}
			t.inPipe, t.inPath = nil, p
			if p == devNull {
				t.inPath = ""
			}
		case RedirOut, RedirAppend, RedirAll, RedirAllAppend:
			p, err := target(r)
			if err != nil {
				return t, err
			}
			s := &sink{kind: sinkFile, path: p, append: r.Op == RedirAppend || r.Op == RedirAllAppend}
			if p == devNull {
				s = &sink{kind: sinkNull}
			}
			switch {
			case r.Op == RedirAll || r.Op == RedirAllAppend:
				t.out, t.err = s, s
			case r.Fd == 1:
				t.out = s
			case r.Fd == 2:
				t.err = s
			default:
				return t, &redirectError{fmt.Sprintf("%d>: the input (0) cannot write a file", r.Fd)}
			}
		case RedirDup:
			switch {
			case r.Fd == r.DupFd:
			case r.Fd == 1 && r.DupFd == 2:
				t.out = t.err
			case r.Fd == 2 && r.DupFd == 1:
				t.err = t.out
			default:
				return t, &redirectError{fmt.Sprintf("%d>&%d: the input (0) and the outputs (1, 2) cannot be swapped", r.Fd, r.DupFd)}
			}
		}
	}
	return t, nil
}

// appendFile is a rack file opened for >>.
//
// Rack files are written whole (an object is replaced, never extended), so
// >> is read-and-rewrite: the command's output is kept in memory until it
// ends; then the file's current content is read and the file is written
// again with the output after it, as one new version. A file that does not
// exist yet is created create-only (O_EXCL), so two first appends do not
// overwrite each other (the loser reads the winner's file and tries
// again). Appends to an existing file are not atomic: two commands that
// append to the same file at the same moment both read the old content
// and the last to finish wins, losing the other's output (bash's O_APPEND
// would keep both). On Swift, whose reads may lag a write, an append right
// after another may likewise miss it.
type appendFile struct {
	ctx  context.Context
	k    *rack.Kernel
	path string
	buf  bytes.Buffer
}

func (a *appendFile) Write(p []byte) (int, error) { return a.buf.Write(p) }

// Close writes the file: its old content, then the output.
func (a *appendFile) Close() error {
	for try := 0; ; try++ {
		old, err := a.read()
		if err != nil {
			return err
		}
		flag := rack.O_WRONLY | rack.O_CREATE | rack.O_TRUNC
		if old == nil {
			flag = rack.O_WRONLY | rack.O_CREATE | rack.O_EXCL
		}
		f, err := a.k.OpenFile(a.ctx, a.path, flag)
		if err == nil {
			_, err = f.Write(append(old, a.buf.Bytes()...))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if old == nil && errors.Is(err, fs.ErrExist) && try < 3 {
			continue // another first append won: append to its file
		}
		return err
	}
}

// read returns the file's content, or nil if it does not exist.
func (a *appendFile) read() ([]byte, error) {
	f, err := a.k.Open(a.ctx, a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// openSink opens a file sink for the shell to write: > creates (or
// truncates) the file, >> appends to it.
func (sh *shell) openSink(ctx context.Context, s *sink) (io.WriteCloser, error) {
	if s.append {
		return &appendFile{ctx: ctx, k: sh.k, path: s.path}, nil
	}
	return sh.k.Create(ctx, s.path)
}
