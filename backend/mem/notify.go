package mem

import (
	"strings"
	"sync"
	"sync/atomic"
)

// watchKey identifies the watchers of one key in one container.
type watchKey struct {
	container string
	key       string
}

// watchers holds one channel per watched (container, key): every Changed
// call for the key before the next change shares it.
type watchers struct {
	n      atomic.Int64 // len(m), read without the lock on the write path
	mu     sync.Mutex
	m      map[watchKey]chan struct{}
	closed bool
}

// closedChan is returned by Changed on a closed store.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Changed returns a channel closed at the next Put or Delete of an object in
// container named key or, when key ends in '/', whose name starts with key.
// The expiry of such an object also closes it (a timer purges expired
// objects when they expire). Call Changed before checking the store, then
// wait on the channel, so as not to miss a change. The empty key matches
// nothing, since no object has an empty name.
//
// Every call for the same container and key until the next change returns
// the same channel, which stays registered until a change closes it. On a
// closed store the channel is already closed. A Put checks only the keys
// that can match its name (the name and its prefixes ending in '/'), so the
// cost of a change does not grow with the number of watchers.
func (s *Store) Changed(container, key string) <-chan struct{} {
	w := &s.watch
	k := watchKey{container, key}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return closedChan
	}
	ch := w.m[k]
	if ch == nil {
		if w.m == nil {
			w.m = make(map[watchKey]chan struct{})
		}
		ch = make(chan struct{})
		w.m[k] = ch
		w.n.Store(int64(len(w.m)))
	}
	w.mu.Unlock()
	return ch
}

// notify wakes the watchers of a change to container/name.
func (w *watchers) notify(container, name string) {
	if w.n.Load() == 0 {
		return
	}
	w.mu.Lock()
	if len(w.m) > 0 {
		w.fire(container, name)
		for i := 0; ; {
			j := strings.IndexByte(name[i:], '/')
			if j < 0 {
				break
			}
			i += j + 1
			if i == len(name) {
				break // name itself ends in '/': fired above
			}
			w.fire(container, name[:i])
		}
		w.n.Store(int64(len(w.m)))
	}
	w.mu.Unlock()
}

// fire closes and forgets the channel of (container, key), if any.
// w.mu must be held.
func (w *watchers) fire(container, key string) {
	k := watchKey{container, key}
	if ch, ok := w.m[k]; ok {
		close(ch)
		delete(w.m, k)
	}
}

// close closes every channel; later Changed calls return closed channels.
func (w *watchers) close() {
	w.mu.Lock()
	w.closed = true
	for _, ch := range w.m {
		close(ch)
	}
	w.m = nil
	w.n.Store(0)
	w.mu.Unlock()
}
