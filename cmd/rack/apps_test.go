package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/file"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/openstack"
)

// runAt runs the rack command on the namespace url with env (no
// $RACK_APPS, an empty $PATH unless env sets them) and script as its
// input; it returns stdout, stderr and the status.
func runAt(t *testing.T, url string, env map[string]string, script string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb syncBuffer
	code := run(ctx, append([]string{"--url", url}, args...), strings.NewReader(script), &out, &errb,
		func(k string) string { return env[k] })
	return out.String(), errb.String(), code
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestInstallRunUninstall: an app installed by one shell is found by name
// by another one (no $RACK_APPS, nothing on $PATH), fetched into a private
// cache and run; apps lists it; uninstall removes the name, and the binary
// with the last name.
func TestInstallRunUninstall(t *testing.T) {
	buildApps(t)
	dir, cache := t.TempDir(), t.TempDir()
	url := "file://" + dir
	env := map[string]string{"XDG_CACHE_HOME": cache, "PATH": t.TempDir()}
	mc := filepath.Join(appsDir, "montecarlo")
	sum := fileSHA256(t, mc)

	out, errOut, code := runAt(t, url, env, "", "install", mc)
	if code != 0 || !strings.HasPrefix(out, "installed montecarlo: sha256 "+sum[:12]+", ") {
		t.Fatalf("install: status %d, %q, %q", code, out, errOut)
	}
	// A second name for the same build: the binary is not sent again.
	if out, errOut, code := runAt(t, url, env, "", "install", filepath.Join(appsDir, "upper"), "up-per_2.0"); code != 0 {
		t.Fatalf("install NAME: status %d, %q, %q", code, out, errOut)
	}
	if out, errOut, code := runAt(t, url, env, "", "install", mc, "mc"); code != 0 {
		t.Fatalf("install NAME: status %d, %q, %q", code, out, errOut)
	}
	s, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := s.Head(context.Background(), openstack.BinariesContainer, nova.BinaryObject(sum))
	if err != nil {
		t.Fatalf("the binary is not at the staging layout's name: %v", err)
	}
	if fi, _ := os.Stat(mc); info.Size != fi.Size() {
		t.Errorf("published %d bytes, the app has %d", info.Size, fi.Size())
	}

	out, errOut, code = runAt(t, url, env, "", "apps")
	if code != 0 || !regexp.MustCompile(`(?m)^NAME +SHA256 +SIZE +INSTALLED\nmc +`+sum[:12]+` +[0-9.]+M +\d{4}-\d\d-\d\d \d\d:\d\d\nmontecarlo +`+sum[:12]+` .*\nup-per_2.0 +[0-9a-f]{12} `).MatchString(out) {
		t.Errorf("apps: status %d:\n%s%s", code, out, errOut)
	}

	// Run by name, in a pipeline, from another shell.
	out, errOut, code = runAt(t, url, env, "montecarlo --trials 100000 --workers 2 --stdout /output/r.txt\necho status $?\ncat /output/r.txt\necho hi | up-per_2.0\n")
	if code != 0 || !strings.Contains(out, "status 0\n") || !strings.Contains(out, "| trials   | 100000") || !strings.Contains(out, "HI\n") {
		t.Errorf("running installed apps: status %d:\n%s%s", code, out, errOut)
	}
	cached := filepath.Join(cache, "rack", "apps", sum)
	for p, want := range map[string]os.FileMode{filepath.Dir(cached): os.ModeDir | 0o700, cached: 0o700} {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode() != want {
			t.Errorf("cache %s: %v, mode %v, want %v", p, err, fi.Mode(), want)
		}
	}

	// A cached copy that is not the published one is replaced, not run.
	if err := os.WriteFile(cached, []byte("#!/bin/sh\necho tampered\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runAt(t, url, env, "", "-c", "mc --trials 1000 --workers 1")
	if code != 0 || strings.Contains(out, "tampered") || !strings.Contains(out, "| trials   | 1000 ") {
		t.Errorf("after tampering with the cache: status %d:\n%s%s", code, out, errOut)
	}
	if got := fileSHA256(t, cached); got != sum {
		t.Errorf("the cache holds %s, want %s", got, sum)
	}
	// A symbolic link in the cache is neither followed nor replaced.
	if err := os.Remove(cached); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(mc, cached); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runAt(t, url, env, "", "-c", "mc --trials 1000 --workers 1")
	if code != 127 || !strings.Contains(errOut, "rack: mc: installed app: app cache: ") || !strings.Contains(errOut, "symbolic link") {
		t.Errorf("with a link in the cache: status %d:\n%s%s", code, out, errOut)
	}
	os.Remove(cached)

	// Uninstall: the binary stays while another name has it.
	out, errOut, code = runAt(t, url, env, "uninstall montecarlo\napps\nmontecarlo\necho $?\nuninstall mc\nuninstall mc\n")
	if code != 1 || !strings.Contains(out, "uninstalled montecarlo (binary "+sum[:12]+" kept: another name has it)\n") ||
		!strings.Contains(out, "uninstalled mc (binary "+sum[:12]+" removed)\n") || !strings.Contains(out, "\n127\n") ||
		regexp.MustCompile(`(?m)^montecarlo `).MatchString(out) ||
		!strings.Contains(errOut, "rack: montecarlo: command not found") || !strings.Contains(errOut, "rack: uninstall: mc: no such app") {
		t.Errorf("uninstall: status %d:\n%s%s", code, out, errOut)
	}
	if _, err := s.Head(context.Background(), openstack.BinariesContainer, nova.BinaryObject(sum)); err == nil {
		t.Errorf("the binary outlived its last name")
	}
}

// TestInstallRefuses: bad names, non-apps and missing files are refused
// with errors that say why.
func TestInstallRefuses(t *testing.T) {
	buildApps(t)
	env := map[string]string{"XDG_CACHE_HOME": t.TempDir(), "PATH": t.TempDir()}
	url := "file://" + t.TempDir()
	mc := filepath.Join(appsDir, "montecarlo")
	for _, c := range []struct{ args, err string }{
		{mc + " a/b", `rack: install: app name "a/b": want ASCII letters`},
		{mc + " ..", `rack: install: app name "..": want ASCII letters`},
		{mc + " .hidden", `rack: install: app name ".hidden": want ASCII letters`},
		{mc + " -x", `rack: install: app name "-x": want ASCII letters`},
		{mc + " " + strings.Repeat("a", 65), `rack: install: app name "aaaaaaaaaaaaaaaaaaaa"...: 65 bytes, over 64`},
		{mc + " ps", `rack: install: app name "ps" is a builtin's`},
		{"/etc/passwd pw", "rack: install: /etc/passwd is not a rack app"},
		{"./nothing-here", "rack: install: open ./nothing-here: no such file or directory"},
		{"nothing-here", "rack: install: nothing-here: not in $RACK_APPS nor on $PATH"},
		{"", "rack: install: usage: install PATH [NAME]"},
	} {
		_, errOut, code := runAt(t, url, env, "", "-c", "install "+c.args)
		if code == 0 || !strings.Contains(errOut, c.err) {
			t.Errorf("install %s: status %d, stderr %q, want %q", c.args, code, errOut, c.err)
		}
	}
	if _, errOut, code := runAt(t, url, env, "", "uninstall", "nope"); code != 1 || errOut != "rack: uninstall: nope: no such app (apps lists them)\n" {
		t.Errorf("uninstall nope: status %d, %q", code, errOut)
	}
	// Nothing was published.
	if out, _, code := runAt(t, url, env, "", "apps"); code != 0 || out != "NAME  SHA256  SIZE  INSTALLED\n" {
		t.Errorf("apps: status %d, %q", code, out)
	}
}

// TestHostileAppStore: name records and binaries that another writer of
// the store put there are checked before use: a record too large, that
// does not parse, that names another app or a bad digest, and a binary
// that is not the one its record names, are errors that say so, and
// nothing runs.
func TestHostileAppStore(t *testing.T) {
	buildApps(t)
	dir := t.TempDir()
	env := map[string]string{"XDG_CACHE_HOME": t.TempDir(), "PATH": t.TempDir()}
	url := "file://" + dir
	if _, errOut, code := runAt(t, url, env, "", "install", filepath.Join(appsDir, "upper")); code != 0 {
		t.Fatal(errOut)
	}
	sum := fileSHA256(t, filepath.Join(appsDir, "upper"))
	s, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	put := func(object, data string) {
		t.Helper()
		if _, err := s.Put(ctx, openstack.BinariesContainer, object, strings.NewReader(data), nil); err != nil {
			t.Fatal(err)
		}
	}
	good := `{"name":"upper","sha256":"` + sum + `","size":%d,"installed":"2026-12-07T00:00:00Z"}`
	fi, _ := os.Stat(filepath.Join(appsDir, "upper"))
	for _, c := range []struct{ record, err string }{
		{strings.Repeat(" ", 5000), "its name record is 5000 bytes, over 4096"},
		{"{", "its name record does not parse"},
		{strings.Replace(strings.Replace(good, `"upper"`, `"other"`, 1), "%d", "1", 1), `its name record names "other"`},
		{strings.Replace(strings.Replace(good, sum, "../../etc", 1), "%d", "1", 1), `its name record's sha256 "../../etc" is not 64 lower-case hex digits`},
		{strings.Replace(good, "%d", "-1", 1), "its name record's size -1 is out of range"},
		{strings.Replace(good, "%d", "1", 1), "the store's binary is not the one its name record names (2 bytes, want 1"},
	} {
		put("apps/upper", c.record)
		out, errOut, code := runAt(t, url, env, "", "-c", "echo hi | upper")
		if code == 0 || strings.Contains(out, "HI") || !strings.Contains(errOut, "rack: upper: installed app: app upper: "+c.err) {
			t.Errorf("record %.40q: status %d, %q, stderr %q, want %q", c.record, code, out, errOut, c.err)
		}
	}
	// The right record, the wrong binary.
	put("apps/upper", strings.Replace(good, "%d", strconv.FormatInt(fi.Size(), 10), 1))
	put(nova.BinaryObject(sum), strings.Repeat("x", int(fi.Size())))
	out, errOut, code := runAt(t, url, env, "", "-c", "echo hi | upper")
	if code == 0 || strings.Contains(out, "HI") || !strings.Contains(errOut, "the store's binary is not the one its name record names") {
		t.Errorf("wrong binary: status %d, %q, stderr %q", code, out, errOut)
	}
	if entries, _ := os.ReadDir(filepath.Join(env["XDG_CACHE_HOME"], "rack", "apps")); len(entries) != 0 {
		t.Errorf("the cache kept a bad download: %v", entries)
	}
	// apps reports a broken record, and uninstall removes it.
	put("apps/broken", "{")
	out, errOut, code = runAt(t, url, env, "apps\nuninstall broken\n")
	if code != 0 || !strings.Contains(errOut, "rack: apps: broken: app broken: its name record does not parse") ||
		!strings.Contains(out, "uninstalled broken (its record was broken)") {
		t.Errorf("broken record: status %d, %q, stderr %q", code, out, errOut)
	}
}

// TestInstallMem: install, apps and uninstall on a mem:// store, shared
// by the shells of one OS process (mem://NAME); running an installed app
// needs a file:// namespace, and the shell says so before downloading.
func TestInstallMem(t *testing.T) {
	buildApps(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	url := "mem://apps" + hex.EncodeToString(b[:])
	cache := t.TempDir()
	env := map[string]string{"XDG_CACHE_HOME": cache, "PATH": t.TempDir()}
	if out, errOut, code := runAt(t, url, env, "", "install", filepath.Join(appsDir, "upper")); code != 0 || !strings.HasPrefix(out, "installed upper: ") {
		t.Fatalf("install: %d %q %q", code, out, errOut)
	}
	if out, _, code := runAt(t, url, env, "", "apps"); code != 0 || !strings.Contains(out, "\nupper ") {
		t.Errorf("apps: %d %q", code, out)
	}
	if _, errOut, code := runAt(t, url, env, "", "-c", "upper"); code != 127 || !strings.Contains(errOut, "rack: apps need a file:// namespace") {
		t.Errorf("run on mem://: %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(cache, "rack")); !os.IsNotExist(err) {
		t.Errorf("a mem:// shell downloaded the app: %v", err)
	}
	if out, _, code := runAt(t, url, env, "", "uninstall", "upper"); code != 0 || !strings.Contains(out, "binary ") || !strings.Contains(out, " removed") {
		t.Errorf("uninstall: %d %q", code, out)
	}
}

// TestInstallSwift: install, apps, fetch and uninstall on a real Swift
// (SWIFT_AUTH_URL, as scripts/swift-saio.sh sets it): the binaries
// container is the account's, shared with every namespace of it, so the
// name is a fresh one.
func TestInstallSwift(t *testing.T) {
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		if os.Getenv("RACK_REQUIRE_SWIFT") == "1" {
			t.Fatal("Swift required (RACK_REQUIRE_SWIFT=1) but SWIFT_AUTH_URL is unset")
		}
		t.Skip("no Swift: SWIFT_AUTH_URL unset (scripts/swift-saio.sh starts one)")
	}
	buildApps(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	url, name := "swift+v1:///rack-apps-"+id, "upper-"+id
	env := map[string]string{"XDG_CACHE_HOME": t.TempDir(), "PATH": t.TempDir()}
	upper := filepath.Join(appsDir, "upper")
	sum := fileSHA256(t, upper)
	t.Cleanup(func() { runAt(t, url, env, "", "uninstall", name) })

	if out, errOut, code := runAt(t, url, env, "", "install", upper, name); code != 0 || !strings.HasPrefix(out, "installed "+name+": sha256 "+sum[:12]) {
		t.Fatalf("install: %d %q %q", code, out, errOut)
	}
	// Another namespace of the account finds it.
	url2 := "swift+v1:///rack-apps2-" + id
	if out, errOut, code := runAt(t, url2, env, "", "apps"); code != 0 || !regexp.MustCompile(`(?m)^`+name+` +`+sum[:12]+` `).MatchString(out) {
		t.Errorf("apps: %d %q %q", code, out, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := rack.Open(ctx, url2)
	if err != nil {
		t.Fatal(err)
	}
	m := newMarket(k, func(k string) string { return env[k] })
	rec, err := m.lookup(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.fetch(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileSHA256(t, p); got != sum {
		t.Errorf("fetched %s, want %s", got, sum)
	}
	if out, errOut, code := runAt(t, url, env, "", "uninstall", name); code != 0 || !strings.HasPrefix(out, "uninstalled "+name+" (binary "+sum[:12]) {
		t.Errorf("uninstall: %d %q %q", code, out, errOut)
	}
	if _, err := m.lookup(ctx, name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lookup after uninstall: %v", err)
	}
	k.Close()
	// The two namespaces hold their markers alone: removed.
	cfg, err := swift.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := swift.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, ns := range []string{"rack-apps-" + id, "rack-apps2-" + id} {
		objs, err := raw.List(ctx, ns, backend.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Name != "rack-namespace" {
				t.Errorf("namespace %s holds %s", ns, o.Name)
			}
			_ = raw.Delete(ctx, ns, o.Name)
		}
		_ = raw.DeleteContainer(ctx, ns)
	}
}
