package swift_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/internal/retry"
)

// fakeSwift speaks just enough of Swift's v1 auth to hand out a token and
// answers every object, container and account request with fail (503 by
// default), counting them per method. Authentication and /info are not
// counted.
type fakeSwift struct {
	*httptest.Server
	fail    atomic.Int32 // status for storage requests
	storage atomic.Int64
	auths   atomic.Int64
	mu      sync.Mutex
	methods map[string]int
}

// store opens a swift.Store on f, closed at the test's end.
func (f *fakeSwift) store(t *testing.T) *swift.Store {
	t.Helper()
	s, err := swift.New(context.Background(), swift.Config{AuthURL: f.URL + "/auth/v1.0", User: "test:tester", Key: "testing"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newFakeSwift(t *testing.T) *fakeSwift {
	t.Helper()
	f := &fakeSwift{methods: map[string]int{}}
	f.fail.Store(http.StatusServiceUnavailable)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/auth/v1.0":
			f.auths.Add(1)
			w.Header().Set("X-Storage-Url", f.URL+"/v1/AUTH_test")
			w.Header().Set("X-Auth-Token", "AUTH_tk-fake")
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/info":
			http.NotFound(w, r) // default constraints
		case strings.HasPrefix(r.URL.Path, "/v1/AUTH_test"):
			_, _ = io.Copy(io.Discard, r.Body)
			f.storage.Add(1)
			f.mu.Lock()
			f.methods[r.Method]++
			f.mu.Unlock()
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(int(f.fail.Load()))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSwift) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.methods[method]
}

func (f *fakeSwift) reset() {
	f.mu.Lock()
	f.methods = map[string]int{}
	f.mu.Unlock()
	f.storage.Store(0)
}

// TestAttemptsDoNotMultiply: against a Swift that answers 503 to every
// storage request, one operation of the Swift driver wrapped by
// internal/retry costs exactly the policy's attempts in HTTP requests: the
// driver and its transport add none (before, the transport retried GET,
// HEAD and listings 4 more times per attempt, and the driver rewindable
// Puts, so one Head cost 10 x 5 requests).
func TestAttemptsDoNotMultiply(t *testing.T) {
	f := newFakeSwift(t)
	ctx := context.Background()
	raw, err := swift.New(ctx, swift.Config{
		AuthURL: f.URL + "/auth/v1.0", User: "test:tester", Key: "testing",
		Retries: 4, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer raw.Close()
	policy := retry.Policy{Attempts: 3, Base: time.Millisecond, Max: 2 * time.Millisecond}
	s := retry.Wrap(raw, policy)

	stream := func() io.Reader { return io.MultiReader(strings.NewReader("a body the layer above cannot rewind")) }
	for _, op := range []struct {
		name, method string
		call         func() error
	}{
		{"Head", "HEAD", func() error { _, err := s.Head(ctx, "c", "o"); return err }},
		{"Get", "GET", func() error { _, _, err := s.Get(ctx, "c", "o", nil); return err }},
		{"List", "GET", func() error { _, err := s.List(ctx, "c", backend.ListOptions{}); return err }},
		{"ListContainers", "GET", func() error { _, err := s.ListContainers(ctx, backend.ListOptions{}); return err }},
		// Delete looks at the object first (HEAD): it never asks Swift
		// to follow a symlink or manifest.
		{"Delete", "HEAD", func() error { return s.Delete(ctx, "c", "o") }},
		{"CreateContainer", "PUT", func() error { return s.CreateContainer(ctx, "c") }},
		{"DeleteContainer", "DELETE", func() error { return s.DeleteContainer(ctx, "c") }},
		{"Put", "PUT", func() error {
			_, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("x")), nil)
			return err
		}},
		{"create-only Put", "PUT", func() error {
			_, err := s.Put(ctx, "c", "o", bytes.NewReader([]byte("x")), &backend.PutOptions{CreateOnly: true})
			return err
		}},
		{"create-only Put of a stream", "PUT", func() error {
			_, err := s.Put(ctx, "c", "o", stream(), &backend.PutOptions{CreateOnly: true})
			return err
		}},
	} {
		f.reset()
		err := op.call()
		if !errors.Is(err, backend.ErrTransient) {
			t.Errorf("%s against a failing Swift: %v, want ErrTransient", op.name, err)
		}
		if n := f.storage.Load(); n != int64(policy.Attempts) {
			t.Errorf("%s: %d requests, want %d (the policy's attempts, one request each)", op.name, n, policy.Attempts)
		}
		if n := f.count(op.method); n != policy.Attempts {
			t.Errorf("%s: %d %s requests, want %d", op.name, n, op.method, policy.Attempts)
		}
	}

	// Without the retrying layer, the driver is single-shot.
	f.reset()
	if _, err := raw.Head(ctx, "c", "o"); !errors.Is(err, backend.ErrTransient) {
		t.Errorf("raw Head: %v, want ErrTransient", err)
	}
	if n := f.storage.Load(); n != 1 {
		t.Errorf("raw Head: %d requests, want 1", n)
	}
	// A failure that no retry fixes is not retried at all.
	f.reset()
	f.fail.Store(http.StatusNotFound)
	if _, err := s.Head(ctx, "c", "o"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Head of a missing object: %v, want ErrNotFound", err)
	}
	if n := f.storage.Load(); n != 1 {
		t.Errorf("Head of a missing object: %d requests, want 1", n)
	}
}

// TestExpiredTokenResentOnce: a 401 is not a failure of the service: the
// driver authenticates again and resends the request once (for a Put too,
// when the body can be rewound), and a second 401 fails at once.
func TestExpiredTokenResentOnce(t *testing.T) {
	f := newFakeSwift(t)
	ctx := context.Background()
	s := f.store(t)
	f.fail.Store(http.StatusUnauthorized)
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Head", func() error { _, err := s.Head(ctx, "c", "o"); return err }},
		{"Put", func() error { _, err := s.Put(ctx, "c", "o", strings.NewReader("x"), nil); return err }},
	} {
		f.reset()
		auths := f.auths.Load()
		if err := op.call(); !errors.Is(err, swift.ErrAuth) {
			t.Errorf("%s refused twice: %v, want ErrAuth", op.name, err)
		}
		if n := f.storage.Load(); n != 2 {
			t.Errorf("%s: %d requests, want 2 (one resend after authenticating again)", op.name, n)
		}
		if n := f.auths.Load() - auths; n < 1 {
			t.Errorf("%s: no authentication after a 401", op.name)
		}
	}
}

// TestAmbiguousCreateOnlyPut: a create-only PUT that Swift applied but
// answered with a 503 (a reply lost on the way) is retried by the
// retrying layer; the retry's 412 is resolved by reading the writer token
// back: the Put succeeds once, with one object, and a second writer's
// create-only Put is a real conflict.
func TestAmbiguousCreateOnlyPut(t *testing.T) {
	type object struct {
		meta http.Header
		body []byte
	}
	var (
		mu      sync.Mutex
		objects = map[string]object{}
		lose    atomic.Int32 // replies to lose
		puts    atomic.Int32
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/auth/v1.0":
			w.Header().Set("X-Storage-Url", "http://"+r.Host+"/v1/AUTH_test")
			w.Header().Set("X-Auth-Token", "AUTH_tk-fake")
			return
		case !strings.HasPrefix(r.URL.Path, "/v1/AUTH_test/c/"):
			http.NotFound(w, r)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/v1/AUTH_test/c/")
		mu.Lock()
		defer mu.Unlock()
		o, ok := objects[name]
		switch r.Method {
		case "PUT":
			puts.Add(1)
			body, _ := io.ReadAll(r.Body)
			if ok && r.Header.Get("If-None-Match") == "*" {
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			meta := http.Header{}
			for k, v := range r.Header {
				if strings.HasPrefix(k, "X-Object-Meta-") {
					meta[k] = v
				}
			}
			objects[name] = object{meta, body}
			if lose.Add(-1) >= 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Etag", "e")
			w.WriteHeader(http.StatusCreated)
		case "HEAD":
			if !ok {
				http.NotFound(w, r)
				return
			}
			for k, v := range o.meta {
				w.Header()[k] = v
			}
			w.Header().Set("Etag", "e")
			w.Header().Set("Content-Length", fmt.Sprint(len(o.body)))
		default:
			http.Error(w, "not here", http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	raw, err := swift.New(ctx, swift.Config{AuthURL: srv.URL + "/auth/v1.0", User: "test:tester", Key: "testing"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer raw.Close()
	s := retry.Wrap(raw, retry.Policy{Attempts: 5, Base: time.Millisecond, Max: 2 * time.Millisecond})

	lose.Store(1)
	info, err := s.Put(ctx, "c", "claim", strings.NewReader("mine"), &backend.PutOptions{CreateOnly: true})
	if err != nil {
		t.Fatalf("create-only Put whose first reply was lost: %v", err)
	}
	if info.Metadata[backend.WriterTokenKey] == "" {
		t.Errorf("the Put's info carries no writer token: %+v", info)
	}
	if n := puts.Load(); n != 2 {
		t.Errorf("%d PUTs, want 2 (the ambiguous one and the retry that found it)", n)
	}
	if _, err := s.Put(ctx, "c", "claim", strings.NewReader("theirs"), &backend.PutOptions{CreateOnly: true}); !errors.Is(err, backend.ErrExist) {
		t.Errorf("a second writer's create-only Put: %v, want ErrExist", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := string(objects["claim"].body); got != "mine" {
		t.Errorf("stored %q, want %q", got, "mine")
	}
}

// fakeSLO is a Swift that stores objects and Static Large Object manifests
// in memory, with faults for the manifest PUT.
type fakeSLO struct {
	*httptest.Server
	mu      sync.Mutex
	objects map[string]sloObject // "container/name"
	// drop answers that many manifest PUTs with 503 without storing them;
	// lose stores that many and then answers 503 (a reply lost).
	drop, lose atomic.Int32
	// hang, when set, is called once after a manifest PUT is stored; the
	// reply then waits until the client gives up.
	hang func()
	gets atomic.Int32 // GETs of a manifest (?multipart-manifest=get)
}

type sloObject struct {
	meta     http.Header
	body     []byte
	manifest bool
}

func newFakeSLO(t *testing.T) *fakeSLO {
	t.Helper()
	f := &fakeSLO{objects: map[string]sloObject{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSLO) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/auth/v1.0" {
		w.Header().Set("X-Storage-Url", "http://"+r.Host+"/v1/AUTH_test")
		w.Header().Set("X-Auth-Token", "AUTH_tk-fake")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/AUTH_test/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if !strings.Contains(path, "/") { // a container: they all exist
		w.WriteHeader(http.StatusNoContent)
		return
	}
	manifest := r.URL.Query().Get("multipart-manifest")
	f.mu.Lock()
	o, exists := f.objects[path]
	switch r.Method {
	case "PUT":
		if manifest == "put" && f.drop.Add(-1) >= 0 {
			f.mu.Unlock()
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if exists && r.Header.Get("If-None-Match") == "*" {
			f.mu.Unlock()
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		meta := http.Header{}
		for k, v := range r.Header {
			if strings.HasPrefix(k, "X-Object-Meta-") {
				meta[k] = v
			}
		}
		f.objects[path] = sloObject{meta, body, manifest == "put"}
		if manifest == "put" {
			if f.lose.Add(-1) >= 0 {
				f.mu.Unlock()
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if h := f.hang; h != nil {
				f.hang = nil
				f.mu.Unlock()
				h()
				<-r.Context().Done()
				return
			}
		}
		f.mu.Unlock()
		w.Header().Set("Etag", fmt.Sprintf("%x", len(body)))
		w.WriteHeader(http.StatusCreated)
	case "HEAD", "GET":
		f.mu.Unlock()
		if r.Method == "GET" && manifest == "get" {
			f.gets.Add(1)
		}
		if !exists {
			http.NotFound(w, r)
			return
		}
		for k, v := range o.meta {
			w.Header()[k] = v
		}
		if o.manifest {
			w.Header().Set("X-Static-Large-Object", "True")
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(o.body)))
		if r.Method == "GET" {
			_, _ = w.Write(o.body)
		}
	case "DELETE":
		if exists {
			delete(f.objects, path)
		}
		f.mu.Unlock()
		if !exists {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		f.mu.Unlock()
		http.Error(w, "not here", http.StatusMethodNotAllowed)
	}
}

// segments reports the segments the manifest at path names that are
// missing, and the stored segments of container segc it does not name.
func (f *fakeSLO) segments(t *testing.T, path, segc string) (missing, orphans []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	named := map[string]bool{}
	if m, ok := f.objects[path]; ok {
		var segs []struct {
			Path string `json:"path"`
		}
		if err := json.Unmarshal(m.body, &segs); err != nil {
			t.Fatalf("manifest %s: %v", path, err)
		}
		for _, sg := range segs {
			p := strings.TrimPrefix(sg.Path, "/")
			named[p] = true
			if _, ok := f.objects[p]; !ok {
				missing = append(missing, p)
			}
		}
	}
	for p := range f.objects {
		if strings.HasPrefix(p, segc+"/") && !named[p] {
			orphans = append(orphans, p)
		}
	}
	return missing, orphans
}

// largeBody is 1.5 MiB: two segments of 1 MiB.
var largeBody = bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/32)

func newSLOStore(t *testing.T, f *fakeSLO) (raw backend.Store, s backend.Store) {
	t.Helper()
	st, err := swift.New(context.Background(), swift.Config{AuthURL: f.URL + "/auth/v1.0", User: "test:tester", Key: "testing", SegmentSize: 1 << 20})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st, retry.Wrap(st, retry.Policy{Attempts: 5, Base: time.Millisecond, Max: 2 * time.Millisecond})
}

// TestManifestCancelKeepsSegments: a large Put whose context ends while
// the manifest PUT is in flight, after Swift stored it, keeps the segments
// that manifest names (before, a context error counted as a definite
// failure and the segments were deleted, leaving an object without its
// content).
func TestManifestCancelKeepsSegments(t *testing.T) {
	f := newFakeSLO(t)
	raw, _ := newSLOStore(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.hang = cancel
	_, err := raw.Put(ctx, "c", "big", bytes.NewReader(largeBody), nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put cancelled during its manifest PUT: %v, want context.Canceled", err)
	}
	missing, orphans := f.segments(t, "c/big", "c_segments")
	if _, ok := f.objects["c/big"]; !ok {
		t.Fatal("no manifest stored")
	}
	if len(missing) > 0 || len(orphans) > 0 {
		t.Errorf("segments missing %v, orphaned %v", missing, orphans)
	}
}

// TestAmbiguousManifestNoOrphans: after a manifest PUT answered with a 503,
// the driver reads the stored manifest back: if it is not this attempt's
// (the PUT was not applied), the attempt's segments are deleted, and if it
// is, the Put succeeded. Either way no segment is left that no manifest
// names (before, an ambiguous manifest PUT always kept its segments, and
// the retry, writing new ones, orphaned them).
func TestAmbiguousManifestNoOrphans(t *testing.T) {
	for _, tc := range []struct {
		name        string
		drop, lose  int32
		createOnly  bool
		wantManGets int32
	}{
		{"not applied", 1, 0, false, 1},
		{"applied", 0, 1, false, 1},
		{"not applied, create-only", 1, 0, true, 1},
		{"applied, create-only", 0, 1, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSLO(t)
			_, s := newSLOStore(t, f)
			f.drop.Store(tc.drop)
			f.lose.Store(tc.lose)
			if _, err := s.Put(context.Background(), "c", "big", bytes.NewReader(largeBody), &backend.PutOptions{CreateOnly: tc.createOnly}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			missing, orphans := f.segments(t, "c/big", "c_segments")
			if _, ok := f.objects["c/big"]; !ok {
				t.Fatal("no manifest stored")
			}
			if len(missing) > 0 || len(orphans) > 0 {
				t.Errorf("segments missing %v, orphaned %v", missing, orphans)
			}
			if n := f.gets.Load(); n != tc.wantManGets {
				t.Errorf("%d reads of the manifest, want %d", n, tc.wantManGets)
			}
		})
	}
}

// TestSecond401IsAuthError: a Put refused with 401 twice (once more after
// authenticating again) fails with ErrAuth after two PUTs, like any other
// operation, not with ErrTransient that makes the retrying layer repeat it
// (before: 20 PUTs and 20 logins with 10 attempts).
func TestSecond401IsAuthError(t *testing.T) {
	f := newFakeSwift(t)
	ctx := context.Background()
	raw := f.store(t)
	s := retry.Wrap(raw, retry.Policy{Attempts: 10, Base: time.Millisecond, Max: 2 * time.Millisecond})
	f.fail.Store(http.StatusUnauthorized)
	for _, body := range []struct {
		name string
		r    func() io.Reader
	}{
		{"bytes", func() io.Reader { return bytes.NewReader([]byte("x")) }},
		{"stream", func() io.Reader { return io.MultiReader(strings.NewReader("x")) }},
	} {
		f.reset()
		auths := f.auths.Load()
		_, err := s.Put(ctx, "c", "o", body.r(), nil)
		if !errors.Is(err, swift.ErrAuth) || errors.Is(err, backend.ErrTransient) {
			t.Errorf("Put of %s refused twice: %v, want ErrAuth", body.name, err)
		}
		if n := f.storage.Load(); n != 2 {
			t.Errorf("Put of %s: %d PUTs, want 2", body.name, n)
		}
		if n := f.auths.Load() - auths; n != 1 {
			t.Errorf("Put of %s: %d authentications, want 1", body.name, n)
		}
	}
}

// onlyReadAt is a body that must be read with ReadAt: its own Read and a
// rewinding Seek fail the test. A resend after a 401 must use a fresh
// reader, since the transport may still be reading the previous one.
type onlyReadAt struct {
	t *testing.T
	*bytes.Reader
}

func (o onlyReadAt) Read(p []byte) (int, error) {
	o.t.Error("the body was read directly, not through a fresh reader")
	return o.Reader.Read(p)
}

type seeker struct{ r *bytes.Reader }

func (s seeker) Read(p []byte) (int, error)                { return s.r.Read(p) }
func (s seeker) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }

// TestResendUsesFreshReader: the driver resends a PUT refused with a 401
// from a fresh reader over the body (io.ReaderAt), never by rewinding the
// reader the transport had; a body it cannot read afresh is not resent:
// the Put fails with ErrTransient for the layer above to send again.
func TestResendUsesFreshReader(t *testing.T) {
	f := newFakeSwift(t)
	ctx := context.Background()
	raw := f.store(t)
	f.fail.Store(http.StatusUnauthorized)
	if _, err := raw.Put(ctx, "c", "o", onlyReadAt{t, bytes.NewReader([]byte("xyz"))}, nil); !errors.Is(err, swift.ErrAuth) {
		t.Errorf("Put refused twice: %v, want ErrAuth", err)
	}
	if n := f.storage.Load(); n != 2 {
		t.Errorf("%d PUTs, want 2", n)
	}
	f.reset()
	_, err := raw.Put(ctx, "c", "o", seeker{bytes.NewReader([]byte("xyz"))}, nil)
	if !errors.Is(err, backend.ErrTransient) {
		t.Errorf("Put of a body that cannot be read afresh, refused: %v, want ErrTransient", err)
	}
	if n := f.storage.Load(); n != 1 {
		t.Errorf("%d PUTs of a body that cannot be read afresh, want 1", n)
	}
}

// TestCreateOnlyNoRival: a create-only Put reads the object back (a HEAD)
// for a rival create that may have arrived at the same moment, unless the
// caller says there is none (PutOptions.NoRival): one request, not two.
func TestCreateOnlyNoRival(t *testing.T) {
	f := newFakeSwift(t)
	f.fail.Store(http.StatusCreated)
	s := f.store(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "c", "sole", bytes.NewReader([]byte("x")), &backend.PutOptions{CreateOnly: true, NoRival: true}); err != nil {
		t.Fatalf("Put without rivals: %v", err)
	}
	if p, h := f.count(http.MethodPut), f.count(http.MethodHead); p != 1 || h != 0 {
		t.Errorf("Put without rivals: %d PUT, %d HEAD; want 1 and 0", p, h)
	}
	// With rivals, the read back (the fake's HEAD has no writer token,
	// as if a rival's create had landed last: ErrExist).
	_, err := s.Put(ctx, "c", "shared", bytes.NewReader([]byte("x")), &backend.PutOptions{CreateOnly: true})
	if !errors.Is(err, backend.ErrExist) {
		t.Errorf("Put with a rival's object read back: %v, want ErrExist", err)
	}
	if p, h := f.count(http.MethodPut), f.count(http.MethodHead); p != 2 || h != 1 {
		t.Errorf("after a Put with rivals: %d PUT, %d HEAD; want 2 and 1", p, h)
	}
}
