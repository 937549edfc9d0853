package record

import (
	"net/url"
	"strconv"
	"strings"
)

// Summaries: what ps needs of a record, carried in the object's content
// type. Swift keeps an object's content type in its container listing, so
// one listing page tells ps about 10,000 processes without a GET each. A
// summary is a media type followed by URL-encoded parameters, e.g.
//
//	application/x-rack-proc; pp=1&n=worker&a=-n&a=3&k=5f2c...&t=1700000000
//
// Records stay the source of truth: a summary that is missing, cut short
// (tr=1) or unreadable sends the reader to the record itself.
const (
	procType   = "application/x-rack-proc"
	exitType   = "application/x-rack-exit"
	hostType   = "application/x-rack-host"
	leaseType  = "application/x-rack-lease"
	statusType = "application/x-rack-status"
	endsType   = "application/x-rack-ends"
	slotType   = "application/x-rack-slot"
	signalType = "application/x-rack-signal"
)

// MaxSummary bounds a summary (backend.MaxContentTypeLength is 1024).
const MaxSummary = 1000

func summary(mediaType string, v url.Values) string {
	return mediaType + "; " + v.Encode()
}

// parseSummary returns the parameters of a summary of mediaType.
func parseSummary(mediaType, ct string) (url.Values, bool) {
	rest, ok := strings.CutPrefix(ct, mediaType+"; ")
	if !ok {
		return nil, false
	}
	v, err := url.ParseQuery(rest)
	return v, err == nil
}

func num(v url.Values, key string) (int64, bool) {
	n, err := strconv.ParseInt(v.Get(key), 10, 64)
	return n, err == nil
}

// ProcSummary is the summary of a process record. Args that would make it
// longer than MaxSummary are left out and the summary marked cut short.
func ProcSummary(p *Proc) string {
	v := url.Values{
		"pp": {strconv.FormatInt(p.PPID, 10)},
		"n":  {p.Name},
		"k":  {p.Kernel},
		"t":  {strconv.FormatInt(p.Started, 10)},
	}
	if p.Group != 0 {
		v.Set("g", strconv.FormatInt(p.Group, 10))
	}
	if len(p.Args) > 0 {
		v["a"] = p.Args
	}
	if s := summary(procType, v); len(s) <= MaxSummary {
		return s
	}
	delete(v, "a")
	v.Set("tr", "1")
	if len(v.Get("n")) > MaxSummary/2 {
		v.Set("n", "")
	}
	return summary(procType, v)
}

// ParseProcSummary reads a process record's summary into a Proc with
// PID, PPID, Group, Name, Args, Kernel and Started set. It reports false
// when ct is no complete summary.
func ParseProcSummary(pid int64, ct string) (*Proc, bool) {
	v, ok := parseSummary(procType, ct)
	if !ok || v.Has("tr") {
		return nil, false
	}
	ppid, ok1 := num(v, "pp")
	started, ok2 := num(v, "t")
	group := int64(0)
	if v.Has("g") {
		g, ok := num(v, "g")
		if !ok {
			return nil, false
		}
		group = g
	}
	if !ok1 || !ok2 || !v.Has("k") || ppid < 0 || group < 0 {
		return nil, false
	}
	return &Proc{PID: pid, PPID: ppid, Group: group, Name: v.Get("n"), Args: v["a"],
		Kernel: v.Get("k"), Started: started}, true
}

// ExitSummary is the summary of an exit record (all but reason and stderr).
func ExitSummary(e *Exit) string {
	v := url.Values{
		"c": {strconv.Itoa(e.Code)},
		"e": {strconv.FormatInt(e.Ended, 10)},
	}
	if e.Signal != 0 {
		v.Set("s", strconv.Itoa(e.Signal))
	}
	if e.Lost {
		v.Set("l", "1")
	}
	return summary(exitType, v)
}

// ParseExitSummary reads an exit record's summary into an Exit with PID,
// Code, Signal, Lost and Ended set.
func ParseExitSummary(pid int64, ct string) (*Exit, bool) {
	v, ok := parseSummary(exitType, ct)
	if !ok {
		return nil, false
	}
	code, ok1 := num(v, "c")
	ended, ok2 := num(v, "e")
	sig := int64(0)
	if v.Has("s") {
		s, ok := num(v, "s")
		if !ok {
			return nil, false
		}
		sig = s
	}
	if !ok1 || !ok2 || sig < 0 || sig > maxSignal || code != int64(int(code)) {
		return nil, false
	}
	return &Exit{PID: pid, Code: int(code), Signal: int(sig), Lost: v.Get("l") == "1", Ended: ended}, true
}

// HostSummary is the summary of a host record: the hosting kernel.
func HostSummary(h *Host) string { return summary(hostType, url.Values{"k": {h.Kernel}}) }

// ParseHostSummary returns the kernel a host record's summary names.
func ParseHostSummary(ct string) (string, bool) {
	v, ok := parseSummary(hostType, ct)
	if !ok || v.Get("k") == "" {
		return "", false
	}
	return v.Get("k"), true
}

// SlotSummary is the summary of a host slot that holds the start record
// of process pid: a host's listing of its slots names the process, so
// that the host can look for its exit and claim it while it reads the
// record, not after.
func SlotSummary(pid int64) string {
	return summary(slotType, url.Values{"p": {strconv.FormatInt(pid, 10)}})
}

// ParseSlotSummary returns the pid a slot's summary names: a positive
// number, else false.
func ParseSlotSummary(ct string) (int64, bool) {
	v, ok := parseSummary(slotType, ct)
	if !ok {
		return 0, false
	}
	pid, ok := num(v, "p")
	return pid, ok && pid > 0
}

// LeaseSummary is the summary of a lease that lasts ttl nanoseconds from
// its last write (the listing's last-modified time).
func LeaseSummary(ttl int64) string {
	return summary(leaseType, url.Values{"d": {strconv.FormatInt(ttl, 10)}})
}

// ParseLeaseSummary returns the lease's duration in nanoseconds.
func ParseLeaseSummary(ct string) (int64, bool) {
	v, ok := parseSummary(leaseType, ct)
	if !ok {
		return 0, false
	}
	return num(v, "d")
}

// StoppedLeaseSummary is the summary of a lease that another kernel keeps
// for a kernel whose program it has stopped (SIGSTOP): the lease lasts ttl
// nanoseconds, and the kernel's process is stopped, not hung.
func StoppedLeaseSummary(ttl int64) string {
	return summary(leaseType, url.Values{"d": {strconv.FormatInt(ttl, 10)}, "st": {"1"}})
}

// ParseLeaseStopped reports whether a lease's summary says its kernel's
// process is stopped.
func ParseLeaseStopped(ct string) bool {
	v, ok := parseSummary(leaseType, ct)
	return ok && v.Get("st") == "1"
}

// StatusSummary is the summary of a status text: the text, unless it is
// too long to fit.
func StatusSummary(text string) string {
	s := summary(statusType, url.Values{"s": {text}})
	if len(s) <= MaxSummary {
		return s
	}
	return summary(statusType, url.Values{"tr": {"1"}})
}

// ParseStatusSummary returns the status text of a summary that holds it.
func ParseStatusSummary(ct string) (string, bool) {
	v, ok := parseSummary(statusType, ct)
	if !ok || v.Has("tr") {
		return "", false
	}
	return v.Get("s"), true
}

// EndsSummary is the summary of a pipe end record (PipeEnd): how many ends
// it registers, so that a reader or a claim can step over them with a HEAD.
func EndsSummary(count int) string {
	return summary(endsType, url.Values{"n": {strconv.Itoa(count)}})
}

// FifoEndsSummary is the summary of a named pipe's end record of kind
// (PipeEnd.Kind: EndReader or EndOver; "" is EndsSummary(1)).
func FifoEndsSummary(kind string) string {
	v := url.Values{"n": {"1"}}
	if kind != "" {
		v.Set("k", kind)
	}
	return summary(endsType, v)
}

// ParseEndsKind returns the kind (PipeEnd.Kind) a PipeEnd summary says
// its record registers: "" for writer ends.
func ParseEndsKind(ct string) (string, bool) {
	v, ok := parseSummary(endsType, ct)
	if !ok {
		return "", false
	}
	switch k := v.Get("k"); k {
	case "", EndReader, EndOver:
		return k, true
	}
	return "", false
}

// ParseEndsSummary returns the number of ends a PipeEnd summary says its
// record registers.
func ParseEndsSummary(ct string) (int, bool) {
	v, ok := parseSummary(endsType, ct)
	if !ok {
		return 0, false
	}
	n, ok := num(v, "n")
	if !ok || n < 1 || n > MaxPipeEnd {
		return 0, false
	}
	return int(n), true
}

// SignalSummary is the summary of a signal, or of a child's exit note, in
// a kernel's inbox: the whole record (a kernel id at most 64 bytes long
// keeps it well under MaxSummary), so that the inbox's listing delivers it
// without a read of each.
func SignalSummary(s *Signal) string {
	v := url.Values{
		"p": {strconv.FormatInt(s.PID, 10)},
		"s": {strconv.Itoa(s.Signal)},
		"f": {s.From},
	}
	if s.Child != 0 {
		v.Set("c", strconv.FormatInt(s.Child, 10))
	}
	if e := s.Exit; e != nil {
		v.Set("xc", strconv.Itoa(e.Code))
		v.Set("xe", strconv.FormatInt(e.Ended, 10))
		v.Set("xb", e.By)
		if e.Signal != 0 {
			v.Set("xs", strconv.Itoa(e.Signal))
		}
		if e.Lost {
			v.Set("xl", "1")
		}
	}
	return summary(signalType, v)
}

// ParseSignalSummary returns the signal a summary carries, checked as its
// record would be, else false (the reader then reads the record).
func ParseSignalSummary(ct string) (*Signal, bool) {
	v, ok := parseSummary(signalType, ct)
	if !ok {
		return nil, false
	}
	pid, ok1 := num(v, "p")
	sig, ok2 := num(v, "s")
	s := &Signal{PID: pid, Signal: int(sig), From: v.Get("f")}
	if v.Has("c") {
		c, ok := num(v, "c")
		if !ok || c == 0 {
			return nil, false
		}
		s.Child = c
	}
	if v.Has("xc") {
		code, okc := num(v, "xc")
		ended, oke := num(v, "xe")
		e := &Exit{PID: s.Child, Code: int(code), Ended: ended, By: v.Get("xb"), Lost: v.Get("xl") == "1"}
		if v.Has("xs") {
			xs, ok := num(v, "xs")
			if !ok || xs == 0 {
				return nil, false
			}
			e.Signal = int(xs)
		}
		if !okc || !oke || code != int64(e.Code) || int64(e.Signal) > maxSignal || (v.Has("xl") && v.Get("xl") != "1") {
			return nil, false
		}
		s.Exit = e
	}
	if !ok1 || !ok2 || sig != int64(s.Signal) || s.validate() != nil {
		return nil, false
	}
	return s, true
}
