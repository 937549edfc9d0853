package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/rackfork/rack/backend"
)

// put stores data as c/name and fails the test on error.
func (f *fixture) put(t *testing.T, c, name string, data []byte, opts *backend.PutOptions) backend.ObjectInfo {
	t.Helper()
	info, err := f.store.Put(f.ctx, c, name, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("Put(%q, %q, %d bytes): %v", c, name, len(data), err)
	}
	return info
}

// get reads c/name (or a range of it) and fails the test on error.
func (f *fixture) get(t *testing.T, c, name string, opts *backend.GetOptions) ([]byte, backend.ObjectInfo) {
	t.Helper()
	rc, info, err := f.store.Get(f.ctx, c, name, opts)
	if err != nil {
		t.Fatalf("Get(%q, %q, %+v): %v", c, name, opts, err)
	}
	data, err := io.ReadAll(rc)
	if cerr := rc.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("Get(%q, %q, %+v): reading: %v", c, name, opts, err)
	}
	return data, info
}

// head returns c/name's info and fails the test on error.
func (f *fixture) head(t *testing.T, c, name string) backend.ObjectInfo {
	t.Helper()
	info, err := f.store.Head(f.ctx, c, name)
	if err != nil {
		t.Fatalf("Head(%q, %q): %v", c, name, err)
	}
	return info
}

// wantContent fails the test unless c/name reads back as want, with a
// matching Head.
func (f *fixture) wantContent(t *testing.T, c, name string, want []byte) {
	t.Helper()
	got, info := f.get(t, c, name, nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q, %q) = %s, want %s", c, name, abbrev(got), abbrev(want))
	}
	checkInfo(t, "Get", info, name, want)
	checkInfo(t, "Head", f.head(t, c, name), name, want)
}

// wantGone fails the test unless Get and Head of c/name fail with
// ErrNotFound at once.
func (f *fixture) wantGone(t *testing.T, c, name string) {
	t.Helper()
	rc, _, err := f.store.Get(f.ctx, c, name, nil)
	if err == nil {
		rc.Close()
	}
	wantErr(t, err, backend.ErrNotFound, fmt.Sprintf("Get(%q, %q)", c, name))
	_, err = f.store.Head(f.ctx, c, name)
	wantErr(t, err, backend.ErrNotFound, fmt.Sprintf("Head(%q, %q)", c, name))
}

// checkInfo checks the ObjectInfo that op returned for an object holding
// data.
func checkInfo(t *testing.T, op string, info backend.ObjectInfo, name string, data []byte) {
	t.Helper()
	if info.Name != name {
		t.Errorf("%s(%q): Name = %q", op, name, info.Name)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("%s(%q): Size = %d, want %d", op, name, info.Size, len(data))
	}
	if want := md5hex(data); info.ETag != want {
		t.Errorf("%s(%q): ETag = %q, want the hex MD5 %q", op, name, info.ETag, want)
	}
	if info.LastModified.IsZero() {
		t.Errorf("%s(%q): LastModified is zero", op, name)
	}
	if info.Subdir {
		t.Errorf("%s(%q): Subdir is true", op, name)
	}
}

// checkMeta fails the test unless got is want (nil and empty are equal).
func checkMeta(t *testing.T, op string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) || !maps.Equal(got, want) {
		t.Errorf("%s: Metadata = %v, want %v", op, got, want)
	}
}

// abbrev formats data for messages.
func abbrev(data []byte) string {
	if len(data) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", data[:64], len(data))
	}
	return fmt.Sprintf("%q", data)
}

func testPutGetHead(t *testing.T, f *fixture) {
	c := f.container(t)
	data := []byte("hello, rack")
	meta := map[string]string{"color": "blue", "rack-id": "42", "with-utf8": "café ☕", "n0": "x y"}
	info := f.put(t, c, "greeting", data, &backend.PutOptions{Metadata: meta})
	checkInfo(t, "Put", info, "greeting", data)

	// Read-after-create: no polling.
	h := f.head(t, c, "greeting")
	checkInfo(t, "Head", h, "greeting", data)
	checkMeta(t, "Head", h.Metadata, meta)

	got, gi := f.get(t, c, "greeting", nil)
	if !bytes.Equal(got, data) {
		t.Fatalf("Get = %s, want %s", abbrev(got), abbrev(data))
	}
	checkInfo(t, "Get", gi, "greeting", data)
	checkMeta(t, "Get", gi.Metadata, meta)

	got, _ = f.get(t, c, "greeting", &backend.GetOptions{})
	if !bytes.Equal(got, data) {
		t.Fatalf("Get with zero GetOptions = %s, want %s", abbrev(got), abbrev(data))
	}

	// Mutating returned metadata must not change the store.
	if h.Metadata != nil {
		h.Metadata["color"] = "red"
	}
	checkMeta(t, "Head after mutating an earlier Head's map", f.head(t, c, "greeting").Metadata, meta)

	// No metadata.
	f.put(t, c, "plain", []byte("x"), nil)
	checkMeta(t, "Head of an object put without metadata", f.head(t, c, "plain").Metadata, nil)

	// The store must copy the caller's bytes.
	buf := []byte("original")
	f.put(t, c, "copied", buf, nil)
	copy(buf, "XXXXXXXX")
	f.wantContent(t, c, "copied", []byte("original"))
}

func testOverwrite(t *testing.T, f *fixture) {
	c := f.container(t)
	v1 := []byte("version one, the longer one")
	v2 := []byte("version two")
	f.put(t, c, "obj", v1, &backend.PutOptions{Metadata: map[string]string{"a": "1", "b": "2"}})
	f.put(t, c, "obj", v2, &backend.PutOptions{Metadata: map[string]string{"c": "3"}})
	f.wantContent(t, c, "obj", v2)
	checkMeta(t, "Head after overwrite", f.head(t, c, "obj").Metadata, map[string]string{"c": "3"})
	f.put(t, c, "obj", v1, nil)
	f.wantContent(t, c, "obj", v1)
	checkMeta(t, "Head after overwrite without metadata", f.head(t, c, "obj").Metadata, nil)
}

func testCreateOnly(t *testing.T, f *fixture) {
	c := f.container(t)
	co := &backend.PutOptions{CreateOnly: true}
	v1, v2 := []byte("first"), []byte("second")
	checkInfo(t, "create-only Put", f.put(t, c, "once", v1, co), "once", v1)
	f.wantContent(t, c, "once", v1)

	_, err := f.store.Put(f.ctx, c, "once", bytes.NewReader(v2), co)
	wantErr(t, err, backend.ErrExist, "second create-only Put")
	f.wantContent(t, c, "once", v1)

	// A plain Put still overwrites.
	f.put(t, c, "once", v2, nil)
	f.wantContent(t, c, "once", v2)

	// Once deleted, the name is free again.
	if err := f.store.Delete(f.ctx, c, "once"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	f.put(t, c, "once", v1, co)
	f.wantContent(t, c, "once", v1)

	// Without a rival to look for, the same.
	sole := &backend.PutOptions{CreateOnly: true, NoRival: true}
	checkInfo(t, "create-only Put without rivals", f.put(t, c, "sole", v1, sole), "sole", v1)
	_, err = f.store.Put(f.ctx, c, "sole", bytes.NewReader(v2), sole)
	wantErr(t, err, backend.ErrExist, "second create-only Put without rivals")
	f.wantContent(t, c, "sole", v1)
}

func testCreateOnlyRace(t *testing.T, f *fixture) {
	c := f.container(t)
	const writers = 50
	contents := make([][]byte, writers)
	for i := range contents {
		// A few KiB each, so that bodies overlap in flight.
		contents[i] = bytes.Repeat([]byte(fmt.Sprintf("writer %02d|", i)), 400)
	}
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := &yieldingReader{data: contents[i]}
			_, errs[i] = f.store.Put(f.ctx, c, "contested", r, &backend.PutOptions{CreateOnly: true})
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("create-only Puts by writers %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, backend.ErrExist):
			t.Errorf("create-only Put by writer %d: got %v, want an error wrapping %q", i, err, backend.ErrExist)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d racing create-only Puts succeeded", writers)
	}
	f.wantContent(t, c, "contested", contents[winner])
}

// yieldingReader returns its data 512 bytes at a time and yields the
// processor before each read, so that concurrent Puts overlap in flight
// even on a fast in-process store.
type yieldingReader struct {
	data []byte
}

func (r *yieldingReader) Read(p []byte) (int, error) {
	runtime.Gosched()
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 512)], r.data)
	r.data = r.data[n:]
	return n, nil
}

func testNotFound(t *testing.T, f *fixture) {
	c := f.container(t)
	f.put(t, c, "present", []byte("x"), nil)
	f.wantGone(t, c, "absent")
	wantErr(t, f.store.Delete(f.ctx, c, "absent"), backend.ErrNotFound, "Delete of a missing object")
	// A name that is a prefix of an existing one is not an object.
	f.wantGone(t, c, "pres")
}

func testMissingContainer(t *testing.T, f *fixture) {
	missing := f.name("missing")
	_, err := f.store.Put(f.ctx, missing, "obj", strings.NewReader("data"), nil)
	wantErr(t, err, backend.ErrNotFound, "Put into a missing container")
	f.wantGone(t, missing, "obj")
	wantErr(t, f.store.Delete(f.ctx, missing, "obj"), backend.ErrNotFound, "Delete in a missing container")
	_, err = f.store.List(f.ctx, missing, backend.ListOptions{})
	wantErr(t, err, backend.ErrNotFound, "List of a missing container")
	wantErr(t, f.store.DeleteContainer(f.ctx, missing), backend.ErrNotFound, "DeleteContainer of a missing container")
}

func testRanges(t *testing.T, f *fixture) {
	c := f.container(t)
	data := make([]byte, 100)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	f.put(t, c, "r", data, nil)
	for _, tc := range []struct {
		off, n   int64
		from, to int
	}{
		{0, 0, 0, 100},
		{0, 1, 0, 1},
		{10, 0, 10, 100},
		{10, 20, 10, 30},
		{99, 1, 99, 100},
		{99, 0, 99, 100},
		{90, 50, 90, 100}, // cut short at the end
		{0, 100, 0, 100},
		{0, 1000, 0, 100},
	} {
		opts := &backend.GetOptions{Offset: tc.off, Length: tc.n}
		got, info := f.get(t, c, "r", opts)
		if want := data[tc.from:tc.to]; !bytes.Equal(got, want) {
			t.Errorf("Get(%+v) = %s, want %s", *opts, abbrev(got), abbrev(want))
		}
		if info.Name != "r" {
			t.Errorf("Get(%+v): Name = %q", *opts, info.Name)
		}
	}
	rc, _, err := f.store.Get(f.ctx, c, "r", &backend.GetOptions{Offset: 200})
	if err == nil {
		rc.Close()
	}
	wantErr(t, err, backend.ErrInvalid, "Get with an Offset beyond the size")
}

// hiddenReader hides the concrete type of a reader, so stores cannot learn
// its length.
type hiddenReader struct{ r io.Reader }

func (h hiddenReader) Read(p []byte) (int, error) { return h.r.Read(p) }

// pattern returns n pseudo-random bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func testSizes(t *testing.T, f *fixture) {
	c := f.container(t)
	for _, tc := range []struct {
		name   string
		size   int
		reader func([]byte) io.Reader
	}{
		{"zero", 0, func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"zero-unknown-length", 0, func(b []byte) io.Reader { return hiddenReader{bytes.NewReader(b)} }},
		{"one", 1, func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"one-unknown-length", 1, func(b []byte) io.Reader { return hiddenReader{bytes.NewReader(b)} }},
		{"small-one-byte-reads", 1000, func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
		{"multi-MiB", 3<<20 + 17, func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"multi-MiB-unknown-length", 5<<20 - 3, func(b []byte) io.Reader { return iotest.HalfReader(hiddenReader{bytes.NewReader(b)}) }},
	} {
		data := pattern(tc.size, byte(tc.size))
		info, err := f.store.Put(f.ctx, c, tc.name, tc.reader(data), nil)
		if err != nil {
			t.Fatalf("Put(%s, %d bytes): %v", tc.name, tc.size, err)
		}
		checkInfo(t, "Put "+tc.name, info, tc.name, data)
		checkInfo(t, "Head "+tc.name, f.head(t, c, tc.name), tc.name, data)
		rc, gi, err := f.store.Get(f.ctx, c, tc.name, nil)
		if err != nil {
			t.Fatalf("Get(%s): %v", tc.name, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("Get(%s): reading: %v", tc.name, err)
		}
		checkInfo(t, "Get "+tc.name, gi, tc.name, data)
		if want := sha256.Sum256(data); n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("Get(%s): read %d bytes with a different SHA-256 than the %d put", tc.name, n, len(data))
		}
	}
}

// failingReader returns n bytes, then err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	m := min(len(p), r.n)
	for i := range p[:m] {
		p[i] = 'z'
	}
	r.n -= m
	return m, nil
}

func testFailingReader(t *testing.T, f *fixture) {
	c := f.container(t)
	boom := errors.New("storetest: reader failure")
	_, err := f.store.Put(f.ctx, c, "partial", &failingReader{n: 256 << 10, err: boom}, nil)
	if err == nil {
		t.Fatalf("Put with a reader failing after 256 KiB succeeded")
	}
	f.wantGone(t, c, "partial")

	_, err = f.store.Put(f.ctx, c, "partial", &failingReader{n: 10, err: boom}, &backend.PutOptions{CreateOnly: true})
	if err == nil {
		t.Fatalf("create-only Put with a failing reader succeeded")
	}
	f.wantGone(t, c, "partial")

	// A failed overwrite leaves the old object whole.
	old := []byte("the old content")
	f.put(t, c, "kept", old, nil)
	_, err = f.store.Put(f.ctx, c, "kept", &failingReader{n: 3 << 20, err: boom}, nil)
	if err == nil {
		t.Fatalf("overwriting Put with a failing reader succeeded")
	}
	f.wantContent(t, c, "kept", old)
}

func testDelete(t *testing.T, f *fixture) {
	c := f.container(t)
	f.put(t, c, "doomed", []byte("x"), nil)
	f.put(t, c, "kept", []byte("y"), nil)
	if err := f.store.Delete(f.ctx, c, "doomed"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	f.wantGone(t, c, "doomed")
	wantErr(t, f.store.Delete(f.ctx, c, "doomed"), backend.ErrNotFound, "second Delete")
	f.wantContent(t, c, "kept", []byte("y"))
	listEventually(t, f, c, backend.ListOptions{}, objs("kept"))
	// DeleteSmall, where the store has it, is Delete for a small object.
	sd, ok := f.store.(backend.SmallDeleter)
	if !ok {
		return
	}
	f.put(t, c, "small", bytes.Repeat([]byte("s"), backend.SmallObjectMax), nil)
	if err := sd.DeleteSmall(f.ctx, c, "small"); err != nil {
		t.Fatalf("DeleteSmall: %v", err)
	}
	f.wantGone(t, c, "small")
	wantErr(t, sd.DeleteSmall(f.ctx, c, "small"), backend.ErrNotFound, "second DeleteSmall")
	wantErr(t, sd.DeleteSmall(f.ctx, f.name("missing"), "small"), backend.ErrNotFound, "DeleteSmall in a missing container")
	f.wantContent(t, c, "kept", []byte("y"))
	listEventually(t, f, c, backend.ListOptions{}, objs("kept"))
}

func testMetadata(t *testing.T, f *fixture) {
	c := f.container(t)
	for _, tc := range []struct {
		name string
		meta map[string]string
	}{
		{"max-keys", func() map[string]string {
			m := make(map[string]string)
			for i := range 90 {
				m[fmt.Sprintf("k%02d", i)] = "v"
			}
			return m
		}()},
		{"max-value", map[string]string{"big": strings.Repeat("v", 256)}},
		{"near-max-total", func() map[string]string {
			// 15 keys of 4 bytes with 250-byte values: 3810 bytes.
			m := make(map[string]string)
			for i := range 15 {
				m[fmt.Sprintf("k-%02d", i)] = strings.Repeat(string(rune('a'+i)), 250)
			}
			return m
		}()},
		{"charset", map[string]string{"abcdefghijklmnopqrstuvwxyz-0123456789": "ok"}},
	} {
		f.put(t, c, tc.name, []byte(tc.name), &backend.PutOptions{Metadata: tc.meta})
		checkMeta(t, "Head "+tc.name, f.head(t, c, tc.name).Metadata, tc.meta)
	}
}

func testCancelDuringPut(t *testing.T, f *fixture) {
	c := f.container(t)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	r := &cancellingReader{cancelAt: 64 << 10, total: 8 << 20, cancel: cancel}
	_, err := f.store.Put(ctx, c, "cancelled", r, nil)
	wantErr(t, err, context.Canceled, "Put whose context is cancelled while the body is read")
	f.wantGone(t, c, "cancelled")
}

// cancellingReader returns total bytes and calls cancel once cancelAt have
// been read.
type cancellingReader struct {
	cancelAt, total, n int
	cancel             context.CancelFunc
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.n >= r.total {
		return 0, io.EOF
	}
	m := min(len(p), r.total-r.n, 32<<10)
	for i := range p[:m] {
		p[i] = 'c'
	}
	r.n += m
	if r.n >= r.cancelAt {
		r.cancel()
	}
	return m, nil
}

// testContentType checks that the content type given to Put comes back
// from Head, Get and, without a GET, from List.
func testContentType(t *testing.T, f *fixture) {
	c := f.container(t)
	types := map[string]string{
		"plain":   "",
		"summary": "application/x-test; pid=42&name=a%20b&args=-n%3D1",
		"long":    "text/plain; x=" + strings.Repeat("y", backend.MaxContentTypeLength-len("text/plain; x=")),
	}
	for name, ct := range types {
		f.put(t, c, name, []byte(name), &backend.PutOptions{ContentType: ct})
	}
	want := func(name string) string {
		if types[name] == "" {
			return backend.DefaultContentType
		}
		return types[name]
	}
	for name := range types {
		if got := f.head(t, c, name).ContentType; got != want(name) {
			t.Errorf("Head(%q).ContentType = %q, want %q", name, got, want(name))
		}
		if _, info := f.get(t, c, name, nil); info.ContentType != want(name) {
			t.Errorf("Get(%q).ContentType = %q, want %q", name, info.ContentType, want(name))
		}
	}
	listEventually(t, f, c, backend.ListOptions{}, objs("long", "plain", "summary"))
	page, err := f.store.List(f.ctx, c, backend.ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, o := range page {
		if o.ContentType != want(o.Name) {
			t.Errorf("List entry %q: ContentType = %q, want %q", o.Name, o.ContentType, want(o.Name))
		}
	}

	for what, ct := range map[string]string{
		"a newline":           "text/plain\r\nX-Evil: 1",
		"a non-ASCII byte":    "text/plain; name=é",
		"more than the limit": strings.Repeat("a", backend.MaxContentTypeLength+1),
	} {
		_, err := f.store.Put(f.ctx, c, "bad", strings.NewReader("x"), &backend.PutOptions{ContentType: ct})
		wantErr(t, err, backend.ErrInvalid, "Put with a content type with "+what)
	}
	f.wantGone(t, c, "bad")
}
