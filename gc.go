package rack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// GCOptions tune Kernel.GC. The zero value is ready to use.
type GCOptions struct {
	// MinAge spares processes that ended less than MinAge ago (default one
	// minute), so that a waiter about to read an exit status still finds
	// it, when something live may wait for them: a child whose parent
	// runs, or a root whose starting kernel lives. The others (a child
	// whose parent has ended or is lost, a root whose starter is gone)
	// have nobody left to wait for them, and go at once, as Unix's init
	// reaps orphans. It also spares pipes written less than MinAge or a
	// lease ago, whichever is shorter (see GC).
	MinAge time.Duration
	// DryRun reports what GC would do without doing it.
	DryRun bool
	// Namespaces also collects the other namespaces of the store whose
	// kernels are all gone (a root killed with kill -9, a lost machine):
	// their instances, through the compute, then every object and the
	// container itself. Only containers that carry the namespace marker
	// (the object "rack-namespace", which a kernel writes when it opens
	// the namespace) count as namespaces; any other is left alone.
	Namespaces bool
	// NamespaceQuiet is how long a namespace without a live lease must
	// have had no write before it counts as dead (default 10 minutes:
	// longer than a listing lags or a lease lasts).
	NamespaceQuiet time.Duration
}

// GCReport says what GC found and removed.
type GCReport struct {
	// Lost are running processes whose kernel had stopped renewing its
	// lease; GC recorded them lost and closed their pipe ends.
	Lost []PID
	// Reaped are ended processes whose records GC removed (ps no longer
	// shows them, Wait on them fails with ErrNotFound).
	Reaped []PID
	// Pipes is how many pipes GC removed: every end closed, their
	// creator ended, no running process or named pipe using them.
	Pipes int
	// Kernels is how many dead kernels' leases and signal inboxes GC removed.
	Kernels int
	// Instances are compute instances GC stopped because they ran no live
	// process.
	Instances []string
	// Objects counts the store objects GC deleted.
	Objects int
	// DeadNamespaces are the namespaces GC removed whole
	// (GCOptions.Namespaces).
	DeadNamespaces []string
	// Swept are the instances the compute's sweep deleted: of dead
	// namespaces, or past the delete-at they were started with.
	Swept []string
	// Segments counts the segments of large objects that no object named
	// any more, which GC deleted (GCOptions.Namespaces, on a store that
	// keeps segments apart: Swift's "<container>_segments").
	Segments int
}

// GC removes what dead processes left behind in the namespace, as the
// rack shell's "gc" does. It records lost the processes whose kernel is
// gone, then reaps ended processes (those it found lost included) whose
// parent has ended too (a running parent may still Wait): at once when
// nothing live can wait for them, else once they ended MinAge ago (see
// GCOptions.MinAge). It removes finished pipes (every end closed or held
// by an ended process, the creator ended, none used by a running process
// or named pipe) unless one of their objects was written less than MinAge
// or the lease ago, other than the close records GC itself wrote for lost
// processes: a listing may lag behind a process that has just taken an
// end, and every process that could pass one on has ended longer ago than
// that. It removes dead kernels' inboxes and stops instances that run
// nothing live. So one GC a lease after a kernel died (kill -9) removes
// everything its processes left. Everything also expires on its own
// (WithRecordTTL); GC is sooner. It reads the namespace's listings, a few
// pages per 10,000 processes, and is safe to run from any kernel at any
// time.
func (k *Kernel) GC(ctx context.Context, opts *GCOptions) (*GCReport, error) {
	if k.isClosed() {
		return nil, ErrClosed
	}
	var o GCOptions
	if opts != nil {
		o = *opts
	}
	if o.MinAge <= 0 {
		o.MinAge = time.Minute
	}
	if o.NamespaceQuiet <= 0 {
		o.NamespaceQuiet = 10 * time.Minute
	}
	g := &gc{k: k, opts: o, report: &GCReport{}, v: &psView{k: k}}
	if err := g.run(ctx); err != nil {
		return g.report, fmt.Errorf("rack: gc: %w", err)
	}
	return g.report, nil
}

type gc struct {
	k      *Kernel
	opts   GCOptions
	report *GCReport
	v      *psView
	procs  map[PID]*record.Proc
	ended  map[PID]*record.Exit
	// lostNow are the processes this pass recorded lost.
	lostNow map[PID]bool
	// wrote are the pipe close records this pass wrote (for lost
	// processes): no sign that a live process used the pipe lately.
	wrote map[string]bool
	// kernelLive caches whether a kernel's lease is live (kernelLives).
	kernelLive map[string]bool
}

func (g *gc) run(ctx context.Context) error {
	k := g.k
	entries, err := k.ns.listAll(ctx, record.Procs)
	if err != nil {
		return err
	}
	g.v.procs = map[PID]*record.Proc{}
	var pids []PID
	for _, o := range entries {
		n, err := record.ParseNumber(o.Name)
		if err != nil {
			continue
		}
		pids = append(pids, PID(n))
		if rec, ok := record.ParseProcSummary(n, o.ContentType); ok {
			g.v.procs[PID(n)] = rec
		}
	}
	if err := g.v.listAll(ctx); err != nil {
		return err
	}
	g.procs, g.ended, g.lostNow = map[PID]*record.Proc{}, map[PID]*record.Exit{}, map[PID]bool{}
	g.wrote, g.kernelLive = map[string]bool{}, map[string]bool{}
	var running []PID
	for _, pid := range pids {
		rec, err := g.v.proc(ctx, pid)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		g.procs[pid] = rec
		if ex, err := g.v.exit(ctx, pid); err == nil {
			g.ended[pid] = ex
			continue
		}
		if k.hosted(pid) != nil {
			running = append(running, pid)
			continue
		}
		if alive, err := g.v.alive(ctx, pid, rec); err != nil || alive {
			running = append(running, pid)
			continue
		}
		// The listings say lost: confirm with the records themselves (an
		// exit or a host record the listings do not show yet).
		if ex, err := k.records.exit(ctx, pid); err == nil {
			g.ended[pid] = ex
			continue
		} else if !errors.Is(err, backend.ErrNotFound) {
			running = append(running, pid)
			continue
		}
		full, err := k.records.proc(ctx, pid)
		if err != nil {
			running = append(running, pid)
			continue
		}
		if host, _, err := k.records.host(ctx, pid, full); err != nil {
			running = append(running, pid)
			continue
		} else if alive, err := k.leases.alive(ctx, host); err != nil || alive {
			running = append(running, pid)
			continue
		}
		g.lost(ctx, pid)
	}
	if err := g.reap(ctx); err != nil {
		return err
	}
	if err := g.pipes(ctx, running); err != nil {
		return err
	}
	if err := g.kernels(ctx); err != nil {
		return err
	}
	if err := g.instances(ctx); err != nil {
		return err
	}
	if g.opts.Namespaces {
		if err := g.segments(ctx); err != nil {
			return err
		}
		return g.namespaces(ctx)
	}
	return nil
}

// namespaces removes the namespaces whose kernels are all gone: first
// their instances (the compute's sweep), then their objects.
func (g *gc) namespaces(ctx context.Context) error {
	k := g.k
	dead := map[string]bool{}
	isDead := func(ctx context.Context, ns string) (bool, error) {
		d, known := dead[ns]
		if !known {
			var err error
			if d, err = k.namespaceDead(ctx, ns, g.opts.NamespaceQuiet); err != nil {
				return false, err
			}
			dead[ns] = d
		}
		return d, nil
	}
	if sw, ok := k.compute.(backend.Sweeper); ok && !g.opts.DryRun {
		swept, err := sw.Sweep(ctx, isDead)
		g.report.Swept = append(g.report.Swept, swept...)
		if err != nil {
			return err
		}
	}
	var containers []string
	marker := ""
	for {
		page, err := k.ns.store.ListContainers(ctx, backend.ListOptions{Marker: marker})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, c := range page {
			containers = append(containers, c.Name)
		}
		marker = page[len(page)-1].Name
	}
	for _, c := range containers {
		if c == k.cfg.container {
			continue
		}
		if d, err := isDead(ctx, c); err != nil || !d {
			continue
		}
		g.report.DeadNamespaces = append(g.report.DeadNamespaces, c)
		if g.opts.DryRun {
			continue
		}
		objs, err := k.ns.listAllIn(ctx, c, "")
		if errors.Is(err, backend.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		// The marker goes last: while it is there, a pass that stops
		// half way finds the namespace again.
		objs = slices.DeleteFunc(objs, func(o backend.ObjectInfo) bool { return o.Name == record.NamespaceMarker })
		objs = append(objs, backend.ObjectInfo{Name: record.NamespaceMarker})
		for _, o := range objs {
			if err := k.ns.store.Delete(ctx, c, o.Name); err == nil {
				g.report.Objects++
			} else if !errors.Is(err, backend.ErrNotFound) {
				return err
			}
		}
		if !k.deleteContainer(ctx, c) {
			// Objects written since the listing: the marker goes back,
			// or no later pass would know the container for a
			// namespace's, and it would stay forever. A pass once the
			// namespace has been quiet again takes the rest.
			if err := k.ns.markContainer(ctx, c); err != nil {
				return fmt.Errorf("gc: namespace %s kept objects, and its marker could not be put back: %w", c, err)
			}
		}
	}
	return nil
}

// deleteContainer deletes the emptied container c, trying again for a
// few seconds while the store says it holds objects: Swift answers 409
// for a moment after the deletes of its last objects, while its object
// count lags them (seen on a loaded Swift 2.30). It reports whether c is
// gone.
func (k *Kernel) deleteContainer(ctx context.Context, c string) bool {
	for wait := 100 * time.Millisecond; ; wait *= 2 {
		err := k.ns.store.DeleteContainer(ctx, c)
		if err == nil || errors.Is(err, backend.ErrNotFound) {
			return true
		}
		if !errors.Is(err, backend.ErrExist) || wait > 2*time.Second {
			return false
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// namespaceDead reports whether container ns holds a rack namespace (its
// marker, record.NamespaceMarker) none of whose kernels renews its lease
// any more, and that has had no write for quiet. A namespace without a
// container here is not known dead: its servers may belong to another
// store. A container without the marker is never collected, whatever it
// holds (a namespace older than markers gets one when a kernel opens it).
func (k *Kernel) namespaceDead(ctx context.Context, ns string, quiet time.Duration) (bool, error) {
	marker, err := k.ns.store.Head(ctx, ns, record.NamespaceMarker)
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil // no container, or not a rack namespace
	}
	if err != nil || !strings.HasPrefix(marker.ContentType, record.NamespaceType) {
		return false, err
	}
	leases, err := k.ns.listAllIn(ctx, ns, record.Kernels)
	if errors.Is(err, backend.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, o := range leases {
		ttl, ok := record.ParseLeaseSummary(o.ContentType)
		if ok && time.Since(o.LastModified) < time.Duration(ttl) {
			return false, nil
		}
		// Stale in the listing: the lease itself says (it expires).
		if _, err := k.ns.store.Head(ctx, ns, o.Name); err == nil {
			return false, nil
		} else if !errors.Is(err, backend.ErrNotFound) {
			return false, err
		}
	}
	// No live lease: but a kernel that joined a moment ago may not be
	// listed yet, so the namespace must also have been quiet a while.
	return time.Since(k.newestObject(ctx, ns)) > quiet, nil
}

// newestObject returns the time of the latest write in container c that
// its listing shows (the zero time if none).
func (k *Kernel) newestObject(ctx context.Context, c string) time.Time {
	objs, err := k.ns.listAllIn(ctx, c, "")
	if err != nil {
		return time.Now()
	}
	var newest time.Time
	for _, o := range objs {
		if o.LastModified.After(newest) {
			newest = o.LastModified
		}
	}
	return newest
}

// lost records pid lost (its kernel is gone) and closes its pipe ends.
func (g *gc) lost(ctx context.Context, pid PID) {
	g.report.Lost = append(g.report.Lost, pid)
	if g.opts.DryRun {
		return
	}
	k := g.k
	k.recordLost(ctx, pid, "its kernel stopped renewing its lease (found by gc)")
	if rec, err := k.records.proc(ctx, pid); err == nil {
		k.closeRecordedEnds(ctx, rec)
		for _, s := range []record.Stream{rec.Stdout, rec.Stderr} { // as closeRecordedEnds
			if s.Kind == "pipe" && s.End >= 0 {
				g.wrote[record.PipeCloseKey(s.Pipe, s.End)] = true
			}
		}
	}
	// It counts as ended for its children; it is reaped in this pass if
	// nothing live can wait for it (reap), else its waiters get MinAge
	// to see it lost. Its exit record is read back there.
	g.lostNow[pid] = true
	if ex, err := k.records.exit(ctx, pid); err == nil {
		g.ended[pid] = ex
	}
}

// parentGone reports whether process pid, which the listings did not
// show, has ended or is gone, as its records say (false when they cannot
// be read: nothing is removed on a guess).
func (g *gc) parentGone(ctx context.Context, pid PID) bool {
	if _, err := g.k.records.exit(ctx, pid); err == nil {
		return true
	}
	_, err := g.k.records.proc(ctx, pid)
	return errors.Is(err, backend.ErrNotFound)
}

// kernelLives reports whether kernel id renews its lease (true when that
// cannot be read: nothing is removed on a guess).
func (g *gc) kernelLives(ctx context.Context, id string) bool {
	if live, ok := g.kernelLive[id]; ok {
		return live
	}
	live, err := g.k.leases.alive(ctx, id)
	live = live || err != nil
	g.kernelLive[id] = live
	return live
}

// reap removes the records of processes that ended long enough ago and
// whose parent cannot wait for them any more.
func (g *gc) reap(ctx context.Context) error {
	cutoff := time.Now().Add(-g.opts.MinAge).UnixNano()
	var reap []PID
	for pid, ex := range g.ended {
		rec := g.procs[pid]
		ppid := PID(rec.PPID)
		if ppid != InitPID {
			if _, parentEnded := g.ended[ppid]; !parentEnded && !g.lostNow[ppid] && g.procs[ppid] != nil {
				continue // its parent runs and may still wait
			}
			// An orphan, nobody can wait for it any more, unless its
			// parent is only missing from a listing that lags.
			if ex.Ended > cutoff && g.procs[ppid] == nil && !g.parentGone(ctx, ppid) {
				continue
			}
		} else if ex.Ended > cutoff && g.kernelLives(ctx, rec.Kernel) {
			continue // a root whose starter lives, and may still wait
		}
		reap = append(reap, pid)
	}
	sort.Slice(reap, func(i, j int) bool { return reap[i] < reap[j] })
	for _, pid := range reap {
		g.report.Reaped = append(g.report.Reaped, pid)
		if g.opts.DryRun {
			continue
		}
		keys := []string{record.StatusKey(int64(pid)), record.HostKey(int64(pid))}
		if gid := g.procs[pid].Group; gid != 0 {
			keys = append(keys, record.GroupMemberKey(gid, int64(pid)))
		}
		// The exit record goes last: while it stands, the process is
		// still seen to have ended.
		keys = append(keys, record.ProcKey(int64(pid)), record.ExitKey(int64(pid)))
		if err := g.delete(ctx, keys...); err != nil {
			return err
		}
		g.k.records.forget(pid)
	}
	return nil
}

// pipes removes pipes whose ends are all closed, whose creator has ended,
// and that no running process or named pipe uses.
func (g *gc) pipes(ctx context.Context, running []PID) error {
	k := g.k
	inUse := map[string]bool{}
	for _, pid := range running {
		rec, err := k.records.proc(ctx, pid)
		if err != nil {
			continue // a record we cannot read: spare everything it might use
		}
		for _, s := range append([]record.Stream{rec.Stdin, rec.Stdout, rec.Stderr}, rec.Files...) {
			if s.Kind == "pipe" {
				inUse[s.Pipe] = true
			}
		}
	}
	fifos, err := k.ns.listAll(ctx, record.Fifos)
	if err != nil {
		return err
	}
	for _, o := range fifos {
		var f record.Fifo
		if err := k.ns.getRecord(ctx, o.Name, &f); err == nil {
			inUse[f.Pipe] = true // its sessions are f.Pipe.N: see below
		} else if !errors.Is(err, backend.ErrNotFound) {
			return err
		}
	}
	page, err := k.ns.listDirs(ctx, record.Pipes)
	if err != nil {
		return err
	}
	guard := min(g.opts.MinAge, k.cfg.lease)
	for _, dir := range page {
		id := strings.TrimSuffix(strings.TrimPrefix(dir, record.Pipes), "/")
		if inUse[id] {
			continue
		}
		if i := strings.LastIndexByte(id, '.'); i >= 0 && inUse[id[:i]] {
			// A session of a named pipe that exists: its over marker
			// tells the sessions that follow where to start (fifo.go).
			continue
		}
		objs, err := k.ns.listAllIn(ctx, k.cfg.container, dir)
		if err != nil {
			return err
		}
		ends, closes := 0, 0
		recent := false
		for _, o := range objs {
			if time.Since(o.LastModified) < guard && !g.wrote[o.Name] {
				recent = true // in use a moment ago: a listing may lag behind its users
			}
			switch {
			case strings.HasPrefix(o.Name, dir+"ends/"):
				n, ok := record.ParseEndsSummary(o.ContentType)
				if !ok {
					n = 1 // a record without a summary registers one end
				}
				ends += n
			case strings.HasPrefix(o.Name, dir+"close/"):
				closes++
			}
		}
		over := false
		for _, o := range objs {
			over = over || o.Name == record.FifoOverKey(id)
		}
		if over && !recent {
			// A session of a named pipe that is gone, over (every end
			// closed): what its dropping left, the over marker at least.
			if err := g.deletePipe(ctx, objs); err != nil {
				return err
			}
			continue
		}
		if ends == 0 || recent || (closes < ends && !g.unclosedEndsEnded(ctx, id, dir, objs)) {
			continue
		}
		var creator record.PipeEnd
		if err := k.ns.getRecord(ctx, record.PipeEndKey(id, 0), &creator); err != nil {
			continue
		}
		if _, ended := g.ended[PID(creator.PID)]; !ended && !g.lostNow[PID(creator.PID)] {
			if g.procs[PID(creator.PID)] != nil {
				continue // its creator runs and may still read
			}
			// Not listed: ended and reaped, or listed late. Its exit says.
			if _, err := k.records.exit(ctx, PID(creator.PID)); err != nil {
				if _, perr := k.records.proc(ctx, PID(creator.PID)); !errors.Is(perr, backend.ErrNotFound) {
					continue
				}
			}
		}
		if err := g.deletePipe(ctx, objs); err != nil {
			return err
		}
	}
	return nil
}

// deletePipe removes a pipe's objects, counting it.
func (g *gc) deletePipe(ctx context.Context, objs []backend.ObjectInfo) error {
	g.report.Pipes++
	if g.opts.DryRun {
		return nil
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Name
	}
	return g.delete(ctx, names...)
}

// unclosedEndsEnded reports whether every end of pipe id (whose objects,
// under dir, are objs) that has no close record belongs to a process that
// has ended: a process that exited while the store was unreachable may
// have its exit recorded but not its ends' close records, and nothing will
// write them any more.
func (g *gc) unclosedEndsEnded(ctx context.Context, id, dir string, objs []backend.ObjectInfo) bool {
	closed := map[string]bool{}
	for _, o := range objs {
		if n, ok := strings.CutPrefix(o.Name, dir+"close/"); ok {
			closed[n] = true
		}
	}
	for _, o := range objs {
		n, ok := strings.CutPrefix(o.Name, dir+"ends/")
		if !ok || closed[n] {
			continue
		}
		var end record.PipeEnd
		if err := g.k.ns.getRecord(ctx, o.Name, &end); err != nil {
			return false
		}
		if end.Count > 1 {
			// A ForkAll's block: its ends belong to the children, whom
			// the record does not name (end.PID is their forker), so it
			// is spared; its unclosed ends expire with the pipe.
			return false
		}
		pid := PID(end.PID)
		if _, ended := g.ended[pid]; ended || g.lostNow[pid] {
			continue
		}
		if g.procs[pid] != nil {
			return false // it runs
		}
		if _, err := g.k.records.exit(ctx, pid); err != nil {
			return false // not listed, no exit found: spare it
		}
	}
	return true
}

// kernels removes the leases and signal inboxes of kernels that are gone.
func (g *gc) kernels(ctx context.Context) error {
	k := g.k
	inboxes, err := k.ns.listDirs(ctx, record.Signals)
	if err != nil {
		return err
	}
	dead := map[string]bool{}
	for _, dir := range inboxes {
		dead[strings.TrimSuffix(strings.TrimPrefix(dir, record.Signals), "/")] = true
	}
	for id := range g.v.leaseSeen {
		dead[id] = true
	}
	hosts, err := k.ns.listDirs(ctx, hostRecords) // hosts' slots (host.go)
	if err != nil {
		return err
	}
	for _, dir := range hosts {
		if id, _, ok := parseHostName(strings.TrimSuffix(dir, "/")); ok {
			dead[id] = true
		}
	}
	for id := range dead {
		if id == k.id {
			continue
		}
		if l, ok := g.v.leaseSeen[id]; ok && time.Since(l.modified) < l.ttl {
			continue
		}
		if alive, err := k.leases.alive(ctx, id); err != nil || alive {
			continue
		}
		g.report.Kernels++
		if g.opts.DryRun {
			continue
		}
		objs, err := k.ns.listAllIn(ctx, k.cfg.container, record.SignalInbox(id))
		if err != nil {
			return err
		}
		names := []string{record.KernelKey(id)}
		for _, o := range objs {
			names = append(names, o.Name)
		}
		// A host's record and slots (host.go): a host that died.
		slots, err := k.ns.listAllIn(ctx, k.cfg.container, hostSlotPrefix(id))
		if err != nil {
			return err
		}
		names = append(names, hostKey(id))
		for _, o := range slots {
			if strings.HasPrefix(o.ContentType, hostClosedType) && time.Since(o.LastModified) < 2*k.cfg.lease {
				// A closed host's marker: a forker's view may hold the
				// host as live for a lease yet, and must find the slot
				// taken (host.go). It expires by itself.
				continue
			}
			names = append(names, o.Name)
		}
		if err := g.delete(ctx, names...); err != nil {
			return err
		}
	}
	return nil
}

// instances stops compute instances of the namespace that run no live
// process: their process has ended, or was never recorded (a fork that
// died half way) and the instance is older than MinAge.
func (g *gc) instances(ctx context.Context) error {
	k := g.k
	live, err := k.compute.List(ctx, k.cfg.namespace)
	if err != nil {
		return err
	}
	prefix := k.cfg.namespace + "-"
	for _, in := range live {
		n, err := strconv.ParseInt(strings.TrimPrefix(in.Name, prefix), 10, 64)
		if err != nil || !strings.HasPrefix(in.Name, prefix) {
			continue
		}
		pid := PID(n)
		_, ended := g.ended[pid]
		orphan := g.procs[pid] == nil && time.Since(in.Created) > g.opts.MinAge
		if !ended && !orphan || k.hosted(pid) != nil && !ended {
			continue
		}
		g.report.Instances = append(g.report.Instances, in.Name)
		if g.opts.DryRun {
			continue
		}
		if err := k.compute.Stop(ctx, in.Name); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return err
		}
	}
	return nil
}

// delete removes names, counting them; gone already is fine.
func (g *gc) delete(ctx context.Context, names ...string) error {
	for _, name := range names {
		err := g.k.ns.store.Delete(ctx, g.k.cfg.container, name)
		switch {
		case err == nil:
			g.report.Objects++
		case errors.Is(err, backend.ErrNotFound):
		default:
			return err
		}
	}
	return nil
}

// segments deletes, in every marked namespace of the store that has a
// segment container beside it, the segments no object names (with
// GCOptions.Namespaces only: it looks beyond the namespace).
func (g *gc) segments(ctx context.Context) error {
	sw, ok := g.k.store.(backend.SegmentSweeper)
	if !ok || g.opts.DryRun {
		return nil
	}
	var names []string
	opts := backend.ListOptions{}
	for {
		page, err := g.k.ns.store.ListContainers(ctx, opts)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, o := range page {
			names = append(names, o.Name)
		}
		opts.Marker = page[len(page)-1].Name
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	for _, n := range names {
		base, ok := strings.CutSuffix(n, "_segments")
		if !ok || !have[base] {
			continue
		}
		// Only a rack namespace's segments: another container's large
		// objects are not ours to judge (as namespaceDead).
		marker, err := g.k.ns.store.Head(ctx, base, record.NamespaceMarker)
		if errors.Is(err, backend.ErrNotFound) || err == nil && !strings.HasPrefix(marker.ContentType, record.NamespaceType) {
			continue
		}
		if err != nil {
			return err
		}
		swept, err := sw.SweepSegments(ctx, base, g.opts.MinAge)
		g.report.Segments += swept
		g.report.Objects += swept
		if err != nil {
			return err
		}
	}
	return nil
}
