package swift_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
)

// TestOverwriteLargeObjectNoLeak: overwriting a large object (an SLO) with
// another, and then removing it, leaves no segment behind, as the swift
// CLI does (issue: two writes of a 70 MB file left 4 segments, rm left 2).
func TestOverwriteLargeObjectNoLeak(t *testing.T) {
	cfg := config(t)
	cfg.SegmentSize = 1 << 20
	s := open(t, cfg)
	c := container(t, s)
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), (5<<20)/16) // 5 segments
	for i, body := range [][]byte{big, big[:3<<20+1], big} {
		if _, err := s.Put(ctx, c, "f", bytes.NewReader(body), nil); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		rc, _, err := s.Get(ctx, c, "f", nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) {
			t.Fatalf("write %d: read back %d bytes, want %d", i, len(got), len(body))
		}
		segs, err := s.List(ctx, c+"_segments", backend.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := (len(body) + (1 << 20) - 1) >> 20
		if len(body) <= 1<<20 {
			want = 0
		}
		if len(segs) != want {
			t.Fatalf("after write %d (%d bytes): %d segments stored, want %d (its own)", i, len(body), len(segs), want)
		}
	}
	if err := s.Delete(ctx, c, "f"); err != nil {
		t.Fatal(err)
	}
	if segs, err := s.List(ctx, c+"_segments", backend.ListOptions{}); err != nil || len(segs) != 0 {
		t.Fatalf("after remove: %d segments left (%v)", len(segs), err)
	}
}

// consumer deletes every object a PUT stores, before the PUT's answer
// comes back, as a pipe's reader consumes a segment before its writer's
// create-only Put has checked its writer token. It counts the PUTs.
type consumer struct {
	base http.RoundTripper
	puts atomic.Int32
}

func (c *consumer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodPut || resp.StatusCode != http.StatusCreated || strings.Count(r.URL.Path, "/") < 4 {
		return resp, err
	}
	c.puts.Add(1)
	del, _ := http.NewRequestWithContext(r.Context(), http.MethodDelete, r.URL.String(), nil)
	del.Header.Set("X-Auth-Token", r.Header.Get("X-Auth-Token"))
	if dr, err := c.base.RoundTrip(del); err == nil {
		dr.Body.Close()
	}
	return resp, nil
}

// TestCreateOnlyConsumedNotResurrected: a create-only Put answered 201
// whose object is gone by the time it is verified (consumed) succeeds, and
// does not put the object again (issue: a pipe writer re-PUT segments its
// reader had consumed, leaving 4-10 of 64 behind).
func TestCreateOnlyConsumedNotResurrected(t *testing.T) {
	cfg := config(t)
	tr := &consumer{base: http.DefaultTransport}
	cfg.Transport = tr
	s := open(t, cfg)
	c := container(t, s)
	ctx := context.Background()
	if _, err := s.Put(ctx, c, "seg", bytes.NewReader([]byte("data")), &backend.PutOptions{CreateOnly: true}); err != nil {
		t.Fatalf("create-only put of an object consumed at once: %v", err)
	}
	if n := tr.puts.Load(); n != 1 {
		t.Fatalf("%d PUTs stored, want 1", n)
	}
	if _, err := s.Head(ctx, c, "seg"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("the consumed object is back: %v", err)
	}
}

// TestSweepSegments: SweepSegments deletes the segments no manifest names
// (of an object overwritten or deleted by a client that kept them), once
// their upload is an hour old, and keeps those in use and young ones.
func TestSweepSegments(t *testing.T) {
	cfg := config(t)
	cfg.SegmentSize = 1 << 20
	s := open(t, cfg)
	c := container(t, s)
	segc := c + "_segments"
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 2<<20+5) // 3 segments, in use
	if _, err := s.Put(ctx, c, "f", bytes.NewReader(big), nil); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour).UnixNano()
	orphans := []string{
		fmt.Sprintf("f/slo/%d/tok1/00000000", old), // an earlier version of f
		fmt.Sprintf("f/slo/%d/tok1/00000001", old),
		fmt.Sprintf("gone/slo/%d/tok2/00000000", old), // of an object deleted
	}
	young := fmt.Sprintf("gone/slo/%d/tok3/00000000", time.Now().UnixNano()) // an upload in progress
	for _, n := range append(orphans, young, "not-a-segment") {
		if _, err := s.Put(ctx, segc, n, bytes.NewReader([]byte("seg")), nil); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.SweepSegments(ctx, c, 0)
	if err != nil || n != len(orphans) {
		t.Fatalf("SweepSegments: %d deleted, %v; want %d", n, err, len(orphans))
	}
	left, err := s.List(ctx, segc, backend.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3+2 {
		t.Fatalf("%d objects left in %s, want f's 3 segments, the young one and the foreign one: %v", len(left), segc, left)
	}
	rc, _, err := s.Get(ctx, c, "f", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, big) {
		t.Fatalf("f read back %d bytes after the sweep, want %d", len(got), len(big))
	}
}
