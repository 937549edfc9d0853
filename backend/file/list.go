package file

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rackfork/rack/backend"
)

// List returns one page of the container's objects (see backend.ListOptions
// and Swift's container GET): Name, Size, ETag and LastModified are set,
// Metadata is not. Limit 0 means backend.MaxListLimit, and larger limits are
// clamped to it; the delimiter must be a single character.
//
// List walks the container's directory tree depth first in byte order of
// names (see the layout in the package documentation): it starts at the
// deepest directory the prefix names, skips the directories wholly before
// the marker or outside the prefix, and does not descend into a Subdir once
// it has reported it. It reads the header of each object it returns, but
// never a body.
func (s *Store) List(ctx context.Context, container string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	const op = "list"
	if err := s.enter(ctx); err != nil {
		return nil, containerError(op, container, "", err)
	}
	if d := backend.ContainerNameProblem(container); d != "" {
		return nil, containerError(op, container, d, backend.ErrInvalid)
	}
	limit, d := backend.ListOptionsProblem(&opts)
	if d != "" {
		return nil, containerError(op, container, d, backend.ErrInvalid)
	}
	l := lister{
		s: s, ctx: ctx, container: container, cpath: s.containerPath(container),
		prefix: opts.Prefix, delim: opts.Delimiter, marker: opts.Marker,
		limit: limit, now: time.Now().UnixNano(),
	}
	switch err := l.run(); {
	case err == errNoContainer:
		return nil, containerError(op, container, "", backend.ErrNotFound)
	case err == context.Canceled || err == context.DeadlineExceeded:
		return nil, containerError(op, container, "", err)
	case err != nil:
		return nil, containerError(op, container, "", fsErr(err))
	}
	return l.out, nil
}

// lister walks one container for one listing page.
type lister struct {
	s                     *Store
	ctx                   context.Context
	container, cpath      string
	prefix, delim, marker string
	limit                 int
	locked                bool  // the container lock is held exclusively
	now                   int64 // Unix nanoseconds, for expiry

	out  []backend.ObjectInfo
	skip string // the last Subdir: names under it are skipped
}

// errFull stops the walk when the page is full.
var errFull = errors.New("page full")

// run fills l.out.
func (l *lister) run() error {
	// The deepest directory the prefix names whole, and the object named
	// exactly like that directory's key, which sorts before everything in
	// it and lives in the parent.
	path := []byte(l.cpath)
	parent, base, lastSeg := "", "", ""
	segments(l.prefix, func(seg string, last bool) bool {
		if last && seg[len(seg)-1] != '/' && len(seg) < segMax {
			return false // a partial segment
		}
		parent, lastSeg = string(path), seg
		path = appendSegment(append(path, '/'), seg, false)
		base += seg
		return true
	})
	if err := statDir(l.cpath); err != nil {
		return err
	}
	var err error
	if base != "" {
		err = l.file(string(appendSegment(append([]byte(parent), '/'), lastSeg, true)), base)
	}
	if err == nil {
		err = l.dir(string(path), base)
	}
	if err == errFull {
		err = nil
	}
	return err
}

// statDir returns errNoContainer if the container directory is missing.
func statDir(cpath string) error {
	if _, err := os.Stat(cpath); err != nil {
		if notExist(err) {
			return errNoContainer
		}
		return err
	}
	return nil
}

// dirEntry is a decoded entry of the object tree.
type dirEntry struct {
	seg   string
	fname string
	kind  entryKind
}

// dir lists the subtree at path, whose names start with base.
func (l *lister) dir(path, base string) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	names, err := l.s.readNames(path)
	if err != nil {
		if notExist(err) {
			return nil // removed meanwhile, or never made
		}
		return err
	}
	ents := make([]dirEntry, 0, len(names))
	for _, n := range names {
		seg, kind := decodeEntry(n)
		if kind == kindNone {
			continue
		}
		key := base + seg
		if kind == kindObject {
			if !strings.HasPrefix(key, l.prefix) || key <= l.marker {
				continue
			}
		} else {
			if !strings.HasPrefix(key, l.prefix) && !strings.HasPrefix(l.prefix, key) {
				continue
			}
			if key < l.marker && !strings.HasPrefix(l.marker, key) {
				continue // every name below is before the marker
			}
		}
		ents = append(ents, dirEntry{seg: seg, fname: n, kind: kind})
	}
	slices.SortFunc(ents, func(a, b dirEntry) int {
		if c := strings.Compare(a.seg, b.seg); c != 0 {
			return c
		}
		return int(a.kind) - int(b.kind) // an object before a directory
	})
	for _, e := range ents {
		key := base + e.seg
		if l.skip != "" && strings.HasPrefix(key, l.skip) {
			continue
		}
		if e.kind == kindObject {
			err = l.file(path+"/"+e.fname, key)
		} else {
			err = l.dir(path+"/"+e.fname, key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// file considers the object file at path, named name.
func (l *lister) file(path, name string) error {
	if !strings.HasPrefix(name, l.prefix) || name <= l.marker || l.skip != "" && strings.HasPrefix(name, l.skip) {
		return nil
	}
	h, err := l.s.statObject(path, false)
	if err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	if h.expired(l.now) {
		if l.locked {
			l.s.reapLocked(l.cpath, l.container, name)
		} else {
			l.s.reap(l.cpath, l.container, name, true)
		}
		return nil
	}
	if l.delim != "" {
		if i := strings.Index(name[len(l.prefix):], l.delim); i >= 0 {
			d := name[:len(l.prefix)+i+len(l.delim)]
			l.skip = d
			if d == l.marker {
				return nil
			}
			l.out = append(l.out, backend.ObjectInfo{Name: d, Subdir: true})
			return l.full()
		}
	}
	l.out = append(l.out, h.info(name, false))
	return l.full()
}

// full returns errFull if the page is full.
func (l *lister) full() error {
	if len(l.out) >= l.limit {
		return errFull
	}
	return nil
}
