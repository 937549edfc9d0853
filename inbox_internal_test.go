package rack

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
	"github.com/rackfork/rack/internal/record"
)

// getCounter counts the Gets of names under prefix.
type getCounter struct {
	backend.Store
	prefix string
	n      atomic.Int64
}

func (g *getCounter) Get(ctx context.Context, container, name string, opts *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	if strings.HasPrefix(name, g.prefix) {
		g.n.Add(1)
	}
	return g.Store.Get(ctx, container, name, opts)
}

// TestInboxDeliversFromListing: a message in a kernel's inbox carries
// itself in its summary (sendMessage), so the inbox delivers it from its
// listing with no read of it (on Swift: a GET less for each signal, and
// for each child's exit note to its forker); a message without one (a
// sender from before summaries) is read and delivered as it was.
func TestInboxDeliversFromListing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gets := &getCounter{Store: mem.New(), prefix: record.Signals}
	k, err := New(ctx, gets, inproc.New(), WithPolling(time.Millisecond, 5*time.Millisecond),
		WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	got := make(chan Signal, 2)
	ready := make(chan PID, 1)
	p, err := k.Start(ctx, Spec{Name: "listener"}, func(ctx context.Context, self *Self) error {
		if err := self.Notify(got, SIGUSR1, SIGUSR2); err != nil {
			return err
		}
		ready <- self.PID()
		<-ctx.Done()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := <-ready
	await := func(want Signal) {
		t.Helper()
		select {
		case sig := <-got:
			if sig != want {
				t.Fatalf("got %v, want %v", sig, want)
			}
		case <-ctx.Done():
			t.Fatalf("%v never came", want)
		}
	}
	const other = "fedcba9876543210" // another kernel of the namespace
	if err := k.sendMessage(ctx, k.id, record.Signal{PID: int64(pid), Signal: int(SIGUSR1), From: other}); err != nil {
		t.Fatal(err)
	}
	await(SIGUSR1)
	if n := gets.n.Load(); n != 0 {
		t.Errorf("the inbox read %d messages to deliver one that carries itself", n)
	}
	key := fmt.Sprintf("%s%010d.%s.%012d", record.SignalInbox(k.id), pid, other, 1)
	if err := k.ns.put(ctx, key, record.Encode(&record.Signal{PID: int64(pid), Signal: int(SIGUSR2), From: other}), true); err != nil {
		t.Fatal(err)
	}
	await(SIGUSR2)
	if n := gets.n.Load(); n != 1 {
		t.Errorf("the inbox read %d messages for one without a summary, want 1", n)
	}
	if err := p.Kill(ctx); err != nil {
		t.Fatal(err)
	}
}

// slowHeads counts the Heads of leases, each of which takes a while (a
// loaded store).
type slowHeads struct {
	backend.Store
	n atomic.Int64
}

func (s *slowHeads) Head(ctx context.Context, container, name string) (backend.ObjectInfo, error) {
	if strings.HasPrefix(name, record.Kernels) {
		s.n.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
	return s.Store.Head(ctx, container, name)
}

// TestAliveSharedOneRequest: the lease checks of one kernel that a host's
// processes make at once are one request, and a caller whose context ends
// stops waiting without failing the others' check.
func TestAliveSharedOneRequest(t *testing.T) {
	ctx := context.Background()
	heads := &slowHeads{Store: mem.New()}
	k, err := New(ctx, heads, inproc.New())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const parent, other = "0123456789abcdef", "fedcba9876543210"
	for _, id := range []string{parent, other} {
		if err := k.leases.put(ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := k.leases.aliveShared(gone, other, time.Minute); err == nil {
		t.Error("a check with an ended context succeeded")
	}
	if alive, err := k.leases.aliveShared(ctx, other, time.Minute); err != nil || !alive {
		t.Errorf("aliveShared after a caller's context ended = %v, %v; want alive", alive, err)
	}
	heads.n.Store(0)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if alive, err := k.leases.aliveShared(ctx, parent, time.Minute); err != nil || !alive {
				t.Errorf("aliveShared = %v, %v; want alive", alive, err)
			}
		}()
	}
	wg.Wait()
	if n := heads.n.Load(); n != 1 {
		t.Errorf("10 checks at once made %d requests, want 1", n)
	}
}

// smallDeletes is a store with backend.SmallDeleter that counts, by the
// first part of the name, the deletes made each way.
type smallDeletes struct {
	backend.Store
	mu          sync.Mutex
	small, full map[string]int
}

func (s *smallDeletes) note(m *map[string]int, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[strings.SplitN(name, "/", 2)[0]]++
}

func (s *smallDeletes) Delete(ctx context.Context, c, name string) error {
	s.note(&s.full, name)
	return s.Store.Delete(ctx, c, name)
}

func (s *smallDeletes) DeleteSmall(ctx context.Context, c, name string) error {
	s.note(&s.small, name)
	return s.Store.Delete(ctx, c, name)
}

// TestSmallRecordsDeletedSmall: where the store can delete a small object
// in one request (backend.SmallDeleter: Swift skips its HEAD), a signal's
// message and a pipe's read segments are deleted so.
func TestSmallRecordsDeletedSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := &smallDeletes{Store: mem.New()}
	k, err := New(ctx, store, inproc.New(), WithPolling(time.Millisecond, 5*time.Millisecond),
		WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	p, err := k.Start(ctx, Spec{Name: "small"}, func(ctx context.Context, self *Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		written := make(chan error, 1)
		go func() {
			_, err := io.WriteString(w, "hello\n")
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			written <- err
		}()
		data, err := io.ReadAll(r)
		if err != nil || string(data) != "hello\n" {
			return fmt.Errorf("read %q, %v", data, err)
		}
		return <-written
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.sendMessage(ctx, k.id, record.Signal{PID: int64(p.PID()), Signal: int(SIGUSR1), From: k.id}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		store.mu.Lock()
		small, full := store.small["signals"], store.full["signals"]
		pipes, pipesFull := store.small["pipes"], store.full["pipes"]
		store.mu.Unlock()
		if small > 0 && pipes > 0 {
			if full != 0 || pipesFull != 0 {
				t.Errorf("signals deleted small %d, in full %d; pipes small %d, in full %d: want none in full", small, full, pipes, pipesFull)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deletes small: signals %d, pipes %d (in full: %d, %d)", small, pipes, full, pipesFull)
		}
	}
}

// remoteStandIn enters in k a running stand-in of remote child pid, a
// root's (placed on host at placedAt, if host is not empty).
func remoteStandIn(k *Kernel, pid PID, host string, placedAt time.Time) *proc {
	pr := &proc{k: k, pid: pid, rec: &record.Proc{PID: int64(pid), PPID: int64(InitPID), Name: "remote", Kernel: k.id},
		remote: true, done: make(chan struct{}), host: host, placedAt: placedAt}
	pr.initSelf()
	pr.ctx, pr.cancel = context.WithCancelCause(context.Background())
	pr.started = true
	pr.launched.Store(true)
	k.sched.adopt(pr)
	return pr
}

// TestExitNoteCarriesTheExit: a child's exit note that carries its exit
// (record.Signal.Exit: no reason, no stderr) ends the forker's stand-in
// without a read of the exit record; one without reads it, as before.
func TestExitNoteCarriesTheExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gets := &getCounter{Store: mem.New(), prefix: record.Exits}
	k, err := New(ctx, gets, inproc.New(), WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const other = "fedcba9876543210" // the kernel that ran the children
	standIn := func(pid PID) *proc { return remoteStandIn(k, pid, "", time.Time{}) }
	ended := func(pr *proc) *record.Exit {
		t.Helper()
		select {
		case <-pr.done:
			return pr.exit
		case <-ctx.Done():
			t.Fatalf("the stand-in of %d never ended", pr.pid)
			return nil
		}
	}
	noted := standIn(4242)
	ex := &record.Exit{PID: 4242, Code: 3, Ended: 7, By: other}
	k.receive(ctx, record.Signal{PID: int64(InitPID), Signal: sigchld, From: other, Child: 4242, Exit: ex})
	if got := ended(noted); !cmp.Equal(got, ex) {
		t.Errorf("the stand-in ended with %+v, want the note's %+v", got, ex)
	}
	if n := gets.n.Load(); n != 0 {
		t.Errorf("%d reads of exit records for a note that carries the exit", n)
	}
	read := standIn(4243)
	full := &record.Exit{PID: 4243, Code: 1, Reason: "it failed", Ended: 8, By: other}
	if err := k.ns.put(ctx, record.ExitKey(4243), record.Encode(full), true); err != nil {
		t.Fatal(err)
	}
	k.receive(ctx, record.Signal{PID: int64(InitPID), Signal: sigchld, From: other, Child: 4243})
	if got := ended(read); !cmp.Equal(got, full) {
		t.Errorf("the stand-in ended with %+v, want the record's %+v", got, full)
	}
	if n := gets.n.Load(); n != 1 {
		t.Errorf("%d reads of exit records for a note without the exit, want 1", n)
	}
}
