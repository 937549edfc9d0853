package mem

import (
	"context"
	"strings"

	"github.com/rackfork/rack/backend"
)

// update is a listing change waiting for the list lag to pass.
type update struct {
	at   int64   // mono time at which it shows
	name string  // entry name
	obj  *object // new entry, or nil to remove name
}

// queue is a FIFO of listing updates. Since the lag is constant, updates
// fall due in the order they were made.
type queue struct {
	items []update
	head  int
}

// push appends u.
func (q *queue) push(u update) {
	q.items = append(q.items, u)
}

// apply applies to x every update due at now.
func (q *queue) apply(x *index, now int64) {
	for q.head < len(q.items) && q.items[q.head].at <= now {
		u := &q.items[q.head]
		if u.obj != nil {
			x.put(u.obj)
		} else {
			x.remove(u.name)
		}
		*u = update{}
		q.head++
	}
	switch {
	case q.head == len(q.items):
		q.items = q.items[:0]
		q.head = 0
	case q.head > 64 && q.head > len(q.items)/2:
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
}

// list returns one page of x as Swift's container server would: names
// greater than opts.Marker that start with opts.Prefix, in byte order, with
// names that contain opts.Delimiter after the prefix folded into one Subdir
// entry per common prefix. A Subdir equal to the marker is not repeated, so
// that paging with the last returned name as marker works.
func (s *Store) list(x *index, opts *backend.ListOptions, limit int, now int64) []backend.ObjectInfo {
	prefix, delim, marker := opts.Prefix, opts.Delimiter, opts.Marker
	var p pos
	if marker < prefix {
		p = x.lowerBound(prefix)
	} else {
		p = x.upperBound(marker)
	}
	var out []backend.ObjectInfo
	for len(out) < limit {
		o := x.at(p)
		if o == nil || !strings.HasPrefix(o.name, prefix) {
			break
		}
		if !s.listed(o, now) {
			p = x.next(p)
			continue
		}
		if out == nil {
			out = make([]backend.ObjectInfo, 0, min(limit, x.len()))
		}
		if delim != "" {
			if i := strings.Index(o.name[len(prefix):], delim); i >= 0 {
				dir := o.name[:len(prefix)+i+len(delim)]
				if dir != marker {
					out = append(out, backend.ObjectInfo{Name: dir, Subdir: true})
				}
				p = x.pastPrefix(dir)
				continue
			}
		}
		out = append(out, backend.ObjectInfo{
			Name:         o.name,
			Size:         o.size,
			ETag:         o.etag,
			ContentType:  o.contentType(),
			LastModified: o.modified,
		})
		p = x.next(p)
	}
	return out
}

// List returns one page of the container's objects (see backend.ListOptions
// and Swift's container GET): Name, Size, ETag and LastModified are set,
// Metadata is not. Limit 0 means backend.MaxListLimit, and larger limits are
// clamped to it; the delimiter must be a single character. With
// WithListLag, changes show late.
func (s *Store) List(ctx context.Context, container string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	const op = "list"
	if _, err := s.enter(ctx, false); err != nil {
		return nil, containerError(op, container, "", err)
	}
	if d := backend.ContainerNameProblem(container); d != "" {
		return nil, containerError(op, container, d, backend.ErrInvalid)
	}
	limit, d := backend.ListOptionsProblem(&opts)
	if d != "" {
		return nil, containerError(op, container, d, backend.ErrInvalid)
	}
	now := mono()
	if s.lag == 0 {
		s.mu.RLock()
	} else {
		s.mu.Lock()
	}
	var (
		infos []backend.ObjectInfo
		err   error
	)
	switch c := s.containers[container]; {
	case s.closed:
		err = containerError(op, container, "", ErrClosed)
	case c == nil:
		err = containerError(op, container, "", backend.ErrNotFound)
	default:
		if s.lag != 0 {
			c.pending.apply(&c.list, now)
		}
		infos = s.list(&c.list, &opts, limit, now)
	}
	if s.lag == 0 {
		s.mu.RUnlock()
	} else {
		s.mu.Unlock()
	}
	return infos, err
}
