package rack

import "testing"

// The scheduler on its own: admission under a bound, the queue's order,
// skipping a queued process that was killed, and closing.
func TestSchedulerQueue(t *testing.T) {
	s := &scheduler{max: 1, procs: map[PID]*proc{}}
	p1, p2, p3, p4 := &proc{pid: 101}, &proc{pid: 102}, &proc{pid: 103}, &proc{pid: 104}
	if run, closed := s.admit(p1); !run || closed || !p1.started {
		t.Fatalf("admit first: run %v closed %v started %v; want it to run", run, closed, p1.started)
	}
	for _, p := range []*proc{p2, p3, p4} {
		if run, closed := s.admit(p); run || closed || p.started {
			t.Fatalf("admit %d over the bound: run %v closed %v started %v; want it queued", p.pid, run, closed, p.started)
		}
	}
	if s.hosted(103) != p3 {
		t.Fatalf("hosted(103) = %v, want the queued process", s.hosted(103))
	}
	p3.killed.Store(true) // ending while queued: not to be started
	if next := s.exit(p1); next != p2 || !p2.started {
		t.Fatalf("exit of the running one started %v, want %d", next, p2.pid)
	}
	if s.exit(p3) != nil {
		t.Fatal("exit of a queued process started another")
	}
	if next := s.exit(p2); next != p4 {
		t.Fatalf("after the killed one left the queue, exit started %v, want %d", next, p4.pid)
	}
	if s.empty() {
		t.Fatal("empty while one still runs")
	}
	if s.count(func(*proc) bool { return true }) != 1 || len(s.match(func(p *proc) bool { return p == p4 })) != 1 {
		t.Fatal("count/match do not see the one running process")
	}
	if s.exit(p4) != nil || !s.empty() {
		t.Fatal("not empty once every process has left")
	}
}

func TestSchedulerClose(t *testing.T) {
	s := &scheduler{max: 1, procs: map[PID]*proc{}}
	p1, p2 := &proc{pid: 101}, &proc{pid: 102}
	s.admit(p1)
	s.admit(p2) // queued
	all, ok := s.close()
	if !ok || len(all) != 2 {
		t.Fatalf("close = %d processes, %v; want both, true", len(all), ok)
	}
	if _, ok := s.close(); ok {
		t.Fatal("a second close reported ok")
	}
	if !s.isClosed() {
		t.Fatal("not closed after close")
	}
	if run, closed := s.admit(&proc{pid: 103}); run || !closed {
		t.Fatalf("admit after close: run %v closed %v; want closed", run, closed)
	}
	if next := s.exit(p1); next != nil {
		t.Fatalf("exit after close started %d: close kills the queue", next.pid)
	}
	if s.whileOpen(func() { t.Fatal("whileOpen ran f after close") }) {
		t.Fatal("whileOpen reported true after close")
	}
}
