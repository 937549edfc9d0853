package mem

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
	return s.watch.Changed(container, key)
}
