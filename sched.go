package rack

import (
	"sync"

	"github.com/rackfork/rack/internal/record"
)

// scheduler is the kernel's process table and run queue: the processes it
// hosts, how many of them run, and the forks that wait for a free slot
// (WithMaxRunning). Its closed flag is the kernel's: once Close has set
// it, nothing more is scheduled, nor any background work started.
type scheduler struct {
	max int // the most processes run at once; 0: no bound

	mu      sync.Mutex
	closed  bool
	procs   map[PID]*proc // processes this kernel hosts that have not ended, queued or not
	pending []*proc       // forks queued for a free slot (in procs too)
	running int
}

// admit enters pr in the table and reports whether it may start now (else
// it is queued, or was killed before it was scheduled), or whether the
// kernel has closed (then pr was not entered).
func (s *scheduler) admit(pr *proc) (run, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, true
	}
	if pr.killed.Load() { // killed with its parent before it was scheduled
		return false, false
	}
	s.procs[pr.pid] = pr
	if s.max > 0 && s.running >= s.max {
		s.pending = append(s.pending, pr)
		return false, false
	}
	s.running++
	pr.started = true
	return true, false
}

// room reports how many more processes may start now (-1: no bound).
func (s *scheduler) room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max == 0 {
		return -1
	}
	return max(0, s.max-s.running)
}

// adopt enters pr, already running, in the table.
func (s *scheduler) adopt(pr *proc) {
	s.mu.Lock()
	s.procs[pr.pid] = pr
	s.running++
	s.mu.Unlock()
}

// exit takes pr, which has ended, out of the table (or the queue), and
// returns the queued process to start in its slot, if any.
func (s *scheduler) exit(pr *proc) (next *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.procs, pr.pid)
	if pr.started {
		s.running--
		for len(s.pending) > 0 && next == nil && !s.closed { // Close kills the queue: start none
			next, s.pending = s.pending[0], s.pending[1:]
			if next.killed.Load() { // ending (finish sets killed first); next.exit is not ours to read
				next = nil
			}
		}
		if next != nil {
			s.running++
			next.started = true
		}
		return next
	}
	for i, q := range s.pending {
		if q == pr {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			break
		}
	}
	return nil
}

// close marks the kernel closed and returns every process it still hosts
// or queues; ok is false if it was closed already.
func (s *scheduler) close() (all []*proc, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	s.closed = true
	all = make([]*proc, 0, len(s.procs))
	for _, p := range s.procs { // the queued ones too: admit enters them
		all = append(all, p)
	}
	return all, true
}

// isClosed reports whether close has been called.
func (s *scheduler) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// whileOpen runs f, unless the kernel has closed, so that close happens
// either before f or after it; it reports whether f ran.
func (s *scheduler) whileOpen(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	f()
	return true
}

// empty reports whether nothing runs or waits.
func (s *scheduler) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.procs) == 0 && len(s.pending) == 0
}

// hosted returns the running process pid, or nil.
func (s *scheduler) hosted(pid PID) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[pid]
}

// match returns the running processes for which keep is true, in no
// particular order.
func (s *scheduler) match(keep func(*proc) bool) []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*proc
	for _, pr := range s.procs {
		if keep(pr) {
			out = append(out, pr)
		}
	}
	return out
}

// count returns how many running processes keep is true for.
func (s *scheduler) count(keep func(*proc) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pr := range s.procs {
		if keep(pr) {
			n++
		}
	}
	return n
}

// schedule starts pr now, or queues it when the kernel runs its maximum.
func (k *Kernel) schedule(pr *proc) {
	run, closed := k.sched.admit(pr)
	if closed {
		k.finish(pr, &record.Exit{Code: -1, Lost: true, Reason: "kernel closed before start"})
		return
	}
	if !run {
		return
	}
	if pr.remote {
		// A server's create takes a round trip or more, and waits for a
		// boot slot: Fork returns now (the process is recorded), so that
		// ForkAll's children boot together.
		go k.start(pr)
		return
	}
	k.start(pr)
}

// isClosed reports whether Close has been called.
func (k *Kernel) isClosed() bool { return k.sched.isClosed() }

// hosted returns the running process pid if this kernel hosts it.
func (k *Kernel) hosted(pid PID) *proc { return k.sched.hosted(pid) }
