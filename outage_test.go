package rack_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// TestTimeoutURLParameter: any URL takes the parameter timeout, a
// duration, which Open takes out before the scheme's opener sees it.
func TestTimeoutURLParameter(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"mem://?timeout=2s", "mem://?timeout=0", "file://" + t.TempDir() + "?timeout=250ms"} {
		k, err := rack.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		k.Close()
	}
	for _, u := range []string{"mem://?timeout=soon", "mem://?timeout=-1s", "mem://?timeout=1s&timeout=2s", "mem://?timeout=1s&other=1"} {
		if k, err := rack.Open(ctx, u); !errors.Is(err, rack.ErrInvalid) {
			if k != nil {
				k.Close()
			}
			t.Errorf("Open(%q): %v, want ErrInvalid", u, err)
		}
	}
	if _, err := rack.New(ctx, mem.New(), inproc.New(), rack.WithRequestTimeout(-time.Second)); !errors.Is(err, rack.ErrInvalid) {
		t.Errorf("WithRequestTimeout(-1s): %v, want ErrInvalid", err)
	}
}

// exitsDown fails every Put of an exit record, transiently, while down.
type exitsDown struct {
	backend.Store
	down atomic.Bool
}

func (s *exitsDown) Put(ctx context.Context, c, n string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	if s.down.Load() && strings.HasPrefix(n, "exits/") {
		return backend.ObjectInfo{}, backend.ErrTransient
	}
	return s.Store.Put(ctx, c, n, r, o)
}

// TestExitRecordedAfterOutage: a process that exits while its exit record
// cannot be written (the retry budget spent) has it written once the store
// answers, while its kernel lives: another kernel reads its exit status,
// not a process that never ends (issue: finish gave up after 10 attempts
// and ps showed the process lost).
func TestExitRecordedAfterOutage(t *testing.T) {
	ctx := context.Background()
	shared := mem.New()
	store := &exitsDown{Store: shared}
	k, err := rack.New(ctx, store, inproc.New(), rack.WithRetry(2, time.Millisecond, time.Millisecond),
		rack.WithPolling(5*time.Millisecond, 50*time.Millisecond), rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	store.down.Store(true)
	p, err := k.Start(ctx, rack.Spec{Name: "three"}, func(context.Context, *rack.Self) error { return rack.Exit(3) })
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // it exits, and its record fails
	store.down.Store(false)
	other, err := rack.New(ctx, shared, inproc.New(), rack.WithPolling(5*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	q, err := other.Process(ctx, p.PID())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var ee *rack.ExitError
	if err := q.Wait(wctx); !errors.As(err, &ee) || ee.Code() != 3 {
		t.Fatalf("another kernel's Wait: %v, want exit code 3", err)
	}
}
