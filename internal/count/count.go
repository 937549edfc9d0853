// Package count wraps a backend.Store to count its requests by kind, so
// that the protocol's request budget can be measured and shown to users.
package count

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/rackfork/rack/backend"
)

// Kinds of requests, as Swift would see them.
const (
	Put = iota
	CreateOnlyPut
	Get
	Head
	List
	Delete
	Container // container create, delete, list
	NumKinds
)

// KindNames names the kinds, by index.
var KindNames = [NumKinds]string{"put", "create-only put", "get", "head", "list", "delete", "container"}

// Store counts every request that reaches the wrapped store.
type Store struct {
	backend.Store
	n      [NumKinds]atomic.Int64
	logger *slog.Logger
}

// Wrap counts s's requests and logs each at debug level on logger (nil:
// none). The result implements backend.Notifier when s does.
func Wrap(s backend.Store, logger *slog.Logger) (backend.Store, *Store) {
	c := &Store{Store: s, logger: logger}
	if n, ok := s.(backend.Notifier); ok {
		return &notifying{c, n}, c
	}
	return c, c
}

type notifying struct {
	*Store
	backend.Notifier
}

// Counts returns the number of requests of each kind so far.
func (s *Store) Counts() [NumKinds]int64 {
	var out [NumKinds]int64
	for i := range out {
		out[i] = s.n[i].Load()
	}
	return out
}

func (s *Store) add(ctx context.Context, kind int, container, name string) {
	s.n[kind].Add(1)
	if s.logger != nil && s.logger.Enabled(ctx, slog.LevelDebug) {
		s.logger.DebugContext(ctx, "rack: store request", "kind", KindNames[kind], "container", container, "name", name)
	}
}

// CreateContainer counts.
func (s *Store) CreateContainer(ctx context.Context, c string) error {
	s.add(ctx, Container, c, "")
	return s.Store.CreateContainer(ctx, c)
}

// DeleteContainer counts.
func (s *Store) DeleteContainer(ctx context.Context, c string) error {
	s.add(ctx, Container, c, "")
	return s.Store.DeleteContainer(ctx, c)
}

// ListContainers counts.
func (s *Store) ListContainers(ctx context.Context, o backend.ListOptions) ([]backend.ObjectInfo, error) {
	s.add(ctx, Container, "", o.Prefix)
	return s.Store.ListContainers(ctx, o)
}

// Put counts.
func (s *Store) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	kind := Put
	if o != nil && o.CreateOnly {
		kind = CreateOnlyPut
	}
	s.add(ctx, kind, c, n)
	return s.Store.Put(ctx, c, n, r, o)
}

// Get counts.
func (s *Store) Get(ctx context.Context, c, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	s.add(ctx, Get, c, n)
	return s.Store.Get(ctx, c, n, o)
}

// Head counts.
func (s *Store) Head(ctx context.Context, c, n string) (backend.ObjectInfo, error) {
	s.add(ctx, Head, c, n)
	return s.Store.Head(ctx, c, n)
}

// List counts.
func (s *Store) List(ctx context.Context, c string, o backend.ListOptions) ([]backend.ObjectInfo, error) {
	s.add(ctx, List, c, o.Prefix)
	return s.Store.List(ctx, c, o)
}

// Delete counts.
func (s *Store) Delete(ctx context.Context, c, n string) error {
	s.add(ctx, Delete, c, n)
	return s.Store.Delete(ctx, c, n)
}

// DeleteSmall counts, as a Delete (backend.SmallDeleter; a store without
// it deletes).
func (s *Store) DeleteSmall(ctx context.Context, c, n string) error {
	s.add(ctx, Delete, c, n)
	if sd, ok := s.Store.(backend.SmallDeleter); ok {
		return sd.DeleteSmall(ctx, c, n)
	}
	return s.Store.Delete(ctx, c, n)
}
