package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rackfork/rack/backend"
)

// putAll stores every name (content: the name) using a few goroutines.
func (f *fixture) putAll(t *testing.T, c string, names []string) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan string)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				if _, err := f.store.Put(f.ctx, c, n, strings.NewReader(n), nil); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("Put(%q, %q): %w", c, n, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		next <- n
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func testList(t *testing.T, f *fixture) {
	c := f.container(t)
	names := []string{"a", "b/1", "b/2", "b/c/3", "b0", "c", "d/4", "d/e/5"}
	f.putAll(t, c, names)

	// Everything, then checks of the entries themselves.
	listEventually(t, f, c, backend.ListOptions{}, objs(names...))
	page, err := f.store.List(f.ctx, c, backend.ListOptions{Prefix: "b/1"})
	if err != nil || len(page) != 1 {
		t.Fatalf("List(Prefix b/1) = %v, %v", page, err)
	}
	checkInfo(t, "List", page[0], "b/1", []byte("b/1"))
	if page[0].Metadata != nil {
		t.Errorf("List entry has Metadata %v", page[0].Metadata)
	}

	for _, tc := range []struct {
		opts backend.ListOptions
		want []entry
	}{
		{backend.ListOptions{Prefix: "b/"}, objs("b/1", "b/2", "b/c/3")},
		{backend.ListOptions{Prefix: "b"}, objs("b/1", "b/2", "b/c/3", "b0")},
		{backend.ListOptions{Prefix: "zz"}, nil},
		{backend.ListOptions{Delimiter: "/"}, concat(objs("a"), dirs("b/"), objs("b0", "c"), dirs("d/"))},
		{backend.ListOptions{Prefix: "b/", Delimiter: "/"}, concat(objs("b/1", "b/2"), dirs("b/c/"))},
		{backend.ListOptions{Prefix: "d/", Delimiter: "/"}, concat(objs("d/4"), dirs("d/e/"))},
		{backend.ListOptions{Prefix: "d/e/", Delimiter: "/"}, objs("d/e/5")},
		{backend.ListOptions{Marker: "b/1"}, objs("b/2", "b/c/3", "b0", "c", "d/4", "d/e/5")},
		{backend.ListOptions{Marker: "b/1", Prefix: "b/"}, objs("b/2", "b/c/3")},
		{backend.ListOptions{Marker: "a0"}, objs("b/1", "b/2", "b/c/3", "b0", "c", "d/4", "d/e/5")},
		{backend.ListOptions{Marker: "d/e/5"}, nil},
		{backend.ListOptions{Marker: "zzz"}, nil},
		{backend.ListOptions{Limit: 2}, objs("a", "b/1")},
		{backend.ListOptions{Limit: 2, Marker: "b/1"}, objs("b/2", "b/c/3")},
		{backend.ListOptions{Limit: 3, Delimiter: "/"}, concat(objs("a"), dirs("b/"), objs("b0"))},
		{backend.ListOptions{Limit: 1, Prefix: "b/", Delimiter: "/", Marker: "b/2"}, dirs("b/c/")},
		{backend.ListOptions{Limit: 100}, objs(names...)},
	} {
		listEventually(t, f, c, tc.opts, tc.want)
	}
}

func testListPaging(t *testing.T, f *fixture) {
	c := f.container(t)
	const n = 250
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("obj-%04d", i)
	}
	f.putAll(t, c, names)
	for _, limit := range []int{100, 7} {
		opts := backend.ListOptions{Limit: limit}
		eventually(t, f.ctx, fmt.Sprintf("paging with Limit %d", limit), func() error {
			all, err := listAll(f.ctx, f.store, c, opts)
			if err != nil {
				return err
			}
			got := make([]string, len(all))
			for i, o := range all {
				got[i] = o.Name
			}
			if !slices.Equal(got, names) {
				return fmt.Errorf("collected %d names (first %q), want the %d put, each once, in byte order", len(got), got[:min(5, len(got))], n)
			}
			return nil
		})
	}
	// Pages of exactly Limit entries, and a short last one.
	listEventually(t, f, c, backend.ListOptions{Limit: 100, Marker: names[199]}, objs(names[200:]...))
	listEventually(t, f, c, backend.ListOptions{Limit: 100, Marker: names[99]}, objs(names[100:200]...))
}

func testListDelimiterPaging(t *testing.T, f *fixture) {
	c := f.container(t)
	names := []string{"d0/a", "d0/b", "d1/a", "d2/a", "d2/b/c", "f0", "f1", "g", "h/x"}
	f.putAll(t, c, names)
	want := concat(dirs("d0/", "d1/", "d2/"), objs("f0", "f1", "g"), dirs("h/"))
	for _, limit := range []int{1, 2, 4} {
		opts := backend.ListOptions{Delimiter: "/", Limit: limit}
		eventually(t, f.ctx, fmt.Sprintf("paging with Delimiter / and Limit %d", limit), func() error {
			all, err := listAll(f.ctx, f.store, c, opts)
			if err != nil {
				return err
			}
			if got := entries(all); !equalEntries(got, want) {
				return fmt.Errorf("collected %s, want %s (each subdir once)", formatEntries(got), formatEntries(want))
			}
			return nil
		})
	}
}
