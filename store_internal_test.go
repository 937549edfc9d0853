package rack

import (
	"context"
	"fmt"
	"testing"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/internal/count"
)

// TestListStopsOnShortPage: a listing ends on a page shorter than its
// limit (the backend contract), without asking for an empty page: a
// host's look at its few slots is one request. A full page is followed by
// the next.
func TestListStopsOnShortPage(t *testing.T) {
	ctx := context.Background()
	store, counted := count.Wrap(mem.New(), nil)
	if err := store.CreateContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	n := &nsStore{store: store, container: "c"}
	put := func(name string) {
		if _, err := store.Put(ctx, "c", name, bytesReader(nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	lists := func() int64 { return counted.Counts()[count.List] }
	for i := range 3 {
		put(fmt.Sprintf("few/%d", i))
	}
	for i := range backend.MaxListLimit {
		put(fmt.Sprintf("many/%05d", i))
	}
	for _, c := range []struct {
		prefix        string
		objects, reqs int
	}{
		{"few/", 3, 1},
		{"none/", 0, 1},
		{"many/", backend.MaxListLimit, 2}, // a full page, then an empty one
	} {
		before := lists()
		objs, err := n.listAllIn(ctx, "c", c.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != c.objects || lists()-before != int64(c.reqs) {
			t.Errorf("listing %s: %d objects from %d requests, want %d from %d", c.prefix, len(objs), lists()-before, c.objects, c.reqs)
		}
	}
}
