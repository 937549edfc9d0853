package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// appsDir holds the apps the tests run, built once by TestMain.
var appsDir string

func TestMain(m *testing.M) {
	if rack.Launched() {
		rack.Main(nil) // a forked child (the bridge), or a host (hosts_test.go): runs its process(es) and exits
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rack-shell-apps-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	appsDir = dir
	return m.Run()
}

var (
	buildOnce sync.Once
	buildErr  error
)

// buildApps builds examples/montecarlo and testdata/upper into appsDir.
func buildApps(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", appsDir+"/", "github.com/rackfork/rack/examples/montecarlo", "./testdata/upper")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runShell runs the rack command with args and script as its input, on a
// file namespace in dir; it returns stdout, stderr and the exit status.
func runShell(t *testing.T, dir string, script string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var out, errb syncBuffer
	env := map[string]string{"RACK_APPS": appsDir}
	code := run(ctx, append([]string{"--url", "file://" + dir}, args...), strings.NewReader(script), &out, &errb,
		func(k string) string { return env[k] })
	return out.String(), errb.String(), code
}

func TestBuiltins(t *testing.T) {
	dir := t.TempDir()
	script := strings.Join([]string{
		"echo hello > /docs/a.txt",
		"echo 'two words' \"and $?\" > /docs/b.txt",
		"cat /docs/a.txt /docs/b.txt",
		"ls",
		"ls /docs",
		"ls -l /docs/a.txt",
		"rm /docs/a.txt",
		"ls /docs",
		"cat /docs/missing",
		"echo status $?",
		"false; echo after false $?",
		"cat < /docs/b.txt",
		"echo x >> /docs/c.txt",
		"echo after append $?",
		"echo y >> /docs/c.txt; cat /docs/c.txt",
		"rm /docs",
		"kill -FOO 1",
		"kill 99999",
		"wait 99999",
		"bogus-command",
		"echo not found $?",
		"echo a | | b", // (an open quote would read on, as in bash: TestScriptContinuation)
		"echo syntax $?",
		"ps",
		"ps --json",
		"gc -n",
		"gc --min-age 1ns",
		"gc -a -n",
		"gc --min-age soon",
		"help",
		"exit 3",
		"echo not reached",
	}, "\n") + "\n"
	out, errOut, code := runShell(t, dir, script)
	if code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	for _, want := range []string{
		"hello\ntwo words and 0\n",
		"docs/\n",
		"b.txt\nstatus 1\n",
		"after false 1\n",
		"after append 0\nx\ny\n",
		"not found 127\n",
		"syntax 2\n",
		"PID  PPID  STATE    STATUS  CMD\n100  1     running          rack --url file://",
		`"name": "rack"`,
		"kill [-SIG] PID...",
		"(nothing removed: -n)\n",
		"objects removed)\n",
		"dead namespaces: ; instances swept: 0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "two words and 0\n") != 2 { // cat b.txt, then cat < b.txt
		t.Errorf("cat < did not print the file:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^\s+6\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+/docs/a.txt$`).MatchString(out) {
		t.Errorf("ls -l of a file:\n%s", out)
	}
	if strings.Contains(out, "not reached") {
		t.Errorf("exit did not end the shell:\n%s", out)
	}
	if strings.Contains(errOut, "rack: rack:") || strings.Contains(errOut, ": rack: ") {
		t.Errorf("an error repeats its prefix:\n%s", errOut)
	}
	for _, want := range []string{
		"rack: cat: /docs/missing: No such file or directory\n",
		"rack: rm: cannot remove '/docs': Directory not empty\n",
		"rack: kill: FOO: invalid signal specification\n",
		"rack: kill: (99999) - No such process\n",
		"rack: wait: (99999) - No such process\n",
		"rack: bogus-command: command not found",
		"rack: syntax error at column 10: missing command before |",
		`rack: gc: --min-age "soon": want a positive duration`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestOneCommand(t *testing.T) {
	dir := t.TempDir()
	if out, errOut, code := runShell(t, dir, "", "-c", "echo a | cat > /c/x; cat /c/x; exit 4"); code != 4 || out != "a\n" {
		t.Errorf("-c: %q %q %d", out, errOut, code)
	}
	// A command and its args: taken literally, not parsed again.
	if out, errOut, code := runShell(t, dir, "", "echo", "a|b", "$?"); code != 0 || out != "a|b $?\n" {
		t.Errorf("COMMAND ARGS: %q %q %d", out, errOut, code)
	}
	if _, _, code := runShell(t, dir, "", "false"); code != 1 {
		t.Errorf("false: status %d", code)
	}
}

func TestAppsNeedFileNamespace(t *testing.T) {
	buildApps(t)
	var out, errb syncBuffer
	env := map[string]string{"RACK_APPS": appsDir}
	code := run(context.Background(), []string{"--url", "mem://", "-c", "upper x"}, strings.NewReader(""), &out, &errb,
		func(k string) string { return env[k] })
	if code != 1 || !strings.Contains(errb.String(), "rack: apps need a file:// namespace") {
		t.Errorf("status %d, stderr %q", code, errb.String())
	}
}

// TestMontecarloDemo is the seed's demo: the app writes its report to a
// rack file, and cat shows it.
func TestMontecarloDemo(t *testing.T) {
	buildApps(t)
	dir := t.TempDir()
	out, errOut, code := runShell(t, dir, "montecarlo --trials 1000000 --workers 10 --stdout /output/result.txt\n"+
		"echo status $?\ncat /output/result.txt\n")
	if code != 0 {
		t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, re := range []string{
		`status 0\n`,
		`\| Property \| Value +\|`,
		`\| trials +\| 1000000 +\|`,
		`\| workers +\| 10 +\|`,
		`\| points +\| 7\d{5} +\|`,
		`\| pi +\| 3\.14159265359 \|`,
		`\| result +\| 3\.1\d+ +\|`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s\nstderr:\n%s", re, out, errOut)
		}
	}
}

// TestPipesAndRedirects runs apps connected by a rack pipe, with > and <
// redirections to rack files, and builtins in pipelines.
func TestPipesAndRedirects(t *testing.T) {
	buildApps(t)
	dir := t.TempDir()
	script := strings.Join([]string{
		"upper hello world | upper",
		"echo from a builtin | upper",
		"upper one two > /out/u.txt",
		"cat /out/u.txt",
		"upper < /out/u.txt | cat",
		"upper < /out/u.txt > /out/v.txt",
		"cat /out/v.txt",
		"echo old > /out/empty.txt",
		"upper < /out/missing.txt",
		"echo missing $?",
		"upper fail",
		"echo fail $?",
		"upper < /docs/none > /out/empty.txt",
		"montecarlo --workers 1 > /out/usage.txt",
		"echo usage $?",
	}, "\n") + "\n"
	out, errOut, code := runShell(t, dir, script)
	for _, w := range []string{
		"HELLO WORLD\n",
		"FROM A BUILTIN\n",
		"one two\nONE TWO\nONE TWO\n",
		"missing 1\n",
		"fail 1\n",
		"usage 2\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s\nstderr:\n%s", w, out, errOut)
		}
	}
	if code != 0 {
		t.Errorf("status %d", code)
	}
	for _, w := range []string{"rack: upper[", "]: failing as asked", "rack: /out/missing.txt: No such file or directory\n"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

// TestPSDuringRun starts a long montecarlo in the background, finds the
// parent and its 10 workers with ps, then kills it.
func TestPSDuringRun(t *testing.T) {
	buildApps(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	url := "file://" + dir
	var out, errb syncBuffer
	k, err := rack.Open(ctx, url, rack.WithConsole(strings.NewReader(""), &out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	sh := newShell(k, config{url: url, appsDir: appsDir, stdout: &out, stderr: &errb})
	root, err := k.Start(ctx, rack.Spec{Name: "rack"}, func(ctx context.Context, self *rack.Self) error {
		sh.self = self
		if code := sh.runSource(ctx, "montecarlo --trials 20000000000 --workers 10 --stdout /output/big.txt &"); code != 0 {
			return fmt.Errorf("starting montecarlo: status %d", code)
		}
		parent := sh.lastBG
		var rows []psRow
		for {
			var b syncBuffer
			if code := builtinPS(ctx, &builtinEnv{sh: sh, stdout: &b, stderr: &errb}, []string{"--json"}); code != 0 {
				return fmt.Errorf("ps: status %d", code)
			}
			rows = rows[:0]
			if err := json.Unmarshal([]byte(b.String()), &rows); err != nil {
				return fmt.Errorf("ps --json: %v", err)
			}
			n := 0
			for _, r := range rows {
				if r.PID == parent || r.PPID == parent {
					n++
				}
			}
			if n == 11 {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("ps never showed 11 processes: %+v", rows)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var b syncBuffer
		builtinPS(ctx, &builtinEnv{sh: sh, stdout: &b, stderr: &errb}, []string{"-f"})
		table := b.String()
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^%d\s+%d\s+running\s+(?:[0-9a-f]{16}\s+)?\\_ montecarlo --trials 20000000000 --workers 10 --stdout /output/big.txt$`, parent, self.PID())).MatchString(table) {
			return fmt.Errorf("ps -f lacks the parent:\n%s", table)
		}
		workers := regexp.MustCompile(fmt.Sprintf(`(?m)^\d+\s+%d\s+running\s+(?:[0-9a-f]{16}\s+)?\\_ montecarlo-worker 2000000000 \d+$`, parent)).FindAllString(table, -1)
		if len(workers) != 10 {
			return fmt.Errorf("ps -f shows %d workers:\n%s", len(workers), table)
		}
		if code := sh.runSource(ctx, "kill -KILL $!; wait $!"); code != 128+9 {
			return fmt.Errorf("kill; wait: status %d", code)
		}
		b = syncBuffer{}
		builtinPS(ctx, &builtinEnv{sh: sh, stdout: &b, stderr: &errb}, nil)
		if strings.Contains(b.String(), "montecarlo") {
			return fmt.Errorf("after the kill, ps still shows:\n%s", b.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
}

// TestLogs shows an app's OS output (outside rack's streams) with logs.
func TestLogs(t *testing.T) {
	buildApps(t)
	dir := t.TempDir()
	out, errOut, _ := runShell(t, dir, "upper oslog\nps -a --json\nlogs 1\nlogs x\nlogs $$\n")
	for _, want := range []string{
		"rack: logs: (1) - No such process\n",
		"rack: logs of process 100: not found: no log (",
		`rack: logs: "x" is not a pid`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	m := regexp.MustCompile(`"pid": (\d+),\s+"ppid": \d+,[^}]*"name": "upper"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ps shows no upper process:\n%s", out)
	}
	for _, follow := range []string{"", "-f "} {
		out, errOut, code := runShell(t, dir, "logs "+follow+m[1]+"\n")
		if code != 0 || out != "printed to the OS stdout\nprinted to the OS stderr\n" {
			t.Errorf("logs %s%s: status %d, output %q, stderr %q", follow, m[1], code, out, errOut)
		}
	}
}
