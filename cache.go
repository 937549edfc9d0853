package rack

import (
	"context"
	"errors"
	"sync"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// recordCache recalls the records this kernel has read or written. Process,
// exit and host records never change once written, so a cached one is
// never stale.
type recordCache struct {
	ns    *nsStore
	procs sync.Map // PID -> *record.Proc
	exits sync.Map // PID -> *record.Exit
	hosts sync.Map // PID -> kernel id, from host records
}

// proc reads (or recalls) a process record; records never change.
func (c *recordCache) proc(ctx context.Context, pid PID) (*record.Proc, error) {
	if v, ok := c.procs.Load(pid); ok {
		return v.(*record.Proc), nil
	}
	var rec record.Proc
	if err := c.ns.getRecord(ctx, record.ProcKey(int64(pid)), &rec); err != nil {
		return nil, err
	}
	c.procs.Store(pid, &rec)
	return &rec, nil
}

// exit reads (or recalls) a process's exit record.
func (c *recordCache) exit(ctx context.Context, pid PID) (*record.Exit, error) {
	if v, ok := c.exits.Load(pid); ok {
		return v.(*record.Exit), nil
	}
	var ex record.Exit
	if err := c.ns.getRecord(ctx, record.ExitKey(int64(pid)), &ex); err != nil {
		return nil, err
	}
	c.exits.Store(pid, &ex)
	return &ex, nil
}

// host returns the kernel that runs pid and whether it has started:
// its host record, or else the forker's kernel.
func (c *recordCache) host(ctx context.Context, pid PID, rec *record.Proc) (string, bool, error) {
	if v, ok := c.hosts.Load(pid); ok {
		return v.(string), true, nil
	}
	var h record.Host
	err := c.ns.getRecord(ctx, record.HostKey(int64(pid)), &h)
	switch {
	case err == nil:
		c.hosts.Store(pid, h.Kernel)
		return h.Kernel, true, nil
	case errors.Is(err, backend.ErrNotFound):
		return rec.Kernel, false, nil
	}
	return "", false, err
}

// forget drops what is recalled of pid, whose records were removed.
func (c *recordCache) forget(pid PID) {
	c.procs.Delete(pid)
	c.exits.Delete(pid)
	c.hosts.Delete(pid)
}
