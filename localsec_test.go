package rack_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack"
)

// Secrets the local-mode security tests give a child, and look for where
// they must not be.
const (
	argSecret   = "arg-secret-3141"
	envSecret   = "env-secret-2718"
	pipeSecret  = "pipe-secret-1618"
	fileSecret  = "file-secret-1414"
	osPassword  = "os-password-1732"
	credURL     = "http://credential-2236.example/x"
	swiftKey    = "st-key-2449"
	probeResult = "environ-clean"
)

func init() {
	rack.Register("environ-probe", environProbe)
}

// environProbe looks for its arguments, its rack environment and the
// forker's credentials in its own /proc/self/environ, and prints
// probeResult if none is there, what leaked otherwise.
func environProbe(ctx context.Context, self *rack.Self) error {
	if len(self.Args()) != 1 || self.Args()[0] != argSecret || self.Getenv("TOKEN") != envSecret {
		return fmt.Errorf("the record did not arrive whole: args %q, TOKEN %q", self.Args(), self.Getenv("TOKEN"))
	}
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		return err
	}
	var leaks []string
	for _, s := range []string{argSecret, envSecret, osPassword, credURL, swiftKey, "RACK_PROC=", "OS_PASSWORD=", "RACK_CREDENTIAL_URL=", "ST_KEY="} {
		if strings.Contains(string(environ), s) {
			leaks = append(leaks, s)
		}
	}
	for _, k := range []string{"OS_PASSWORD", "RACK_CREDENTIAL_URL", "ST_KEY", "RACK_PROC"} {
		if os.Getenv(k) != "" {
			leaks = append(leaks, "os.Getenv("+k+")")
		}
	}
	if os.Getenv("PATH") == "" || os.Getenv("RACK_TEST_INHERITED") != "kept" {
		return fmt.Errorf("the child did not inherit its forker's ordinary environment")
	}
	if len(leaks) > 0 {
		fmt.Fprintf(self.Stdout(), "leaked: %s\n", strings.Join(leaks, ", "))
		return nil
	}
	fmt.Fprintln(self.Stdout(), probeResult)
	return nil
}

// A local child's /proc/self/environ holds neither its process record
// (arguments, environment) nor its forker's credentials; it does inherit
// the rest of the forker's environment.
func TestLocalChildEnvironClean(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/environ")
	}
	t.Setenv("OS_PASSWORD", osPassword)
	t.Setenv("RACK_CREDENTIAL_URL", credURL)
	t.Setenv("ST_KEY", swiftKey)
	t.Setenv("RACK_TEST_INHERITED", "kept")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k, err := rack.Open(ctx, "file://"+t.TempDir(), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	var out string
	root, err := k.Start(ctx, rack.Spec{Name: "probe-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		c, err := self.Fork(ctx, rack.Spec{Program: "environ-probe", Args: []string{argSecret}, Env: map[string]string{"TOKEN": envSecret}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		out = string(data)
		return c.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != probeResult {
		t.Fatalf("the child reports %q", out)
	}
}

// The reproduction of issue 12's finding 3: another local user (nobody)
// reads nothing of a file:// namespace, neither its records (a process's
// Spec.Env), nor pipe data, nor files, nor logs; directories are 0700 and
// files 0600.
func TestLocalNamespaceUnreadableByOthers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("acting as another local user (nobody) needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "ns")
	k, err := rack.Open(ctx, "file://"+dir, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	f, err := k.Create(ctx, "/home/notes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(fileSecret)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	root, err := k.Start(ctx, rack.Spec{Name: "sec-root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		// A child with a secret in its record, holding the pipe's read
		// end unread until it is killed: the pipe data stays stored.
		c, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Env: map[string]string{"TOKEN": envSecret}, Stdin: r})
		if err != nil {
			return err
		}
		r.Close()
		if _, err := w.Write([]byte(pipeSecret)); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := checkUnreadable(dir); err != nil {
			return err
		}
		return c.Kill(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkUnreadable tries, as user nobody, to list every directory and read
// every file under dir, and checks the modes.
func checkUnreadable(dir string) error {
	var paths []string
	var found strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && fi.Mode().Perm() != 0o700:
			return fmt.Errorf("directory %s: mode %#o, want 0700", path, fi.Mode().Perm())
		case !d.IsDir() && fi.Mode().Perm()&^0o600 != 0:
			return fmt.Errorf("file %s: mode %#o, want 0600", path, fi.Mode().Perm())
		}
		if !d.IsDir() {
			data, _ := os.ReadFile(path)
			found.Write(data)
		}
		paths = append(paths, path)
		return nil
	})
	if err != nil {
		return err
	}
	// The secrets are there, for this user.
	for _, s := range []string{envSecret, pipeSecret, fileSecret} {
		if !strings.Contains(found.String(), s) {
			return fmt.Errorf("%q is not stored under %s: the test checks nothing", s, dir)
		}
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", `for p; do if [ -d "$p" ]; then ls -a "$p" && echo "LISTED $p"; else cat "$p" && echo "READ $p"; fi; done; true`, "sh"}, paths...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("running as nobody: %v\n%s", err, out)
	}
	for _, s := range []string{"LISTED ", "READ ", envSecret, pipeSecret, fileSecret} {
		if strings.Contains(string(out), s) {
			return fmt.Errorf("user nobody read the namespace (%q):\n%s", s, out)
		}
	}
	if !strings.Contains(string(out), "Permission denied") {
		return fmt.Errorf("user nobody's attempts did not fail for want of permission:\n%s", out)
	}
	return nil
}
