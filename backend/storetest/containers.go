package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/rackfork/rack/backend"
)

// listContainersEventually polls until ListContainers(opts) returns want.
func listContainersEventually(t *testing.T, f *fixture, opts backend.ListOptions, want []string) {
	t.Helper()
	eventually(t, f.ctx, fmt.Sprintf("ListContainers(%+v)", opts), func() error {
		page, err := f.store.ListContainers(f.ctx, opts)
		if err != nil {
			return stop("ListContainers(%+v): %v", opts, err)
		}
		if err := checkPage(page, opts, opts.Limit); err != nil {
			return err
		}
		got := make([]string, len(page))
		for i, c := range page {
			got[i] = c.Name
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
}

func testContainers(t *testing.T, f *fixture) {
	a, b := f.name("a"), f.name("b")
	f.create(t, a)
	if err := f.store.CreateContainer(f.ctx, a); err != nil {
		t.Fatalf("CreateContainer of an existing container: %v", err)
	}
	f.create(t, b)
	listContainersEventually(t, f, backend.ListOptions{Prefix: f.prefix}, []string{a, b})
	listContainersEventually(t, f, backend.ListOptions{Prefix: f.prefix, Limit: 1}, []string{a})
	listContainersEventually(t, f, backend.ListOptions{Prefix: f.prefix, Limit: 1, Marker: a}, []string{b})
	listContainersEventually(t, f, backend.ListOptions{Prefix: f.prefix, Marker: b}, nil)

	// A new container is empty.
	page, err := f.store.List(f.ctx, a, backend.ListOptions{})
	if err != nil || len(page) != 0 {
		t.Fatalf("List of a new container = %v, %v; want no entries", page, err)
	}

	// A container that holds an object cannot be deleted.
	f.put(t, a, "obj", []byte("x"), nil)
	listEventually(t, f, a, backend.ListOptions{}, objs("obj"))
	wantErr(t, f.store.DeleteContainer(f.ctx, a), backend.ErrExist, "DeleteContainer of a non-empty container")
	f.wantContent(t, a, "obj", []byte("x"))

	// Once emptied, it can (the container's own count may lag).
	if err := f.store.Delete(f.ctx, a, "obj"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	eventually(t, f.ctx, "DeleteContainer of an emptied container", func() error {
		err := f.store.DeleteContainer(f.ctx, a)
		if err != nil && !errors.Is(err, backend.ErrExist) {
			return stop("%v", err)
		}
		return err
	})
	wantErr(t, f.store.DeleteContainer(f.ctx, a), backend.ErrNotFound, "second DeleteContainer")
	listContainersEventually(t, f, backend.ListOptions{Prefix: f.prefix}, []string{b})

	if err := f.store.DeleteContainer(f.ctx, b); err != nil {
		t.Fatalf("DeleteContainer of an empty container: %v", err)
	}
	listContainersEventually(t, f, backend.ListOptions{Prefix: f.prefix}, nil)
}
