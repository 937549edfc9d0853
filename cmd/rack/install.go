package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rackfork/rack/backend"
)

// The builtins of apps from the cloud: install, apps, uninstall (see
// appstore.go for where apps live). This file's name sorts after
// builtins.go, whose init makes the builtins map: its init adds to it.
func init() {
	builtins["install"] = builtinInstall
	builtins["apps"] = builtinApps
	builtins["uninstall"] = builtinUninstall
	builtinHelp = append(builtinHelp,
		struct{ usage, text string }{"install PATH [NAME]", "publish the rack app at PATH in the store, as NAME (default its file name): any shell of the store then runs it by name"},
		struct{ usage, text string }{"apps", "list the published apps (name, sha256, size, when)"},
		struct{ usage, text string }{"uninstall NAME", "remove a published app's name (and its binary, if no other name has it)"},
	)
}

// lookupTimeout bounds the store requests that find an installed app.
const lookupTimeout = time.Minute

func builtinInstall(ctx context.Context, e *builtinEnv, args []string) int {
	if len(args) < 1 || len(args) > 2 {
		return e.errorf("install: usage: install PATH [NAME]") + 1
	}
	m := e.sh.market
	if m == nil {
		return e.errorf("install: no store")
	}
	path := args[0]
	if !strings.Contains(path, "/") {
		// A bare name: as the shell finds apps ($RACK_APPS, then $PATH).
		p, err := e.sh.localApp(path)
		if err != nil {
			return e.errorf("install: %s: %v", path, err)
		}
		path = p
	}
	name := filepath.Base(path)
	if len(args) == 2 {
		name = args[1]
	}
	rec, old, err := m.publish(ctx, path, name)
	if err != nil && rec == nil {
		return e.errorf("install: %v", err)
	}
	what := "installed"
	if old != nil && old.SHA256 != rec.SHA256 {
		what = fmt.Sprintf("replaced %s (was %.12s)", name, old.SHA256)
	} else if old != nil {
		what = "reinstalled"
	}
	fmt.Fprintf(e.stdout, "%s %s: sha256 %.12s, %s\n", what, name, rec.SHA256, humanSize(rec.Size))
	if err != nil {
		return e.errorf("install: %v", err)
	}
	return 0
}

func builtinApps(ctx context.Context, e *builtinEnv, args []string) int {
	if len(args) != 0 {
		return e.errorf("apps: usage: apps") + 1
	}
	m := e.sh.market
	if m == nil {
		return e.errorf("apps: no store")
	}
	recs, bad, err := m.list(ctx)
	if err != nil {
		return e.errorf("apps: %v", err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSHA256\tSIZE\tINSTALLED")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%.12s\t%s\t%s\n", r.Name, r.SHA256, humanSize(r.Size), r.Installed.Local().Format("2006-01-02 15:04"))
	}
	if err := tw.Flush(); err != nil {
		return 1
	}
	code := 0
	for name, err := range bad {
		code = e.errorf("apps: %s: %v", name, err)
	}
	return code
}

func builtinUninstall(ctx context.Context, e *builtinEnv, args []string) int {
	if len(args) == 0 {
		return e.errorf("uninstall: usage: uninstall NAME...") + 1
	}
	m := e.sh.market
	if m == nil {
		return e.errorf("uninstall: no store")
	}
	code := 0
	for _, name := range args {
		rec, gone, err := m.remove(ctx, name)
		switch {
		case err != nil && rec == nil:
			code = e.errorf("uninstall: %v", err)
			continue
		case err != nil:
			code = e.errorf("uninstall: %s: name removed; its binary: %v", name, err)
			continue
		case rec == nil:
			fmt.Fprintf(e.stdout, "uninstalled %s (its record was broken)\n", name)
		case gone:
			fmt.Fprintf(e.stdout, "uninstalled %s (binary %.12s removed)\n", name, rec.SHA256)
		default:
			fmt.Fprintf(e.stdout, "uninstalled %s (binary %.12s kept: another name has it)\n", name, rec.SHA256)
		}
	}
	return code
}

// localApp finds app name as lookApp does ($RACK_APPS, then $PATH),
// without the store.
func (sh *shell) localApp(name string) (string, error) {
	if sh.appsDir != "" {
		p := filepath.Join(sh.appsDir, name)
		if p, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", errors.New("not in $RACK_APPS nor on $PATH (give a path, as in ./" + name + ")")
	}
	return p, nil
}

// installedApp finds name among the published apps and returns the path
// of its executable, fetched into the private cache. ok is false if no app
// has that name (or the name cannot be one); a name whose record or
// binary is bad is an error.
func (sh *shell) installedApp(name string) (path string, ok bool, err error) {
	m := sh.market
	if m == nil || checkAppName(name) != nil {
		return "", false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	rec, err := m.lookup(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("rack: %s: installed app: %w", name, err)
	}
	if sh.bootsPublished() {
		return publishedPrefix + rec.SHA256, true, nil // servers fetch it themselves
	}
	if err := sh.checkApps(); err != nil {
		return "", false, err // before any download
	}
	p, err := m.fetch(ctx, rec)
	if err != nil {
		return "", false, fmt.Errorf("rack: %s: installed app: %w", name, err)
	}
	if !isRackApp(p) {
		return "", false, fmt.Errorf("rack: %s: installed app %.12s is not a rack app (a Go program built with %s)", name, rec.SHA256, rackModule)
	}
	return p, true, nil
}

// appModule returns the module path of the Go program at path.
func appModule(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	return bi.Path
}

// humanSize formats n bytes as ls -h would.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTPE"[exp])
}

// publishedPrefix marks a stage's exe that is a published program, by its
// SHA-256, which the namespace's servers boot from the store (openstack://).
const publishedPrefix = "published:"

// bootsPublished reports whether the namespace's processes boot from the
// store's binaries container (openstack://): an installed app runs there
// as published, without being fetched here.
func (sh *shell) bootsPublished() bool {
	u, err := url.Parse(sh.url)
	return err == nil && u.Scheme == "openstack"
}

// appOptions returns the Spec.Options that start the app exe: a local
// program (backend.ExeOption), or a published one (backend.ProgramOption).
func appOptions(exe string) map[string]string {
	if sum, ok := strings.CutPrefix(exe, publishedPrefix); ok {
		return map[string]string{backend.ProgramOption: sum}
	}
	return map[string]string{backend.ExeOption: exe}
}

// checkAppStages refuses to run the apps of stages where the namespace
// cannot start them: published apps on a namespace that boots them
// (openstack://), any other app on a file:// one.
func (sh *shell) checkAppStages(stages []*stage) error {
	for _, st := range stages {
		if st.exe != "" && !strings.HasPrefix(st.exe, publishedPrefix) {
			return sh.checkApps()
		}
	}
	if sh.bootsPublished() {
		return nil
	}
	return sh.checkApps()
}
