package mem

import "time"

// expiryEntry records that container/name may expire at at (mono time).
// Entries are not removed when the object is overwritten or deleted; the
// purge checks the current object instead. They hold names, not objects, so
// a stale entry does not keep data alive.
type expiryEntry struct {
	at        int64
	container string
	name      string
}

// expiryHeap is a min-heap of expiry entries by time.
type expiryHeap []expiryEntry

func (h *expiryHeap) push(e expiryEntry) {
	*h = append(*h, e)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p].at <= a[i].at {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *expiryHeap) pop() expiryEntry {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = expiryEntry{}
	a = a[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(a) {
			break
		}
		m := l
		if r := l + 1; r < len(a) && a[r].at < a[l].at {
			m = r
		}
		if a[i].at <= a[m].at {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// scheduleExpiry arranges for container/name to be purged at at, arming the
// store's single expiry timer if at is its earliest deadline. s.mu must be
// held for writing.
func (s *Store) scheduleExpiry(container, name string, at, now int64) {
	s.expiry.push(expiryEntry{at: at, container: container, name: name})
	if s.timerAt != 0 && s.timerAt <= at {
		return
	}
	s.timerAt = at
	if s.timer == nil {
		s.timer = time.AfterFunc(time.Duration(at-now), s.expire)
	} else {
		s.timer.Reset(time.Duration(at - now))
	}
}

// expire is the expiry timer's function: it purges the objects whose time
// has come, which counts as a change for Changed, and re-arms the timer for
// the next deadline.
func (s *Store) expire() {
	var fired []expiryEntry
	now := mono()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for len(s.expiry) > 0 && s.expiry[0].at <= now {
		e := s.expiry.pop()
		c := s.containers[e.container]
		if c == nil {
			continue
		}
		if o := c.objects[e.name]; o != nil && o.expired(now) {
			s.unlink(c, e.name, now)
			fired = append(fired, e)
		}
	}
	if len(s.expiry) > 0 {
		s.timerAt = s.expiry[0].at
		s.timer.Reset(time.Duration(s.timerAt - now))
	} else {
		s.timerAt = 0
	}
	s.mu.Unlock()
	for _, e := range fired {
		s.watch.Notify(e.container, e.name)
	}
}
