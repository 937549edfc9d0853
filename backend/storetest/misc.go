package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

func testNames(t *testing.T, f *fixture) {
	c := f.container(t)
	names := []string{
		"with space",
		"  leading and trailing spaces  ",
		"unicode-é-漢字-🙂",
		"a/b/c",
		"trailing/",
		"a//double-slash",
		"100%",
		"%2F-not-a-slash",
		"what?",
		"what?x=1&y=2",
		"hash#tag",
		"plus+and=equals;semi",
		"quote\"'`",
		"tilde~bang!star*",
		"brackets[]{}()<>",
		"back\\slash",
		"tab\tcontrol",
		"dots/./and/../not-normalised",
		strings.Repeat("n", 1024),
		"é" + strings.Repeat("x", 1022), // 1024 bytes
	}
	for _, n := range names {
		f.put(t, c, n, []byte("content of "+n), nil)
		f.wantContent(t, c, n, []byte("content of "+n))
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	listEventually(t, f, c, backend.ListOptions{Limit: 100}, objs(sorted...))
	for _, n := range names {
		if err := f.store.Delete(f.ctx, c, n); err != nil {
			t.Fatalf("Delete(%q): %v", n, err)
		}
		f.wantGone(t, c, n)
	}
	listEventually(t, f, c, backend.ListOptions{Limit: 100}, nil)
}

func testExpiry(t *testing.T, f *fixture) {
	c := f.container(t)
	const after = 2 * time.Second
	data := []byte("short-lived")
	put := time.Now()
	f.put(t, c, "ephemeral", data, &backend.PutOptions{DeleteAfter: after})
	f.put(t, c, "reprieved", data, &backend.PutOptions{DeleteAfter: after})
	f.put(t, c, "reprieved", data, nil) // a Put without DeleteAfter clears it
	f.put(t, c, "durable", data, nil)
	if time.Since(put) < after/2 {
		// Still well before expiry (on any reasonably fast store).
		f.wantContent(t, c, "ephemeral", data)
	}

	// Swift hides an object from GET and HEAD as soon as its X-Delete-At
	// passes; the expirer deletes it later. Allow for clock skew.
	eventually(t, f.ctx, "Get and Head of an expired object", func() error {
		rc, _, err := f.store.Get(f.ctx, c, "ephemeral", nil)
		if err == nil {
			rc.Close()
			return errors.New("a Get of the expired object still succeeds")
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return stop("Get: got %v, want an error wrapping %q", err, backend.ErrNotFound)
		}
		if _, err := f.store.Head(f.ctx, c, "ephemeral"); !errors.Is(err, backend.ErrNotFound) {
			return fmt.Errorf("a Head of the expired object: got %v, want an error wrapping %q", err, backend.ErrNotFound)
		}
		return nil
	})
	if d := time.Since(put); d < after/2 {
		t.Errorf("object put with DeleteAfter %v vanished after only %v", after, d)
	}
	f.wantContent(t, c, "durable", data)
	f.wantContent(t, c, "reprieved", data)
	// An expired name is free for a create-only Put.
	f.put(t, c, "ephemeral", []byte("reborn"), &backend.PutOptions{CreateOnly: true})
	f.wantContent(t, c, "ephemeral", []byte("reborn"))
	// The suite does not check listings: Swift lists an expired object
	// until its object-expirer runs, which may take minutes.
}

func testInvalidNames(t *testing.T, f *fixture) {
	c := f.container(t)
	for _, tc := range []struct{ what, name string }{
		{"empty", ""},
		{"1025 bytes", strings.Repeat("n", 1025)},
		{"invalid UTF-8", "bad-\xff\xfe"},
		{"NUL", "nul\x00byte"},
	} {
		_, err := f.store.Put(f.ctx, c, tc.name, strings.NewReader("x"), nil)
		wantErr(t, err, backend.ErrInvalid, "Put of an object name that is "+tc.what)
		if tc.name == "" {
			// Must not be sent as a request on the container itself.
			rc, _, err := f.store.Get(f.ctx, c, "", nil)
			if err == nil {
				rc.Close()
			}
			wantErr(t, err, backend.ErrInvalid, "Get of an empty object name")
			_, err = f.store.Head(f.ctx, c, "")
			wantErr(t, err, backend.ErrInvalid, "Head of an empty object name")
			wantErr(t, f.store.Delete(f.ctx, c, ""), backend.ErrInvalid, "Delete of an empty object name")
			continue
		}
		// Reads of such names either are refused or find nothing.
		if _, err := f.store.Head(f.ctx, c, tc.name); !errors.Is(err, backend.ErrInvalid) && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("Head of an object name that is %s: got %v, want an error wrapping %q or %q", tc.what, err, backend.ErrInvalid, backend.ErrNotFound)
		}
	}
	for _, tc := range []struct{ what, name string }{
		{"empty", ""},
		{"257 bytes", f.prefix + strings.Repeat("c", 257-len(f.prefix))},
		{"with a slash", f.prefix + "a/b"},
		{"invalid UTF-8", f.prefix + "\xff"},
	} {
		err := f.store.CreateContainer(f.ctx, tc.name)
		if err == nil {
			t.Cleanup(func() { removeContainer(t, f.store, tc.name) })
		}
		wantErr(t, err, backend.ErrInvalid, "CreateContainer of a name that is "+tc.what)
		_, err = f.store.Put(f.ctx, tc.name, "obj", strings.NewReader("x"), nil)
		wantErr(t, err, backend.ErrInvalid, "Put into a container whose name is "+tc.what)
	}
	// The longest valid names.
	long := f.prefix + strings.Repeat("c", 256-len(f.prefix))
	f.create(t, long)
	f.put(t, long, strings.Repeat("o", 1024), []byte("x"), nil)
	f.wantContent(t, long, strings.Repeat("o", 1024), []byte("x"))
}

func testInvalidMetadata(t *testing.T, f *fixture) {
	c := f.container(t)
	tooMany := make(map[string]string)
	for i := range 91 {
		tooMany[fmt.Sprintf("k%02d", i)] = "v"
	}
	tooBig := make(map[string]string)
	for i := range 20 {
		tooBig[fmt.Sprintf("k-%02d", i)] = strings.Repeat("v", 250) // 5080 bytes
	}
	for _, tc := range []struct {
		what string
		meta map[string]string
	}{
		{"an upper-case key", map[string]string{"Color": "blue"}},
		{"an underscore in a key", map[string]string{"a_b": "x"}},
		{"a space in a key", map[string]string{"a b": "x"}},
		{"an empty key", map[string]string{"": "x"}},
		{"91 keys", tooMany},
		{"a 257-byte value", map[string]string{"big": strings.Repeat("v", 257)}},
		{"more than 4 KiB in all", tooBig},
	} {
		_, err := f.store.Put(f.ctx, c, "obj", strings.NewReader("x"), &backend.PutOptions{Metadata: tc.meta})
		wantErr(t, err, backend.ErrInvalid, "Put with metadata with "+tc.what)
		f.wantGone(t, c, "obj")
	}
}

func testCancel(t *testing.T, f *fixture) {
	c := f.container(t)
	f.put(t, c, "obj", []byte("x"), nil)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	missing := f.name("never")
	calls := []struct {
		what string
		call func() error
	}{
		{"CreateContainer", func() error { return f.store.CreateContainer(ctx, missing) }},
		{"DeleteContainer", func() error { return f.store.DeleteContainer(ctx, c) }},
		{"ListContainers", func() error { _, err := f.store.ListContainers(ctx, backend.ListOptions{Prefix: f.prefix}); return err }},
		{"Put", func() error { _, err := f.store.Put(ctx, c, "new", strings.NewReader("x"), nil); return err }},
		{"Get", func() error {
			rc, _, err := f.store.Get(ctx, c, "obj", nil)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"Head", func() error { _, err := f.store.Head(ctx, c, "obj"); return err }},
		{"List", func() error { _, err := f.store.List(ctx, c, backend.ListOptions{}); return err }},
		{"Delete", func() error { return f.store.Delete(ctx, c, "obj") }},
	}
	for _, tc := range calls {
		done := make(chan error, 1)
		go func() { done <- tc.call() }()
		timer := time.NewTimer(10 * time.Second)
		select {
		case err := <-done:
			timer.Stop()
			wantErr(t, err, context.Canceled, tc.what+" with a cancelled context")
		case <-timer.C:
			t.Fatalf("%s with a cancelled context did not return within 10s", tc.what)
		}
	}
	// Nothing took effect.
	f.wantGone(t, c, "new")
	f.wantContent(t, c, "obj", []byte("x"))
	f.wantGone(t, missing, "obj")
}

// waitClosed fails the test unless ch is closed within ConsistencyTimeout.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(ConsistencyTimeout)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("Changed channel not closed %v after %s", ConsistencyTimeout, what)
	}
}

// wantOpen fails the test if ch is closed.
func wantOpen(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("Changed channel closed by %s", what)
	default:
	}
}

func testNotifier(t *testing.T, f *fixture) {
	n, ok := f.store.(backend.Notifier)
	if !ok {
		t.Skip("store does not implement backend.Notifier")
	}
	c, other := f.container(t), f.container(t)
	put := func(cont, name string) {
		t.Helper()
		if _, err := f.store.Put(f.ctx, cont, name, bytes.NewReader([]byte(name)), nil); err != nil {
			t.Fatalf("Put(%q, %q): %v", cont, name, err)
		}
	}
	del := func(cont, name string) {
		t.Helper()
		if err := f.store.Delete(f.ctx, cont, name); err != nil {
			t.Fatalf("Delete(%q, %q): %v", cont, name, err)
		}
	}

	// An exact key.
	ch := n.Changed(c, "key")
	ch2 := n.Changed(c, "key")
	wantOpen(t, ch, "nothing")
	put(c, "key/x")
	put(c, "keyx")
	put(c, "ke")
	put(other, "key")
	wantOpen(t, ch, "Puts of other names and of the key in another container")
	put(c, "key")
	waitClosed(t, ch, "a Put of the key")
	waitClosed(t, ch2, "a Put of the key (second watcher)")
	ch = n.Changed(c, "key")
	del(c, "keyx")
	wantOpen(t, ch, "a Delete of another name")
	del(c, "key")
	waitClosed(t, ch, "a Delete of the key")

	// A '/'-ended prefix.
	ch = n.Changed(c, "dir/")
	put(c, "dir")
	put(c, "dirx/y")
	put(c, "di")
	put(other, "dir/a")
	wantOpen(t, ch, "Puts of names outside the prefix")
	put(c, "dir/a")
	waitClosed(t, ch, "a Put of a name under the prefix")
	ch = n.Changed(c, "dir/")
	put(c, "dir/sub/deeper")
	waitClosed(t, ch, "a Put of a name deeper under the prefix")
	ch = n.Changed(c, "dir/")
	del(c, "dir/a")
	waitClosed(t, ch, "a Delete of a name under the prefix")
	ch = n.Changed(c, "dir/sub/")
	put(c, "dir/other")
	wantOpen(t, ch, "a Put of a name under the parent prefix only")
	del(c, "dir/sub/deeper")
	waitClosed(t, ch, "a Delete under a nested prefix")

	// The check-then-wait pattern does not miss a change made in between.
	ch = n.Changed(c, "late")
	f.wantGone(t, c, "late")
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.store.Put(f.ctx, c, "late", io.LimitReader(strings.NewReader("late"), 4), nil)
	}()
	waitClosed(t, ch, "a concurrent Put of the key")
	<-done
	f.wantContent(t, c, "late", []byte("late"))
}

// testPipeHints checks a backend.PipeHinter: its hints are within bounds,
// the same at every call, and a segment of the size it advises can be
// stored and read back whole.
func testPipeHints(t *testing.T, f *fixture) {
	ph, ok := f.store.(backend.PipeHinter)
	if !ok {
		t.Skip("store does not implement backend.PipeHinter")
	}
	h := ph.PipeHints()
	if !h.Valid() {
		t.Fatalf("PipeHints() = %+v: want a segment size in [1, %d] and a flush delay in [0, %v]",
			h, backend.MaxPipeSegment, backend.MaxFlushDelay)
	}
	if h2 := ph.PipeHints(); h2 != h {
		t.Errorf("PipeHints() changed between calls: %+v, then %+v", h, h2)
	}
	c := f.container(t)
	seg := make([]byte, h.SegmentSize)
	for i := range seg {
		seg[i] = byte(i*7 + i>>8)
	}
	if _, err := f.store.Put(f.ctx, c, "segment", bytes.NewReader(seg), nil); err != nil {
		t.Fatalf("Put of a %d-byte segment (the advised size): %v", len(seg), err)
	}
	rc, info, err := f.store.Get(f.ctx, c, "segment", nil)
	if err != nil {
		t.Fatalf("Get of the segment: %v", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading the segment: %v", err)
	}
	if !bytes.Equal(got, seg) || info.Size != int64(len(seg)) {
		t.Fatalf("segment read back: %d bytes (info says %d), want the %d put", len(got), info.Size, len(seg))
	}
}
