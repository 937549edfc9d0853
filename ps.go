package rack

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/internal/record"
)

// ProcessInfo is one row of ps.
type ProcessInfo struct {
	PID      PID
	PPID     PID
	Group    PID // 0 when the process is in no group
	Name     string
	Args     []string
	State    State
	Status   string // free text set with SetStatus
	ExitCode int    // meaningful once State is Exited
	Signal   Signal // the signal that ended it, if any
	Started  time.Time
	Ended    time.Time
	// Host is the id of the kernel that runs a process started as a new
	// program: a host's (Kernel.Hosts) for a process on a host. Empty for
	// a process run by its forker's kernel, or when unknown.
	Host string
}

// State is a process's state as ps shows it.
type State string

// Process states.
const (
	Running State = "running"
	Exited  State = "exited"
	// Lost: the infrastructure failed it (recorded), or its kernel has
	// stopped renewing its lease and nobody has recorded its end yet.
	Lost State = "lost"
	// Stopped: stopped by SIGSTOP or SIGTSTP until a SIGCONT (ps -l: T).
	Stopped State = "stopped"
)

// Processes lists the processes of the namespace (ps), sorted by pid. It
// reads the store's listings, so a process forked, or ended, by another
// kernel a moment ago may be missing or shown running for a while. It
// costs a few listing pages per 10,000 processes (the records' summaries
// are in the listings), plus a read for each record without one.
func (k *Kernel) Processes(ctx context.Context) ([]ProcessInfo, error) {
	if k.isClosed() {
		return nil, ErrClosed
	}
	v := &psView{k: k}
	entries, err := k.ns.listAll(ctx, record.Procs)
	if err != nil {
		return nil, fmt.Errorf("rack: ps: %w", err)
	}
	pids := make([]PID, 0, len(entries))
	v.procs = make(map[PID]*record.Proc, len(entries))
	for _, o := range entries {
		n, err := record.ParseNumber(o.Name)
		if err != nil {
			continue
		}
		pids = append(pids, PID(n))
		if rec, ok := record.ParseProcSummary(n, o.ContentType); ok {
			v.procs[PID(n)] = rec
		}
	}
	if err := v.listAll(ctx); err != nil {
		return nil, fmt.Errorf("rack: ps: %w", err)
	}
	return v.infos(ctx, pids)
}

// psView gathers what ps shows: from records this kernel knows, from the
// summaries in listings when it has listed (listed), else by reading
// records one by one (fine for a few processes, as for a small group).
type psView struct {
	k      *Kernel
	listed bool
	procs  map[PID]*record.Proc // from summaries
	exits  map[PID]*record.Exit // from summaries
	hosts  map[PID]string       // from summaries
	status map[PID]string       // from summaries
	// unsummed are pids with an exit or host record listed without a
	// summary: their records are read.
	unsummed map[PID]bool
	leases   map[string]bool // kernel -> alive, once known
	// leaseSeen is when each kernel's lease was last written and how long
	// it lasts, from the listing.
	leaseSeen map[string]leaseEntry
}

type leaseEntry struct {
	modified time.Time
	ttl      time.Duration
	stopped  bool // kept by the kernel that stopped its process
}

// listAll reads the summaries of exits, hosts, statuses and leases, a few
// listing pages for the whole namespace.
func (v *psView) listAll(ctx context.Context) error {
	v.listed = true
	v.exits, v.hosts, v.status = map[PID]*record.Exit{}, map[PID]string{}, map[PID]string{}
	v.unsummed = map[PID]bool{}
	v.leaseSeen = map[string]leaseEntry{}
	for _, l := range []struct {
		prefix string
		add    func(n int64, o backend.ObjectInfo)
	}{
		{record.Exits, func(n int64, o backend.ObjectInfo) {
			if ex, ok := record.ParseExitSummary(n, o.ContentType); ok {
				v.exits[PID(n)] = ex
			} else {
				v.unsummed[PID(n)] = true // written without one: read it
			}
		}},
		{record.Hosts, func(n int64, o backend.ObjectInfo) {
			if host, ok := record.ParseHostSummary(o.ContentType); ok {
				v.hosts[PID(n)] = host
			} else {
				v.unsummed[PID(n)] = true
			}
		}},
		{record.Status, func(n int64, o backend.ObjectInfo) {
			if text, ok := record.ParseStatusSummary(o.ContentType); ok {
				v.status[PID(n)] = text
			}
		}},
	} {
		entries, err := v.k.ns.listAll(ctx, l.prefix)
		if err != nil {
			return err
		}
		for _, o := range entries {
			if n, err := record.ParseNumber(o.Name); err == nil {
				l.add(n, o)
			}
		}
	}
	return v.listLeases(ctx)
}

// listLeases reads when each kernel's lease was last renewed.
func (v *psView) listLeases(ctx context.Context) error {
	leases, err := v.k.ns.listAll(ctx, record.Kernels)
	if err != nil {
		return err
	}
	for _, o := range leases {
		if ttl, ok := record.ParseLeaseSummary(o.ContentType); ok {
			v.leaseSeen[strings.TrimPrefix(o.Name, record.Kernels)] = leaseEntry{o.LastModified, time.Duration(ttl), record.ParseLeaseStopped(o.ContentType)}
		}
	}
	return nil
}

// infos builds ps rows for pids.
func (v *psView) infos(ctx context.Context, pids []PID) ([]ProcessInfo, error) {
	k := v.k
	out := make([]ProcessInfo, 0, len(pids))
	for _, pid := range pids {
		rec, err := v.proc(ctx, pid)
		if errors.Is(err, backend.ErrNotFound) {
			continue // expired between listing and read
		}
		if err != nil {
			return nil, fmt.Errorf("rack: ps: %w", err)
		}
		info := ProcessInfo{PID: pid, PPID: PID(rec.PPID), Group: PID(rec.Group), Name: rec.Name,
			Args: rec.Args, State: Running, Started: time.Unix(0, rec.Started), Host: v.hosts[pid]}
		ex, err := v.exit(ctx, pid)
		switch {
		case err == nil:
			info.State, info.ExitCode, info.Signal, info.Ended = Exited, ex.Code, Signal(ex.Signal), time.Unix(0, ex.Ended)
			if ex.Lost {
				info.State = Lost
			}
		case !errors.Is(err, backend.ErrNotFound):
			return nil, fmt.Errorf("rack: ps: %w", err)
		}
		if p := k.hosted(pid); p != nil && !p.remote {
			info.Status = p.statusText()
		} else if info.State == Running {
			info.Status = v.statusText(ctx, pid)
			// No exit yet, but its kernel may be gone (a kill -9, a lost
			// machine) before anyone has recorded it lost.
			if alive, err := v.alive(ctx, pid, rec); err == nil && !alive {
				info.State = Lost
			} else if v.stopped(pid) {
				info.State = Stopped
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// proc returns pid's process record, or its summary.
func (v *psView) proc(ctx context.Context, pid PID) (*record.Proc, error) {
	if rec, ok := v.k.records.procs.Load(pid); ok {
		return rec.(*record.Proc), nil
	}
	if rec := v.procs[pid]; rec != nil {
		return rec, nil
	}
	return v.k.records.proc(ctx, pid)
}

// exit returns pid's exit record or summary, or an error wrapping
// backend.ErrNotFound while it has none.
func (v *psView) exit(ctx context.Context, pid PID) (*record.Exit, error) {
	if ex, ok := v.k.records.exits.Load(pid); ok {
		return ex.(*record.Exit), nil
	}
	if v.listed && !v.unsummed[pid] {
		if ex := v.exits[pid]; ex != nil {
			return ex, nil
		}
		// Not listed: running, or ended a moment ago (the listing lags).
		return nil, backend.ErrNotFound
	}
	return v.k.records.exit(ctx, pid)
}

// statusText returns the status text of a process hosted elsewhere.
func (v *psView) statusText(ctx context.Context, pid PID) string {
	if text, ok := v.status[pid]; ok {
		return text
	}
	if data, err := v.k.ns.get(ctx, record.StatusKey(int64(pid))); err == nil {
		return string(data)
	}
	return ""
}

// alive reports whether the kernel running pid still renews its lease.
func (v *psView) alive(ctx context.Context, pid PID, rec *record.Proc) (bool, error) {
	k := v.k
	host := v.hosts[pid]
	switch {
	case host != "":
	case v.listed && !v.unsummed[pid]:
		// No host record listed: it runs in its forker's kernel, or its
		// kernel has only just adopted it.
		host = rec.Kernel
	default:
		var err error
		if host, _, err = k.records.host(ctx, pid, rec); err != nil {
			return false, err
		}
	}
	if alive, ok := v.leases[host]; ok {
		return alive, nil
	}
	if v.leases == nil {
		v.leases = map[string]bool{}
	}
	if host == k.id {
		v.leases[host] = true
		return true, nil
	}
	// A fresh lease in the listing is alive. One missing (the listing
	// lags) or looking stale (clocks differ; the expirer lags) is checked
	// by reading it.
	if l, ok := v.leaseSeen[host]; ok && time.Since(l.modified) < l.ttl {
		v.leases[host] = true
		return true, nil
	}
	alive, err := k.leases.alive(ctx, host)
	if err == nil {
		v.leases[host] = alive
	}
	return alive, err
}

// stopped reports whether pid is stopped: its stand-in here says so, or
// the lease of its kernel, kept by the one that stopped it.
func (v *psView) stopped(pid PID) bool {
	if p := v.k.hosted(pid); p != nil && p.remote {
		return p.isStopped()
	}
	host := v.hosts[pid]
	return host != "" && v.leaseSeen[host].stopped
}
