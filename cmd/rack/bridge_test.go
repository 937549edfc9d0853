package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// needPrograms skips a test when the machine lacks one of the stock
// programs it runs (every Linux system has them).
func needPrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("no %s on PATH", n)
		}
	}
}

// runShellAt runs the shell on the namespace url with args.
func runShellAt(t *testing.T, url, script string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var out, errb syncBuffer
	env := map[string]string{"RACK_APPS": appsDir}
	code := run(ctx, append([]string{"--url", url}, args...), strings.NewReader(script), &out, &errb,
		func(k string) string { return env[k] })
	return out.String(), errb.String(), code
}

// TestBridgeDemoPipeline is the acceptance: after the seed demo,
// cat | grep | wc counts the report's pi line through /usr/bin/grep and
// /usr/bin/wc running as rack processes, which ps -a lists as typed.
func TestBridgeDemoPipeline(t *testing.T) {
	needPrograms(t, "grep", "wc")
	buildApps(t)
	dir := t.TempDir()
	if out, errOut, code := runShell(t, dir, "", "-c", "montecarlo --trials 100000 --workers 4 --stdout /output/result.txt"); code != 0 {
		t.Fatalf("montecarlo: status %d\n%s%s", code, out, errOut)
	}
	out, errOut, code := runShell(t, dir, "", "-c", "cat /output/result.txt | grep pi | wc -l")
	if code != 0 || out != "1\n" || errOut != "" {
		t.Fatalf("pipeline: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, _, _ = runShell(t, dir, "", "ps", "-a")
	for _, re := range []string{`(?m)^\d+\s+\d+\s+exit 0\s+grep pi$`, `(?m)^\d+\s+\d+\s+exit 0\s+wc -l$`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("ps -a lacks %s:\n%s", re, out)
		}
	}
	// The same on mem://, where the bridge runs as a goroutine of the
	// shell (the report is echoed: a fresh namespace has no files).
	out, errOut, code = runShellAt(t, "mem://", "", "-c", "echo '| pi | 3.14 |' > /output/result.txt; cat /output/result.txt | grep pi | wc -l; ps -a")
	if code != 0 || !strings.HasPrefix(out, "1\n") || errOut != "" {
		t.Fatalf("mem://: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !regexp.MustCompile(`(?m)^\d+\s+\d+\s+exit 0\s+grep pi$`).MatchString(out) {
		t.Errorf("mem://: ps -a lacks grep:\n%s", out)
	}
}

// TestBridgeStatus checks exit statuses: codes, a signal as 128+n, a
// missing or unusable command.
func TestBridgeStatus(t *testing.T) {
	needPrograms(t, "sh")
	dir := t.TempDir()
	noexec := filepath.Join(t.TempDir(), "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	falsePath, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false on PATH")
	}
	script := strings.Join([]string{
		falsePath + "; echo false $?",
		"sh -c 'exit 3'; echo exit3 $?",
		"sh -c 'kill -SEGV $$'; echo segv $?",
		"sh -c 'exit 0' | sh -c 'exit 5'; echo last $?",
		"no-such-command-here; echo missing $?",
		"./no-such-file; echo nofile $?",
		noexec + "; echo noexec $?",
	}, "\n") + "\n"
	for _, url := range []string{"file://" + dir, "mem://"} {
		out, errOut, _ := runShellAt(t, url, script)
		want := "false 1\nexit3 3\nsegv 139\nlast 5\nmissing 127\nnofile 127\nnoexec 126\n"
		if out != want {
			t.Errorf("%s: output %q, want %q\nstderr:\n%s", url, out, want, errOut)
		}
		for _, w := range []string{"rack: no-such-command-here: command not found", "/no-such-file: no such file or directory", "rack: " + noexec + ": permission denied"} {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", url, w, errOut)
			}
		}
	}
}

// procsWithArg returns the pids of OS processes whose command line holds
// arg.
func procsWithArg(arg string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				out = append(out, pid)
			}
		}
	}
	return out
}

// TestBridgeSignals kills running commands: the signal reaches the
// command (and what it started: its process group), the status is
// 128+n, and no OS process is left.
func TestBridgeSignals(t *testing.T) {
	needPrograms(t, "sleep", "sh")
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("no /proc")
	}
	for _, url := range []string{"file://" + t.TempDir(), "mem://"} {
		// Odd durations name the sleeps of this test.
		script := strings.Join([]string{
			"sleep 1001 & kill $!; wait $!; echo term $?",
			"sleep 1002 & kill -INT $!; wait $!; echo int $?",
			"sleep 1003 & kill -KILL $!; wait $!; echo kill $?",
			"sh -c 'sleep 1004; echo not reached' & kill -HUP $!; wait $!; echo hup $?",
			"sleep 1005 & kill -USR1 $!; wait $!; echo usr1 $?",
		}, "\n") + "\n"
		out, errOut, _ := runShellAt(t, url, script)
		for _, w := range []string{"term 143\n", "int 130\n", "kill 137\n", "hup 129\n", "usr1 138\n"} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s\nstderr:\n%s", url, w, out, errOut)
			}
		}
		if strings.Contains(out, "not reached") {
			t.Errorf("%s: the script's sleep was not signalled:\n%s", url, out)
		}
		// SIGKILL and the group's sleep may end a moment after the shell
		// saw the status: give them a second.
		deadline := time.Now().Add(5 * time.Second)
		for _, arg := range []string{"1001", "1002", "1003", "1004", "1005"} {
			for len(procsWithArg(arg)) > 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if pids := procsWithArg(arg); len(pids) > 0 {
				t.Errorf("%s: sleep %s is still running: %v", url, arg, pids)
			}
		}
	}
}

// TestBridgeStreamsAndEnv runs commands with rack files and pipes as their
// streams, and checks what they are given: the spec's environment without
// credentials or rack's own variables, a private working directory.
func TestBridgeStreamsAndEnv(t *testing.T) {
	needPrograms(t, "sh", "tr", "sort", "head")
	t.Setenv("OS_PASSWORD", "secret-pw")
	t.Setenv("ST_KEY", "secret-key")
	t.Setenv("RACK_CREDENTIAL_URL", "http://cred.example")
	t.Setenv("BRIDGE_TEST_KEPT", "kept")
	dir := t.TempDir()
	script := strings.Join([]string{
		"echo hello world > /docs/a.txt",
		"tr a-z A-Z < /docs/a.txt > /docs/b.txt",
		"cat /docs/b.txt",
		"sh -c 'echo out; echo err >&2' | tr a-z A-Z",
		`sh -c 'echo "${OS_PASSWORD:-no-os}" "${ST_KEY:-no-st}" "${RACK_CREDENTIAL_URL:-no-cred}" "${RACK_PID:-no-pid}" "${RACK_URL:-no-url}" "${RACK_EXEC_PATH:-no-path}" "$BRIDGE_TEST_KEPT"'`,
		"sh -c pwd",
		"seq 1 20000 | sort -rn | head -2",
		"/bin/sh -c 'echo $0'",
	}, "\n") + "\n"
	for _, url := range []string{"file://" + dir, "mem://"} {
		out, errOut, code := runShellAt(t, url, script)
		if code != 0 {
			t.Errorf("%s: status %d\n%s\nstderr:\n%s", url, code, out, errOut)
		}
		for _, w := range []string{
			"HELLO WORLD\n",
			"OUT\n",
			"no-os no-st no-cred no-pid no-url no-path kept\n",
			"20000\n19999\n",
			"/bin/sh\n",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s\nstderr:\n%s", url, w, out, errOut)
			}
		}
		if errOut != "err\n" {
			t.Errorf("%s: stderr %q, want the command's", url, errOut)
		}
		m := regexp.MustCompile(`(?m)^(/.*/rack-exec-[^/\n]+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Errorf("%s: pwd is not a private temporary directory:\n%s", url, out)
		} else if _, err := os.Stat(m[1]); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: working directory %s left behind (%v)", url, m[1], err)
		}
	}
}

// TestBridgeKeepsRackApps: a rack app still runs as itself (not through
// the bridge), next to external commands in one pipeline.
func TestBridgeKeepsRackApps(t *testing.T) {
	needPrograms(t, "grep")
	buildApps(t)
	dir := t.TempDir()
	out, errOut, code := runShell(t, dir, "upper hello world | grep hello | upper\nps -a --json\n")
	if code != 0 || !strings.HasPrefix(out, "HELLO WORLD\n") {
		t.Fatalf("status %d\n%s\nstderr:\n%s", code, out, errOut)
	}
	// ps: upper's record names no program (its own binary), grep's is
	// the bridge's; both show their command line.
	for _, w := range []string{`"name": "upper"`, `"name": "grep"`} {
		if strings.Count(out, w) < 1 {
			t.Errorf("ps lacks %s:\n%s", w, out)
		}
	}
	ctx := context.Background()
	k, err := rack.Open(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	infos, err := k.Processes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, in := range infos {
		seen[in.Name] = true
	}
	if !seen["upper"] || !seen["grep"] {
		t.Errorf("processes: %v", seen)
	}
}

func TestLookPathIn(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, want string
		err              error
	}{
		{"prog", "relative:" + dir, exe, nil},
		{"prog", "", "", errNotFound},
		{"prog", "relative", "", errNotFound},
		{"plain", dir, "", fs.ErrPermission},
		{exe, "", exe, nil},
		{plain, dir, "", fs.ErrPermission},
		{dir + "/missing", dir, "", fs.ErrNotExist},
		{"sub", dir, "", errNotFound},
	} {
		got, err := lookPathIn(c.name, c.path)
		if got != c.want || (c.err == nil) != (err == nil) || (c.err != nil && !errors.Is(err, c.err)) {
			t.Errorf("lookPathIn(%q, %q) = %q, %v; want %q, %v", c.name, c.path, got, err, c.want, c.err)
		}
	}
}

func TestBridgeEnv(t *testing.T) {
	got := bridgeEnv([]string{"PATH=/bin", "HOME=/h", "OS_TOKEN=t", "ST_USER=u", "RACK_CREDENTIAL_URL=c", "RACK_URL=file:///x", "RACK_PID=5", "RACK_KERNEL=k", "RACK_PROC=p", "X=1"},
		map[string]string{"X": "2", "Y": "3", bridgePathEnv: "/bin/x", "OS_PASSWORD": "pw"})
	want := []string{"HOME=/h", "PATH=/bin", "X=2", "Y=3"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("bridgeEnv = %q, want %q", got, want)
	}
}

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

// TestCoalesce: small writes in quick succession reach the rack stream as
// a few large ones, all bytes in order; a pause flushes.
func TestCoalesce(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var dst countingWriter
	done := make(chan error, 1)
	go func() { done <- coalesce(&dst, r, 1<<20, 50*time.Millisecond) }()
	var want bytes.Buffer
	for i := 0; i < 1000; i++ {
		line := strconv.Itoa(i) + "\n"
		want.WriteString(line)
		if _, err := io.WriteString(w, line); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if dst.String() != want.String() {
		t.Fatalf("copied %d bytes, want %d", dst.Len(), want.Len())
	}
	if dst.writes > 10 {
		t.Errorf("1000 small writes became %d Writes", dst.writes)
	}
	// A failed Write ends the copy with its error.
	r, w, _ = os.Pipe()
	defer w.Close()
	go io.WriteString(w, "x")
	if err := coalesce(errWriter{}, r, 16, time.Millisecond); err == nil || err.Error() != "refused" {
		t.Errorf("coalesce into a failing writer: %v", err)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("refused") }

var (
	wordcountOnce sync.Once
	wordcountErr  error
)

// buildWordcount builds examples/wordcount into appsDir.
func buildWordcount(t *testing.T) {
	t.Helper()
	wordcountOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", appsDir+"/", "github.com/rackfork/rack/examples/wordcount").CombinedOutput()
		if err != nil {
			wordcountErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if wordcountErr != nil {
		t.Fatal(wordcountErr)
	}
}

// TestAppPipeline: app | app > file, the README's example, and rack apps
// and stock programs mixed in one pipeline.
func TestAppPipeline(t *testing.T) {
	needPrograms(t, "sort", "head")
	buildApps(t)
	buildWordcount(t)
	dir := t.TempDir()
	script := strings.Join([]string{
		"montecarlo --trials 100000 --workers 4 --seed 1 | wordcount > /out/words.txt",
		"echo status $?",
		"cat /out/words.txt",
		"echo 'ERROR disk full' > /logs/a.txt",
		"echo 'ERROR net down; INFO ok' > /logs/b.txt",
		"wordcount /logs | head -1",
		"cat /logs/a.txt /logs/b.txt | wordcount --workers 2 | sort -k2 | head -3",
	}, "\n") + "\n"
	out, errOut, code := runShell(t, dir, script)
	if code != 0 {
		t.Errorf("status %d\nstderr:\n%s", code, errOut)
	}
	for _, re := range []string{
		`(?m)^status 0$`,
		`(?m)^ +1 trials$`,
		`(?m)^ +1 100000$`,
		`(?m)^ +2 error\n`,
		`(?m)^ +1 disk\n +1 down\n +2 error\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s\nstderr:\n%s", re, out, errOut)
		}
	}
}

// BenchmarkBridge times the acceptance pipeline (cat | grep | wc, two
// external stages) beside the same pipeline of builtins only (cat | cat),
// and a stream through an external stage (seq 1 1000000 | wc -l: 6.9 MB
// from seq's stdout through a rack pipe into wc's stdin), on mem:// and
// file://.
func BenchmarkBridge(b *testing.B) {
	for _, scheme := range []string{"mem", "file"} {
		for _, c := range []struct{ name, line string }{
			{"builtins", "cat /output/result.txt | cat"},
			{"grep-wc", "cat /output/result.txt | grep pi | wc -l"},
			{"seq-1e6-wc", "seq 1 1000000 | wc -l"},
		} {
			b.Run(scheme+"/"+c.name, func(b *testing.B) {
				url := "mem://"
				if scheme == "file" {
					url = "file://" + b.TempDir()
				}
				ctx := context.Background()
				k, err := rack.Open(ctx, url, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
				if err != nil {
					b.Fatal(err)
				}
				defer k.Close()
				var out, errb syncBuffer
				sh := newShell(k, config{url: url, stdout: &out, stderr: &errb})
				root, err := k.Start(ctx, rack.Spec{Name: "rack"}, func(ctx context.Context, self *rack.Self) error {
					sh.self = self
					if code := sh.runSource(ctx, "echo '| pi | 3.14 |' > /output/result.txt"); code != 0 {
						return fmt.Errorf("setup: status %d", code)
					}
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if code := sh.runSource(ctx, c.line); code != 0 {
							return fmt.Errorf("%s: status %d: %s", c.line, code, errb.String())
						}
					}
					b.StopTimer()
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				if err := root.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// TestBridgeReaderGone: a writer whose reader ended is ended (rack pipes
// have no SIGPIPE: endOrphanedWriters stands in), while a writer that
// ends by itself keeps its own status.
func TestBridgeReaderGone(t *testing.T) {
	needPrograms(t, "yes", "head", "seq", "wc")
	for _, url := range []string{"file://" + t.TempDir(), "mem://"} {
		out, errOut, code := runShellAt(t, url, "yes | head -2\nseq 3 | wc -l\nps -a\n")
		if code != 0 || !strings.HasPrefix(out, "y\ny\n3\n") {
			t.Errorf("%s: status %d, output:\n%s\nstderr:\n%s", url, code, out, errOut)
		}
		for _, re := range []string{`(?m)^\d+\s+\d+\s+exit 143\s+yes$`, `(?m)^\d+\s+\d+\s+exit 0\s+seq 3$`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s: ps -a does not match %s:\n%s", url, re, out)
			}
		}
	}
}
