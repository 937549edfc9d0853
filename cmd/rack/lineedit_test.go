package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/internal/osfile"
)

// TestHistoryFile: the history file is made 0600 in a 0700 directory,
// a second shell reads what the first kept, a large file is read bounded
// and cut back, and a symbolic link in its place is refused.
func TestHistoryFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rack")
	var skip atomic.Bool
	h := &history{skip: &skip}
	if err := h.open(dir); err != nil {
		t.Fatal(err)
	}
	h.Add("echo one")
	h.Add("echo one") // a repeat is kept once
	h.Add("echo two")
	skip.Store(true)
	h.Add("discarded by ^C")
	skip.Store(false)
	h.close()
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, historyName): 0o600} {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	h2 := &history{skip: &skip}
	if err := h2.open(dir); err != nil {
		t.Fatal(err)
	}
	if h2.Len() != 2 || h2.At(0) != "echo two" || h2.At(1) != "echo one" {
		t.Fatalf("reloaded %q", h2.entries)
	}
	h2.close()

	// Bounded: 3000 lines are read as the last historySize, and the file
	// is cut back to them.
	var b bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&b, "echo %d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, historyName), b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	h3 := &history{skip: &skip}
	if err := h3.open(dir); err != nil {
		t.Fatal(err)
	}
	h3.close()
	if h3.Len() != historySize || h3.At(0) != "echo 2999" || h3.At(historySize-1) != "echo 2000" {
		t.Fatalf("loaded %d lines, newest %q, oldest %q", h3.Len(), h3.At(0), h3.At(historySize-1))
	}
	data, err := os.ReadFile(filepath.Join(dir, historyName))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != historySize {
		t.Errorf("the file was cut back to %d lines, want %d", n, historySize)
	}

	// A symbolic link is not followed.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, historyName))
	if err := os.Symlink(other, filepath.Join(dir, historyName)); err != nil {
		t.Fatal(err)
	}
	h4 := &history{skip: &skip}
	if err := h4.open(dir); !errors.Is(err, osfile.ErrSymlink) {
		t.Fatalf("open through a symlink: %v, want ErrSymlink", err)
	}
	if h4.Len() != 0 {
		t.Fatalf("read through a symlink: %q", h4.entries)
	}
}

// editor is a line editor fed through a pipe.
type editor struct {
	t  *testing.T
	tm *terminal
	w  *os.File
}

func newTestEditor(t *testing.T, lines ...string) *editor {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); r.Close() })
	tm := newLineEditor(r, io.Discard)
	for _, l := range lines {
		tm.hist.Add(l)
	}
	go tm.pump()
	return &editor{t: t, tm: tm, w: w}
}

// line types keys into a line being edited and returns the line read.
func (e *editor) line(keys string) string {
	e.t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, _, err := e.tm.readLine()
		ch <- result{l, err}
	}()
	for {
		e.tm.mu.Lock()
		editing := e.tm.editing
		e.tm.mu.Unlock()
		if editing {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := e.w.Write([]byte(keys)); err != nil {
		e.t.Fatal(err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			e.t.Fatal(r.err)
		}
		return r.line
	case <-time.After(10 * time.Second):
		e.t.Fatalf("keys %q: no line", keys)
		return ""
	}
}

// TestReverseSearch types Ctrl-R searches into the line editor.
func TestReverseSearch(t *testing.T) {
	for _, c := range []struct{ keys, want string }{
		{"\x12mon\r", "montecarlo --trials 2"},         // the newest match
		{"\x12mon\x12\r", "montecarlo --trials 1"},     // ^R again: the next older
		{"\x12mon\x12\x12\r", "montecarlo --trials 1"}, // no older one: stays
		{"\x12output\r", "cat /output/result.txt"},     // anywhere in the line
		{"\x12monx\x7f\r", "montecarlo --trials 2"},    // Backspace
		{"abc\x12mon\x07\r", "abc"},                    // ^G: the line as it was
		{"\x12ls /\x05 /x\r", "ls /output /x"},         // ^E: edit the line found
		{"\x12QQQ\r", ""},                              // no match: the line as it was
		{"\x12cat\x12\r", "cat /output/result.txt"},    // the same line is not found twice
	} {
		e := newTestEditor(t, "montecarlo --trials 1", "ls /output", "cat /output/result.txt", "montecarlo --trials 2", "cat /output/result.txt")
		if got := e.line(c.keys); got != c.want {
			t.Errorf("keys %q: line %q, want %q", c.keys, got, c.want)
		}
	}
}

// TestComplete completes commands, rack paths, pids and job numbers.
func TestComplete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apps := t.TempDir()
	for _, name := range []string{"montecarlo", "monitor-x"} {
		if err := os.WriteFile(filepath.Join(apps, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", t.TempDir())
	k, err := rack.Open(ctx, "mem://", rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for _, p := range []string{"/output/result.txt", "/output/run/a.txt", "/other/x"} {
		f, err := k.Create(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := k.Start(ctx, rack.Spec{Name: "sleeper"}, func(ctx context.Context, self *rack.Self) error {
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill(context.WithoutCancel(ctx))
	pid := strconv.FormatInt(int64(p.PID()), 10)
	sh := newShell(k, config{url: "mem://", appsDir: apps, stdout: io.Discard, stderr: io.Discard})
	j := &job{id: 1, done: make(chan struct{}), cmd: "x"}
	sh.mu.Lock()
	sh.jobs[j] = struct{}{}
	sh.mu.Unlock()
	for _, c := range []struct {
		line      string
		want      string
		wantList  string
		listEmpty bool
	}{
		{line: "monte", want: "montecarlo "},
		{line: "mon", want: "mon", wantList: "monitor-x  montecarlo"},
		{line: "ech", want: "echo "},
		{line: "ps | mont", want: "ps | montecarlo "},
		{line: "cat /out", want: "cat /output/"},
		{line: "cat /output/", want: "cat /output/r"},
		{line: "cat /output/r", want: "cat /output/r", wantList: "/output/result.txt  /output/run/"},
		{line: "cat /output/re", want: "cat /output/result.txt "},
		{line: "cat /output/run/", want: "cat /output/run/a.txt "},
		{line: "kill " + pid[:1], want: "kill " + pid + " "},
		{line: "fg %", want: "fg %1 "},
		{line: "echo nothing", want: "echo nothing", listEmpty: true},
	} {
		var listed bytes.Buffer
		got, pos, ok := sh.complete(ctx, &listed, c.line, len(c.line))
		if !ok || got != c.want || pos != len(c.want) {
			t.Errorf("complete %q: %q at %d (%v), want %q", c.line, got, pos, ok, c.want)
		}
		if l := strings.TrimSpace(listed.String()); c.wantList != "" && l != c.wantList || c.listEmpty && l != "" {
			t.Errorf("complete %q listed %q, want %q", c.line, l, c.wantList)
		}
	}
}

// TestOwnPIDSignalled: a shell that is not interactive (here reading a
// script that has not come yet) ends, saying so, with 128+n when its own
// process is signalled, as bash does; SIGKILL too.
func TestOwnPIDSignalled(t *testing.T) {
	for _, sig := range []rack.Signal{rack.SIGTERM, rack.SIGINT, rack.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			dir := t.TempDir()
			url := "file://" + dir
			// The namespace is made first: two kernels making a file
			// store at once can race: one may read the other's marker empty.
			k, err := rack.Open(ctx, url, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			in, w := io.Pipe()
			defer w.Close()
			var out, errb syncBuffer
			codes := make(chan int, 1)
			go func() {
				codes <- run(ctx, []string{"--url", url}, in, &out, &errb, func(string) string { return "" })
			}()
			var shell *rack.Process
			for shell == nil {
				infos, err := k.Processes(ctx)
				if err != nil {
					t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
				}
				for _, in := range infos {
					if in.Name == "rack" && in.State == rack.Running {
						if shell, err = k.Process(ctx, in.PID); err != nil {
							t.Fatal(err)
						}
					}
				}
				select {
				case code := <-codes:
					t.Fatalf("the shell ended (status %d) before it was signalled:\n%s%s", code, out.String(), errb.String())
				case <-ctx.Done():
					t.Fatalf("the shell never showed in ps:\n%s%s", out.String(), errb.String())
				case <-time.After(20 * time.Millisecond):
				}
			}
			if err := shell.Signal(ctx, sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-codes:
				if code != 128+int(sig) {
					t.Errorf("status %d, want %d", code, 128+int(sig))
				}
			case <-ctx.Done():
				t.Fatal("the shell did not end")
			}
			if want := fmt.Sprintf("rack: the shell (pid %d) ", shell.PID()); !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), sig.String()) {
				t.Errorf("stderr %q, want %q... %v", errb.String(), want, sig)
			}
		})
	}
}

// TestHistoryTwoShells: two shells keep their lines in one file, neither
// overwriting the other's.
func TestHistoryTwoShells(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rack")
	var skip atomic.Bool
	a, b := &history{skip: &skip}, &history{skip: &skip}
	for _, h := range []*history{a, b} {
		if err := h.open(dir); err != nil {
			t.Fatal(err)
		}
	}
	a.Add("from a 1")
	b.Add("from b 1")
	a.Add("from a 2")
	a.close()
	b.close()
	data, err := os.ReadFile(filepath.Join(dir, historyName))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "from a 1\nfrom b 1\nfrom a 2\n"; got != want {
		t.Fatalf("history file %q, want %q", got, want)
	}
}
