package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// The interactive shell, typed into through tmux (a real terminal): Tab,
// Up and Ctrl-R over the history of an earlier run, Ctrl-Z, bg, jobs, fg
// and Ctrl-C on a montecarlo run of OS processes (file://), the [1]+ Done
// notice, the warning of exit with jobs left, and the shell's own pid
// signalled.

// requireTmux returns the path of tmux. Under CI it must be there (.ci/run
// installs it): the test fails rather than skips.
func requireTmux(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tmux")
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" || os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
		t.Fatalf("tmux is needed for the interactive shell's test under CI: %v", err)
	}
	t.Skipf("no tmux (%v): the interactive shell's test needs it (apt-get install tmux)", err)
	return ""
}

// tmuxShell is a rack shell running in a tmux session of its own server.
type tmuxShell struct {
	t          *testing.T
	tmux, sock string
	name       string
}

// tmuxDeadline bounds each wait for the screen.
const tmuxDeadline = 60 * time.Second

// startTmuxShell starts the rack binary exe in a new tmux session, with
// env, and waits for its prompt.
func startTmuxShell(t *testing.T, tmuxPath, sockDir, name, exe string, env []string, args ...string) *tmuxShell {
	t.Helper()
	s := &tmuxShell{t: t, tmux: tmuxPath, sock: filepath.Join(sockDir, "tmux.sock"), name: name}
	// Not exec'd: tmux does not always learn a dead pane's exit status (it
	// may see the pty close first), so the status is printed after it.
	cmd := "env"
	for _, kv := range append(env, exe) {
		cmd += " '" + kv + "'"
	}
	for _, a := range args {
		cmd += " '" + a + "'"
	}
	cmd += `; echo "[rack exited $?]"`
	if out, err := s.run("-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "200", "-y", "50", cmd,
		";", "set-option", "-t", name, "remain-on-exit", "on"); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = s.run("kill-session", "-t", name) })
	s.waitFor(`(?m)^\(rack\)\$\s*$`)
	return s
}

func (s *tmuxShell) run(args ...string) (string, error) {
	out, err := exec.Command(s.tmux, append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// keys sends tmux key names (Enter, Tab, C-r, Up...).
func (s *tmuxShell) keys(keys ...string) {
	s.t.Helper()
	if out, err := s.run(append([]string{"send-keys", "-t", s.name}, keys...)...); err != nil {
		s.t.Fatalf("tmux send-keys %q: %v\n%s", keys, err, out)
	}
}

// typeLine types text (literally), then Enter.
func (s *tmuxShell) typeLine(text string) {
	s.t.Helper()
	s.typeText(text)
	s.keys("Enter")
}

// typeText types text literally.
func (s *tmuxShell) typeText(text string) {
	s.t.Helper()
	if out, err := s.run("send-keys", "-t", s.name, "-l", "--", text); err != nil {
		s.t.Fatalf("tmux send-keys -l %q: %v\n%s", text, err, out)
	}
}

// screen returns the pane's text with its scrollback.
func (s *tmuxShell) screen() string {
	out, _ := s.run("capture-pane", "-p", "-J", "-t", s.name, "-S", "-1000")
	return out
}

// lastLine returns the pane's last line that is not blank.
func (s *tmuxShell) lastLine() string {
	lines := strings.Split(strings.TrimRight(s.screen(), " \n"), "\n")
	return strings.TrimRight(lines[len(lines)-1], " ")
}

// waitFor polls the screen until it matches re, and returns the match.
func (s *tmuxShell) waitFor(re string) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(tmuxDeadline)
	for {
		scr := s.screen()
		if m := rx.FindString(scr); m != "" {
			return m
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen never showed %s:\n%s", re, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLast polls until the last line is want.
func (s *tmuxShell) waitLast(want string) {
	s.t.Helper()
	deadline := time.Now().Add(tmuxDeadline)
	for s.lastLine() != want {
		if time.Now().After(deadline) {
			s.t.Fatalf("the last line never became %q:\n%s", want, s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDead waits for the shell to end and returns its exit status.
func (s *tmuxShell) waitDead() string {
	s.t.Helper()
	m := regexp.MustCompile(`\[rack exited (\d+)\]`).FindStringSubmatch(s.waitFor(`\[rack exited \d+\]`))
	return m[1]
}

// procState polls the namespace until a process named name whose args
// start with arg0 is in one of the states, and returns its pid.
func procState(ctx context.Context, t *testing.T, k *rack.Kernel, name, arg0 string, states ...rack.State) rack.PID {
	t.Helper()
	deadline := time.Now().Add(tmuxDeadline)
	var last []rack.ProcessInfo
	for {
		infos, err := k.Processes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last = infos
		for _, in := range infos {
			if in.Name != name || arg0 != "" && (len(in.Args) < 2 || in.Args[1] != arg0) {
				continue
			}
			for _, s := range states {
				if in.State == s {
					return in.PID
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s %s in state %v: %+v", name, arg0, states, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInteractive(t *testing.T) {
	tmuxPath := requireTmux(t)
	buildApps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/rack", ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	exe := bin + "/rack"
	state, ns, sockDir := t.TempDir(), t.TempDir(), t.TempDir()
	env := []string{"XDG_STATE_HOME=" + state, "RACK_APPS=" + appsDir, "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	url := "file://" + ns
	k, err := rack.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	// A first run leaves history.
	s := startTmuxShell(t, tmuxPath, sockDir, "first", exe, env, "--url", url)
	s.typeLine("echo first-run-marker")
	s.waitFor(`(?m)^first-run-marker$`)
	s.typeLine("exit")
	if st := s.waitDead(); st != "0" {
		t.Fatalf("exit: status %s", st)
	}
	fi, err := os.Lstat(filepath.Join(state, "rack", "history"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("history file mode %v, want 0600", fi.Mode())
	}

	s = startTmuxShell(t, tmuxPath, sockDir, "second", exe, env, "--url", url)
	// Up finds the first run's lines, newest first.
	s.keys("Up")
	s.waitLast("(rack)$ exit")
	s.keys("Up")
	s.waitLast("(rack)$ echo first-run-marker")
	s.keys("C-u")
	s.waitLast("(rack)$")
	// Ctrl-R finds it too, and Enter runs it.
	s.keys("C-r")
	s.typeText("first-r")
	s.waitLast("(rack)$ (reverse-i-search)`first-r': echo first-run-marker")
	s.keys("Enter")
	s.waitFor(`(?m)^first-run-marker$`)
	s.waitLast("(rack)$")

	// Tab completes an app's name.
	s.typeText("mon")
	s.keys("Tab")
	s.waitLast("(rack)$ montecarlo")
	s.typeLine("--trials 900000000000 --workers 1 --stdout /output/long.txt")
	mc := procState(ctx, t, k, "montecarlo", "900000000000", rack.Running)
	procState(ctx, t, k, "montecarlo-worker", "", rack.Running)

	// Ctrl-Z stops it: the OS process of montecarlo is stopped.
	s.keys("C-z")
	s.waitFor(`\[1\]\+  Stopped +montecarlo --trials 900000000000 --workers 1 --stdout /output/long.txt`)
	procState(ctx, t, k, "montecarlo", "900000000000", rack.Stopped)
	s.waitLast("(rack)$")
	s.typeLine("bg")
	s.waitFor(`\[1\]\+ montecarlo --trials 900000000000 --workers 1 --stdout /output/long.txt &`)
	procState(ctx, t, k, "montecarlo", "900000000000", rack.Running)
	s.typeLine("jobs")
	s.waitFor(`\[1\]\+  Running +montecarlo --trials 900000000000 .* &`)
	s.typeLine("fg")
	s.waitFor(`(?m)^montecarlo --trials 900000000000`)
	// ^C reaches the job once fg waits for it: send it until the job ends.
	deadline := time.Now().Add(tmuxDeadline)
	for running := true; running; {
		if time.Now().After(deadline) {
			t.Fatalf("Ctrl-C never ended the job:\n%s", s.screen())
		}
		s.keys("C-c")
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			p, err := k.Process(ctx, mc)
			if err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, time.Millisecond)
			err = p.Wait(wctx)
			wcancel()
			if wctx.Err() == nil || err != nil && !strings.Contains(err.Error(), "deadline") {
				running = false
				break
			}
		}
	}
	s.waitLast("(rack)$")
	s.typeLine("echo status $?")
	s.waitFor(`(?m)^status 130$`)

	// A background job's end is told before the next prompt.
	s.typeLine("montecarlo --trials 1000 --workers 1 --stdout /output/small.txt &")
	s.waitFor(`(?m)^\[1\] \d+$`)
	rx := regexp.MustCompile(`(?m)^\[1\]\+  Done +montecarlo --trials 1000 --workers 1 --stdout /output/small.txt$`)
	for deadline := time.Now().Add(tmuxDeadline); !rx.MatchString(s.screen()); time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no [1]+ Done:\n%s", s.screen())
		}
		s.keys("Enter")
	}

	// exit with a job left warns once; the second ends the job too.
	s.typeLine("montecarlo --trials 900000000000 --workers 1 --stdout /output/long2.txt &")
	s.waitFor(`(?m)^\[1\] \d+$`)
	mc2 := procState(ctx, t, k, "montecarlo", "900000000000", rack.Running)
	s.typeLine("exit")
	s.waitFor(`(?m)^There are running jobs\.$`)
	s.typeLine("exit")
	s.waitDead()
	p, err := k.Process(ctx, mc2)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := p.Wait(wctx); wctx.Err() != nil {
		t.Fatalf("the job left at exit still runs: %v", err)
	}

	// The shell's own pid: SIGINT and SIGTERM are ignored, as by an
	// interactive bash; SIGUSR1 ends it with 128+10, saying so.
	s = startTmuxShell(t, tmuxPath, sockDir, "third", exe, env, "--url", url)
	shellPID := procState(ctx, t, k, "rack", "", rack.Running)
	sp, err := k.Process(ctx, shellPID)
	if err != nil {
		t.Fatal(err)
	}
	for i, sig := range []rack.Signal{rack.SIGINT, rack.SIGTERM} {
		if err := sp.Signal(ctx, sig); err != nil {
			t.Fatal(err)
		}
		s.typeLine(fmt.Sprintf("echo alive-%d", i))
		s.waitFor(fmt.Sprintf(`(?m)^alive-%d$`, i))
	}
	if err := sp.Signal(ctx, rack.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	s.waitFor(fmt.Sprintf(`rack: the shell \(pid %d\) got SIGUSR1: ending it and its jobs`, shellPID))
	if st := s.waitDead(); st != "138" {
		t.Fatalf("after SIGUSR1: status %s, want 138", st)
	}
}
