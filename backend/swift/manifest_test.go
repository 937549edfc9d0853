package swift

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

// TestStoredManifestLive checks against a real Swift what the driver
// assumes after an ambiguous manifest PUT: storedManifestIs recognises the
// manifest by its first segment's path (as Swift reports it, for a name
// with a space and non-ASCII letters), not another attempt's, and sloETag
// is the ETag Swift gives the object.
func TestStoredManifestLive(t *testing.T) {
	s := liveStore(t, func(c *Config) {
		c.SegmentSize = 1 << 20
	})
	ctx := context.Background()
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

// TestDeleteStaysInContainerLive plants, in a container, what a child
// with write access to it could: a symlink to another container's object,
// an SLO manifest naming another container's object as its segment, a
// symlink to that manifest, a DLO manifest over the other container, and a
// dangling symlink. Delete removes each and nothing else (before, its
// ?multipart-manifest=delete followed them into the other container, and
// the dangling symlink answered 404 for ever).
func TestDeleteStaysInContainerLive(t *testing.T) {
	s := liveStore(t, nil)
	ctx := context.Background()
	c, other := "rack-swifttest-plant-"+newToken(), "rack-swifttest-victim-"+newToken()
	for _, cc := range []string{c, other} {
		if err := s.CreateContainer(ctx, cc); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, cc := range []string{c, other, segmentContainer(c)} {
			for range 5 { // bounded: a clean-up must not loop
				objs, _ := s.List(ctx, cc, backend.ListOptions{})
				if len(objs) == 0 {
					break
				}
				for _, o := range objs {
					_ = s.Delete(ctx, cc, o.Name)
				}
			}
			_ = s.DeleteContainer(ctx, cc)
		}
	}()
	for _, o := range []string{"victim", "seg"} {
		if _, err := s.Put(ctx, other, o, strings.NewReader("bytes of "+o), nil); err != nil {
			t.Fatal(err)
		}
	}
	put := func(name string, params url.Values, h sw.Headers, body string) {
		t.Helper()
		if h == nil {
			h = sw.Headers{}
		}
		h["Content-Length"] = fmt.Sprint(len(body))
		_, _, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "PUT", Parameters: params,
			Headers: h, Body: strings.NewReader(body), NoResponse: true})
		if err != nil {
			t.Fatalf("planting %s: %v", name, err)
		}
	}
	put("link", nil, sw.Headers{"X-Symlink-Target": other + "/victim"}, "")
	put("slo", url.Values{"multipart-manifest": {"put"}}, nil, `[{"path":"/`+other+`/seg"}]`)
	put("link-to-slo", nil, sw.Headers{"X-Symlink-Target": c + "/slo"}, "")
	put("dlo", nil, sw.Headers{"X-Object-Manifest": other + "/v"}, "")
	put("dangling", nil, sw.Headers{"X-Symlink-Target": c + "/nothing-here"}, "")
	for _, name := range []string{"link", "link-to-slo", "slo", "dlo", "dangling"} {
		if err := s.Delete(ctx, c, name); err != nil {
			t.Errorf("Delete %s: %v", name, err)
		}
		if _, _, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "HEAD",
			Parameters: url.Values{"symlink": {"get"}, "multipart-manifest": {"get"}}, NoResponse: true}); !isStatus(err, 404) {
			t.Errorf("%s after Delete: %v, want 404", name, err)
		}
		for _, o := range []string{"victim", "seg"} {
			if _, err := s.Head(ctx, other, o); err != nil {
				t.Fatalf("Delete of planted %s removed %s/%s: %v", name, other, o, err)
			}
		}
	}
	if err := s.Delete(ctx, c, "dangling"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Delete of a deleted object: %v, want ErrNotFound", err)
	}
	// Its own large objects still lose their segments with them.
	s.cfg.SegmentSize = 1 << 20
	if _, err := s.Put(ctx, c, "big", bytes.NewReader(bytes.Repeat([]byte("x"), 3<<20)), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, c, "big"); err != nil {
		t.Fatal(err)
	}
	if segs, err := s.List(ctx, segmentContainer(c), backend.ListOptions{}); err != nil || len(segs) != 0 {
		t.Errorf("segments left after deleting a large object: %v, %v", segs, err)
	}
}
