package rack

import (
	"context"
	"testing"

	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// TestJoinerCreatesNoContainer: a kernel that joins a namespace (a
// child's, a host's) finds its container with a listing and does not
// create it again (a container PUT is costly on Swift: ten hosts starting
// at once timed out on it); the namespace's first kernel creates it.
func TestJoinerCreatesNoContainer(t *testing.T) {
	ctx := context.Background()
	store := mem.New()
	root, err := New(ctx, store, inproc.New())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if n := root.Stats()["container"]; n != 1 {
		t.Errorf("the first kernel made %d container requests, want 1", n)
	}
	joiner, err := New(ctx, store, inproc.New(), joinAs(newID()))
	if err != nil {
		t.Fatal(err)
	}
	defer joiner.Close()
	if s := joiner.Stats(); s["container"] != 0 || s["list"] != 1 {
		t.Errorf("a joining kernel's requests: %v, want no container create and one listing", s)
	}
}
