package rack

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/rackfork/rack/internal/record"
)

// checkStreams refuses stream values that cannot cross machines, and
// handles from another kernel or process, before anything is recorded.
func (k *Kernel) checkStreams(parent *proc, spec *Spec) error {
	check := func(field string, v any) error {
		switch s := v.(type) {
		case nil:
			return nil
		case *PipeReader:
			if s == nil {
				return nil
			}
			if s.k != k || s.owner != parent {
				return fmt.Errorf("%w: %s: the pipe end belongs to another kernel or process", ErrInvalid, field)
			}
		case *PipeWriter:
			if s == nil {
				return nil
			}
			if s.k != k || s.owner != parent {
				return fmt.Errorf("%w: %s: the pipe end belongs to another kernel or process", ErrInvalid, field)
			}
		case *File:
			if s == nil {
				return nil
			}
			if s.k != k {
				return fmt.Errorf("%w: %s: the file belongs to another kernel", ErrInvalid, field)
			}
		default:
			return fmt.Errorf("%w: %s: a %T cannot cross machines; use a rack pipe end or *rack.File", ErrInvalid, field, v)
		}
		return nil
	}
	if err := check("Spec.Stdin", spec.Stdin); err != nil {
		return err
	}
	if err := check("Spec.Stdout", spec.Stdout); err != nil {
		return err
	}
	return check("Spec.Stderr", spec.Stderr)
}

// pipeSources returns the writers whose ends handStreams will duplicate
// for a child of parent forked with spec (checked by checkStreams).
func pipeSources(parent *proc, spec *Spec) []*PipeWriter {
	var out []*PipeWriter
	add := func(v, inherited io.Writer) {
		switch s := v.(type) {
		case *PipeWriter:
			if s != nil {
				out = append(out, s)
				return
			}
		case *File:
			if s != nil {
				return
			}
		}
		if w, ok := inherited.(*fencedWriter); ok {
			if pw, ok := w.w.(*PipeWriter); ok {
				out = append(out, pw)
			}
		}
	}
	if parent != nil {
		add(spec.Stdout, parent.stdout)
		add(spec.Stderr, parent.stderr)
	} else {
		add(spec.Stdout, nil)
		add(spec.Stderr, nil)
	}
	return out
}

// handStreams gives the child its stdin, stdout and stderr: writer ends
// are duplicated (registered before the child starts), a reader moves,
// nil inherits the parent's (a root gets the console).
func (k *Kernel) handStreams(ctx context.Context, parent, child *proc, spec *Spec, pool endPool) error {
	out := func(field string, v io.Writer, inherited record.Stream, inheritedW io.Writer) (record.Stream, error) {
		switch s := v.(type) {
		case *PipeWriter:
			if s != nil {
				w, err := s.dup(ctx, child, pool)
				if err != nil {
					return record.Stream{}, fmt.Errorf("%s: %w", field, err)
				}
				return record.Stream{Kind: "pipe", Pipe: w.pipe, End: w.end}, nil
			}
		case *File:
			if s != nil {
				return record.Stream{Kind: "file", Path: s.path}, nil
			}
		}
		if parent == nil {
			return record.Stream{Kind: "console"}, nil
		}
		if w, ok := inheritedW.(*fencedWriter); ok {
			if pw, ok := w.w.(*PipeWriter); ok {
				d, err := pw.dup(ctx, child, pool)
				if err != nil {
					return record.Stream{}, fmt.Errorf("%s (inherited): %w", field, err)
				}
				return record.Stream{Kind: "pipe", Pipe: d.pipe, End: d.end}, nil
			}
		}
		if inherited.Kind == "file" {
			// Two processes cannot share one object's content: the child
			// writes to its kernel's console instead.
			return record.Stream{Kind: "console"}, nil
		}
		return inherited, nil
	}
	var err error
	var pout, perr io.Writer
	var prec *record.Proc
	if parent != nil {
		pout, perr, prec = parent.stdout, parent.stderr, parent.rec
	} else {
		prec = &record.Proc{}
	}
	if child.rec.Stdout, err = out("Spec.Stdout", spec.Stdout, prec.Stdout, pout); err != nil {
		return err
	}
	if child.rec.Stderr, err = out("Spec.Stderr", spec.Stderr, prec.Stderr, perr); err != nil {
		k.closeEnds(child, false)
		return err
	}
	switch s := spec.Stdin.(type) {
	case *PipeReader:
		if s != nil {
			read, err := s.move()
			if err != nil {
				k.closeEnds(child, false)
				return fmt.Errorf("Spec.Stdin: %w", err)
			}
			// End: a named pipe's reader brings its end along (-1: none).
			child.rec.Stdin = record.Stream{Kind: "pipe", Pipe: s.pipe, End: s.fifoEnd, Read: read}
		}
	case *File:
		if s != nil {
			child.rec.Stdin = record.Stream{Kind: "file", Path: s.path}
		}
	default:
		if parent == nil {
			child.rec.Stdin = record.Stream{Kind: "console"}
		}
	}
	if child.remote {
		// Its own kernel opens its streams from the record; the ends
		// registered for it are not ours to close.
		child.writers, child.readers = nil, nil
		return nil
	}
	return k.openStreams(child)
}

// openStreams builds a hosted process's stdin, stdout and stderr from its
// record, the same way whichever kernel hosts it.
func (k *Kernel) openStreams(pr *proc) error {
	var err error
	pr.stdin, err = k.openInput(pr, pr.rec.Stdin)
	if err != nil {
		return err
	}
	stdout, err := k.openOutput(pr, pr.rec.Stdout, k.cfg.stdout)
	if err != nil {
		return err
	}
	stderr, err := k.openOutput(pr, pr.rec.Stderr, k.cfg.stderr)
	if err != nil {
		return err
	}
	pr.stdout = &fencedWriter{pr: pr, w: stdout}
	pr.stderr = &fencedWriter{pr: pr, w: stderr, tail: &pr.tail}
	return nil
}

func (k *Kernel) openInput(pr *proc, s record.Stream) (io.Reader, error) {
	switch s.Kind {
	case "pipe":
		return k.newReader(pr, s.Pipe, s.End, s.Read)
	case "file":
		return &lazyFile{k: k, pr: pr, path: s.Path}, nil
	case "console":
		return k.cfg.stdin, nil
	}
	return eofReader{}, nil
}

func (k *Kernel) openOutput(pr *proc, s record.Stream, console io.Writer) (io.Writer, error) {
	switch s.Kind {
	case "pipe":
		pr.mu.Lock()
		// The forker registered this end (handStreams): write through that
		// writer, so that one end has one writer and one close record.
		for w := range pr.writers {
			if w.pipe == s.Pipe && w.end == s.End {
				pr.mu.Unlock()
				return w, nil
			}
		}
		w := &PipeWriter{k: k, owner: pr, pipe: s.Pipe, end: s.End, claims: &endClaims{}}
		if pr.writers == nil {
			pr.writers = make(map[*PipeWriter]struct{})
		}
		pr.writers[w] = struct{}{}
		pr.mu.Unlock()
		return w, nil
	case "file":
		return &lazyFile{k: k, pr: pr, path: s.Path}, nil
	case "console":
		return k.console(console), nil
	}
	return io.Discard, nil
}

// console serialises writes from many processes to one terminal.
func (k *Kernel) console(w io.Writer) io.Writer {
	consoleMu.Lock()
	defer consoleMu.Unlock()
	if c, ok := consoles[w]; ok {
		return c
	}
	c := &lockedWriter{w: w}
	consoles[w] = c
	return c
}

var (
	consoleMu sync.Mutex
	consoles  = map[io.Writer]*lockedWriter{}
)

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// fencedWriter refuses writes once its process was killed, and keeps the
// stderr tail.
type fencedWriter struct {
	pr   *proc
	w    io.Writer
	tail *tailBuffer
}

// ReadFrom lets io.Copy into a process's output make large writes (see
// PipeWriter.ReadFrom).
func (f *fencedWriter) ReadFrom(r io.Reader) (int64, error) {
	return copyInChunks(writerOnly{f}, r, segmentsInFlight*f.pr.k.cfg.segmentSize)
}

func (f *fencedWriter) Write(p []byte) (int, error) {
	if f.pr.killed.Load() {
		return 0, ErrKilled
	}
	if f.tail != nil {
		_, _ = f.tail.Write(p)
	}
	return f.w.Write(p)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// lazyFile opens a file stream on first use, owned by the process, so a
// child whose stdout is a file writes it and commits it when it exits.
type lazyFile struct {
	k    *Kernel
	pr   *proc
	path string
	mu   sync.Mutex // a program may write its stdout from many goroutines
	f    *File
	err  error
}

func (l *lazyFile) open(flag int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil && l.err == nil {
		ctx := context.WithValue(context.Background(), processKey{}, l.pr)
		f, err := l.k.OpenFile(ctx, l.path, flag)
		if f != nil {
			f.mu.Lock()
			f.commitOnExit = true
			f.mu.Unlock()
		}
		l.f, l.err = f, err
	}
}

func (l *lazyFile) Read(p []byte) (int, error) {
	l.open(os.O_RDONLY)
	if l.err != nil {
		return 0, l.err
	}
	return l.f.Read(p)
}

func (l *lazyFile) Write(p []byte) (int, error) {
	l.open(os.O_WRONLY | os.O_CREATE | os.O_TRUNC)
	if l.err != nil {
		return 0, l.err
	}
	return l.f.Write(p)
}
