package rack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/internal/record"
)

// serveOne writes data as host request rid in k's namespace, serves it as
// the watch would, and returns the reply (nil: none).
func serveOne(t testing.TB, ctx context.Context, k *Kernel, rid string, data []byte) *record.HostReply {
	t.Helper()
	if _, err := k.ns.store.Put(ctx, k.cfg.container, hostRequestKey(rid), bytesReader(data), &backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	k.serveHostRequest(ctx, rid)
	var rep record.HostReply
	if err := k.ns.getRecord(ctx, hostReplyKey(rid), &rep); err != nil {
		return nil
	}
	return &rep
}

// TestServeHostRequestRefuses: what a request cannot make the kernel that
// serves it do (see the threat model in hostfork.go). The in-process
// compute cannot start hosts, so a request that passes every check fails
// at the start, and leaves no host record or lease behind.
func TestServeHostRequestRefuses(t *testing.T) {
	ctx := context.Background()
	k, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	digest, err := programDigest()
	if err != nil {
		t.Fatal(err)
	}
	// A live host of the namespace, to ask from.
	asker := newID()
	if err := k.putHostRecord(ctx, &hostRecord{Kernel: asker, Digest: digest, Slots: 1, Idle: 1}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	for _, c := range []struct {
		name string
		data string
		want string // in the reply's error
	}{
		{"corrupt", `{"by":`, "reading the request"},
		{"other program", string(record.Encode(&record.HostRequest{By: asker, Digest: strings.Repeat("0", 64), Made: now})), "another program"},
		{"stale", string(record.Encode(&record.HostRequest{By: asker, Digest: digest, Made: now - int64(time.Hour)})), "older"},
		{"not a host", string(record.Encode(&record.HostRequest{By: k.id, Digest: digest, Made: now})), "not a live host"},
		{"not a kernel id", string(record.Encode(&record.HostRequest{By: "someone", Digest: digest, Made: now})), "names no kernel"},
		{"passes", string(record.Encode(&record.HostRequest{By: asker, Digest: digest, Made: now})), "starting a host"},
	} {
		rid := newID()
		rep := serveOne(t, ctx, k, rid, []byte(c.data))
		if rep == nil || rep.State != record.HostFailed || !strings.Contains(rep.Error, c.want) {
			t.Errorf("%s: reply %+v, want failed with %q", c.name, rep, c.want)
			continue
		}
		// Served once: a second look changes nothing.
		k.serveHostRequest(ctx, rid)
		var again record.HostReply
		if err := k.ns.getRecord(ctx, hostReplyKey(rid), &again); err != nil || again != *rep {
			t.Errorf("%s: served again: %+v, %v", c.name, again, err)
		}
	}
	if n := k.placer.reqs.served.Load(); n != 0 {
		t.Errorf("served %d, want 0", n)
	}
	// Nothing of a host left but the asker's.
	objs, err := k.ns.listAllIn(ctx, k.cfg.container, hostRecords)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if id, slot, ok := parseHostName(o.Name); ok && (id != asker || slot >= 0) {
			t.Errorf("left behind: %s", o.Name)
		}
	}
	// A request withdrawn before it is served gets no reply.
	rid := newID()
	k.serveHostRequest(ctx, rid)
	if _, err := k.ns.get(ctx, hostReplyKey(rid)); err == nil {
		t.Errorf("a reply to a request that is not there")
	}
}

// FuzzServeHostRequest serves any bytes as a host request: no panic, and
// exactly one reply, which decodes (the in-process compute starts no host,
// so it says failed).
func FuzzServeHostRequest(f *testing.F) {
	digest, err := programDigest()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(record.Encode(&record.HostRequest{By: "0123456789abcdef", Digest: digest, Made: time.Now().UnixNano()}))
	f.Add([]byte(`{"by":"../x","digest":"","made":-1}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`))
	ctx := context.Background()
	k, err := Open(ctx, "mem://")
	if err != nil {
		f.Fatal(err)
	}
	defer k.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		rid := newID()
		rep := serveOne(t, ctx, k, rid, data)
		if rep == nil || rep.State != record.HostFailed {
			t.Fatalf("request %q: reply %+v, want failed", data, rep)
		}
	})
}

// TestOwnSlotSkipsForeignClaim: a host's own fork that finds another
// forker's claim in the slot it picked runs over the slot count, and the
// next own fork, before the host's listing has adopted that claim, picks
// another slot, not the same one again (it did: a host of 4 slots ran 8).
func TestOwnSlotSkipsForeignClaim(t *testing.T) {
	ctx := context.Background()
	k, err := Open(ctx, "mem://", WithHosts(2, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	h := newHostServer(k, nil, hostRecord{Kernel: k.id, Slots: 2})
	// Another forker's claim of slot 0, not listed by the host yet.
	if err := k.ns.put(ctx, hostSlotKey(h.id, 0), record.Encode(&record.Proc{PID: 900}), true); err != nil {
		t.Fatal(err)
	}
	own := func(pid PID) *ownSlot {
		pr := &proc{k: k, pid: pid, rec: &record.Proc{PID: int64(pid)}}
		if !k.reserveOwnSlot(pr) {
			t.Fatalf("pid %d: no own slot reserved", pid)
		}
		slot := k.placer.self.slots[pid]
		slot.claimed = make(chan struct{})
		k.claimOwnSlot(pid, slot, record.Encode(pr.rec))
		return slot
	}
	if s := own(901); s.name != overName(901) {
		t.Fatalf("the first own fork holds %q, want %q (slot 0 was claimed first)", s.name, overName(901))
	}
	if s := own(902); s.name != hostSlotKey(h.id, 1) {
		t.Errorf("the second own fork holds %q, want the free slot %q", s.name, hostSlotKey(h.id, 1))
	}
	// Once a listing shows the claim, the host adopts it (and forgets
	// it was foreign); once one begun after shows it gone, it is free.
	h.mu.Lock()
	marked := !h.foreign[hostSlotKey(h.id, 0)].IsZero()
	h.mu.Unlock()
	if !marked {
		t.Fatal("slot 0 is not marked as another forker's")
	}
	h.take(nil, time.Now().Add(time.Second))
	h.mu.Lock()
	left := len(h.foreign)
	h.mu.Unlock()
	if left != 0 {
		t.Errorf("a later listing without slot 0 left %d foreign slots", left)
	}
}

// failGet fails the Gets of one object with a transient error while on.
type failGet struct {
	backend.Store
	name string
	on   atomic.Bool
}

func (f *failGet) Get(ctx context.Context, container, name string, opts *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	if f.on.Load() && name == f.name {
		return nil, backend.ObjectInfo{}, fmt.Errorf("%w: injected", backend.ErrTransient)
	}
	return f.Store.Get(ctx, container, name, opts)
}

// TestAdoptRetriesTransientRead: a host whose store fails to give it a
// slot's start record (past its retries) leaves the slot for its next
// listing, with no claim and no exit recorded; it used to free the slot,
// and the process never ran nor ended.
func TestAdoptRetriesTransientRead(t *testing.T) {
	ctx := context.Background()
	fg := &failGet{Store: mem.New()}
	k, err := New(ctx, fg, inproc.New(), WithHosts(2, time.Minute), WithLease(time.Second)) // the retry budget
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	h := newHostServer(k, nil, hostRecord{Kernel: k.id, Slots: 2})
	const pid = 4242
	name := putAndTake(t, h, &record.Proc{PID: pid}, func(name string) {
		fg.name = name // set before on: read after it
		fg.on.Store(true)
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		h.mu.Lock()
		seen := h.seen[name]
		h.mu.Unlock()
		if !seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot is still taken up 10 s after its read failed")
		}
	}
	fg.on.Store(false)
	if _, err := k.ns.get(ctx, name); err != nil {
		t.Errorf("the slot after a failed read: %v, want it kept for the next listing", err)
	}
	if _, err := k.ns.get(ctx, record.ExitKey(pid)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("exit record after a failed read: %v, want none", err)
	}
	if _, err := k.ns.get(ctx, record.HostKey(pid)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("host record after a failed read: %v, want none (the claim taken back)", err)
	}
}

// gatedHosts is a compute whose host starts block until release is
// closed, and which counts them.
type gatedHosts struct {
	backend.Compute
	started chan string // a host start's name, as it is called
	release chan struct{}
	mu      sync.Mutex
	names   []string
}

func (g *gatedHosts) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	if req.Options[backend.HostOption] == "" {
		return g.Compute.Start(ctx, req)
	}
	g.mu.Lock()
	g.names = append(g.names, req.Name)
	g.mu.Unlock()
	g.started <- req.Name
	select {
	case <-g.release:
		return backend.Instance{Name: req.Name}, nil
	case <-ctx.Done():
		return backend.Instance{}, ctx.Err()
	}
}

func (g *gatedHosts) List(ctx context.Context, ns string) ([]backend.Instance, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []backend.Instance
	for _, n := range g.names {
		out = append(out, backend.Instance{Name: n})
	}
	return out, nil
}

// TestBootAheadSideBySide: a ForkAll of 25 processes on hosts of 10
// slots, with none warm, starts its 3 hosts side by side (each start is
// in flight before any returns), and a fork placed while they start
// waits for them rather than start a fourth. (Placed one by one, a fork
// that found no slot started a host and the others waited; a process on
// a host, whose hosts are started on its request, asked for them one
// after another: montecarlo's first run took 7 hosts in turns.)
func TestBootAheadSideBySide(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := Open(ctx, "mem://", WithHosts(10, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	g := &gatedHosts{Compute: k.compute, started: make(chan string, 10), release: make(chan struct{})}
	k.compute = g
	k.bootAhead(ctx, 25)
	for i := range 3 {
		select {
		case <-g.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d host starts in flight, want 3 at once", i)
		}
	}
	slot := make(chan hostSlot, 1)
	go func() {
		at, err := k.reserveSlot(ctx)
		if err != nil {
			t.Error(err)
		}
		slot <- at
	}()
	select {
	case name := <-g.started:
		t.Fatalf("a fourth host started (%s) while 3 with 30 slots were starting", name)
	case at := <-slot:
		t.Fatalf("a slot (%v) reserved before any host was up", at)
	case <-time.After(300 * time.Millisecond):
	}
	close(g.release)
	at := <-slot
	var h *hostView
	n := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		k.placer.mu.Lock()
		h, n = k.placer.hosts[at.host], len(k.placer.hosts)
		coming := k.placer.coming
		k.placer.mu.Unlock()
		if coming == 0 {
			break
		}
	}
	if h == nil || n != 3 {
		t.Fatalf("slot %v; the view has %d hosts, want 3 with the slot's among them", at, n)
	}
	select {
	case name := <-g.started:
		t.Errorf("a fourth host started: %s", name)
	default:
	}
}

// countPuts counts the Puts of hosts' slots.
type countPuts struct {
	backend.Store
	n atomic.Int64
}

func (c *countPuts) Put(ctx context.Context, container, name string, r io.Reader, opts *backend.PutOptions) (backend.ObjectInfo, error) {
	if rest, ok := strings.CutPrefix(name, hostRecords); ok && strings.Contains(rest, "/") {
		c.n.Add(1)
	}
	return c.Store.Put(ctx, container, name, r, opts)
}

// TestOwnSlotClaimWaits: a child in its host's own slot that ends within
// ownClaimDelay never puts its slot's claim; one that runs longer does,
// and its end deletes it. Both have their host record from the start.
func TestOwnSlotClaimWaits(t *testing.T) {
	ctx := context.Background()
	cs := &countPuts{Store: mem.New()}
	k, err := New(ctx, cs, inproc.New(), WithHosts(2, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	newHostServer(k, nil, hostRecord{Kernel: k.id, Slots: 2})
	// run runs pid in an own slot for life and reports whether its claim
	// was in the store as it ended.
	run := func(pid PID, life time.Duration) bool {
		pr := &proc{k: k, pid: pid, rec: &record.Proc{PID: int64(pid)}}
		if !k.reserveOwnSlot(pr) {
			t.Fatalf("pid %d: no own slot reserved", pid)
		}
		name := k.placer.self.slots[pid].name
		recorded := k.startOwnClaim(pr, record.Encode(pr.rec))
		if recorded == nil {
			t.Fatalf("pid %d: no claim started", pid)
		}
		recorded(true)
		time.Sleep(life)
		_, err := k.ns.get(ctx, name)
		pr.release()
		if _, err := k.ns.get(ctx, name); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("pid %d: its slot's claim after its end: %v, want none", pid, err)
		}
		if _, err := k.ns.get(ctx, record.HostKey(int64(pid))); err != nil {
			t.Errorf("pid %d: its host record: %v", pid, err)
		}
		return err == nil
	}
	if run(901, 0) {
		t.Error("a child that ended at once had its slot claimed")
	}
	time.Sleep(2 * ownClaimDelay) // a claim not stopped would be put by now
	if n := cs.n.Load(); n != 0 {
		t.Errorf("a child that ended at once: %d puts in its host's slots, want 0", n)
	}
	if !run(902, 4*ownClaimDelay) {
		t.Error("a child that ran 4 × ownClaimDelay had no slot claim")
	}
	if n := cs.n.Load(); n != 1 {
		t.Errorf("a child that ran 4 × ownClaimDelay: %d puts in its host's slots, want 1", n)
	}
}

// TestAdoptClaimedElsewhere: a host that finds, in one of its slots, a
// process another kernel has claimed (placed twice: a slot claim that
// looked lost was read by its host before its rival's landed) frees the
// slot and records nothing: the process runs where its claim landed. It
// used to record it lost, and its parent saw a running child end.
func TestAdoptClaimedElsewhere(t *testing.T) {
	ctx := context.Background()
	k, err := New(ctx, mem.New(), inproc.New(), WithHosts(2, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	h := newHostServer(k, nil, hostRecord{Kernel: k.id, Slots: 2})
	const pid = 4243
	other := &record.Host{PID: pid, Kernel: newID()}
	if err := k.ns.putSummarized(ctx, record.HostKey(pid), record.Encode(other), true, record.HostSummary(other)); err != nil {
		t.Fatal(err)
	}
	name := putAndTake(t, h, &record.Proc{PID: pid, Kernel: k.id, Name: "twice"}, nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := k.ns.get(ctx, name); errors.Is(err, backend.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot is still there 10 s after its process was found claimed elsewhere")
		}
	}
	if _, err := k.ns.get(ctx, record.ExitKey(pid)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("exit record of a process claimed elsewhere: %v, want none", err)
	}
	var got record.Host
	if err := k.ns.getRecord(ctx, record.HostKey(pid), &got); err != nil || got.Kernel != other.Kernel {
		t.Errorf("host record: %+v, %v; want the other kernel's %s, kept", got, err, other.Kernel)
	}
}

// putAndTake puts rec, a start record, in slot 0 of h, calls before (if
// any) with the slot's name, and has h take it from a listing; it returns
// the slot's name.
func putAndTake(t *testing.T, h *hostServer, rec *record.Proc, before func(name string)) string {
	t.Helper()
	ctx, k := context.Background(), h.k
	name := hostSlotKey(h.id, 0)
	if err := k.ns.putSummarized(ctx, name, record.Encode(rec), true, record.SlotSummary(rec.PID)); err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(name)
	}
	objs, err := k.ns.listAllIn(ctx, k.cfg.container, hostSlotPrefix(h.id))
	if err != nil {
		t.Fatal(err)
	}
	if n := h.take(objs, time.Now()); n != 1 {
		t.Fatalf("take started %d adoptions, want 1", n)
	}
	return name
}

// listCounter counts the listings of one prefix; it hides the store's
// notifications (as Swift has none), so a host polls.
type listCounter struct {
	backend.Store
	prefix atomic.Pointer[string]
	n      atomic.Int64
}

func (l *listCounter) List(ctx context.Context, container string, opts backend.ListOptions) ([]backend.ObjectInfo, error) {
	if p := l.prefix.Load(); p != nil && opts.Prefix == *p {
		l.n.Add(1)
	}
	return l.Store.List(ctx, container, opts)
}

// TestFullHostDoesNotPoll: on a store that does not notify, a host whose
// slots are all taken up lists them only every lease/5, not every poll
// interval (no forker's claim can land in one), and a slot it frees wakes
// it at once.
func TestFullHostDoesNotPoll(t *testing.T) {
	ctx := context.Background()
	lc := &listCounter{Store: mem.New()}
	const lease = 5 * time.Second // lease/5: 1 s
	k, err := New(ctx, lc, inproc.New(), WithHosts(2, time.Minute), WithLease(lease), WithPolling(time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	h := newHostServer(k, nil, hostRecord{Kernel: k.id, Slots: 2, Idle: int64(time.Minute)})
	prefix := hostSlotPrefix(h.id)
	lc.prefix.Store(&prefix)
	h.mu.Lock()
	for n := 0; n < 2; n++ {
		h.seen[hostSlotKey(h.id, n)] = true // as if it ran two processes
	}
	h.mu.Unlock()
	stop := make(chan struct{})
	served := make(chan string, 1)
	go func() { served <- h.serve(ctx, stop) }()
	const window = 2 * time.Second
	time.Sleep(window)
	if n, most := lc.n.Load(), int64(window/(lease/5))+2; n > most {
		t.Errorf("a full host listed its slots %d times in %v, want at most %d (every lease/5)", n, window, most)
	}
	// A slot freed wakes it: it lists at once, not a second later.
	before := lc.n.Load()
	h.mu.Lock()
	delete(h.seen, hostSlotKey(h.id, 1))
	h.mu.Unlock()
	h.wake <- struct{}{}
	for deadline := time.Now().Add(lease / 5 / 2); lc.n.Load() == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no listing within %v of a slot freed", lease/5/2)
		}
	}
	close(stop)
	if why := <-served; why != "a signal" {
		t.Errorf("serve returned %q", why)
	}
}

// TestAdoptLeavesAReclaimedSlot: a host whose listing shows a slot as it
// was (process A's claim, A run and the slot freed since) while the slot
// holds a forker's new claim (process B) leaves B's claim in place, for
// its next listing to show: it used to take the mismatch for a bad record
// and delete the slot, and B, placed, never ran.
func TestAdoptLeavesAReclaimedSlot(t *testing.T) {
	ctx := context.Background()
	k, err := New(ctx, mem.New(), inproc.New(), WithHosts(2, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	h := newHostServer(k, nil, hostRecord{Kernel: k.id, Slots: 2})
	const a, b = 4244, 4245
	name := hostSlotKey(h.id, 0)
	if err := k.ns.putSummarized(ctx, name, record.Encode(&record.Proc{PID: a, Kernel: k.id, Name: "a"}), true, record.SlotSummary(a)); err != nil {
		t.Fatal(err)
	}
	stale, err := k.ns.listAllIn(ctx, k.cfg.container, hostSlotPrefix(h.id))
	if err != nil {
		t.Fatal(err)
	}
	// A ran here and ended: its host record and exit are there, its slot
	// freed; a forker claims the slot for B.
	if err := k.claimProcess(ctx, a); err != nil {
		t.Fatal(err)
	}
	k.recordLost(ctx, a, "ran and ended (a test)")
	if err := k.ns.deleteSmall(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := k.ns.putSummarized(ctx, name, record.Encode(&record.Proc{PID: b, Kernel: k.id, Name: "b"}), true, record.SlotSummary(b)); err != nil {
		t.Fatal(err)
	}
	if n := h.take(stale, time.Now()); n != 1 {
		t.Fatalf("take started %d adoptions, want 1", n)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		h.mu.Lock()
		seen := h.seen[name]
		h.mu.Unlock()
		if !seen {
			break // given up, for the next listing
		}
		if time.Now().After(deadline) {
			t.Fatal("the stale slot is still taken up 10 s later")
		}
	}
	var rec record.Proc
	if err := k.ns.getRecord(ctx, name, &rec); err != nil || rec.PID != b {
		t.Fatalf("slot after a stale listing: %+v, %v; want B's claim (%d), left in place", rec, err, b)
	}
	if _, err := k.ns.get(ctx, record.ExitKey(b)); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("exit record of B: %v, want none", err)
	}
}

// TestPlacedClaimVanished: a child placed on a host whose slot claim is
// gone a lease later with no host record and no exit (never adopted, and
// never to be) is recorded lost, naming its host, not waited for while
// the host lives; one whose claim is still in its slot is waited for.
func TestPlacedClaimVanished(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const lease = 3 * time.Second
	k, err := New(ctx, mem.New(), inproc.New(), WithHosts(2, time.Minute), WithLease(lease))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const host = "0123456789abcdef" // a live host's kernel
	if err := k.ns.putWith(ctx, record.KernelKey(host), nil, &backend.PutOptions{ContentType: record.LeaseSummary(int64(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	placed := func(pid PID, slot int) *proc {
		pr := remoteStandIn(k, pid, host, time.Now().Add(-2*lease))
		k.placer.mu.Lock()
		k.placer.placed[pid] = hostSlot{host: host, slot: slot}
		k.placer.mu.Unlock()
		return pr
	}
	gone := placed(4301, 0)
	waiting := placed(4302, 1)
	if err := k.ns.putSummarized(ctx, hostSlotKey(host, 1), record.Encode(waiting.rec), true, record.SlotSummary(4302)); err != nil {
		t.Fatal(err)
	}
	k.checkRemoteLeases(ctx, []*proc{gone, waiting})
	select {
	case <-gone.done:
		if ex := gone.exit; !ex.Lost || !strings.Contains(ex.Reason, host) {
			t.Errorf("the child whose claim vanished ended with %+v, want lost, naming its host", ex)
		}
	default:
		t.Error("the child whose claim vanished is still waited for")
	}
	if isDone(waiting) {
		t.Errorf("the child whose claim is in its slot ended: %+v", waiting.exit)
	}
}
