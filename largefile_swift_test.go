package rack_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/swift"
)

// TestSwiftLargeFileNoLeak: a 70 MB file on a real Swift, with the
// driver's default segment size (64 MiB: a Static Large Object of two
// segments), written, overwritten with other bytes, and removed: after
// each write the segment container holds only the file's own segments,
// and none after the removal (issue: two writes of a 70 MB file left 4
// segments, rm left 2, for good). (A small file written over a large one
// leaves the large one's segments to SweepSegments, gc -a, an hour later:
// the driver does not spend a HEAD on every small overwrite to look.)
func TestSwiftLargeFileNoLeak(t *testing.T) {
	url := swiftURL(t)
	ctx := pgCtx(t, 5*time.Minute)
	k := openSwift(t, ctx, url)
	cfg, err := swift.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := swift.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	files := strings.TrimPrefix(url, "swift+v1:///") + "-files"
	segments := func() []string {
		t.Helper()
		objs, err := raw.List(ctx, files+"_segments", backend.ListOptions{})
		if errors.Is(err, backend.ErrNotFound) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(objs))
		for i, o := range objs {
			names[i] = o.Name
		}
		return names
	}
	t.Cleanup(func() {
		for _, c := range []string{files, files + "_segments"} {
			objs, _ := raw.List(context.Background(), c, backend.ListOptions{})
			for _, o := range objs {
				raw.Delete(context.Background(), c, o.Name)
			}
			raw.DeleteContainer(context.Background(), c)
		}
	})
	const big = 70_000_000
	path := "/" + files + "/big"
	for i, step := range []struct {
		fill byte
		size int64
		segs int
	}{{'a', big, 2}, {'b', big, 2}} {
		f, err := k.Create(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, io.LimitReader(fillReader(step.fill), step.size)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("write %d: close: %v", i, err)
		}
		// The last byte reads back as written: this version, whole.
		r, err := k.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r)
		r.Close()
		if err != nil || n != step.size {
			t.Fatalf("write %d: read back %d bytes, %v; want %d", i, n, err, step.size)
		}
		if got := segments(); len(got) != step.segs {
			t.Errorf("after write %d (%d bytes): %d segments stored, want %d (the file's own): %v", i, step.size, len(got), step.segs, got)
		}
	}
	if err := k.Remove(ctx, path); err != nil {
		t.Fatal(err)
	}
	if got := segments(); len(got) != 0 {
		t.Errorf("after rm: %d segments left: %v", len(got), got)
	}
}

// fillReader is an endless stream of one byte.
type fillReader byte

func (b fillReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
