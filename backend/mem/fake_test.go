package mem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rackfork/rack/backend"
)

var ctx = context.Background()

// mustCreate creates container c.
func mustCreate(t testing.TB, s *Store, c string) {
	t.Helper()
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatalf("CreateContainer(%q): %v", c, err)
	}
}

// mustPut stores data as c/name.
func mustPut(t testing.TB, s *Store, c, name string, data []byte, opts *backend.PutOptions) {
	t.Helper()
	if _, err := s.Put(ctx, c, name, bytes.NewReader(data), opts); err != nil {
		t.Fatalf("Put(%q, %q): %v", c, name, err)
	}
}

// read returns the content of c/name.
func read(t testing.TB, s *Store, c, name string, opts *backend.GetOptions) []byte {
	t.Helper()
	rc, _, err := s.Get(ctx, c, name, opts)
	if err != nil {
		t.Fatalf("Get(%q, %q, %+v): %v", c, name, opts, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	return data
}

// listNames returns the names of one listing page.
func listNames(t testing.TB, s *Store, c string, opts backend.ListOptions) []string {
	t.Helper()
	page, err := s.List(ctx, c, opts)
	if err != nil {
		t.Fatalf("List(%q, %+v): %v", c, opts, err)
	}
	names := make([]string, len(page))
	for i, o := range page {
		names[i] = o.Name
	}
	return names
}

// until polls cond every millisecond for up to 10 s and returns how long it
// took to hold, failing the test if it never does.
func until(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: not true after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func TestListLag(t *testing.T) {
	const lag = 150 * time.Millisecond
	s := New(WithListLag(lag))
	defer s.Close()

	// Containers.
	created := time.Now()
	mustCreate(t, s, "c")
	if names := containerNames(t, s); time.Since(created) < lag && len(names) != 0 {
		t.Errorf("ListContainers right after CreateContainer = %q, want nothing yet", names)
	}
	until(t, "container listed", func() bool { return len(containerNames(t, s)) == 1 })
	if d := time.Since(created); d < lag {
		t.Errorf("container listed after %v, before the lag %v", d, lag)
	}

	// Objects: read-after-create, late listing.
	put := time.Now()
	mustPut(t, s, "c", "obj", []byte("x"), nil)
	if got := read(t, s, "c", "obj", nil); string(got) != "x" {
		t.Fatalf("Get right after Put = %q", got)
	}
	if names := listNames(t, s, "c", backend.ListOptions{}); time.Since(put) < lag && len(names) != 0 {
		t.Errorf("List right after Put = %q, want nothing yet", names)
	}
	// The listing does not show the object yet, but the object exists, so
	// the container cannot be deleted.
	if err := s.DeleteContainer(ctx, "c"); !errors.Is(err, backend.ErrExist) {
		t.Errorf("DeleteContainer with an unlisted object: %v, want ErrExist", err)
	}
	until(t, "object listed", func() bool { return len(listNames(t, s, "c", backend.ListOptions{})) == 1 })
	if d := time.Since(put); d < lag {
		t.Errorf("object listed after %v, before the lag %v", d, lag)
	}

	// An overwrite shows its new size late.
	mustPut(t, s, "c", "obj", []byte("longer"), nil)
	page, _ := s.List(ctx, "c", backend.ListOptions{})
	if len(page) != 1 || page[0].Size != 1 {
		t.Errorf("List right after an overwrite = %+v, want the old size 1", page)
	}
	until(t, "overwrite listed", func() bool {
		page, _ := s.List(ctx, "c", backend.ListOptions{})
		return len(page) == 1 && page[0].Size == 6
	})

	// A deleted object stays listed, and keeps the container non-empty.
	deleted := time.Now()
	if err := s.Delete(ctx, "c", "obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "c", "obj"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Head right after Delete: %v, want ErrNotFound", err)
	}
	if time.Since(deleted) < lag {
		if names := listNames(t, s, "c", backend.ListOptions{}); len(names) != 1 {
			t.Errorf("List right after Delete = %q, want the deleted object still", names)
		}
		if err := s.DeleteContainer(ctx, "c"); !errors.Is(err, backend.ErrExist) && time.Since(deleted) < lag {
			t.Errorf("DeleteContainer while the listing shows an object: %v, want ErrExist", err)
		}
	}
	until(t, "container deletable", func() bool { return s.DeleteContainer(ctx, "c") == nil })
	if d := time.Since(deleted); d < lag {
		t.Errorf("container deleted %v after its last object, before the lag %v", d, lag)
	}
	// The container is gone for object calls at once, from listings late.
	if _, err := s.Put(ctx, "c", "x", strings.NewReader("x"), nil); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Put into a deleted container: %v", err)
	}
	until(t, "container unlisted", func() bool { return len(containerNames(t, s)) == 0 })
}

func containerNames(t testing.TB, s *Store) []string {
	t.Helper()
	page, err := s.ListContainers(ctx, backend.ListOptions{})
	if err != nil {
		t.Fatalf("ListContainers: %v", err)
	}
	names := make([]string, len(page))
	for i, c := range page {
		names[i] = c.Name
	}
	return names
}

// faultTrace runs a fixed sequence of calls on a store with faults and
// returns, for each, "ok", an error class, or "after".
func faultTrace(t *testing.T, seed int64) []string {
	t.Helper()
	s := New(WithFaults(0.3, seed))
	defer s.Close()
	var trace []string
	record := func(err error) {
		var fe *faultError
		switch {
		case err == nil:
			trace = append(trace, "ok")
		case errors.As(err, &fe) && fe.after:
			trace = append(trace, "after")
		case errors.As(err, &fe):
			trace = append(trace, "before")
		default:
			trace = append(trace, "error")
		}
	}
	for i := range 300 {
		name := fmt.Sprintf("o%d", i%7)
		switch i % 5 {
		case 0:
			record(s.CreateContainer(ctx, "c"))
		case 1:
			_, err := s.Put(ctx, "c", name, strings.NewReader(name), nil)
			record(err)
		case 2:
			_, err := s.Head(ctx, "c", name)
			record(err)
		case 3:
			_, err := s.List(ctx, "c", backend.ListOptions{})
			record(err)
		case 4:
			record(s.Delete(ctx, "c", name))
		}
	}
	return trace
}

func TestFaultsDeterministic(t *testing.T) {
	a, b := faultTrace(t, 42), faultTrace(t, 42)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("two runs with seed 42 differ:\n%v\n%v", a, b)
	}
	if c := faultTrace(t, 43); fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 42 and 43 gave the same trace")
	}
	faults, after := 0, 0
	for _, r := range a {
		switch r {
		case "before":
			faults++
		case "after":
			faults++
			after++
		}
	}
	if faults < 50 || faults > 130 {
		t.Errorf("%d faults in 300 calls at rate 0.3", faults)
	}
	if after == 0 {
		t.Errorf("no fault after the change took effect")
	}
}

func TestFaultsAfterTookEffect(t *testing.T) {
	s := New(WithFaults(1, 7))
	defer s.Close()
	rate := s.faultRate
	s.faultRate = 0
	mustCreate(t, s, "c")
	s.faultRate = rate

	exists := func(name string) bool {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.containers["c"].objects[name] != nil
	}
	counts := map[bool]int{}
	for i := range 100 {
		name := fmt.Sprintf("o%d", i)
		_, err := s.Put(ctx, "c", name, strings.NewReader("data "+name), nil)
		var fe *faultError
		if !errors.Is(err, backend.ErrTransient) || !errors.As(err, &fe) {
			t.Fatalf("Put at fault rate 1: %v", err)
		}
		if !strings.Contains(err.Error(), `"c"`) || !strings.Contains(err.Error(), name) {
			t.Errorf("fault error %q does not name the object", err)
		}
		counts[fe.after]++
		if exists(name) != fe.after {
			t.Fatalf("Put failed with %v, but the object exists: %v", err, exists(name))
		}
		if fe.after {
			s.faultRate = 0
			if got := read(t, s, "c", name, nil); string(got) != "data "+name {
				t.Fatalf("object stored by a Put failing after = %q", got)
			}
			s.faultRate = rate
			err := s.Delete(ctx, "c", name)
			if !errors.As(err, &fe) {
				t.Fatalf("Delete at fault rate 1: %v", err)
			}
			if exists(name) == fe.after {
				t.Fatalf("Delete failed with %v, but exists = %v", err, exists(name))
			}
		}
	}
	if counts[true] < 25 || counts[false] < 25 {
		t.Errorf("faults after/before: %d/%d, want about half each", counts[true], counts[false])
	}

	// CreateContainer and DeleteContainer too.
	for i := range 20 {
		name := fmt.Sprintf("k%d", i)
		err := s.CreateContainer(ctx, name)
		var fe *faultError
		if !errors.As(err, &fe) {
			t.Fatalf("CreateContainer at fault rate 1: %v", err)
		}
		s.mu.RLock()
		created := s.containers[name] != nil
		s.mu.RUnlock()
		if created != fe.after {
			t.Fatalf("CreateContainer failed with %v, created = %v", err, created)
		}
	}
}

func TestLatency(t *testing.T) {
	s := New(WithLatency(20 * time.Millisecond))
	defer s.Close()
	start := time.Now()
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("call took %v with latency 20ms", d)
	}

	slow := New(WithLatency(time.Hour))
	defer slow.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := slow.Head(cctx, "c", "o")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Head with latency 1h and a 30ms deadline: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Head returned after %v", d)
	}
}

func TestShared(t *testing.T) {
	a, b := Shared("test-shared-a"), Shared("test-shared-b")
	if a != Shared("test-shared-a") {
		t.Fatal("Shared returned two stores for one name")
	}
	if a == b {
		t.Fatal("Shared returned one store for two names")
	}
	mustCreate(t, a, "c")
	mustPut(t, a, "c", "o", []byte("kept"), nil)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, Shared("test-shared-a"), "c", "o", nil); string(got) != "kept" {
		t.Fatalf("after Close, shared data = %q", got)
	}
	if _, err := b.Head(ctx, "c", "o"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("other shared store sees the object: %v", err)
	}
}

func TestClose(t *testing.T) {
	s := New()
	mustCreate(t, s, "c")
	mustPut(t, s, "c", "o", []byte("data"), nil)
	rc, _, err := s.Get(ctx, "c", "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := s.Changed("c", "o")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-ch:
	default:
		t.Error("Changed channel still open after Close")
	}
	if got, err := io.ReadAll(rc); err != nil || string(got) != "data" {
		t.Errorf("reader opened before Close: %q, %v", got, err)
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 1)); err == nil {
		t.Error("Read after Close succeeded")
	}
	if _, err := s.Head(ctx, "c", "o"); !errors.Is(err, ErrClosed) {
		t.Errorf("Head after Close: %v", err)
	}
	if _, err := s.Put(ctx, "c", "p", strings.NewReader("x"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	if _, err := s.ListContainers(ctx, backend.ListOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("ListContainers after Close: %v", err)
	}
	select {
	case <-s.Changed("c", "o"):
	default:
		t.Error("Changed on a closed store returned an open channel")
	}
}

// unknownLength hides a reader's concrete type.
type unknownLength struct{ io.Reader }

func TestChunking(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	sizes := []int{0, 1, 511, 512, 513, 4096, chunkSize - 1, chunkSize, chunkSize + 1, 2*chunkSize + chunkSize/2, 3 * chunkSize}
	readers := map[string]func([]byte) io.Reader{
		"bytes":   func(b []byte) io.Reader { return bytes.NewReader(b) },
		"unknown": func(b []byte) io.Reader { return unknownLength{bytes.NewReader(b)} },
		"half":    func(b []byte) io.Reader { return iotest.HalfReader(unknownLength{bytes.NewReader(b)}) },
		"buffer":  func(b []byte) io.Reader { return bytes.NewBuffer(bytes.Clone(b)) },
		"eof":     func(b []byte) io.Reader { return iotest.DataErrReader(unknownLength{bytes.NewReader(b)}) },
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for kind, mk := range readers {
			name := fmt.Sprintf("%s-%d", kind, size)
			info, err := s.Put(ctx, "c", name, mk(data), nil)
			if err != nil {
				t.Fatalf("Put %s: %v", name, err)
			}
			if info.Size != int64(size) {
				t.Fatalf("Put %s: Size %d", name, info.Size)
			}
			if got := read(t, s, "c", name, nil); !bytes.Equal(got, data) {
				t.Fatalf("Get %s: content differs", name)
			}
			// Storage layout: full chunks, then a last one without much
			// unused room.
			o := s.containers["c"].objects[name]
			total := 0
			for i, ch := range o.chunks {
				total += len(ch)
				if i < len(o.chunks)-1 && len(ch) != chunkSize {
					t.Errorf("%s: chunk %d of %d holds %d bytes", name, i, len(o.chunks), len(ch))
				}
				if len(ch) == 0 {
					t.Errorf("%s: empty chunk %d", name, i)
				}
				if waste := cap(ch) - len(ch); waste > probeSize && waste > len(ch)/4 {
					t.Errorf("%s: chunk %d uses %d of %d bytes", name, i, len(ch), cap(ch))
				}
			}
			if total != size {
				t.Errorf("%s: chunks hold %d bytes", name, total)
			}
			// Ranges across chunk boundaries, read both ways.
			for range 5 {
				if size == 0 {
					break
				}
				off := rng.IntN(size)
				n := rng.IntN(size-off) + 1
				opts := &backend.GetOptions{Offset: int64(off), Length: int64(n)}
				if got := read(t, s, "c", name, opts); !bytes.Equal(got, data[off:off+n]) {
					t.Fatalf("Get %s %+v: content differs", name, *opts)
				}
				rc, _, _ := s.Get(ctx, "c", name, opts)
				var buf bytes.Buffer
				if _, err := rc.(io.WriterTo).WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), data[off:off+n]) {
					t.Fatalf("WriteTo %s %+v: %v or content differs", name, *opts, err)
				}
				rc.Close()
			}
		}
	}
}

func TestRangeErrors(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	mustPut(t, s, "c", "ten", []byte("0123456789"), nil)
	mustPut(t, s, "c", "empty", nil, nil)
	for _, tc := range []struct {
		name string
		opts backend.GetOptions
		err  error
	}{
		{"ten", backend.GetOptions{Offset: 10}, backend.ErrInvalid},
		{"ten", backend.GetOptions{Offset: 11}, backend.ErrInvalid},
		{"ten", backend.GetOptions{Offset: -1}, backend.ErrInvalid},
		{"ten", backend.GetOptions{Length: -1}, backend.ErrInvalid},
		{"ten", backend.GetOptions{Offset: 9}, nil},
		{"empty", backend.GetOptions{}, nil},
		{"empty", backend.GetOptions{Length: 5}, nil},
		{"empty", backend.GetOptions{Offset: 1}, backend.ErrInvalid},
	} {
		rc, _, err := s.Get(ctx, "c", tc.name, &tc.opts)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Get(%s, %+v): %v, want %v", tc.name, tc.opts, err, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tc.name+`"`) {
			t.Errorf("error %q does not name the object", err)
		}
	}
}

func TestReaderSnapshot(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	mustPut(t, s, "c", "o", []byte("old content"), nil)
	rc, _, err := s.Get(ctx, "c", "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	mustPut(t, s, "c", "o", []byte("new"), nil)
	if err := s.Delete(ctx, "c", "o"); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(rc); string(got) != "old content" {
		t.Fatalf("reader opened before an overwrite and a delete read %q", got)
	}
}

func TestReaderHonoursContext(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	mustPut(t, s, "c", "o", []byte("data"), nil)
	cctx, cancel := context.WithCancel(ctx)
	rc, _, err := s.Get(cctx, "c", "o", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := rc.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", err)
	}
}

func TestMetadataLimits(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	keys := func(n int) map[string]string {
		m := make(map[string]string)
		for i := range n {
			m[fmt.Sprintf("k%03d", i)] = "v"
		}
		return m
	}
	total := func(size int) map[string]string {
		// 16 keys "kNN-" of 4 bytes plus values.
		m := make(map[string]string)
		for i := 0; size > 0; i++ {
			v := min(size-4, 250)
			m[fmt.Sprintf("k%02d-", i)] = strings.Repeat("v", v)
			size -= 4 + v
		}
		return m
	}
	for _, tc := range []struct {
		what string
		meta map[string]string
		ok   bool
	}{
		{"90 keys", keys(90), true},
		{"91 keys", keys(91), false},
		{"256-byte value", map[string]string{"a": strings.Repeat("v", 256)}, true},
		{"257-byte value", map[string]string{"a": strings.Repeat("v", 257)}, false},
		{"128-byte key", map[string]string{strings.Repeat("k", 128): "v"}, true},
		{"129-byte key", map[string]string{strings.Repeat("k", 129): "v"}, false},
		{"4096 bytes", total(4096), true},
		{"4097 bytes", total(4097), false},
		{"upper case", map[string]string{"A": "v"}, false},
		{"dot", map[string]string{"a.b": "v"}, false},
		{"newline", map[string]string{"a": "x\ny"}, false},
		{"NUL", map[string]string{"a": "x\x00"}, false},
		{"invalid UTF-8", map[string]string{"a": "\xff"}, false},
		{"empty value", map[string]string{"a": ""}, true},
	} {
		_, err := s.Put(ctx, "c", "o", strings.NewReader("x"), &backend.PutOptions{Metadata: tc.meta})
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Put with %s: %v", tc.what, err)
		}
	}
	// The store keeps its own copy of the metadata.
	meta := map[string]string{"a": "1"}
	mustPut(t, s, "c", "m", nil, &backend.PutOptions{Metadata: meta})
	meta["a"] = "2"
	if h, _ := s.Head(ctx, "c", "m"); h.Metadata["a"] != "1" {
		t.Errorf("metadata changed with the caller's map: %v", h.Metadata)
	}
}

func TestListLimits(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	for i := range backend.MaxListLimit + 5 {
		mustPut(t, s, "c", fmt.Sprintf("o%06d", i), nil, nil)
	}
	for _, limit := range []int{0, backend.MaxListLimit, backend.MaxListLimit + 1, 1 << 30} {
		if n := len(listNames(t, s, "c", backend.ListOptions{Limit: limit})); n != backend.MaxListLimit {
			t.Errorf("List with Limit %d: %d entries, want %d", limit, n, backend.MaxListLimit)
		}
	}
	if _, err := s.List(ctx, "c", backend.ListOptions{Limit: -1}); !errors.Is(err, backend.ErrInvalid) {
		t.Errorf("negative Limit: %v", err)
	}
	for _, d := range []string{"//", "ab", "\x00", "\u0100"} {
		if _, err := s.List(ctx, "c", backend.ListOptions{Delimiter: d}); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("delimiter %q: %v", d, err)
		}
	}
	if got := listNames(t, s, "c", backend.ListOptions{Delimiter: "\u00e9"}); len(got) != backend.MaxListLimit {
		t.Errorf("delimiter é: %d entries", len(got))
	}
}

// TestIndex checks the block index against a sorted slice under random
// inserts, overwrites and removals, across block splits and merges.
func TestIndex(t *testing.T) {
	var x index
	ref := map[string]bool{}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func() {
		t.Helper()
		var names []string
		for p := (pos{}); x.at(p) != nil; p = x.next(p) {
			names = append(names, x.at(p).name)
		}
		if len(names) != len(ref) || x.len() != len(ref) {
			t.Fatalf("index holds %d (len %d), want %d", len(names), x.len(), len(ref))
		}
		for i, n := range names {
			if !ref[n] || i > 0 && names[i-1] >= n {
				t.Fatalf("index order broken at %d: %q", i, n)
			}
		}
		for bi, b := range x.blocks {
			if len(b) == 0 || len(b) > maxBlock {
				t.Fatalf("block %d has %d entries", bi, len(b))
			}
		}
	}
	for round := range 20000 {
		n := fmt.Sprintf("%05d", rng.IntN(5000))
		if rng.IntN(3) == 0 {
			if x.remove(n) != ref[n] {
				t.Fatalf("remove(%q) disagrees", n)
			}
			delete(ref, n)
		} else {
			x.put(&object{name: n})
			ref[n] = true
		}
		if round%2000 == 0 {
			check()
		}
	}
	check()
	for n := range ref {
		x.remove(n)
	}
	if x.len() != 0 || len(x.blocks) != 0 {
		t.Fatalf("emptied index: len %d, %d blocks", x.len(), len(x.blocks))
	}
}

func TestExpiry(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	ch := s.Changed("c", "e")
	dirCh := s.Changed("c", "dir/")
	mustPut(t, s, "c", "e", []byte("x"), &backend.PutOptions{DeleteAfter: 50 * time.Millisecond})
	<-ch // the Put itself
	ch = s.Changed("c", "e")
	mustPut(t, s, "c", "dir/e", []byte("x"), &backend.PutOptions{DeleteAfter: 60 * time.Millisecond})
	<-dirCh
	dirCh = s.Changed("c", "dir/")
	mustPut(t, s, "c", "long", []byte("x"), &backend.PutOptions{DeleteAfter: time.Hour})
	mustPut(t, s, "c", "later-deleted", []byte("x"), &backend.PutOptions{DeleteAfter: 40 * time.Millisecond})
	if err := s.Delete(ctx, "c", "later-deleted"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Head(ctx, "c", "e"); err != nil {
		t.Fatalf("Head before expiry: %v", err)
	}
	// Expiry alone (no other call) closes the channels.
	for _, c := range []<-chan struct{}{ch, dirCh} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("expiry did not close the Changed channel")
		}
	}
	if _, err := s.Head(ctx, "c", "e"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Head after expiry: %v", err)
	}
	if err := s.Delete(ctx, "c", "e"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Delete after expiry: %v", err)
	}
	if got := listNames(t, s, "c", backend.ListOptions{}); fmt.Sprint(got) != "[long]" {
		t.Fatalf("List after expiry = %q", got)
	}
	s.mu.RLock()
	n := len(s.containers["c"].objects)
	s.mu.RUnlock()
	if n != 1 {
		t.Errorf("%d objects stored after expiry, want 1 (purged)", n)
	}
	// An object expiring while unpurged is gone for every call at once.
	mustPut(t, s, "c", "now", []byte("x"), &backend.PutOptions{DeleteAfter: time.Nanosecond})
	if _, err := s.Head(ctx, "c", "now"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Head after a 1ns expiry: %v", err)
	}
	mustPut(t, s, "c", "now", []byte("y"), &backend.PutOptions{CreateOnly: true})
}

func TestNotifierScalesWithDepthNotWatchers(t *testing.T) {
	s := New()
	defer s.Close()
	mustCreate(t, s, "c")
	var chans []<-chan struct{}
	for i := range 10000 {
		chans = append(chans, s.Changed("c", fmt.Sprintf("w%d", i)))
	}
	a, ab, abc, other := s.Changed("c", "a/"), s.Changed("c", "a/b/"), s.Changed("c", "a/b/c"), s.Changed("c", "a/x/")
	mustPut(t, s, "c", "a/b/c", nil, nil)
	for _, ch := range []<-chan struct{}{a, ab, abc} {
		select {
		case <-ch:
		default:
			t.Fatal("watcher of the name or a prefix not woken")
		}
	}
	for _, ch := range append(chans, other) {
		select {
		case <-ch:
			t.Fatal("unrelated watcher woken")
		default:
		}
	}
	if n := s.watch.Len(); n != 10001 {
		t.Errorf("%d registered keys, want 10001", n)
	}
	allocs := testing.AllocsPerRun(100, func() { s.watch.Notify("c", "a/b/c/d/e") })
	if allocs != 0 {
		t.Errorf("notify allocates %v times", allocs)
	}
}

func TestConcurrentMixed(t *testing.T) {
	s := New(WithListLag(time.Millisecond))
	defer s.Close()
	mustCreate(t, s, "c")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				name := fmt.Sprintf("k%d", (g*7+i)%50)
				switch i % 6 {
				case 0, 1:
					s.Put(ctx, "c", name, strings.NewReader(name), &backend.PutOptions{CreateOnly: i%2 == 0})
				case 2:
					if rc, _, err := s.Get(ctx, "c", name, nil); err == nil {
						data, _ := io.ReadAll(rc)
						rc.Close()
						if string(data) != name {
							t.Errorf("Get(%q) = %q", name, data)
						}
					}
				case 3:
					s.Delete(ctx, "c", name)
				case 4:
					s.List(ctx, "c", backend.ListOptions{Prefix: "k1", Delimiter: "/"})
				case 5:
					<-s.Changed("c", name)
				}
			}
		}()
	}
	// Keep changing so that no watcher waits forever.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range 50 {
				s.Put(ctx, "c", fmt.Sprintf("k%d", i), strings.NewReader(fmt.Sprintf("k%d", i)), nil)
			}
		}
	}()
	wg.Wait()
	close(stop)
}
