// Package storetest is the conformance suite every backend.Store driver
// runs, in the style of the Go CDK's drivertest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(ctx context.Context, t *testing.T) (storetest.Harness, error) {
//			return newHarness(ctx, t)
//		})
//	}
//
// The suite assumes only the backend.Store contract, which is Swift's, so
// it can run against a real, shared Swift cluster:
//
//   - every subtest works in fresh containers with unique names (prefixed
//     "rack-storetest-"), and deletes them when it ends;
//   - List is only eventually consistent, so listing checks poll until the
//     expected page appears or ConsistencyTimeout passes, while Get and Head
//     right after a Put are checked at once (read-after-create);
//   - no listing assumes a page holds more than 100 entries unless it sets
//     Limit itself, since clusters may configure a listing limit that low;
//   - nothing injects faults: drivers test their handling of
//     backend.ErrTransient themselves.
//
// RunBenchmarks measures the common operations of a Store.
package storetest

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// Harness makes the stores a conformance run tests.
type Harness interface {
	// MakeStore returns a Store to test. The suite calls it once per
	// subtest and closes the store when the subtest ends. Stores may share
	// their data: the suite only uses containers it created.
	MakeStore(ctx context.Context) (backend.Store, error)
	// Close releases the harness's resources. The suite calls it at the
	// end of each subtest, after closing the store.
	Close()
}

// HarnessMaker makes a Harness for one subtest; t is that subtest.
type HarnessMaker func(ctx context.Context, t *testing.T) (Harness, error)

// ConsistencyTimeout bounds how long the suite waits for an eventually
// consistent effect: a change to show in List or ListContainers, an expired
// object to vanish, a Notifier channel to be closed.
const ConsistencyTimeout = 30 * time.Second

// subtestTimeout bounds each subtest's context.
const subtestTimeout = 5 * time.Minute

// runID makes the container names of this process unique among concurrent
// runs against a shared store.
var runID = func() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}()

// seq numbers subtests and containers within the process.
var seq atomic.Int64

// Run runs the conformance suite against the stores newHarness makes, one
// subtest per behaviour. Subtests do not run in parallel.
func Run(t *testing.T, newHarness HarnessMaker) {
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"Containers", testContainers},
		{"MissingContainer", testMissingContainer},
		{"PutGetHead", testPutGetHead},
		{"Overwrite", testOverwrite},
		{"CreateOnly", testCreateOnly},
		{"CreateOnlyRace", testCreateOnlyRace},
		{"NotFound", testNotFound},
		{"Ranges", testRanges},
		{"Sizes", testSizes},
		{"FailingReader", testFailingReader},
		{"List", testList},
		{"ListPaging", testListPaging},
		{"ListDelimiterPaging", testListDelimiterPaging},
		{"Names", testNames},
		{"Delete", testDelete},
		{"Expiry", testExpiry},
		{"InvalidNames", testInvalidNames},
		{"InvalidMetadata", testInvalidMetadata},
		{"Metadata", testMetadata},
		{"ContentType", testContentType},
		{"Cancel", testCancel},
		{"CancelDuringPut", testCancelDuringPut},
		{"Notifier", testNotifier},
		{"PipeHints", testPipeHints},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, newHarness)
			tc.fn(t, f)
		})
	}
}

// fixture is one subtest's store, context and container namespace.
type fixture struct {
	store  backend.Store
	ctx    context.Context
	prefix string // of this subtest's container names
}

// newFixture makes the harness and store of one subtest, and arranges for
// them to be closed when it ends.
func newFixture(t *testing.T, newHarness HarnessMaker) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
	t.Cleanup(cancel)
	h, err := newHarness(context.Background(), t)
	if err != nil {
		t.Fatalf("making the harness: %v", err)
	}
	t.Cleanup(h.Close)
	store, err := h.MakeStore(context.Background())
	if err != nil {
		t.Fatalf("making the store: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return &fixture{
		store:  store,
		ctx:    ctx,
		prefix: fmt.Sprintf("rack-storetest-%s-%d-", runID, seq.Add(1)),
	}
}

// name returns a fresh container name, without creating the container.
func (f *fixture) name(what string) string {
	return fmt.Sprintf("%s%s%d", f.prefix, what, seq.Add(1))
}

// container creates a fresh container that is emptied and deleted when the
// test ends.
func (f *fixture) container(t *testing.T) string {
	t.Helper()
	c := f.name("c")
	f.create(t, c)
	return c
}

// create creates container c and arranges for it to be emptied and deleted
// when the test ends.
func (f *fixture) create(t *testing.T, c string) {
	t.Helper()
	if err := f.store.CreateContainer(f.ctx, c); err != nil {
		t.Fatalf("CreateContainer(%q): %v", c, err)
	}
	t.Cleanup(func() { removeContainer(t, f.store, c) })
}

// removeContainer empties and deletes container c, retrying while listings
// lag or the store reports transient failures, and logs (without failing)
// what it could not clean up.
func removeContainer(tb testing.TB, s backend.Store, c string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*ConsistencyTimeout)
	defer cancel()
	retryable := func(err error) bool {
		return errors.Is(err, backend.ErrExist) || errors.Is(err, backend.ErrTransient)
	}
	wait := 10 * time.Millisecond
	for {
		page, err := s.List(ctx, c, backend.ListOptions{Limit: 100})
		if errors.Is(err, backend.ErrNotFound) {
			return
		}
		for _, o := range page {
			if derr := s.Delete(ctx, c, o.Name); derr != nil && !errors.Is(derr, backend.ErrNotFound) {
				err = derr
			}
		}
		if err == nil && len(page) == 0 {
			err = s.DeleteContainer(ctx, c)
			if err == nil || errors.Is(err, backend.ErrNotFound) {
				return
			}
		}
		if err != nil && !retryable(err) || ctx.Err() != nil {
			tb.Logf("cleanup: could not delete container %q: %v", c, err)
			return
		}
		if err != nil || len(page) == 0 {
			sleep(ctx, wait)
			wait = min(2*wait, 500*time.Millisecond)
		}
	}
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// errStop wraps an error that eventually must not retry.
type errStop struct{ err error }

func (e errStop) Error() string { return e.err.Error() }

// stop makes check functions of eventually fail at once.
func stop(format string, args ...any) error {
	return errStop{fmt.Errorf(format, args...)}
}

// eventually calls check until it returns nil, and fails the test if it
// still fails after ConsistencyTimeout, or at once if it returns an error
// made by stop. It polls with a growing interval.
func eventually(t *testing.T, ctx context.Context, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(ConsistencyTimeout)
	wait := 5 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return
		}
		var s errStop
		if errors.As(err, &s) {
			t.Fatalf("%s: %v", what, s.err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: still failing after %v: %v", what, ConsistencyTimeout, err)
		}
		sleep(ctx, wait)
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// wantErr fails the test unless err wraps target.
func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want an error wrapping %q", what, err, target)
	}
}

// md5hex returns the hex MD5 of data, Swift's ETag of a plain object.
func md5hex(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

// entry is a listing entry as the suite compares them.
type entry struct {
	name   string
	subdir bool
}

func (e entry) String() string {
	if e.subdir {
		return fmt.Sprintf("%q(subdir)", e.name)
	}
	return fmt.Sprintf("%q", e.name)
}

// entries converts a listing page.
func entries(page []backend.ObjectInfo) []entry {
	out := make([]entry, len(page))
	for i, o := range page {
		out[i] = entry{o.Name, o.Subdir}
	}
	return out
}

// objs returns object entries for names.
func objs(names ...string) []entry {
	out := make([]entry, len(names))
	for i, n := range names {
		out[i] = entry{name: n}
	}
	return out
}

// dirs returns subdir entries for names.
func dirs(names ...string) []entry {
	out := make([]entry, len(names))
	for i, n := range names {
		out[i] = entry{name: n, subdir: true}
	}
	return out
}

// concat concatenates entry lists.
func concat(lists ...[]entry) []entry {
	var out []entry
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// equalEntries reports whether a and b are equal.
func equalEntries(a, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// formatEntries formats a listing for messages.
func formatEntries(es []entry) string {
	if len(es) > 20 {
		return fmt.Sprintf("%v ... (%d entries)", es[:20], len(es))
	}
	return fmt.Sprint(es)
}

// checkPage checks the invariants every listing page must hold: at most
// limit entries, strictly increasing byte order, all names after marker and
// starting with prefix, subdirs ending with the delimiter, objects without
// metadata. It returns a stop error on violation.
func checkPage(page []backend.ObjectInfo, opts backend.ListOptions, limit int) error {
	if limit > 0 && len(page) > limit {
		return stop("List(%+v) returned %d entries, more than the limit %d", opts, len(page), limit)
	}
	for i, o := range page {
		if i > 0 && page[i-1].Name >= o.Name {
			return stop("List(%+v): entry %q after %q: not in strictly increasing byte order", opts, o.Name, page[i-1].Name)
		}
		if opts.Marker != "" && o.Name <= opts.Marker {
			return stop("List(%+v): entry %q is not after the marker", opts, o.Name)
		}
		if !strings.HasPrefix(o.Name, opts.Prefix) {
			return stop("List(%+v): entry %q lacks the prefix", opts, o.Name)
		}
		if o.Subdir && (opts.Delimiter == "" || !strings.HasSuffix(o.Name, opts.Delimiter)) {
			return stop("List(%+v): subdir entry %q does not end with the delimiter", opts, o.Name)
		}
		if !o.Subdir && o.Metadata != nil {
			return stop("List(%+v): entry %q has metadata; listings carry none", opts, o.Name)
		}
	}
	return nil
}

// listPage returns one listing page, checking its invariants.
func listPage(ctx context.Context, s backend.Store, c string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	page, err := s.List(ctx, c, opts)
	if err != nil {
		return nil, stop("List(%q, %+v): %v", c, opts, err)
	}
	if err := checkPage(page, opts, opts.Limit); err != nil {
		return nil, err
	}
	return page, nil
}

// listAll pages through a listing with opts.Limit (at most 100 if 0),
// using the last name of each page as the next marker.
func listAll(ctx context.Context, s backend.Store, c string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	if opts.Limit == 0 {
		opts.Limit = 100
	}
	var all []backend.ObjectInfo
	for pages := 0; ; pages++ {
		if pages > 100000 {
			return nil, stop("List(%q): more than 100000 pages; is the marker ignored?", c)
		}
		page, err := listPage(ctx, s, c, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < opts.Limit {
			return all, nil
		}
		opts.Marker = page[len(page)-1].Name
	}
}

// listEventually polls until the page List returns for opts is want.
func listEventually(t *testing.T, f *fixture, c string, opts backend.ListOptions, want []entry) {
	t.Helper()
	eventually(t, f.ctx, fmt.Sprintf("List(%q, %+v)", c, opts), func() error {
		page, err := listPage(f.ctx, f.store, c, opts)
		if err != nil {
			return err
		}
		if got := entries(page); !equalEntries(got, want) {
			return fmt.Errorf("got %s, want %s", formatEntries(got), formatEntries(want))
		}
		return nil
	})
}
