package rack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// nsStore is the kernel's access to its namespace in the store: records
// with the namespace's expiry, their listings, and waiting for a change
// (by notification where the store can, else by polling with backoff).
type nsStore struct {
	store    backend.Store // with retries, counted
	notifier backend.Notifier
	// looseCreate: the store's create-only puts can race (backend.LooseCreate).
	looseCreate bool
	container   string        // the namespace's container
	recordTTL   time.Duration // how long records live
	pollMin     time.Duration
	pollMax     time.Duration
	closing     <-chan struct{} // closed when the kernel closes
}

// put writes a record with the namespace's expiry.
func (n *nsStore) put(ctx context.Context, key string, data []byte, createOnly bool) error {
	return n.putSummarized(ctx, key, data, createOnly, "")
}

// putSummarized writes a record with its ps summary as content type (see
// record.ProcSummary), so that ps reads it from listings.
func (n *nsStore) putSummarized(ctx context.Context, key string, data []byte, createOnly bool, summary string) error {
	return n.putWith(ctx, key, data, &backend.PutOptions{CreateOnly: createOnly, ContentType: summary})
}

// putOnce writes a record create-only where a rival's create would do as
// well as this one (backend.PutOptions.NoRival): a close record that a
// reaper may write too, a lost process's exit, a name only this writer
// makes. On Swift one request, not a PUT and a HEAD. Nil when the record
// is there already, whoever wrote it.
func (n *nsStore) putOnce(ctx context.Context, key string, data []byte, summary string) error {
	err := n.putWith(ctx, key, data, &backend.PutOptions{CreateOnly: true, NoRival: true, ContentType: summary})
	if errors.Is(err, backend.ErrExist) {
		return nil
	}
	return err
}

// putWith writes a record with opts (its lifetime is the namespace's).
func (n *nsStore) putWith(ctx context.Context, key string, data []byte, opts *backend.PutOptions) error {
	o := *opts
	o.DeleteAfter = n.recordTTL
	_, err := n.store.Put(ctx, n.container, key, bytesReader(data), &o)
	return err
}

// deleteSmall deletes key, a small record (a lease, a host's record, a
// signal, a slot's closed marker): on Swift one request, not a HEAD (for a
// large object's segments) and a DELETE (backend.SmallDeleter).
func (n *nsStore) deleteSmall(ctx context.Context, key string) error {
	return n.deleteSized(ctx, key, 0)
}

// deleteSized deletes key, whose size is size (a listing's, or the put's;
// -1 if unknown): as deleteSmall when it is small enough
// (backend.SmallObjectMax), else as Delete.
func (n *nsStore) deleteSized(ctx context.Context, key string, size int64) error {
	if sd, ok := n.store.(backend.SmallDeleter); ok && size >= 0 && size <= backend.SmallObjectMax {
		return sd.DeleteSmall(ctx, n.container, key)
	}
	return n.store.Delete(ctx, n.container, key)
}

// get reads a whole record, at most record.MaxSize bytes: a larger
// object is corrupt (an error wrapping record.ErrCorrupt that names it).
func (n *nsStore) get(ctx context.Context, key string) ([]byte, error) {
	data, _, err := n.getInfo(ctx, key)
	return data, err
}

// getInfo is get that also returns the object's info.
func (n *nsStore) getInfo(ctx context.Context, key string) ([]byte, backend.ObjectInfo, error) {
	rc, info, err := n.store.Get(ctx, n.container, key, nil)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	data, err := record.Read(key, rc, info.Size)
	return data, info, err
}

func (n *nsStore) getRecord(ctx context.Context, key string, v any) error {
	_, err := n.getRecordTyped(ctx, key, v)
	return err
}

// getRecordTyped is getRecord that also returns the object's content type
// (a summary of the record it holds).
func (n *nsStore) getRecordTyped(ctx context.Context, key string, v any) (string, error) {
	data, info, err := n.getInfo(ctx, key)
	if err != nil {
		return "", err
	}
	return info.ContentType, record.Decode(key, data, v)
}

// changed returns a channel closed at the next change under key, or nil
// when the store cannot notify (then the caller polls).
func (n *nsStore) changed(key string) <-chan struct{} {
	if n.notifier == nil {
		return nil
	}
	return n.notifier.Changed(n.container, key)
}

// waitChange waits for ch (a notification), stop, or, without one, for the poll
// delay; it returns the next delay.
func (n *nsStore) waitChange(ctx context.Context, ch, stop <-chan struct{}, delay time.Duration) (time.Duration, error) {
	if ch != nil {
		select {
		case <-ch:
			return delay, nil
		case <-stop:
			return delay, ErrClosed
		case <-ctx.Done():
			return delay, context.Cause(ctx)
		case <-n.closing:
			return delay, ErrClosed
		}
	}
	if delay == 0 {
		delay = n.pollMin
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
		return delay, ErrClosed
	case <-ctx.Done():
		return delay, context.Cause(ctx)
	case <-n.closing:
		return delay, ErrClosed
	}
	return n.nextDelay(delay), nil
}

// awaitRivals waits, before a create-only claim on a store whose creates
// are loose (backend.LooseCreate) is read back, until a rival create in
// flight at the same moment would have ended: twice took (what the claim
// took), but at most a request timeout (took may hold the retries of an
// outage, and a rival in flight longer was abandoned by its kernel).
func (n *nsStore) awaitRivals(ctx context.Context, took time.Duration) error {
	t := time.NewTimer(min(max(2*took, 5*time.Millisecond), DefaultRequestTimeout))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// waitBriefly waits for ch (a notification), stop, or pollMin.
func (n *nsStore) waitBriefly(ctx context.Context, ch, stop <-chan struct{}) error {
	t := time.NewTimer(n.pollMin)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-stop:
		return ErrClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-n.closing:
		return ErrClosed
	}
	return nil
}

// nextDelay is the poll backoff: a few polls at pollMin (what is awaited
// often comes within a round trip or two), then doubling up to pollMax.
func (n *nsStore) nextDelay(delay time.Duration) time.Duration {
	if delay < 4*n.pollMin {
		return delay + n.pollMin
	}
	return min(2*delay, n.pollMax)
}

// list visits the objects of container c that opts select, page after
// page, until visit returns false or the listing ends: a page shorter than
// its limit is the last (the backend contract; on Swift a listing of a few
// objects is then one request, not two: it asked for an empty page after
// every short one, and a host's look at its slots waited on both). Every
// listing helper below is a use of it.
func (n *nsStore) list(ctx context.Context, c string, opts backend.ListOptions, visit func(backend.ObjectInfo) bool) error {
	if opts.Limit <= 0 || opts.Limit > backend.MaxListLimit {
		opts.Limit = backend.MaxListLimit
	}
	for {
		page, err := n.store.List(ctx, c, opts)
		if err != nil {
			return err
		}
		for _, o := range page {
			if !visit(o) {
				return nil
			}
		}
		if len(page) < opts.Limit {
			return nil
		}
		opts.Marker = page[len(page)-1].Name
	}
}

// listAll lists the objects right under prefix in the namespace (no
// subdirectories).
func (n *nsStore) listAll(ctx context.Context, prefix string) ([]backend.ObjectInfo, error) {
	var out []backend.ObjectInfo
	err := n.list(ctx, n.container, backend.ListOptions{Prefix: prefix, Delimiter: "/"}, func(o backend.ObjectInfo) bool {
		if !o.Subdir {
			out = append(out, o)
		}
		return true
	})
	return out, err
}

// listRange lists the objects right under prefix named after from, up to
// and including to.
func (n *nsStore) listRange(ctx context.Context, prefix, from, to string) ([]backend.ObjectInfo, error) {
	var out []backend.ObjectInfo
	err := n.list(ctx, n.container, backend.ListOptions{Prefix: prefix, Marker: from, Delimiter: "/"}, func(o backend.ObjectInfo) bool {
		if o.Name > to {
			return false
		}
		if !o.Subdir {
			out = append(out, o)
		}
		return true
	})
	return out, err
}

// listDirs lists the "directories" right under prefix in the namespace.
func (n *nsStore) listDirs(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := n.list(ctx, n.container, backend.ListOptions{Prefix: prefix, Delimiter: "/"}, func(o backend.ObjectInfo) bool {
		if o.Subdir {
			out = append(out, o.Name)
		}
		return true
	})
	return out, err
}

// listAllIn lists every object of container c under prefix, at any depth.
func (n *nsStore) listAllIn(ctx context.Context, c, prefix string) ([]backend.ObjectInfo, error) {
	var out []backend.ObjectInfo
	err := n.list(ctx, c, backend.ListOptions{Prefix: prefix}, func(o backend.ObjectInfo) bool {
		out = append(out, o)
		return true
	})
	return out, err
}

// listPIDs lists the pids named under prefix.
func (n *nsStore) listPIDs(ctx context.Context, prefix string) ([]PID, error) {
	entries, err := n.listAll(ctx, prefix)
	if err != nil {
		return nil, err
	}
	pids := make([]PID, 0, len(entries))
	for _, o := range entries {
		if n, err := record.ParseNumber(o.Name); err == nil {
			pids = append(pids, PID(n))
		}
	}
	return pids, nil
}

// mark writes the namespace marker (record.NamespaceMarker) unless it is
// there: a container is collected as a dead namespace only if it holds
// one. A namespace made before markers existed gets one here, the next
// time a kernel opens it.
func (n *nsStore) mark(ctx context.Context) error { return n.markContainer(ctx, n.container) }

// markContainer writes the namespace marker of container c unless it is
// there.
func (n *nsStore) markContainer(ctx context.Context, c string) error {
	data := record.Encode(record.Namespace{Version: 1, Created: time.Now().UTC()})
	_, err := n.store.Put(ctx, c, record.NamespaceMarker, bytesReader(data), &backend.PutOptions{
		CreateOnly: true, ContentType: record.NamespaceType,
	})
	if errors.Is(err, backend.ErrExist) {
		return nil
	}
	return err
}

// bytesReader returns a rewindable reader, so that retries can resend it.
func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
