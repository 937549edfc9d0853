// Command rack is the shell of a rack namespace: ps, kill, cat, ls and
// friends on the namespace's processes and files, and apps (programs built
// with rack.Main) and any other program (through the bridge, bridge.go) run
// as processes of the namespace, with pipes (|) and redirections (>, >>, <,
// 2>, 2>&1...) through rack pipes and files, background jobs (&), && and
// ||, variables and globs over rack paths, in bash's syntax (see parse.go).
//
//	rack                      an interactive shell, prompt "(rack)$ "
//	rack -c 'LINE'            run LINE and exit with its status
//	rack COMMAND ARGS...      run one command and exit with its status
//	rack < script             run the lines of script
//
// The namespace is --url, or $RACK_URL, or by default the file namespace
// $XDG_STATE_HOME/rack (~/.local/state/rack), which every terminal of the
// machine shares. Apps are found in $RACK_APPS, then on $PATH, then among
// the apps installed in the store (install, apps, uninstall).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rackfork/rack"
	_ "github.com/rackfork/rack/openstack" // swift:// and openstack:// namespaces
	"golang.org/x/term"
)

func main() {
	// Started by rack as a forked child (RACK_PID set): this binary runs
	// the registered program the process names, the bridge of a command
	// that is not a rack app (bridge.go), on this machine or on a server.
	// The shell itself is never forked that way: a process naming no
	// registered program is refused. It does not serve as a host.
	if os.Getenv(rack.HostEnv) != "" {
		fmt.Fprintln(os.Stderr, "rack: the shell cannot run as a host")
		os.Exit(1)
	}
	if os.Getenv(rack.PIDEnv) != "" {
		rack.Main(nil)
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// config is what run needs from the outside world.
type config struct {
	url     string
	appsDir string
	command string // -c
	args    []string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	getenv  func(string) string // the environment the shell starts with
}

// run is the whole program: it parses args, opens the namespace, runs the
// shell as a root process and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fl := flag.NewFlagSet("rack", flag.ContinueOnError)
	fl.SetOutput(stderr)
	url := fl.String("url", "", "namespace URL (default $RACK_URL, else file://$XDG_STATE_HOME/rack)")
	command := fl.String("c", "", "run `LINE` and exit with its status")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: rack [--url URL] [-c LINE | COMMAND ARGS...]\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg := config{url: *url, appsDir: getenv("RACK_APPS"), command: *command, args: fl.Args(),
		stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	isSet := false
	fl.Visit(func(f *flag.Flag) { isSet = isSet || f.Name == "c" })
	if isSet && len(cfg.args) > 0 {
		fmt.Fprintln(stderr, "rack: -c and a COMMAND cannot be given together")
		return 2
	}
	if cfg.url == "" {
		cfg.url = getenv(rack.URLEnv)
	}
	if cfg.url == "" {
		dir, err := stateDir(getenv)
		if err != nil {
			fmt.Fprintln(stderr, "rack:", err)
			return 1
		}
		cfg.url = "file://" + dir
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k, err := rack.Open(ctx, cfg.url, rack.WithConsole(stdin, stdout, stderr))
	if err != nil {
		fmt.Fprintln(stderr, "rack:", cleanError(err))
		return 1
	}
	defer k.Close()

	interactive := !isSet && len(cfg.args) == 0 && isTerminal(stdin) && isTerminal(stdout)
	sh := newShell(k, cfg)
	sh.interactive = interactive
	sh.market = newMarket(k, getenv)
	if line, ok := oneShotLine(cfg, isSet); ok && !interactive {
		return sh.runOneShot(ctx, cfg, line) // builtins alone: no process (oneshot.go)
	}
	status := 0
	root, err := k.Start(ctx, rack.Spec{Name: "rack", Args: recordedArgs(args)}, func(ctx context.Context, self *rack.Self) error {
		sh.self = self
		defer sh.watchOwnSignals(self)()
		switch {
		case isSet:
			status = sh.runSource(ctx, cfg.command)
		case len(cfg.args) > 0:
			words := make([]Word, len(cfg.args))
			for i, a := range cfg.args {
				words[i] = Lit(a)
			}
			status = sh.runLine(ctx, &Line{Pipelines: []*Pipeline{{Cmds: []*Command{{Args: words, Col: 1}}}}})
		case interactive:
			status = sh.interact(ctx, stdin.(*os.File), stdout.(*os.File))
		default:
			status = sh.runScript(ctx, stdin)
		}
		sh.stopJobs(ctx)
		if status != 0 {
			return rack.Exit(status)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(stderr, "rack:", cleanError(err))
		return 1
	}
	// SIGTERM and SIGHUP end the shell (and so, as the kernel closes, its
	// jobs); SIGINT goes to the foreground job (see shell.interrupts).
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(term)
	done := make(chan error, 1)
	go func() { done <- root.Wait(context.WithoutCancel(ctx)) }()
	select {
	case err := <-done:
		if s := killedBy(err); s != 0 {
			sh.restoreTerminal()
			fmt.Fprintf(stderr, "rack: the shell (pid %d) was killed by %v\n", root.PID(), s)
			return 128 + int(s)
		}
	case s := <-sh.ownSignal:
		sh.restoreTerminal()
		fmt.Fprintf(stderr, "rack: the shell (pid %d) got %v: ending it and its jobs\n", root.PID(), s)
		return 128 + int(s)
	case s := <-term:
		sh.restoreTerminal()
		fmt.Fprintf(stderr, "rack: %v: ending the shell and its jobs\n", s)
		return 128 + int(s.(syscall.Signal))
	}
	return status
}

// stateDir returns (and creates) the default namespace directory:
// $XDG_STATE_HOME/rack, or ~/.local/state/rack.
func stateDir(getenv func(string) string) (string, error) {
	base := getenv("XDG_STATE_HOME")
	if base == "" || !filepath.IsAbs(base) {
		home := getenv("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no namespace: set --url or RACK_URL (%v)", err)
			}
			home = h
		}
		base = filepath.Join(home, ".local", "state")
	}
	dir := filepath.Join(base, "rack")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// isTerminal reports whether v is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// quoteArg quotes s for display in a command line, when it needs it.
func quoteArg(s string) string {
	if s == "" {
		return "''"
	}
	if !strings.ContainsAny(s, " \t\r\n'\"\\|&;<>#$*?()[]{}~`!") && !reserved[s] {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// recordedArgs returns the shell's arguments as its process record keeps
// them (ps -f shows them, for as long as the record lives): a --url
// value, and any other argument that is a URL with a password, with the
// password replaced by "xxxxx" (url.URL.Redacted).
func recordedArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if flag, v, ok := strings.Cut(a, "="); ok && (flag == "--url" || flag == "-url") {
			a = flag + "=" + hidePassword(v, true)
		} else {
			a = hidePassword(a, i > 0 && (args[i-1] == "--url" || args[i-1] == "-url"))
		}
		out[i] = a
	}
	return out
}

// hidePassword returns s with the password of the URL it is redacted, and
// otherwise unchanged. isURL says s is a URL: then one that does not parse
// loses what stands between "://" and its last '@'.
func hidePassword(s string, isURL bool) string {
	u, err := url.Parse(s)
	if err != nil {
		if isURL {
			return redactURL(s)
		}
		return s
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return s
}
