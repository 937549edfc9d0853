package racktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rackfork/rack"
)

// ioWriteFile creates path with data.
func ioWriteFile(ctx context.Context, t *testing.T, k *rack.Kernel, path string, data []byte) {
	t.Helper()
	f, err := k.Create(ctx, path)
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
}

// ioReadFile reads path whole.
func ioReadFile(ctx context.Context, t *testing.T, k *rack.Kernel, path string) []byte {
	t.Helper()
	f, err := k.Open(ctx, path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return data
}

func (s *suite) testFileRoundTrip(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	big := make([]byte, 3<<20+17) // crosses the store's 1 MiB chunks
	rand.NewChaCha8([32]byte{1}).Read(big)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one", []byte("x")},
		{"text", []byte("hello, rack\n")},
		{"big", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/" + s.fc + "data/" + tc.name + ".bin"
			ioWriteFile(ctx, t, k, path, tc.data)
			if got := ioReadFile(ctx, t, k, path); !bytes.Equal(got, tc.data) {
				t.Fatalf("read back %d bytes, want %d (equal prefix: %v)", len(got), len(tc.data), bytes.HasPrefix(tc.data, got))
			}
			info, err := k.Stat(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Size() != int64(len(tc.data)) || info.IsDir() || info.Name() != tc.name+".bin" || info.Mode().IsDir() {
				t.Fatalf("Stat = name %q size %d dir %v mode %v", info.Name(), info.Size(), info.IsDir(), info.Mode())
			}
		})
	}
}

// testFileLarge streams 256 MiB through Create and back, and checks that
// the file layer does not hold the whole file in memory while writing.
func (s *suite) testFileLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB file: skipped in -short mode")
	}
	const size = 256 << 20
	ctx := s.ioCtx(t, 60*time.Second)
	k := s.ioKernel(t)
	src := ioData(42, size)
	buf := make([]byte, 1<<20)
	h := sha256.New()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := k.Create(ctx, "/"+s.fc+"big/file")
	if err != nil {
		t.Fatal(err)
	}
	// A Write, for bounded memory, must not keep p: reuse the buffer.
	n, err := io.CopyBuffer(io.MultiWriter(f, h), struct{ io.Reader }{src}, buf)
	if err != nil || n != size {
		t.Fatalf("copy: %d, %v", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// The store keeps the 256 MiB; the file layer may add a little, not a
	// second copy.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > size+64<<20 {
		t.Errorf("writing %d MiB allocated %d MiB: the file is buffered", size>>20, grew>>20)
	}
	var want [32]byte
	h.Sum(want[:0])

	info, err := k.Stat(ctx, "/"+s.fc+"big/file")
	if err != nil || info.Size() != size {
		t.Fatalf("Stat = %v, %v", info, err)
	}
	r, err := k.Open(ctx, "/"+s.fc+"big/file")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := ioSum(t, r); got != want {
		t.Fatalf("read back sha256 %x, want %x", got, want)
	}
}

func (s *suite) testFileInvisibleBeforeClose(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	f, err := k.Create(ctx, "/"+s.fc+"out/new.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("a"), 3<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(ctx, "/"+s.fc+"out/new.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open before close: %v, want fs.ErrNotExist", err)
	}
	if _, err := k.Stat(ctx, "/"+s.fc+"out/new.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat before close: %v, want fs.ErrNotExist", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Replacing it: readers see the old content until the new one closes.
	g, err := k.Create(ctx, "/"+s.fc+"out/new.txt")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(g, "replaced")
	if got := ioReadFile(ctx, t, k, "/"+s.fc+"out/new.txt"); len(got) != 3<<20 {
		t.Fatalf("during replacement read %d bytes, want the old %d", len(got), 3<<20)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ioReadFile(ctx, t, k, "/"+s.fc+"out/new.txt"); string(got) != "replaced" {
		t.Fatalf("after replacement read %q", got)
	}
	if err := g.Close(); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("second close: %v, want fs.ErrClosed", err)
	}
	if _, err := g.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("write after close: %v, want fs.ErrClosed", err)
	}
}

func (s *suite) testFileDirectories(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	for _, p := range []string{"/" + s.fc + "docs/z.txt", "/" + s.fc + "docs/a.txt", "/" + s.fc + "docs/b/d.txt", "/" + s.fc + "docs/b/c.txt", "/" + s.fc + "docs/b/e/f.txt", "/" + s.fc + "empty/x"} {
		ioWriteFile(ctx, t, k, p, []byte(p))
	}
	if err := k.Remove(ctx, "/"+s.fc+"empty/x"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path string
		dir  bool
		size int64
	}{
		{"/", true, 0},
		{"/" + s.fc + "docs", true, 0},
		{"/" + s.fc + "docs/b", true, 0},
		{"/" + s.fc + "docs/b/e", true, 0},
		{"/" + s.fc + "empty", true, 0},
		{"/" + s.fc + "docs/a.txt", false, int64(len("/" + s.fc + "docs/a.txt"))},
		{"/" + s.fc + "docs/b/e/f.txt", false, int64(len("/" + s.fc + "docs/b/e/f.txt"))},
	} {
		info, err := k.Stat(ctx, tc.path)
		if err != nil {
			t.Errorf("Stat %s: %v", tc.path, err)
			continue
		}
		if info.IsDir() != tc.dir || info.Mode().IsDir() != tc.dir || (!tc.dir && info.Size() != tc.size) {
			t.Errorf("Stat %s: dir %v mode %v size %d; want dir %v size %d", tc.path, info.IsDir(), info.Mode(), info.Size(), tc.dir, tc.size)
		}
	}
	for _, p := range []string{"/" + s.fc + "docs/missing", "/" + s.fc + "docs/b/missing", "/" + s.fc + "nocontainer", "/" + s.fc + "nocontainer/x", "/" + s.fc + "docs/a.txt/x"} {
		if _, err := k.Stat(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat %s: %v, want fs.ErrNotExist", p, err)
		}
	}

	type ent struct {
		name string
		dir  bool
	}
	list := func(p string) []ent {
		t.Helper()
		es, err := k.ReadDir(ctx, p)
		if err != nil {
			t.Fatalf("ReadDir %s: %v", p, err)
		}
		var out []ent
		for _, e := range es {
			out = append(out, ent{e.Name(), e.IsDir()})
			if e.IsDir() != e.Type().IsDir() {
				t.Errorf("ReadDir %s: %s: IsDir %v but Type %v", p, e.Name(), e.IsDir(), e.Type())
			}
		}
		if !slices.IsSortedFunc(out, func(a, b ent) int { return strings.Compare(a.name, b.name) }) {
			t.Errorf("ReadDir %s not sorted: %v", p, out)
		}
		return out
	}
	if got, want := list("/"+s.fc+"docs"), []ent{{"a.txt", false}, {"b", true}, {"z.txt", false}}; !slices.Equal(got, want) {
		t.Errorf("ReadDir /docs = %v, want %v", got, want)
	}
	if got, want := list("/"+s.fc+"docs/b"), []ent{{"c.txt", false}, {"d.txt", false}, {"e", true}}; !slices.Equal(got, want) {
		t.Errorf("ReadDir /docs/b = %v, want %v", got, want)
	}
	if got := list("/" + s.fc + "empty"); len(got) != 0 {
		t.Errorf("ReadDir /empty = %v, want nothing", got)
	}
	root := list("/")
	for _, c := range []string{s.fc + "docs", s.fc + "empty"} {
		if !slices.Contains(root, ent{c, true}) {
			t.Errorf("ReadDir / = %v, want it to list container %s as a directory", root, c)
		}
	}
	if _, err := k.ReadDir(ctx, "/"+s.fc+"docs/nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir of a missing directory: %v, want fs.ErrNotExist", err)
	}
	if _, err := k.ReadDir(ctx, "/"+s.fc+"nocontainer"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir of a missing container: %v, want fs.ErrNotExist", err)
	}

	// Remove.
	if err := k.Remove(ctx, "/"+s.fc+"docs/a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(ctx, "/"+s.fc+"docs/a.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open removed file: %v, want fs.ErrNotExist", err)
	}
	if err := k.Remove(ctx, "/"+s.fc+"docs/a.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("remove removed file: %v, want fs.ErrNotExist", err)
	}
	if err := k.Remove(ctx, "/"+s.fc+"docs"); err == nil {
		t.Errorf("removing a non-empty container succeeded")
	}
	if err := k.Remove(ctx, "/"+s.fc+"empty"); err != nil {
		t.Errorf("removing an empty container: %v", err)
	}
	if _, err := k.Stat(ctx, "/"+s.fc+"empty"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a removed container: %v, want fs.ErrNotExist", err)
	}
	if err := k.Remove(ctx, "/"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Remove /: %v, want fs.ErrInvalid", err)
	}
}

// testFileSeekReadAt compares Seek, Read and ReadAt with bytes.Reader at
// random offsets.
func (s *suite) testFileSeekReadAt(t *testing.T) {
	ctx := s.ioCtx(t, 30*time.Second)
	k := s.ioKernel(t)
	data := make([]byte, 2<<20+12345)
	rand.NewChaCha8([32]byte{2}).Read(data)
	ioWriteFile(ctx, t, k, "/"+s.fc+"seek/file", data)
	f, err := k.Open(ctx, "/"+s.fc+"seek/file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ref := bytes.NewReader(data)
	rng := rand.New(rand.NewPCG(3, 4))
	size := int64(len(data))
	offset := func() int64 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return size - rng.Int64N(10)
		case 2:
			return size + rng.Int64N(10)
		case 3:
			return 1<<20 - 5 + rng.Int64N(10) // around a chunk boundary
		}
		return rng.Int64N(size)
	}
	for i := 0; i < 300; i++ {
		n := rng.IntN(100 << 10)
		if rng.IntN(10) == 0 {
			n = rng.IntN(3)
		}
		p, q := make([]byte, n), make([]byte, n)
		switch op := rng.IntN(3); op {
		case 0: // ReadAt
			off := offset()
			gn, gerr := f.ReadAt(p, off)
			wn, werr := ref.ReadAt(q, off)
			if gn != wn || !bytes.Equal(p[:gn], q[:wn]) || (gerr == nil) != (werr == nil) || (werr == io.EOF && gerr != io.EOF) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d, %v; want %d, %v", n, off, gn, gerr, wn, werr)
			}
		case 1: // Seek
			whence := rng.IntN(3)
			off := offset()
			switch whence {
			case io.SeekCurrent:
				off = rng.Int64N(2<<20) - 1<<20
			case io.SeekEnd:
				off = -rng.Int64N(size + 10)
			}
			gp, gerr := f.Seek(off, whence)
			wp, werr := ref.Seek(off, whence)
			if (gerr == nil) != (werr == nil) || (gerr == nil && gp != wp) {
				t.Fatalf("Seek(%d, %d) = %d, %v; want %d, %v", off, whence, gp, gerr, wp, werr)
			}
		case 2: // Read
			gn, gerr := io.ReadFull(f, p)
			wn, werr := io.ReadFull(ref, q)
			if gn != wn || !bytes.Equal(p[:gn], q[:wn]) || gerr != werr {
				t.Fatalf("ReadFull(%d) = %d, %v; want %d, %v", n, gn, gerr, wn, werr)
			}
		}
	}
}

// testFileExclusiveRace has 50 goroutines race to create one file with
// O_EXCL: exactly one wins, the others learn fs.ErrExist, and the content
// is the winner's.
func (s *suite) testFileExclusiveRace(t *testing.T) {
	// Swift checks If-None-Match: * when a PUT arrives, not when it
	// commits: two racing creates of a 200 KB body can both succeed, and
	// the driver's verifying HEAD narrows the window without closing it
	// (seen once in about five CI runs). A known limit of Swift, in the
	// README; the race is exact on the stores that have an atomic create.
	s.needExclusiveCreate(t, "Swift's create-only is checked on arrival, so O_EXCL on large bodies can race there")
	ctx := s.ioCtx(t, 30*time.Second)
	k := s.ioKernel(t)
	const n = 50
	content := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("writer %02d;", i)), 20000) }
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
		others  []error
	)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := func() error {
				f, err := k.OpenFile(ctx, "/"+s.fc+"locks/leader", rack.O_WRONLY|rack.O_CREATE|rack.O_EXCL)
				if err != nil {
					return err
				}
				data := content(i)
				for off := 0; off < len(data); off += 64 << 10 {
					if _, err := f.Write(data[off:min(off+64<<10, len(data))]); err != nil {
						f.Close()
						return err
					}
				}
				return f.Close()
			}()
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				winners = append(winners, i)
			} else {
				others = append(others, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d winners (%v), want exactly 1", len(winners), winners)
	}
	for _, err := range others {
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("loser's error %v does not wrap fs.ErrExist", err)
		}
	}
	if got := ioReadFile(ctx, t, k, "/"+s.fc+"locks/leader"); !bytes.Equal(got, content(winners[0])) {
		t.Fatalf("content is not the winner's (%d bytes, starts %q)", len(got), got[:min(len(got), 20)])
	}
	// And afterwards O_EXCL fails at once.
	if _, err := k.OpenFile(ctx, "/"+s.fc+"locks/leader", rack.O_WRONLY|rack.O_CREATE|rack.O_EXCL); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("O_EXCL on an existing file: %v, want fs.ErrExist", err)
	}
}

func (s *suite) testFileOpenFlags(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	ioWriteFile(ctx, t, k, "/"+s.fc+"flags/existing", []byte("old"))
	for _, tc := range []struct {
		name string
		path string
		flag int
		want error
	}{
		{"O_RDWR", "/" + s.fc + "flags/existing", rack.O_RDWR, fs.ErrInvalid},
		{"O_RDWR|O_CREATE", "/" + s.fc + "flags/new", rack.O_RDWR | rack.O_CREATE, fs.ErrInvalid},
		{"O_WRONLY on existing without O_TRUNC", "/" + s.fc + "flags/existing", rack.O_WRONLY, fs.ErrInvalid},
		{"O_WRONLY|O_CREATE on existing without O_TRUNC", "/" + s.fc + "flags/existing", rack.O_WRONLY | rack.O_CREATE, fs.ErrInvalid},
		{"O_WRONLY on missing", "/" + s.fc + "flags/missing", rack.O_WRONLY, fs.ErrNotExist},
		{"O_WRONLY|O_TRUNC on missing", "/" + s.fc + "flags/missing", rack.O_WRONLY | rack.O_TRUNC, fs.ErrNotExist},
		{"O_EXCL without O_CREATE", "/" + s.fc + "flags/new", rack.O_WRONLY | rack.O_EXCL, fs.ErrInvalid},
		{"O_RDONLY on missing", "/" + s.fc + "flags/missing", rack.O_RDONLY, fs.ErrNotExist},
		{"O_RDONLY in missing container", "/" + s.fc + "nosuch/missing", rack.O_RDONLY, fs.ErrNotExist},
		{"write into the namespace container", "/" + k.Namespace() + "/" + s.fc + "x", rack.O_WRONLY | rack.O_CREATE | rack.O_TRUNC, fs.ErrPermission},
	} {
		f, err := k.OpenFile(ctx, tc.path, tc.flag)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: OpenFile(%s) = %v, want an error wrapping %v", tc.name, tc.path, err, tc.want)
		}
		if f != nil {
			f.Close()
		}
	}
	if _, err := k.Open(ctx, "/"+s.fc+"flags/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing: %v, want fs.ErrNotExist", err)
	}
	// Allowed: O_WRONLY|O_TRUNC replaces an existing file; O_WRONLY|O_CREATE creates.
	f, err := k.OpenFile(ctx, "/"+s.fc+"flags/existing", rack.O_WRONLY|rack.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "new")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ioReadFile(ctx, t, k, "/"+s.fc+"flags/existing"); string(got) != "new" {
		t.Fatalf("after O_TRUNC: %q", got)
	}
	f, err = k.OpenFile(ctx, "/"+s.fc+"flags/created", rack.O_WRONLY|rack.O_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Reading a file open for writing, and writing one open for reading.
	w, _ := k.Create(ctx, "/"+s.fc+"flags/w")
	if _, err := w.Read(make([]byte, 1)); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Read of a file open for writing: %v, want fs.ErrInvalid", err)
	}
	w.Close()
	r, _ := k.Open(ctx, "/"+s.fc+"flags/w")
	if _, err := r.Write([]byte("x")); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Write of a file open for reading: %v, want fs.ErrInvalid", err)
	}
	r.Close()
}

func (s *suite) testFileFS(t *testing.T) {
	ctx := s.ioCtx(t, 30*time.Second)
	k := s.ioKernel(t)
	files := map[string]string{
		s.fc + "output/a.txt":     "alpha\n",
		s.fc + "output/sub/b.txt": "beta\n",
		s.fc + "other/c.txt":      "",
	}
	for name, data := range files {
		ioWriteFile(ctx, t, k, "/"+name, []byte(data))
	}
	fsys := k.FS(ctx)
	for name, data := range files {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || string(got) != data {
			t.Errorf("fs.ReadFile(%s) = %q, %v; want %q", name, got, err, data)
		}
	}
	var walked []string
	err := fs.WalkDir(fsys, s.fc+"output", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		walked = append(walked, fmt.Sprintf("%s:%v", strings.TrimPrefix(p, s.fc), d.IsDir()))
		return nil
	})
	if want := []string{"output:true", "output/a.txt:false", "output/sub:true", "output/sub/b.txt:false"}; err != nil || !slices.Equal(walked, want) {
		t.Errorf("WalkDir = %v, %v; want %v", walked, err, want)
	}
	if _, err := fs.ReadFile(fsys, s.fc+"output/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile missing: %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.Open("/" + s.fc + "output/a.txt"); err == nil {
		t.Errorf("Open of an invalid fs path succeeded")
	}
	// The root lists every container of the account: on a shared Swift
	// account that is other runs' too, so only a fresh store checks it.
	if !s.h.SharedAccount {
		if err := fstest.TestFS(fsys, "output/a.txt", "output/sub/b.txt", "other/c.txt"); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := fs.Sub(fsys, s.fc+"output")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(sub, "a.txt", "sub/b.txt"); err != nil {
		t.Fatal(err)
	}
}

// testFileOfKilledProcess: a file a process opened and never closed is
// discarded when the process is killed, and its writes after the kill fail
// with ErrKilled. One it leaves open when it returns is discarded too.
func (s *suite) testFileOfKilledProcess(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	opened := make(chan error, 1)
	afterKill := make(chan error, 2)
	err := ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		switch ioArg(self, 0) {
		case "writer":
			if p := rack.FromContext(ctx); p == nil || p.PID() != self.PID() {
				opened <- fmt.Errorf("FromContext = %v, want %v", p, self)
				return nil
			}
			f, err := k.Create(ctx, "/"+s.fc+"out/partial")
			if err == nil {
				_, err = f.Write(bytes.Repeat([]byte("p"), 100<<10))
			}
			opened <- err
			<-ctx.Done()
			_, err = f.Write([]byte("after"))
			afterKill <- err
			afterKill <- f.Close()
			return nil
		case "leaver":
			f, err := k.Create(ctx, "/"+s.fc+"out/left-open")
			if err != nil {
				return err
			}
			_, err = io.WriteString(f, "never closed")
			return err
		}
		child, err := self.Fork(ctx, rack.Spec{Args: []string{"writer"}})
		if err != nil {
			return err
		}
		if err := <-opened; err != nil {
			return err
		}
		if err := child.Kill(ctx); err != nil {
			return err
		}
		var ee *rack.ExitError
		if err := child.Wait(ctx); !errors.As(err, &ee) || ee.Signal() != rack.SIGKILL {
			return fmt.Errorf("wait for killed writer: %v", err)
		}
		leaver, err := self.Fork(ctx, rack.Spec{Args: []string{"leaver"}})
		if err != nil {
			return err
		}
		return leaver.Wait(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"Write", "Close"} {
		select {
		case err := <-afterKill:
			if !errors.Is(err, rack.ErrKilled) {
				t.Errorf("%s after the kill: %v, want an error wrapping rack.ErrKilled", what, err)
			}
		case <-ctx.Done():
			t.Fatal("the killed process's goroutine did not report")
		}
	}
	for _, p := range []string{"/" + s.fc + "out/partial", "/" + s.fc + "out/left-open"} {
		if _, err := k.Open(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("open %s: %v; want fs.ErrNotExist (discarded)", p, err)
		}
	}
	// Opening with a killed process's ctx is refused.
	var dead context.Context
	p, err := k.Start(ctx, rack.Spec{Name: "dead"}, func(ctx context.Context, self *rack.Self) error {
		dead = ctx
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait(ctx)
	if _, err := k.Create(dead, "/"+s.fc+"out/late"); !errors.Is(err, rack.ErrKilled) {
		t.Errorf("Create with an ended process's ctx: %v, want rack.ErrKilled", err)
	}
}

// testFileReplacedWhileOpen: a reader opened before the file was replaced
// reads the version it opened or fails; it never mixes in the new one.
func (s *suite) testFileReplacedWhileOpen(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	v1 := bytes.Repeat([]byte("1"), 3<<20)
	v2 := bytes.Repeat([]byte("2"), 3<<20)
	ioWriteFile(ctx, t, k, "/"+s.fc+"ver/file", v1)
	f, err := k.Open(ctx, "/"+s.fc+"ver/file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, v1[:1<<20]) {
		t.Fatalf("first read: %v", err)
	}
	ioWriteFile(ctx, t, k, "/"+s.fc+"ver/file", v2)
	check := func(what string, b []byte, err error) {
		t.Helper()
		if i := bytes.IndexByte(b, '2'); i >= 0 {
			t.Errorf("%s returned bytes of the new version (at %d) from a file opened on the old one (err %v)", what, i, err)
		}
	}
	p := make([]byte, 4096)
	n, err := f.ReadAt(p, 2<<20)
	check("ReadAt", p[:n], err)
	if _, err := f.Seek(2<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	n, err = f.Read(p)
	check("Read after Seek", p[:n], err)
	f2, err := k.Open(ctx, "/"+s.fc+"ver/file")
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if got, err := io.ReadAll(f2); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("a new Open reads %d bytes, %v; want the new version", len(got), err)
	}
}

// testFileAsStdio gives children files as stdin and stdout: the child
// reads the file's content, and its output is committed when it exits
// (even when written from several goroutines), discarded when it is
// killed.
func (s *suite) testFileAsStdio(t *testing.T) {
	ctx := s.ioCtx(t, 20*time.Second)
	k := s.ioKernel(t)
	ioWriteFile(ctx, t, k, "/"+s.fc+"stdio/in", []byte("input data"))
	in, err := k.Open(ctx, "/"+s.fc+"stdio/in")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	outFile := func(p string) *rack.File {
		t.Helper()
		ioWriteFile(ctx, t, k, p, []byte("old"))
		f, err := k.Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	out, killedOut := outFile("/"+s.fc+"stdio/out"), outFile("/"+s.fc+"stdio/killed")
	started := make(chan struct{})
	err = ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		switch ioArg(self, 0) {
		case "upper":
			data, err := io.ReadAll(self.Stdin())
			if err != nil {
				return err
			}
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := fmt.Fprintf(self.Stdout(), "[%s]", bytes.ToUpper(data))
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					return err
				}
			}
			return nil
		case "hang":
			io.WriteString(self.Stdout(), "partial")
			close(started)
			<-ctx.Done()
			return nil
		}
		c, err := self.Fork(ctx, rack.Spec{Args: []string{"upper"}, Stdin: in, Stdout: out})
		if err != nil {
			return err
		}
		if err := c.Wait(ctx); err != nil {
			return err
		}
		h, err := self.Fork(ctx, rack.Spec{Args: []string{"hang"}, Stdout: killedOut})
		if err != nil {
			return err
		}
		<-started
		return h.Kill(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(ioReadFile(ctx, t, k, "/"+s.fc+"stdio/out")), strings.Repeat("[INPUT DATA]", 4); got != want {
		t.Errorf("child's output file = %q, want %q", got, want)
	}
	if got := string(ioReadFile(ctx, t, k, "/"+s.fc+"stdio/killed")); got != "old" {
		t.Errorf("killed child's output file = %q, want the old content", got)
	}
}

// A file written outside any process and never closed is discarded when
// its kernel closes, and its writer does not outlive the kernel.
func (s *suite) testKernelCloseDiscardsOpenFiles(t *testing.T) {
	ctx := context.Background()
	url := s.sharedName(t)
	k, err := s.open(ctx, t, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() }) // on a t.Fatal path; Close is idempotent
	f, err := k.Create(ctx, "/"+s.fc+"out/unfinished")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err == nil {
		t.Fatal("Close after Kernel.Close committed the file")
	}
	k2, err := s.open(ctx, t, url)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	if _, err := k2.Stat(ctx, "/"+s.fc+"out/unfinished"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of the discarded file: %v, want fs.ErrNotExist", err)
	}
	entries, err := k2.ReadDir(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == k2.Namespace() {
			t.Errorf("ReadDir(/) shows the namespace container %q", e.Name())
		}
	}
}
