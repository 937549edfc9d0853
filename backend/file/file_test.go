package file_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/file"
	"github.com/rackfork/rack/backend/storetest"
)

// harness makes Stores on one directory.
type harness struct {
	dir  string
	opts []file.Option
}

func (h harness) MakeStore(context.Context) (backend.Store, error) {
	return file.New(h.dir, h.opts...)
}

func (harness) Close() {}

func maker(dir string, opts ...file.Option) storetest.HarnessMaker {
	return func(context.Context, *testing.T) (storetest.Harness, error) {
		return harness{dir: dir, opts: opts}, nil
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, maker(t.TempDir()))
}

func TestConformancePolling(t *testing.T) {
	storetest.Run(t, maker(t.TempDir(), file.WithoutInotify(), file.WithoutSync()))
}

func BenchmarkStore(b *testing.B) {
	s, err := file.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.RunBenchmarks(b, s)
}

func BenchmarkStoreNoSync(b *testing.B) {
	s, err := file.New(b.TempDir(), file.WithoutSync())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.RunBenchmarks(b, s)
}

// newStore opens a Store on dir (a fresh one if dir is "") and closes it
// when the test ends.
func newStore(t testing.TB, dir string, opts ...file.Option) *file.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := file.New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPut(t testing.TB, s backend.Store, c, name string, data []byte, opts *backend.PutOptions) backend.ObjectInfo {
	t.Helper()
	info, err := s.Put(context.Background(), c, name, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("Put(%q, %q): %v", c, name, err)
	}
	return info
}

func mustGet(t testing.TB, s backend.Store, c, name string) ([]byte, backend.ObjectInfo) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), c, name, nil)
	if err != nil {
		t.Fatalf("Get(%q, %q): %v", c, name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q, %q): reading: %v", c, name, err)
	}
	return data, info
}

func TestNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := file.New(dir)
	if err != nil {
		t.Fatalf("New of a missing directory: %v", err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "rack-store")); err != nil {
		t.Fatalf("no marker: %v", err)
	}
	s, err = file.New(dir) // again: it is a store now
	if err != nil {
		t.Fatalf("New of an existing store: %v", err)
	}
	s.Close()

	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious.txt"), []byte("x"), 0o644)
	if _, err := file.New(other); err == nil || !strings.Contains(err.Error(), other) {
		t.Fatalf("New of a non-empty directory that is not a store: %v, want an error naming it", err)
	}
	f := filepath.Join(other, "precious.txt")
	if _, err := file.New(f); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("New of a file: %v, want an error naming it", err)
	}
}

// Names that are prefixes of others, long names cut into parts, and names
// near the part boundary all list in byte order, under every combination
// of prefix, marker, delimiter and limit, as a reference model says.
func TestListModel(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "", file.WithoutSync())
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "/", "!", "0", "é", "A", "%", "."}
	set := map[string]bool{"a": true, "a/b": true, "a/": true, "a//": true, "/": true, "a!": true, "a0": true}
	for _, n := range []int{79, 80, 81, 159, 160, 161} {
		set[strings.Repeat("x", n)] = true
		set[strings.Repeat("x", n)+"/y"] = true
		set[strings.Repeat("x", n-1)+"/"] = true
		set[strings.Repeat("x", n-1)+"/z"] = true
		set[strings.Repeat("x", n)+"!"] = true
	}
	for len(set) < 400 {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		if rng.IntN(10) == 0 {
			b.WriteString(strings.Repeat("q", 70+rng.IntN(30)))
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		set[b.String()] = true
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range set {
			if !yield(n) {
				return
			}
		}
	})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < len(names); j += 4 {
				mustPut(t, s, "c", names[j], []byte(names[j]), nil)
			}
		}()
	}
	wg.Wait()
	prefixes := []string{"", "a", "a/", "a/b", "x", strings.Repeat("x", 80), strings.Repeat("x", 79) + "/", "é", "zz"}
	markers := []string{"", "a", "a/", "a0", strings.Repeat("x", 80), names[len(names)/2], names[len(names)/3] + "\x01"}
	checks := 0
	for _, p := range prefixes {
		for _, m := range markers {
			for _, d := range []string{"", "/", "!", "x"} {
				for _, limit := range []int{0, 1, 3, 50} {
					opts := backend.ListOptions{Prefix: p, Marker: m, Delimiter: d, Limit: limit}
					got, err := s.List(ctx, "c", opts)
					if err != nil {
						t.Fatalf("List(%+v): %v", opts, err)
					}
					want := refList(names, opts)
					if !equalPage(got, want) {
						t.Fatalf("List(%+v):\n got  %v\n want %v", opts, pageNames(got), pageNames(want))
					}
					checks++
				}
			}
		}
	}
	// Paging collects everything once.
	for _, limit := range []int{1, 7, 100} {
		var all []string
		opts := backend.ListOptions{Limit: limit}
		for {
			page, err := s.List(ctx, "c", opts)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, pageNames(page)...)
			if len(page) < limit {
				break
			}
			opts.Marker = page[len(page)-1].Name
		}
		if !slices.Equal(all, names) {
			t.Fatalf("paging by %d collected %d names, want %d", limit, len(all), len(names))
		}
	}
	t.Logf("%d names, %d listings checked", len(names), checks)
}

// refList is Swift's listing of the sorted names.
func refList(names []string, opts backend.ListOptions) []backend.ObjectInfo {
	limit := opts.Limit
	if limit == 0 {
		limit = backend.MaxListLimit
	}
	var out []backend.ObjectInfo
	last := ""
	for _, n := range names {
		if len(out) == limit {
			break
		}
		if !strings.HasPrefix(n, opts.Prefix) || n <= opts.Marker {
			continue
		}
		if opts.Delimiter != "" {
			if i := strings.Index(n[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				d := n[:len(opts.Prefix)+i+len(opts.Delimiter)]
				if d != last && d != opts.Marker {
					out = append(out, backend.ObjectInfo{Name: d, Subdir: true})
				}
				last = d
				continue
			}
		}
		out = append(out, backend.ObjectInfo{Name: n})
	}
	return out
}

func pageNames(page []backend.ObjectInfo) []string {
	out := make([]string, len(page))
	for i, o := range page {
		out[i] = o.Name
		if o.Subdir {
			out[i] += "(dir)"
		}
	}
	return out
}

func equalPage(a, b []backend.ObjectInfo) bool {
	return slices.Equal(pageNames(a), pageNames(b))
}

func TestExpiryRemovesLazily(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir, file.WithoutSync())
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	short := &backend.PutOptions{DeleteAfter: 150 * time.Millisecond, Metadata: map[string]string{"k": "v"}}
	mustPut(t, s, "c", "dir/eph", []byte("short-lived"), short)
	mustPut(t, s, "c", "keep", []byte("durable"), nil)
	if h, err := s.Head(ctx, "c", "dir/eph"); err != nil || h.Metadata["k"] != "v" {
		t.Fatalf("Head before expiry: %v, %v", h, err)
	}
	if page, _ := s.List(ctx, "c", backend.ListOptions{}); len(page) != 2 {
		t.Fatalf("List before expiry: %v", pageNames(page))
	}
	time.Sleep(200 * time.Millisecond)
	// A second Store (another process, as far as the files go) agrees.
	s2 := newStore(t, dir)
	for _, st := range []*file.Store{s2, s} {
		if _, err := st.Head(ctx, "c", "dir/eph"); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("Head after expiry: %v", err)
		}
	}
	if page, _ := s.List(ctx, "c", backend.ListOptions{}); !slices.Equal(pageNames(page), []string{"keep"}) {
		t.Fatalf("List after expiry: %v", pageNames(page))
	}
	// The Head removed the file, and its now empty directory.
	if _, err := os.Stat(filepath.Join(dir, "c", "c,c", "dir,d")); !os.IsNotExist(err) {
		t.Fatalf("expired object's directory still there: %v", err)
	}
	// A container holding only expired objects is empty.
	if err := s.CreateContainer(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "d", "x", []byte("x"), &backend.PutOptions{DeleteAfter: 50 * time.Millisecond})
	if err := s.DeleteContainer(ctx, "d"); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("DeleteContainer with a live object: %v", err)
	}
	time.Sleep(80 * time.Millisecond)
	if err := s.DeleteContainer(ctx, "d"); err != nil {
		t.Fatalf("DeleteContainer with only an expired object: %v", err)
	}
	// An expired name is free for a create-only Put, and an overwrite
	// without DeleteAfter makes an object permanent.
	mustPut(t, s, "c", "x", []byte("1"), &backend.PutOptions{DeleteAfter: 50 * time.Millisecond})
	time.Sleep(80 * time.Millisecond)
	mustPut(t, s, "c", "x", []byte("2"), &backend.PutOptions{CreateOnly: true})
	if data, _ := mustGet(t, s, "c", "x"); string(data) != "2" {
		t.Fatalf("create-only over an expired object: %q", data)
	}
}

// A reader never sees a mix of two versions: content, size, ETag and
// metadata of every Get and Head belong to one Put, while another Store
// overwrites the object as fast as it can.
func TestOverwriteAtomicForReaders(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := newStore(t, dir, file.WithoutSync())
	r := newStore(t, dir)
	if err := w.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	version := func(v int) ([]byte, map[string]string) {
		size := 1000 + (v%7)*40000 // sizes differ, some beyond one buffer
		return bytes.Repeat([]byte{byte('a' + v%26)}, size), map[string]string{"v": fmt.Sprint(v % 26), "size": fmt.Sprint(size)}
	}
	data, meta := version(0)
	mustPut(t, w, "c", "obj", data, &backend.PutOptions{Metadata: meta})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			data, meta := version(v)
			if _, err := w.Put(ctx, "c", "obj", bytes.NewReader(data), &backend.PutOptions{Metadata: meta}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	deadline := time.Now().Add(time.Second)
	reads := 0
	for time.Now().Before(deadline) {
		got, info := mustGet(t, r, "c", "obj")
		if len(got) == 0 || !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
			t.Fatalf("Get returned mixed content (%d bytes)", len(got))
		}
		if info.Metadata["v"] != fmt.Sprint(int(got[0]-'a')) || info.Metadata["size"] != fmt.Sprint(len(got)) || info.Size != int64(len(got)) {
			t.Fatalf("Get: metadata %v, size %d with %d bytes of %q", info.Metadata, info.Size, len(got), got[:1])
		}
		h, err := r.Head(ctx, "c", "obj")
		if err != nil {
			t.Fatal(err)
		}
		if h.Metadata["size"] != fmt.Sprint(h.Size) {
			t.Fatalf("Head: metadata %v with size %d", h.Metadata, h.Size)
		}
		reads++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d consistent reads during overwrites", reads)
}

// Changes made through another Store on the same directory reach the
// watchers of this one.
func TestCrossStoreNotify(t *testing.T) {
	for _, opts := range [][]file.Option{nil, {file.WithoutInotify()}} {
		name := "inotify"
		if opts != nil {
			name = "polling"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			watcher := newStore(t, dir, opts...)
			writer := newStore(t, dir, file.WithoutSync())
			if err := writer.CreateContainer(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			exact := watcher.Changed("c", "key")
			prefix := watcher.Changed("c", "dir/")
			other := watcher.Changed("c", "unrelated")
			mustPut(t, writer, "c", "keyx", []byte("x"), nil)
			mustPut(t, writer, "c", "key", []byte("x"), nil)
			mustPut(t, writer, "c", "dir/sub/x", []byte("x"), nil)
			waitFor(t, exact, "a Put of the key by another Store")
			waitFor(t, prefix, "a Put under the prefix by another Store")
			del := watcher.Changed("c", "key")
			if err := writer.Delete(ctx, "c", "key"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, del, "a Delete of the key by another Store")
			time.Sleep(100 * time.Millisecond)
			select {
			case <-other:
				t.Fatal("a watcher of an unchanged name was woken")
			default:
			}
		})
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no notification 10s after %s", what)
	}
}

// Cancelling a Put, or a body that fails, leaves no temporary file.
func TestNoLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.Put(ctx, "c", "x", io.MultiReader(bytes.NewReader(make([]byte, 200<<10)), errReader{boom}), nil)
	if !errors.Is(err, boom) {
		t.Fatalf("Put with a failing body: %v", err)
	}
	mustPut(t, s, "c", "y", []byte("y"), &backend.PutOptions{CreateOnly: true})
	if _, err := s.Put(ctx, "c", "y", strings.NewReader("z"), &backend.PutOptions{CreateOnly: true}); !errors.Is(err, backend.ErrExist) {
		t.Fatalf("second create-only Put: %v", err)
	}
	if names, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(names) != 0 {
		t.Fatalf("leftovers in tmp: %v", names)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestNewConcurrent: many processes opening one new directory at once all
// get the store. One that read the marker between another's create and
// its write once failed with `rack-store holds ""`.
func TestNewConcurrent(t *testing.T) {
	for round := range 20 {
		dir := filepath.Join(t.TempDir(), "s")
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				s, err := file.New(dir)
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: New of a directory others open at once: %v", round, err)
			}
		}
	}
	// A marker half written (its writer has not finished yet) is waited
	// for; a wrong one is refused at once, naming it.
	dir := t.TempDir()
	marker := filepath.Join(dir, "rack-store")
	if err := os.WriteFile(marker, []byte("rack file"), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		os.WriteFile(marker, []byte("rack file store 1\n"), 0o600)
	}()
	s, err := file.New(dir)
	if err != nil {
		t.Fatalf("New while the marker is being written: %v", err)
	}
	s.Close()
	if err := os.WriteFile(marker, []byte("something else\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := file.New(dir); err == nil || !strings.Contains(err.Error(), marker) {
		t.Fatalf("New with a foreign marker: %v, want an error naming %s", err, marker)
	}
}
