package swift

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rackfork/rack/backend"
)

// TestStoredManifestLive checks against a real Swift what the driver
// assumes after an ambiguous manifest PUT: storedManifestIs recognises the
// manifest by its first segment's path (as Swift reports it, for a name
// with a space and non-ASCII letters), not another attempt's, and sloETag
// is the ETag Swift gives the object.
func TestStoredManifestLive(t *testing.T) {
	if os.Getenv("SWIFT_AUTH_URL") == "" {
		t.Skip("SWIFT_AUTH_URL unset")
	}
	cfg, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	cfg.SegmentSize = 1 << 20
	ctx := context.Background()
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := "rack-swifttest-manifest-" + newToken()
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	segc := segmentContainer(c)
	defer func() {
		for _, cc := range []string{c, segc} {
			objs, _ := s.List(ctx, cc, backend.ListOptions{})
			for _, o := range objs {
				_ = s.Delete(ctx, cc, o.Name)
			}
			_ = s.DeleteContainer(ctx, cc)
		}
	}()
	name := "dir/größe mit leer"
	data := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/32)
	info, err := s.Put(ctx, c, name, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatalf("large Put: %v", err)
	}
	segs, err := s.List(ctx, segc, backend.ListOptions{Prefix: name + "/slo/"})
	if err != nil || len(segs) != 2 {
		t.Fatalf("segments %+v: %v, want 2", segs, err)
	}
	var ss []sloSegment
	for _, sg := range segs {
		ss = append(ss, sloSegment{Path: "/" + segc + "/" + sg.Name, Etag: sg.ETag, Size: sg.Size})
	}
	if got := sloETag(ss); got != info.ETag {
		t.Errorf("sloETag %s, Swift's ETag %s", got, info.ETag)
	}
	if ours, err := s.storedManifestIs(c, name, ss[0].Path); err != nil || !ours {
		t.Errorf("storedManifestIs of its own first segment: %v, %v; want true", ours, err)
	}
	if ours, err := s.storedManifestIs(c, name, strings.Replace(ss[0].Path, "/slo/", "/slo/1", 1)); err != nil || ours {
		t.Errorf("storedManifestIs of another attempt's segment: %v, %v; want false", ours, err)
	}
	if _, err := s.Put(ctx, c, "plain", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	if ours, err := s.storedManifestIs(c, "plain", ss[0].Path); err != nil || ours {
		t.Errorf("storedManifestIs of a plain object: %v, %v; want false", ours, err)
	}
	if ours, err := s.storedManifestIs(c, "missing", ss[0].Path); err != nil || ours {
		t.Errorf("storedManifestIs of a missing object: %v, %v; want false", ours, err)
	}
}
