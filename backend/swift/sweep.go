package swift

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack/backend"
)

// SweepSegments deletes the segments of container c's large objects that
// no object of c names any more and whose upload began more than minAge
// ago (at least an hour, so that no upload in progress loses a segment
// before its manifest is written): segments left by an overwrite or a
// delete made by another client, or by a version of this driver that
// kept them, or by a Put whose manifest's fate was unknown. It looks in
// c's segment container (see "Large objects") at the segments this driver
// writes ("<name>/slo/<time>/<token>/<n>"), reads the manifest of each
// object they belong to once, and returns how many segments it deleted.
// Segments of another layout, or of a name too long to be told from its
// segments' names, are left alone.
func (s *Store) SweepSegments(ctx context.Context, c string, minAge time.Duration) (int, error) {
	if err := s.checkContainer(c); err != nil {
		return 0, err
	}
	minAge = max(minAge, time.Hour)
	segc := segmentContainer(c)
	// Upload prefix -> its segments' names, for uploads old enough.
	uploads := map[string][]string{}
	heads := map[string]string{} // upload prefix -> object name
	opts := backend.ListOptions{}
	for {
		page, err := s.List(ctx, segc, opts)
		if errors.Is(err, backend.ErrNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			head, prefix, started, ok := parseSegmentName(o.Name)
			if !ok || time.Since(started) < minAge || len(head) >= 200 {
				continue
			}
			uploads[prefix] = append(uploads[prefix], o.Name)
			heads[prefix] = head
		}
		opts.Marker = page[len(page)-1].Name
	}
	named := map[string]map[string]bool{} // object -> the segments its manifest names
	deleted := 0
	for prefix, segs := range uploads {
		head := heads[prefix]
		inUse, ok := named[head]
		if !ok {
			var err error
			if inUse, err = s.manifestSegments(ctx, c, head); err != nil {
				s.log.Debug("swift: sweep: manifest unreadable: its segments stay", "container", c, "object", head, "err", err)
				continue
			}
			named[head] = inUse
		}
		if inUse["/"+segc+"/"+segs[0]] {
			continue
		}
		for _, name := range segs {
			_, _, err := s.call(ctx, sw.RequestOpts{Container: segc, ObjectName: name, Operation: "DELETE", NoResponse: true})
			if err != nil && !isStatus(err, 404) {
				return deleted, s.mapErr(ctx, err, "sweep segments: delete", segc, name)
			}
			deleted++
		}
	}
	return deleted, nil
}

// manifestSegments returns the segments ("/container/object") the
// manifest of c/name names: none if it is missing or not an SLO.
func (s *Store) manifestSegments(ctx context.Context, c, name string) (map[string]bool, error) {
	_, h, err := s.call(ctx, sw.RequestOpts{Container: c, ObjectName: name, Operation: "HEAD", NoResponse: true})
	if isStatus(err, 404) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, s.mapErr(ctx, err, "sweep segments: head", c, name)
	}
	out := map[string]bool{}
	if !strings.EqualFold(h["X-Static-Large-Object"], "true") {
		return out, nil
	}
	segs := s.sloSegments(ctx, c, name)
	if segs == nil {
		return nil, fmt.Errorf("swift: sweep segments: reading the manifest of %s/%s failed", c, name)
	}
	for _, p := range segs {
		out[p] = true
	}
	return out, nil
}

// parseSegmentName reads a segment name putLarge made,
// "<head>/slo/<unix nanoseconds>/<token>/<8 digits>": the object's name
// (head), the upload's prefix, and when the upload began.
func parseSegmentName(name string) (head, prefix string, started time.Time, ok bool) {
	parts := strings.Split(name, "/")
	n := len(parts)
	if n < 5 || parts[n-4] != "slo" || len(parts[n-1]) != 8 {
		return "", "", time.Time{}, false
	}
	if _, err := strconv.Atoi(parts[n-1]); err != nil {
		return "", "", time.Time{}, false
	}
	ns, err := strconv.ParseInt(parts[n-3], 10, 64)
	if err != nil || ns <= 0 {
		return "", "", time.Time{}, false
	}
	head = strings.Join(parts[:n-4], "/")
	prefix = strings.Join(parts[:n-1], "/") + "/"
	return head, prefix, time.Unix(0, ns), head != ""
}
