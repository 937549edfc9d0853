package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// langEnv is the environment both shells of the differential test start
// with.
var langEnv = map[string]string{"HOME": "/home/tester", "PATH": "/usr/bin:/bin", "LANG": "C"}

// TestBashDifferential runs lines that do not depend on rack paths
// through /bin/bash -c and through the rack shell (-c, on a mem://
// namespace), and compares their output and status. Lines whose error
// messages differ only by the shell's name compare stdout and status.
func TestBashDifferential(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("the differential test needs bash: %v", err)
	}
	tests := []struct {
		line       string
		sameStderr bool // stderr must match too
	}{
		{line: "echo $HOME", sameStderr: true},
		{line: `echo "$HOME" '$HOME' ${HOME}x "${HOME}"y \$HOME`, sameStderr: true},
		{line: "false || echo ok", sameStderr: true},
		{line: "true && echo ok", sameStderr: true},
		{line: "false && echo no; echo $?", sameStderr: true},
		{line: "true || echo no; echo $?", sameStderr: true},
		{line: "false || false && echo a || echo b", sameStderr: true},
		{line: "true && false || echo c; echo $?", sameStderr: true},
		{line: "true || false && echo d", sameStderr: true},
		{line: "! true; echo $?", sameStderr: true},
		{line: "! false && echo negated", sameStderr: true},
		{line: "true; false", sameStderr: true},
		{line: "false; true", sameStderr: true},
		{line: "false", sameStderr: true},
		{line: "exit 3", sameStderr: true},
		{line: "exit 300", sameStderr: true},
		{line: "exit abc; echo not reached"},
		{line: "exit 1 2; echo after"},
		{line: "false; exit", sameStderr: true},
		{line: ":; echo $?", sameStderr: true},
		{line: "X=1; echo $X", sameStderr: true},
		{line: `X="a  b"; echo $X; echo "$X"; echo ${#X}`, sameStderr: true},
		{line: `X=" lead  trail "; echo [$X] "[$X]"`, sameStderr: true},
		{line: `X=" a b "; echo x${X}y`, sameStderr: true},
		{line: `IFS=:; X=a:b::c; echo $X; echo "$X"`, sameStderr: true},
		{line: `IFS=:; X=:a:; echo $X end`, sameStderr: true},
		{line: `IFS=", "; X="a, b,,c"; echo $X`, sameStderr: true},
		{line: `IFS=; X="a b"; echo $X`, sameStderr: true},
		{line: "X=a; X=b echo $X", sameStderr: true},
		{line: "E=; echo x $E y \"$E\" ''$E", sameStderr: true},
		{line: `unset HOME; echo "[$HOME]"`, sameStderr: true},
		{line: "X=1; unset X; echo [$X]", sameStderr: true},
		{line: "export A=1; echo $A; export B; echo [$B]", sameStderr: true},
		{line: `X="a  b"; export Y=$X Z=~; echo "$Y" $Z`, sameStderr: true},
		{line: `echo 'single $X' "double \$X \"q\"" back\ slash`, sameStderr: true},
		{line: `echo a\\b "a\\b" 'a\\b' "a\b"`, sameStderr: true},
		{line: `echo $'a\tb\x41\101\'' $'\q'`, sameStderr: true},
		{line: `echo "a"'b'c "" x ''`, sameStderr: true},
		{line: "echo a b # comment", sameStderr: true},
		{line: "echo a#b", sameStderr: true},
		{line: `echo ~ ~/x a~ "~"`, sameStderr: true},
		{line: "X=~/y; echo $X", sameStderr: true},
		{line: `echo * "*" '*' \* ?`, sameStderr: true},
		{line: "echo $? $#", sameStderr: true},
		{line: "echo hi > /dev/null; echo x 2>/dev/null; true < /dev/null", sameStderr: true},
		{line: "echo -n x; echo y", sameStderr: true},
		{line: "echo hi >&2", sameStderr: true},
		{line: "echo hi 1>&2; echo there", sameStderr: true},
		{line: "echo hi 2>&1", sameStderr: true},
		{line: "echo one; echo two;", sameStderr: true},
		{line: "echo one\necho two\n\n", sameStderr: true},
		{line: "false ||\necho c # comment\necho d", sameStderr: true},
		{line: "echo \"a\nb\" 'c\nd'", sameStderr: true},
		{line: `echo "a\$b" "\a" '\"' "$" $ "x$" ${HOME}${HOME}`, sameStderr: true},
		{line: `X='*'; echo $X "$X"; Y='a\b'; echo $Y "$Y"`, sameStderr: true},
		{line: `echo a\ b\ \ c "a"b'c'"d"`, sameStderr: true},
		{line: "nonexistent-command-x; echo $?"},
		{line: "nonexistent-command-x 2>&1 | true; echo $?", sameStderr: true},
		{line: "nonexistent-command-x 2>/dev/null; echo $?", sameStderr: true},
		{line: "nonexistent-command-x || echo alt", sameStderr: false},
		{line: "echo 'unterminated"},
		{line: "a &&"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bash, "--norc", "--noprofile", "-c", tc.line)
			cmd.Dir = t.TempDir() // an empty directory: bash's globs match nothing
			for k, v := range langEnv {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var bout, berr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &bout, &berr
			bcode := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("bash: %v", err)
				}
				bcode = ee.ExitCode()
			}
			var rout, rerr syncBuffer
			rcode := run(ctx, []string{"--url", "mem://", "-c", tc.line}, strings.NewReader(""), &rout, &rerr,
				func(k string) string { return langEnv[k] })
			if rout.String() != bout.String() || rcode != bcode {
				t.Errorf("%s\nrack: status %d, stdout %q, stderr %q\nbash: status %d, stdout %q, stderr %q",
					tc.line, rcode, rout.String(), rerr.String(), bcode, bout.String(), berr.String())
			}
			if tc.sameStderr && rerr.String() != berr.String() {
				t.Errorf("%s: stderr %q, bash's %q", tc.line, rerr.String(), berr.String())
			}
			if (rerr.String() == "") != (berr.String() == "") {
				t.Errorf("%s: stderr %q, bash's %q", tc.line, rerr.String(), berr.String())
			}
		})
	}
}

// TestLangRackPaths runs the acceptance lines that use rack paths, and
// checks what bash would print for the same files.
func TestLangRackPaths(t *testing.T) {
	dir := t.TempDir()
	script := strings.Join([]string{
		"echo /output/*",
		"echo one > /output/a.txt; echo two > /output/b.txt; echo x > /output/.hidden; echo y > /logs/c.log",
		"echo /output/*",
		"echo /output/*.txt /*/c.log /output/[b]* /output/?.txt",
		`echo "/output/*" '/output/*' /output/\* /nope/* /output/*.none`,
		"cat /output/*.txt",
		"G=/output/*.txt; echo $G; echo \"$G\"",
		"echo hi 2> /x/e",
		"cat /x/e; echo e:$?",
		"ls /x",
		"ls /nope 2>&1 | cat",
		"echo pipe:$?",
		"ls /nope 2>/dev/null; echo quiet:$?",
		"echo a >> /x/f; echo b >> /x/f; cat /x/f",
		"echo c >> /x/f 2>&1; cat /x/f",
		"echo both &> /x/g; cat /x/g",
		"ls /nope > /x/h 2>&1; cat /x/h",
		"ls /nope 2>&1 > /x/i | cat; cat /x/i; echo i:$?",
		"> /x/empty; cat /x/empty; echo empty:$?",
		"echo /x/*",
		"R=/x; echo $R/f; cat $R/f",
		"cat < /x/f > /x/copy; cat /x/copy",
		"echo z > /x/*; echo /x/*",
		"echo amb > $G",
		"echo amb:$?",
	}, "\n") + "\n"
	out, errOut, _ := runShell(t, dir, script)
	// What bash prints for the same files (with "ls:" for "rack: ls:").
	lsNope := "rack: ls: cannot access '/nope': No such file or directory"
	want := strings.Join([]string{
		"/output/*", // no match: the word stays
		"/output/a.txt /output/b.txt",
		"/output/a.txt /output/b.txt /logs/c.log /output/b.txt /output/a.txt /output/b.txt",
		"/output/* /output/* /output/* /nope/* /output/*.none",
		"one", "two",
		"/output/a.txt /output/b.txt", "/output/*.txt",
		"hi",
		"e:0", // 2> made the file, empty
		"e",
		lsNope, // through the pipe
		"pipe:0",
		"quiet:1",
		"a", "b",
		"a", "b", "c",
		"both",
		lsNope, // > /x/h 2>&1
		lsNope, // 2>&1 > /x/i | cat: the errors through the pipe, /x/i empty
		"i:0",
		"empty:0",
		"/x/e /x/empty /x/f /x/g /x/h /x/i",
		"/x/f", "a", "b", "c",
		"a", "b", "c",
		"/x/copy /x/e /x/empty /x/f /x/g /x/h /x/i", // > /x/* was ambiguous: nothing written
		"amb:1",
	}, "\n") + "\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s\nstderr:\n%s", out, want, errOut)
	}
	if wantErr := "rack: /x/*: ambiguous redirect\nrack: /output/*.txt: ambiguous redirect\n"; errOut != wantErr {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, wantErr)
	}
	if strings.Contains(errOut, "rack: rack:") || strings.Contains(errOut, ": rack: ") {
		t.Errorf("an error repeats its prefix:\n%s", errOut)
	}
}

// TestLangApps checks the redirections, appends and environment of apps
// (forked programs), which rack wires differently from builtins.
func TestLangApps(t *testing.T) {
	buildApps(t)
	dir := t.TempDir()
	script := strings.Join([]string{
		"upper both 2> /o/err > /o/out; cat /o/out /o/err",
		"upper both 2>&1 | cat",
		"upper both > /o/all 2>&1; cat /o/all",
		"upper both &> /o/all2; cat /o/all2",
		"upper both 2>&1 > /o/only | cat; cat /o/only",
		"upper both >&2",
		"upper a >> /o/app; upper b >> /o/app; cat /o/app",
		"upper c 2>> /o/app; upper both 2>> /o/app >/o/x; cat /o/app",
		"montecarlo --trials abc 2> /o/usage; echo usage:$?; cat /o/usage | upper",
		"X=1 upper env X Y; echo [$X]",
		"export Y=2; upper env X Y",
		"unset Y; upper env Y",
		"upper fail || echo failed",
		"upper a && upper b",
	}, "\n") + "\n"
	out, errOut, code := runShell(t, dir, script)
	if code != 0 {
		t.Errorf("status %d", code)
	}
	for _, w := range []string{
		"to stdout\nto stderr\n",
		"X=1\nY=\n[]\nX=\nY=2\nY=\n",
		"failed\n",
		"a\nb\n",
		"usage:2\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s\nstderr:\n%s", w, out, errOut)
		}
	}
	// Each "both" line, in order; the stream order within one app is
	// not defined for two outputs, so each pair is checked as a set.
	lines := strings.Split(out, "\n")
	if len(lines) < 12 {
		t.Fatalf("output:\n%s\nstderr:\n%s", out, errOut)
	}
	pairs := [][2]int{{0, 1}, {2, 3}, {4, 5}, {6, 7}}
	for _, p := range pairs {
		got := []string{lines[p[0]], lines[p[1]]}
		if !(got[0] == "to stdout" && got[1] == "to stderr" || got[0] == "to stderr" && got[1] == "to stdout") {
			t.Errorf("lines %d-%d = %q, want to stdout and to stderr:\n%s\nstderr:\n%s", p[0], p[1], got, out, errOut)
		}
	}
	if lines[8] != "to stderr" || lines[9] != "to stdout" {
		t.Errorf("2>&1 > file | cat: %q, want the errors through the pipe then the file:\n%s", lines[8:10], out)
	}
	if lines[10] != "a" || lines[11] != "b" {
		t.Errorf(">> by an app: %q:\n%s", lines[10:12], out)
	}
	if !strings.Contains(out, "\nc\na\nb\nto stderr\n") {
		t.Errorf("2>> by an app:\n%s\nstderr:\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "to stdout\nto stderr\n") && !strings.Contains(errOut, "to stderr\nto stdout\n") {
		t.Errorf(">&2: stderr:\n%s", errOut)
	}
	if !strings.Contains(out, "usage:2\nINVALID VALUE \"ABC\" FOR FLAG -TRIALS") {
		t.Errorf("montecarlo's usage did not reach the 2> file:\n%s", out)
	}
	if strings.Contains(errOut, "rack: rack:") || strings.Contains(errOut, ": rack: ") {
		t.Errorf("an error repeats its prefix:\n%s", errOut)
	}
}

// TestBadURLNamed: a namespace URL that does not open is named in the
// error (its password hidden), once.
func TestBadURLNamed(t *testing.T) {
	for url, want := range map[string]string{
		"bogus://":                 `rack: open "bogus://": invalid argument: unknown scheme "bogus"`,
		"bogus://user:secret@h/ns": `rack: open "bogus://user:xxxxx@h/ns": invalid argument: unknown scheme "bogus"`,
	} {
		var out, errb syncBuffer
		env := map[string]string{"RACK_URL": url}
		code := run(context.Background(), []string{"-c", "ps"}, strings.NewReader(""), &out, &errb,
			func(k string) string { return env[k] })
		if code != 1 || !strings.HasPrefix(errb.String(), want) || strings.Count(errb.String(), "rack: ") != 1 ||
			strings.Contains(errb.String(), "secret") {
			t.Errorf("RACK_URL=%s: status %d, stderr %q, want %q...", url, code, errb.String(), want)
		}
	}
}

// TestScriptContinuation: a script's command may span lines, as in bash:
// an open quote, a trailing backslash, or a trailing | && || reads on.
func TestScriptContinuation(t *testing.T) {
	script := "echo \"a\nb\"\necho x \\\ny\nfalse ||\necho z\necho 'c\n\nd'\necho \"open\n"
	out, errOut, code := runShell(t, t.TempDir(), script)
	if out != "a\nb\nx y\nz\nc\n\nd\n" || code != 2 || !strings.Contains(errOut, "unterminated double quote") {
		t.Errorf("status %d, output %q, stderr %q", code, out, errOut)
	}
}
