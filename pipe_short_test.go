package rack_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/mem"
)

// shortSegments is a store whose pipe segments' bodies end 3 bytes before
// the size it reports for them, as a cut connection's body can.
type shortSegments struct{ backend.Store }

func (s shortSegments) Get(ctx context.Context, c, n string, o *backend.GetOptions) (io.ReadCloser, backend.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, c, n, o)
	if err != nil || !strings.Contains(n, "/seg/") || info.Size < 3 {
		return rc, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, info.Size-3), rc}, info, nil
}

// TestPipeSegmentCutShort: a segment whose body ends before its stored
// size fails the read (io.ErrUnexpectedEOF), and keeps failing, rather
// than going on to the next segment with bytes missing.
func TestPipeSegmentCutShort(t *testing.T) {
	ctx := pgCtx(t, 30*time.Second)
	k, err := rack.New(ctx, shortSegments{mem.New()}, inproc.New(),
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard), rack.WithPolling(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	err = ioRun(ctx, t, k, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		for _, s := range []string{"hello world", "second"} {
			if _, err := io.WriteString(w, s); err != nil {
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("ReadAll = %q, %v; want an error wrapping io.ErrUnexpectedEOF", data, err)
		}
		if _, err := r.Read(make([]byte, 8)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Read after the short segment = %v; want the same error again", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
