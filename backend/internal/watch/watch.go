// Package watch is the registry behind the backend.Notifier of the
// in-repo stores: one channel per watched (container, key), closed at the
// next change, found in O(depth of the changed name) whatever the number
// of watchers.
package watch

import (
	"strings"
	"sync"
	"sync/atomic"
)

type key struct {
	container string
	key       string
}

// Registry holds the channels. The zero value is ready to use.
type Registry struct {
	n      atomic.Int64 // len(m), read without the lock on the write path
	mu     sync.Mutex
	m      map[key]chan struct{}
	perC   map[string]int // keys watched per container
	closed bool
}

// closedChan is returned once the registry is closed.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Changed returns the channel for (container, k), closed at the next
// Notify of k or of a name under k when k ends in '/'. Every call until
// then returns the same channel. The empty key matches nothing. After
// Close it returns a closed channel.
func (r *Registry) Changed(container, k string) <-chan struct{} {
	wk := key{container, k}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return closedChan
	}
	ch := r.m[wk]
	if ch == nil {
		if r.m == nil {
			r.m = make(map[key]chan struct{})
			r.perC = make(map[string]int)
		}
		ch = make(chan struct{})
		r.m[wk] = ch
		r.perC[container]++
		r.n.Store(int64(len(r.m)))
	}
	return ch
}

// Notify wakes the watchers of a change to container/name: those of the
// name itself and of each of its prefixes ending in '/'.
func (r *Registry) Notify(container, name string) {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	if len(r.m) > 0 {
		r.fire(container, name)
		for i := 0; ; {
			j := strings.IndexByte(name[i:], '/')
			if j < 0 {
				break
			}
			i += j + 1
			if i == len(name) {
				break // name itself ends in '/': fired above
			}
			r.fire(container, name[:i])
		}
		r.n.Store(int64(len(r.m)))
	}
	r.mu.Unlock()
}

// fire closes and forgets the channel of (container, k), if any. r.mu
// must be held.
func (r *Registry) fire(container, k string) {
	wk := key{container, k}
	if ch, ok := r.m[wk]; ok {
		close(ch)
		delete(r.m, wk)
		if r.perC[container]--; r.perC[container] <= 0 {
			delete(r.perC, container)
		}
	}
}

// NotifyContainer wakes every watcher of container: for when a change
// may have been missed.
func (r *Registry) NotifyContainer(container string) {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	if r.perC[container] > 0 {
		for wk, ch := range r.m {
			if wk.container == container {
				close(ch)
				delete(r.m, wk)
			}
		}
		delete(r.perC, container)
		r.n.Store(int64(len(r.m)))
	}
	r.mu.Unlock()
}

// Watched reports whether container has watchers.
func (r *Registry) Watched(container string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.perC[container] > 0
}

// Close closes every channel; later Changed calls return closed channels.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	for _, ch := range r.m {
		close(ch)
	}
	r.m, r.perC = nil, nil
	r.n.Store(0)
	r.mu.Unlock()
}

// Len returns the number of keys watched.
func (r *Registry) Len() int { return int(r.n.Load()) }
