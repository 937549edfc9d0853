package rack_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/backend/osproc"
	"github.com/rackfork/rack/internal/record"
)

// zeros reads n zero bytes without holding them, so that writing a huge
// object costs the test no buffer of its size.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	m := int(min(int64(len(p)), z.n))
	clear(p[:m])
	z.n -= int64(m)
	return m, nil
}

// hideSize is a store whose Get does not say how large an object is (as
// a Swift response without Content-Length), so the reader cannot refuse a
// huge record before reading it.
type hideSize struct{ backend.Store }

func (s hideSize) Get(ctx context.Context, c, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, c, n, o)
	info.Size = 0
	return rc, info, err
}

// TestHugeRecord puts a 128 MiB object in place of a process record and
// checks that ps, a process handle (what Wait uses) and gc each fail with
// an error naming it, while the heap allocated during each call (TotalAlloc,
// which counts every allocation, freed or not) stays within the record
// size limit, plus slack for the call's own bookkeeping: the reader never
// holds the object. Where the store gives the size, nothing of it is read;
// where it does not, the limit's worth is.
func TestHugeRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(backend.Store) backend.Store
	}{
		{"sized", func(s backend.Store) backend.Store { return s }},
		{"unsized", func(s backend.Store) backend.Store { return hideSize{s} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			store := mem.New()
			opts := []rack.Option{rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard), rack.WithNamespace("huge")}
			forker, err := rack.New(ctx, tc.wrap(store), inproc.New(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer forker.Close()
			p, err := forker.Start(ctx, rack.Spec{Name: "victim"}, func(context.Context, *rack.Self) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			const huge = 128 << 20
			const slack = 256 << 10 // ps and gc of a one-process namespace, and the kernels' timers
			key := record.ProcKey(int64(p.PID()))
			if _, err := store.Put(ctx, "huge", key, &zeros{huge}, nil); err != nil {
				t.Fatal(err)
			}
			reader, err := rack.New(ctx, tc.wrap(store), inproc.New(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			for _, c := range []struct {
				what string
				call func() error
			}{
				{"ps", func() error { _, err := reader.Processes(ctx); return err }},
				{"process", func() error { _, err := reader.Process(ctx, p.PID()); return err }},
				{"gc", func() error { _, err := reader.GC(ctx, nil); return err }},
			} {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				err := c.call()
				runtime.ReadMemStats(&after)
				grew := after.TotalAlloc - before.TotalAlloc
				t.Logf("%s: allocated %d KiB: %v", c.what, grew>>10, err)
				if !errors.Is(err, record.ErrCorrupt) || !strings.Contains(err.Error(), key) {
					t.Errorf("%s: err = %v, want a corrupt-record error naming %s", c.what, err, key)
				}
				if grew > record.MaxSize+slack {
					t.Errorf("%s: allocated %d bytes reading a %d-byte record, over the %d-byte limit", c.what, grew, huge, record.MaxSize)
				}
			}
		})
	}
}

// TestChildURLWithoutPassword: a compute that starts new programs gives
// them the namespace's URL in their environment, so New refuses one that
// holds a password (and does not repeat it).
func TestChildURLWithoutPassword(t *testing.T) {
	compute, err := osproc.New()
	if err != nil {
		t.Fatal(err)
	}
	defer compute.Close()
	_, err = rack.New(context.Background(), mem.New(), compute, rack.WithURL("swift+v1://u:s3cret@h/ns"),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if !errors.Is(err, rack.ErrInvalid) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("New with a keyed child URL: %v, want ErrInvalid without the key", err)
	}
}

// TestGCNamespacesMarked: gc -a (GCOptions.Namespaces) collects a dead
// namespace, which carries the marker its first kernel wrote, and leaves
// alone a container without one, even one that holds a pids/ object and
// has no lease; a namespace made before markers gets one when a kernel
// opens it.
func TestGCNamespacesMarked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	storeName := "gc-marked-" + strings.ReplaceAll(t.Name(), "/", "-")
	store := mem.Shared(storeName)
	open := func(ns string) *rack.Kernel {
		k, err := rack.Open(ctx, "mem://"+storeName, rack.WithNamespace(ns), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	// A dead namespace: its only kernel ran a process and closed.
	dead := open("dead")
	runAndClose(t, ctx, dead)
	if _, err := store.Head(ctx, "dead", record.NamespaceMarker); err != nil {
		t.Fatalf("namespace marker: %v", err)
	}
	// An unrelated container that looks like a namespace without a lease.
	put := func(c, name string) {
		t.Helper()
		if _, err := store.Put(ctx, c, name, strings.NewReader("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"unrelated", "legacy"} {
		if err := store.CreateContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
		put(c, record.PIDKey(1))
		put(c, "precious")
	}
	// A namespace older than markers: a kernel opening it marks it.
	legacy := open("legacy")
	legacy.Close()

	gc := open("collector")
	defer gc.Close()
	rep, err := gc.GC(ctx, &rack.GCOptions{Namespaces: true, NamespaceQuiet: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rep.DeadNamespaces)
	if !slices.Equal(rep.DeadNamespaces, []string{"dead", "legacy"}) {
		t.Errorf("dead namespaces %q, want [dead legacy]", rep.DeadNamespaces)
	}
	for _, name := range []string{record.PIDKey(1), "precious"} {
		if _, err := store.Head(ctx, "unrelated", name); err != nil {
			t.Errorf("unmarked container: %s: %v", name, err)
		}
	}
	if objs, err := store.List(ctx, "dead", backend.ListOptions{}); !errors.Is(err, backend.ErrNotFound) && len(objs) > 0 {
		t.Errorf("dead namespace left: %d objects, %v", len(objs), err)
	}
}

// lateWrite writes one object into a container just as its first delete
// is asked for: an object written after gc listed the container.
type lateWrite struct {
	backend.Store
	once sync.Once
}

func (s *lateWrite) DeleteContainer(ctx context.Context, c string) error {
	s.once.Do(func() { s.Store.Put(ctx, c, "late", strings.NewReader("x"), nil) })
	return s.Store.DeleteContainer(ctx, c)
}

// TestGCNamespaceContainerKept: when a dead namespace's container cannot
// be deleted after gc deleted the objects it listed (one was written since
// the listing), gc puts the namespace's marker back, and a later pass
// removes the rest and the container. It deleted the marker with the
// rest, and no pass knew the container for a namespace's again: it stayed
// forever. (A store that says "not empty" for a moment after the last
// deletes, as Swift does, is tried again for a few seconds first.)
func TestGCNamespaceContainerKept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "gc-kept-" + t.Name()
	store := &lateWrite{Store: mem.Shared(name)}
	dead, err := rack.New(ctx, mem.Shared(name), inproc.New(), rack.WithNamespace("dead"), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	runAndClose(t, ctx, dead)
	gc, err := rack.New(ctx, store, inproc.New(), rack.WithNamespace("collector"), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	for pass := 1; pass <= 2; pass++ {
		rep, err := gc.GC(ctx, &rack.GCOptions{Namespaces: true, NamespaceQuiet: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.DeadNamespaces, []string{"dead"}) {
			t.Fatalf("pass %d: dead namespaces %q, want [dead]", pass, rep.DeadNamespaces)
		}
		objs, err := store.List(ctx, "dead", backend.ListOptions{})
		switch {
		case pass == 1 && (err != nil || len(objs) != 2 || objs[0].Name != "late" || objs[1].Name != record.NamespaceMarker):
			t.Fatalf("after a pass that found an object written since its listing: %v, %v; want it and the marker", objs, err)
		case pass == 2 && !errors.Is(err, backend.ErrNotFound):
			t.Fatalf("after the second pass: %v, %v; want the container gone", objs, err)
		}
	}
}

// runAndClose runs a process on k that ends at once, and closes k: its
// namespace is dead.
func runAndClose(t *testing.T, ctx context.Context, k *rack.Kernel) {
	t.Helper()
	p, err := k.Start(ctx, rack.Spec{Name: "p"}, func(context.Context, *rack.Self) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	k.Close()
}
