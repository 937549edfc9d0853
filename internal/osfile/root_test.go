//go:build unix

package osfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// forEachResolver runs test with openat2 and, on Linux, again with the
// O_NOFOLLOW fallback that a kernel without openat2 gets.
func forEachResolver(t *testing.T, test func(t *testing.T)) {
	t.Run("default", test)
	if runtime.GOOS == "linux" {
		t.Run("fallback", func(t *testing.T) {
			was := noOpenat2.Swap(true)
			defer noOpenat2.Store(was)
			test(t)
		})
	}
}

func TestRootRefusesSymlinks(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		dir := t.TempDir()
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := os.Symlink(victim, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		for _, flag := range []int{os.O_RDONLY, os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND | os.O_CREATE} {
			f, err := r.OpenFile(filepath.Join(dir, "link"), flag, 0o600)
			if err == nil {
				f.Close()
				t.Fatalf("open of a symbolic link with flags %#x succeeded", flag)
			}
			if !errors.Is(err, ErrSymlink) {
				t.Errorf("open of a symbolic link with flags %#x: %v, want ErrSymlink", flag, err)
			}
		}
		if data, _ := os.ReadFile(victim); string(data) != "secret" {
			t.Fatalf("the link's target now holds %q", data)
		}
		// A link to a directory on the way.
		if err := os.Symlink(filepath.Dir(victim), filepath.Join(dir, "d")); err != nil {
			t.Fatal(err)
		}
		f, err := r.OpenFile("d/victim", os.O_RDONLY, 0)
		if err == nil {
			f.Close()
			if !noOpenat2.Load() {
				t.Fatal("open through a linked directory succeeded")
			}
			// O_NOFOLLOW checks only the last element: the fallback's known limit.
		} else if !errors.Is(err, ErrSymlink) {
			t.Errorf("open through a linked directory: %v, want ErrSymlink", err)
		}
		if d, err := r.OpenDir("d"); err == nil {
			d.Close()
			t.Error("OpenDir of a symbolic link succeeded")
		}
	})
}

func TestRootRefusesFIFOAndHardLinks(t *testing.T) {
	forEachResolver(t, func(t *testing.T) {
		dir := t.TempDir()
		r, err := OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		// Would block forever without O_NONBLOCK.
		if f, err := r.OpenFile(fifo, os.O_RDONLY, 0); err == nil || !errors.Is(err, ErrNotRegular) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("open of a FIFO: %v, want ErrNotRegular", err)
		}
		own := filepath.Join(dir, "own")
		if err := os.WriteFile(own, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := r.OpenOwned(own, os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("OpenOwned of this user's file: %v", err)
		}
		f.Close()
		if err := os.Link(own, filepath.Join(dir, "other-name")); err != nil {
			t.Fatal(err)
		}
		if f, err := r.OpenOwned(own, os.O_WRONLY, 0); err == nil || !errors.Is(err, ErrNotOwned) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("OpenOwned of a file with two names: %v, want ErrNotOwned", err)
		}
		if os.Geteuid() == 0 {
			nob := filepath.Join(dir, "nobodys")
			if err := os.WriteFile(nob, nil, 0o666); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(nob, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if f, err := r.OpenOwned(nob, os.O_WRONLY, 0); err == nil || !errors.Is(err, ErrNotOwned) {
				if f != nil {
					f.Close()
				}
				t.Fatalf("OpenOwned of another user's file: %v, want ErrNotOwned", err)
			}
		}
	})
}

func TestRootOutside(t *testing.T) {
	r, err := OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if f, err := r.OpenFile("/etc/hostname", os.O_RDONLY, 0); err == nil {
		f.Close()
		t.Fatal("opened a path outside the root")
	}
	if f, err := r.OpenFile("../x", os.O_RDONLY, 0); err == nil {
		f.Close()
		t.Fatal("opened a path leading out of the root")
	}
	r.Close()
	if f, err := r.OpenFile("x", os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
		if runtime.GOOS == "linux" && !noOpenat2.Load() {
			t.Fatal("opened a file in a closed root")
		}
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		mode  fs.FileMode
		group bool
		ok    bool
		after fs.FileMode
	}{
		{0o700, false, true, 0o700},
		{0o755, false, true, 0o700},
		{0o750, true, true, 0o750},
		{0o775, true, true, 0o770},
		{0o770, false, false, 0},
		{0o777, true, false, 0},
		{0o703, false, false, 0},
	} {
		if err := os.Chmod(dir, c.mode); err != nil {
			t.Fatal(err)
		}
		err := RestrictDir(dir, c.group)
		if (err == nil) != c.ok {
			t.Errorf("RestrictDir(mode %#o, group %v): %v, want ok %v", c.mode, c.group, err, c.ok)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory", err)
			}
			continue
		}
		fi, _ := os.Stat(dir)
		if fi.Mode().Perm() != c.after {
			t.Errorf("RestrictDir(mode %#o, group %v) left mode %#o, want %#o", c.mode, c.group, fi.Mode().Perm(), c.after)
		}
	}
	if os.Geteuid() == 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		err := CheckDir(dir, false)
		if err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
			t.Fatalf("CheckDir of nobody's directory: %v", err)
		}
	}
}
