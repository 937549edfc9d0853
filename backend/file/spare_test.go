package file

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// withSpares opens a store in dir that uses spares whatever the file
// system, and is old enough to refill them at once.
func withSpares(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(dir, WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.spare.off = false
	s.spare.born = time.Now().Add(-time.Hour)
	return s
}

func spareInodes(t *testing.T, dir string) map[uint64]bool {
	t.Helper()
	names, err := readNames(dir)
	if err != nil && !os.IsNotExist(err) { // made by the first refill
		t.Fatal(err)
	}
	inos := make(map[uint64]bool)
	for _, n := range names {
		if fi, err := os.Stat(dir + "/" + n); err == nil {
			inos[fi.Sys().(*syscall.Stat_t).Ino] = true
		}
	}
	return inos
}

// A Put takes a spare file (the object is one of the inodes that were
// spares) and the pool is refilled to spareTarget.
func TestSparesTakenAndRefilled(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := withSpares(t, dir)
	if err := s.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "c", "first", bytes.NewReader([]byte("1")), nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(spareInodes(t, s.spare.dir)) < spareTarget {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares after 10 s, want %d", len(spareInodes(t, s.spare.dir)), spareTarget)
		}
		time.Sleep(5 * time.Millisecond)
	}
	spares := spareInodes(t, s.spare.dir)
	s.spare.mu.Lock()
	s.spare.names, s.spare.empty = nil, time.Time{} // look again
	s.spare.mu.Unlock()
	if _, err := s.Put(ctx, "c", "second", bytes.NewReader([]byte("2")), &backend.PutOptions{CreateOnly: true}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(objectPath(s.containerPath("c"), "second"))
	if err != nil {
		t.Fatal(err)
	}
	if !spares[fi.Sys().(*syscall.Stat_t).Ino] {
		t.Fatalf("the object's inode %d was not a spare", fi.Sys().(*syscall.Stat_t).Ino)
	}
	rc, _, err := s.Get(ctx, "c", "second", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "2" {
		t.Fatalf("second holds %q, want %q", got, "2")
	}
}

// Stores in one directory taking spares at once never share one: every
// object holds exactly what was put.
func TestSparesNeverShared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := withSpares(t, dir), withSpares(t, dir)
	if err := a.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				name := fmt.Sprintf("g%d-%d", g, i)
				if _, err := s.Put(ctx, "c", name, bytes.NewReader([]byte(name)), &backend.PutOptions{CreateOnly: true}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := range 16 {
		for i := range 40 {
			name := fmt.Sprintf("g%d-%d", g, i)
			rc, _, err := a.Get(ctx, "c", name, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if string(got) != name {
				t.Fatalf("%s holds %q", name, got)
			}
		}
	}
}
