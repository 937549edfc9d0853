package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/term"
)

// prompt is the interactive shell's prompt.
const prompt = "(rack)$ "

// terminal is the interactive shell's terminal, in raw mode: x/term edits
// the line and keeps the history; ^C never becomes a signal (which would
// hit every process the shell started, background jobs included) but is
// read here: at the prompt it discards the line, during a foreground job
// it is passed on to the job as SIGINT.
type terminal struct {
	fd    int
	old   *term.State
	t     *term.Terminal
	in    io.Reader
	intrs chan struct{} // ^C read while no line is being edited
	stops chan struct{} // ^Z read while no line is being edited
	hist  *history
	// complete completes the word before pos in line, for Tab (complete.go).
	complete func(line string, pos int) (string, int, bool)

	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // read ahead, for the line editor
	err     error  // the input's end
	editing bool   // ReadLine is running
	search  search // Ctrl-R (search.go)

	lineIntr atomic.Bool // ^C ended the line being edited
	restored sync.Once
}

// newTerminal puts in into raw mode and starts reading it.
func newTerminal(in, out *os.File) (*terminal, error) {
	fd := int(in.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, err
	}
	tm := newLineEditor(in, out)
	tm.fd, tm.old = fd, old
	if w, h, err := term.GetSize(int(out.Fd())); err == nil && w > 0 && h > 0 {
		_ = tm.t.SetSize(w, h)
	}
	go tm.pump()
	return tm, nil
}

// newLineEditor returns the line editor of a terminal that reads in
// (already in raw mode, or a pipe in tests) and writes out; its pump is
// not started.
func newLineEditor(in io.Reader, out io.Writer) *terminal {
	tm := &terminal{in: in, intrs: make(chan struct{}, 1), stops: make(chan struct{}, 1)}
	tm.cond = sync.NewCond(&tm.mu)
	tm.t = term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{tm, out}, prompt)
	tm.hist = &history{skip: &tm.lineIntr}
	tm.t.History = tm.hist
	tm.t.AutoCompleteCallback = tm.key
	return tm
}

// pump reads the terminal, sorting ^C out from the rest.
func (tm *terminal) pump() {
	b := make([]byte, 256)
	for {
		n, err := tm.in.Read(b)
		tm.mu.Lock()
		for i := 0; i < n; i++ {
			c := b[i]
			switch {
			case c == 3: // ^C
				if tm.editing {
					// Ends the line, which the shell then discards.
					tm.search.active = false
					tm.lineIntr.Store(true)
					tm.buf = append(tm.buf, '\r')
					continue
				}
				select {
				case tm.intrs <- struct{}{}:
				default:
				}
			case c == 0x1a: // ^Z: stops the foreground job; nothing at the prompt, as in bash
				if !tm.editing {
					select {
					case tm.stops <- struct{}{}:
					default:
					}
				}
			case tm.editing && tm.search.active:
				tm.searchByte(b[i:n])
			case c == 0x12: // ^R
				if tm.editing {
					tm.startSearch()
				}
			default:
				tm.buf = append(tm.buf, c)
			}
		}
		if err != nil {
			tm.err = err
		}
		tm.cond.Broadcast()
		tm.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Read gives the line editor what the pump read.
func (tm *terminal) Read(p []byte) (int, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	for len(tm.buf) == 0 && tm.err == nil {
		tm.cond.Wait()
	}
	if len(tm.buf) == 0 {
		return 0, tm.err
	}
	n := copy(p, tm.buf)
	tm.buf = tm.buf[n:]
	return n, nil
}

// readLine edits a line. interrupted says that ^C discarded it.
func (tm *terminal) readLine() (line string, interrupted bool, err error) {
	tm.mu.Lock()
	tm.editing = true
	tm.mu.Unlock()
	line, err = tm.t.ReadLine()
	tm.mu.Lock()
	tm.editing = false
	tm.mu.Unlock()
	if tm.lineIntr.Swap(false) {
		return "", true, nil
	}
	return line, false, err
}

// Write writes output to the terminal, redrawing the prompt if one shows.
func (tm *terminal) Write(p []byte) (int, error) { return tm.t.Write(p) }

// restore puts the terminal back in the mode it was found in.
func (tm *terminal) restore() {
	if tm.old == nil {
		return
	}
	tm.restored.Do(func() { _ = term.Restore(tm.fd, tm.old) })
}

// interact runs the interactive shell on a terminal until exit or ^D.
func (sh *shell) interact(ctx context.Context, in, out *os.File) int {
	tm, err := newTerminal(in, out)
	if err != nil {
		fmt.Fprintf(sh.stderr, "rack: terminal: %v; reading commands without line editing\n", err)
		return sh.runScript(ctx, in)
	}
	sh.term.Store(tm)
	defer tm.restore()
	if dir, err := historyDir(os.Getenv); err != nil {
		fmt.Fprintf(tm, "rack: history: %v; it is kept for this shell only\n", err)
	} else if err := tm.hist.open(dir); err != nil {
		fmt.Fprintf(tm, "rack: %v; it is kept for this shell only\n", err)
	}
	defer tm.hist.close()
	tm.complete = func(line string, pos int) (string, int, bool) { return sh.complete(ctx, tm, line, pos) }
	// The shell's output goes through the line editor, which turns \n into
	// \r\n in raw mode and redraws the prompt under background output.
	sh.stdout, sh.stderr = &lockedWriter{w: tm}, &lockedWriter{w: tm}
	// An interactive shell is not ended by SIGINT (e.g. kill -INT).
	ignored := make(chan os.Signal, 1)
	signal.Notify(ignored, os.Interrupt)
	defer signal.Stop(ignored)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	go func() {
		for range winch {
			if w, h, err := term.GetSize(int(out.Fd())); err == nil && w > 0 && h > 0 {
				_ = tm.t.SetSize(w, h)
			}
		}
	}()
	fmt.Fprintf(sh.stdout, "rack shell on %s (help lists the commands, ^D leaves)\n", redactURL(sh.url))
	for !sh.exited && ctx.Err() == nil {
		sh.reportJobs()
		line, interrupted, err := tm.readLine()
		sh.lines++
		if interrupted {
			sh.status = 130
			continue
		}
		if errors.Is(err, io.EOF) {
			if sh.exitBlocked() {
				continue
			}
			fmt.Fprintln(sh.stdout, "exit")
			break
		}
		if err != nil {
			fmt.Fprintf(sh.stderr, "rack: terminal: %v\n", err)
			return 1
		}
		sh.runSource(ctx, line)
	}
	if sh.exited {
		return sh.exitCode
	}
	return sh.status
}

// restoreTerminal restores an interactive shell's terminal (idempotent).
func (sh *shell) restoreTerminal() {
	if tm := sh.term.Load(); tm != nil {
		tm.restore()
	}
}

// interrupts returns a channel that receives when the user asks to
// interrupt (SIGINT, or ^C on the interactive terminal), until stop.
func (sh *shell) interrupts() (<-chan struct{}, func()) {
	out := make(chan struct{}, 1)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt)
	var termIntr <-chan struct{}
	if tm := sh.term.Load(); tm != nil {
		// Forget a ^C typed before this wait began.
		select {
		case <-tm.intrs:
		default:
		}
		termIntr = tm.intrs
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-sigs:
			case <-termIntr:
			case <-done:
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out, func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}
}
