package file

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/osfile"
)

// nobody is the uid and gid of the other local user the reproductions act
// as: "nobody" on Debian.
const nobody = 65534

// asNobody runs the shell command script as user nobody and returns its
// output and error. It skips the test unless this process may switch
// users (root), since acting as another user is the point.
func asNobody(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("acting as another local user (nobody) needs root")
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// victim makes a file of this user's, mode 0600, outside the store, and
// returns its path and a check that it still holds what it held.
func victim(t *testing.T) (string, func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "victim")
	const secret = "root's own file\n"
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func() {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil || string(data) != secret {
			t.Fatalf("the victim file now holds %q (%v): a write landed in it", data, err)
		}
	}
}

// checkModes fails unless every directory under dir is mode dirMode and
// every file fileMode at most (the umask may take more away).
func checkModes(t *testing.T, dir string, dirMode, fileMode fs.FileMode) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n++
		switch {
		case d.IsDir() && fi.Mode().Perm() != dirMode:
			t.Errorf("directory %s: mode %#o, want %#o", path, fi.Mode().Perm(), dirMode)
		case fi.Mode().IsRegular() && fi.Mode().Perm()&^fileMode != 0:
			t.Errorf("file %s: mode %#o, want %#o", path, fi.Mode().Perm(), fileMode)
		case !d.IsDir() && !fi.Mode().IsRegular():
			t.Errorf("%s: neither a directory nor a regular file (%v)", path, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d entries under %s: the store made too little to check", n, dir)
	}
}

// fill writes objects (some in a subdirectory of the tree), and a journal,
// to container c of s.
func fill(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	s.Changed("c", "x/") // follow journals: .notify in use
	for _, name := range []string{"procs/101", "pipes/7/0", "files/home/notes", "x/y"} {
		if _, err := s.Put(ctx, "c", name, strings.NewReader("secret of "+name), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// getAll reads object name of container c whole.
func getAll(t *testing.T, s *Store, c, name string) ([]byte, error) {
	t.Helper()
	rc, _, err := s.Get(context.Background(), c, name, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// The store is private: directories 0700, files 0600, and user nobody can
// neither list nor read anything in it, records and bodies alike.
func TestPrivateModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ns")
	s := withSpares(t, dir)
	fill(t, s)
	fillSpares(t, s)
	checkModes(t, dir, 0o700, 0o600)

	var paths []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		paths = append(paths, path)
		return nil
	})
	// Each path, as nobody: a directory listed, a file read. None may work.
	out, err := asNobody(t, `for p; do if [ -d "$p" ]; then ls -a "$p" && echo "LISTED $p"; else cat "$p" && echo "READ $p"; fi; done; true`, paths...)
	if err != nil {
		t.Fatalf("running as nobody: %v\n%s", err, out)
	}
	if strings.Contains(out, "LISTED ") || strings.Contains(out, "READ ") || strings.Contains(out, "secret of") {
		t.Fatalf("user nobody read the store:\n%s", out)
	}
	if !strings.Contains(out, "Permission denied") {
		t.Fatalf("user nobody's attempts did not fail for want of permission:\n%s", out)
	}
}

// An old store made 0755/0644 is closed to the others when opened, and
// then nobody can read it.
func TestOldStoreRestricted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ns")
	s, err := New(dir, WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s)
	s.Close()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = New(dir, WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("store directory mode %#o after New, want 0700", fi.Mode().Perm())
	}
}

// New refuses a directory of another user's, or one others may write in,
// with an error that names it and says why.
func TestRefusedDirectories(t *testing.T) {
	base := t.TempDir()
	for _, c := range []struct {
		name  string
		mode  fs.FileMode
		owner int // -1: this user
		group bool
		why   string
	}{
		{"world-writable", 0o777, -1, false, "every user may write"},
		{"world-writable-group", 0o777, -1, true, "every user may write"},
		{"group-writable", 0o770, -1, false, "its group may write"},
		{"nobodys", 0o700, nobody, false, "belongs to user 65534"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.owner >= 0 && os.Geteuid() != 0 {
				t.Skip("making a directory of another user's needs root")
			}
			dir := filepath.Join(base, c.name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			if c.owner >= 0 {
				if err := os.Chown(dir, c.owner, c.owner); err != nil {
					t.Fatal(err)
				}
			}
			var opts []Option
			if c.group {
				opts = append(opts, WithGroupAccess())
			}
			s, err := New(dir, opts...)
			if err == nil {
				s.Close()
				t.Fatalf("New(%s, mode %#o) succeeded", dir, c.mode)
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("New(%s, mode %#o): %v, want an error naming it and saying %q", dir, c.mode, err, c.why)
			}
			if names, _ := readNames(dir); len(names) > 0 {
				t.Fatalf("a refused directory was written: %v", names)
			}
		})
	}
}

// With WithGroupAccess a group-writable directory is accepted, and the
// store makes directories 0770 and files 0660 whatever the umask.
func TestGroupAccess(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "ns")
	if err := os.Mkdir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	s, err := New(dir, WithoutSync(), WithGroupAccess())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.spare.off = false
	s.spare.born = time.Now().Add(-time.Hour)
	fill(t, s)
	fillSpares(t, s)
	checkModes(t, dir, 0o770, 0o660)
}

// The reproduction of issue 12's finding: another user pre-makes
// DIR/spare/s* as symbolic links to a file of this user's. Now they cannot
// (DIR is 0700); and should such links be there all the same (made before
// the store was closed, or by the group of a shared one), no write lands
// in their target, and the objects are whole.
func TestPlantedSparesRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ns")
	s := withSpares(t, dir)
	ctx := context.Background()
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	target, unchanged := victim(t)
	spare := s.spare.dir
	if err := os.MkdirAll(spare, 0o700); err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() == 0 {
		out, err := asNobody(t, `ln -s "$1" "$2/s1" && echo PLANTED`, target, spare)
		if err == nil || strings.Contains(out, "PLANTED") {
			t.Fatalf("user nobody planted a link in DIR/spare: %v\n%s", err, out)
		}
	}

	// Plant them anyway, as this user: links (nobody's, where the test
	// can make them so), a hard link, a FIFO, a directory, another user's
	// file.
	for i := range 40 {
		p := filepath.Join(spare, "s"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26)))
		var err error
		switch i % 5 {
		case 0, 1:
			err = os.Symlink(target, p)
			if err == nil && os.Geteuid() == 0 {
				err = os.Lchown(p, nobody, nobody)
			}
		case 2:
			err = os.Link(target, p)
		case 3:
			err = syscall.Mkfifo(p, 0o600)
		case 4:
			err = os.WriteFile(p, nil, 0o666)
			if err == nil && os.Geteuid() == 0 {
				err = os.Chown(p, nobody, nobody)
			} else if err == nil {
				err = os.Mkdir(p+"d", 0o700)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Keep the refill loop from adding good spares (a Store that young
	// does not refill): every take meets a planted one first.
	s.spare.born = time.Now().Add(time.Hour)
	for i := range 60 {
		name := "obj" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		body := bytes.Repeat([]byte(name), 100)
		if _, err := s.Put(ctx, "c", name, bytes.NewReader(body), nil); err != nil {
			t.Fatalf("Put %s: %v", name, err)
		}
		got, _ := getAll(t, s, "c", name)
		if !bytes.Equal(got, body) {
			t.Fatalf("object %s reads back %d bytes, want %d", name, len(got), len(body))
		}
		unchanged()
	}
	// A journal append (which no longer takes a spare) leaves it alone too.
	s.changed("c", s.containerPath("c"), "obj")
	unchanged()
}

// A symbolic link in place of an object, of a directory on the way, or of
// the journal is never followed: reads fail, writes do not
// land in the target.
func TestSymlinksInsideNotFollowed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ns")
	s, err := New(dir, WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fill(t, s)
	ctx := context.Background()
	target, unchanged := victim(t)
	cpath := s.containerPath("c")

	// An object replaced by a link to the victim.
	obj := objectPath(cpath, "procs/101")
	os.Remove(obj)
	if err := os.Symlink(target, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "c", "procs/101"); err == nil || !errors.Is(err, osfile.ErrSymlink) {
		t.Fatalf("Head of an object that is a link: %v, want an error wrapping osfile.ErrSymlink", err)
	}
	if list, err := s.List(ctx, "c", backend.ListOptions{Prefix: "procs/"}); err == nil && len(list) > 0 {
		t.Fatalf("List shows a link as an object: %v", list)
	}

	// A directory of the tree replaced by a link to another directory
	// holding a valid object file: following it would read that.
	objFile := objectPath(cpath, "files/home/notes")
	tree := filepath.Dir(objFile)
	elsewhere := t.TempDir()
	data, err := os.ReadFile(objFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(elsewhere, filepath.Base(objFile)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(tree)
	if err := os.Symlink(elsewhere, tree); err != nil {
		t.Fatal(err)
	}
	if rc, _, err := s.Get(ctx, "c", "files/home/notes", nil); err == nil {
		data, _ := io.ReadAll(rc)
		rc.Close()
		t.Fatalf("Get through a linked directory read %q", data)
	} else if !errors.Is(err, osfile.ErrSymlink) && !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Get through a linked directory: %v", err)
	}

	// The journal, about to be made, planted as a link.
	journal := cpath + "/.notify/j-0"
	os.Remove(journal)
	s.journal.forget()
	if err := os.Symlink(target, journal); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "c", "after", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	unchanged()
	if fi, err := os.Lstat(journal); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the journal is not a regular file of its own after a write: %v, %v", fi, err)
	}
}
