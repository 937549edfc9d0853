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
	// The first Put starts the refill and may take one of its first
	// spares; the pool is refilled again only once down to spareLow.
	deadline := time.Now().Add(10 * time.Second)
	for len(spareInodes(t, s.spare.dir)) < spareTarget-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares after 10 s, want %d or %d", len(spareInodes(t, s.spare.dir)), spareTarget-1, spareTarget)
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

// fillSpares waits until s's pool is full.
func fillSpares(t *testing.T, s *Store) {
	t.Helper()
	s.spare.wake()
	// The first Put starts the refill and may take one of its first
	// spares; the pool is refilled again only once down to spareLow.
	deadline := time.Now().Add(10 * time.Second)
	for len(spareInodes(t, s.spare.dir)) < spareTarget-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares after 10 s, want %d or %d", len(spareInodes(t, s.spare.dir)), spareTarget-1, spareTarget)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A take into a directory that is gone (a container deleted meanwhile)
// gives up at once and leaves the spares, instead of taking every spare
// for taken.
func TestSpareTakeIntoMissingDirectory(t *testing.T) {
	s := withSpares(t, t.TempDir())
	fillSpares(t, s)
	done := make(chan bool)
	go func() { done <- s.spare.take(s.tmp + "/gone/journal") }()
	select {
	case took := <-done:
		if took {
			t.Fatal("take into a missing directory reported success")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("take into a missing directory did not return")
	}
	if n := len(spareInodes(t, s.spare.dir)); n != spareTarget {
		t.Fatalf("%d spares left, want %d", n, spareTarget)
	}
}

// A spare made long ago becomes a file that is new: cleanTmp, which takes
// files in DIR/tmp unwritten for staleTmp for a crashed Put's, must not
// take a Put's file for one before its first write.
func TestOldSpareIsNew(t *testing.T) {
	s := withSpares(t, t.TempDir())
	fillSpares(t, s)
	names, _ := readNames(s.spare.dir)
	old := time.Now().Add(-2 * staleTmp)
	for _, n := range names {
		if err := os.Chtimes(s.spare.dir+"/"+n, old, old); err != nil {
			t.Fatal(err)
		}
	}
	spares := spareInodes(t, s.spare.dir)
	path := s.tempName("put")
	f, err := s.createFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(changed(fi)); age > time.Minute {
		t.Fatalf("a file made from a spare is %v old", age)
	}
	if !spares[fi.Sys().(*syscall.Stat_t).Ino] {
		t.Fatal("the file was not made from a spare")
	}
	s.cleanTmp()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("cleanTmp removed a Put's file made from an old spare: %v", err)
	}
}

// readNames returns the names in dir.
func readNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, err
}
