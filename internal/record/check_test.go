package record

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

// valid are records as the kernel writes them, one of each type, the
// seeds of FuzzDecode.
var valid = []any{
	&Proc{PID: 5, PPID: 1, Group: 5, Name: "w", Args: []string{"a"}, Env: map[string]string{"K": "v"}, Kernel: "0123456789abcdef",
		Started: 1, Stdin: Stream{Kind: "pipe", Pipe: "0123456789abcdef-1", End: -1, Read: map[int]int{0: 3, 2: 1}},
		Stdout: Stream{Kind: "pipe", Pipe: "0123456789abcdef-2", End: 1}, Stderr: Stream{Kind: "console"},
		Files: []Stream{{Kind: "file", Path: "/c/o"}}, Options: map[string]string{"exe": "/bin/x"}},
	&Proc{PID: 1, Kernel: "k", Stdin: Stream{Kind: "file", Path: "/c/in"}},
	&Exit{PID: 5, Code: 137, Signal: 9, Reason: "killed", Ended: 1, By: "k"},
	&Signal{PID: 5, Signal: 17, From: "k", Child: 6},
	&Group{GID: 3, Name: "g"},
	&PipeEnd{PID: 5, Kernel: "k", From: -1},
	&PipeClose{Segments: 4},
	&Fifo{Name: "f", Pipe: "k-1"},
	&Host{PID: 5, Kernel: "k"},
	&Lease{Kernel: "k"},
	&Namespace{Version: 1},
	&HostSpent{Kernel: "0123456789abcdef", Started: 1, Until: 3600e9},
	&HostRequest{By: "0123456789abcdef", Digest: strings.Repeat("0a", 32), Made: 1},
	&HostReply{State: HostStarted, Host: "0123456789abcdef"},
	&HostReply{State: HostFailed, Error: "no"},
}

// newLike returns a new zero record of v's type.
func newLike(v any) any {
	switch v.(type) {
	case *Proc:
		return new(Proc)
	case *Exit:
		return new(Exit)
	case *Signal:
		return new(Signal)
	case *Group:
		return new(Group)
	case *PipeEnd:
		return new(PipeEnd)
	case *PipeClose:
		return new(PipeClose)
	case *Fifo:
		return new(Fifo)
	case *Host:
		return new(Host)
	case *Lease:
		return new(Lease)
	case *Namespace:
		return new(Namespace)
	case *HostSpent:
		return new(HostSpent)
	case *HostRequest:
		return new(HostRequest)
	case *HostReply:
		return new(HostReply)
	}
	panic("unknown record type")
}

func TestDecodeValid(t *testing.T) {
	for _, v := range valid {
		if err := Decode("x", Encode(v), newLike(v)); err != nil {
			t.Errorf("Decode(%s): %v", Encode(v), err)
		}
	}
}

// TestDecodeInvalid: records that would make the kernel panic, allocate
// without bound, or name objects outside their place are errors that
// wrap ErrCorrupt and name the object.
func TestDecodeInvalid(t *testing.T) {
	for _, c := range []struct {
		v    any
		data string
	}{
		{new(Proc), `{"pid":5,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{"-1":2}}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{"1073741824":2}}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{"1":-2}}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":3}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stdout":{"kind":"pipe","pipe":"p","end":-1}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stdout":{"kind":"pipe","pipe":"p","end":1048576}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stdout":{"kind":"pipe","pipe":"p/../x","end":1}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stderr":{"kind":"pipe","pipe":"","end":1}}`},
		{new(Proc), `{"pid":5,"kernel":"k","stderr":{"kind":"socket"}}`},
		{new(Proc), `{"pid":5,"kernel":"k","files":[{"kind":"file"}]}`},
		{new(Proc), `{"pid":-5,"kernel":"k"}`},
		{new(Proc), `{"pid":5,"ppid":-1,"kernel":"k"}`},
		{new(Proc), `{"pid":5,"kernel":""}`},
		{new(Proc), `{"pid":5,"kernel":"a/b"}`},
		{new(Proc), `{"pid":5,"kernel":"` + strings.Repeat("k", 256) + `"}`},
		{new(Proc), `{"pid":5,"kernel":"k"`},
		{new(Exit), `{"pid":0}`},
		{new(Exit), `{"pid":5,"signal":-9}`},
		{new(Signal), `{"pid":5,"signal":0}`},
		{new(Signal), `{"pid":5,"signal":1000}`},
		{new(Signal), `{"pid":-5,"signal":9}`},
		{new(Group), `{"gid":-1}`},
		{new(PipeEnd), `{"pid":1,"kernel":"k","from":-2}`},
		{new(PipeEnd), `{"pid":1,"kernel":"","from":-1}`},
		{new(PipeClose), `{"segments":-1}`},
		{new(Fifo), `{"name":"f","pipe":"../x"}`},
		{new(Host), `{"pid":5,"kernel":"a\nb"}`},
		{new(Lease), `{"kernel":""}`},
		{new(Namespace), `{"version":0}`},
		{new(HostSpent), `{"kernel":"k","started":0,"until":5}`},
		{new(HostSpent), `{"kernel":"k","started":5,"until":4}`},
		{new(HostSpent), `{"kernel":"k","started":1,"until":9223372036854775807}`},
		{new(HostSpent), `{"kernel":"k","started":1,"until":1e300}`},
		{new(HostSpent), `{"kernel":"a/b","started":1,"until":2}`},
		{new(HostRequest), `{"by":"k","digest":"x","made":1}`},
		{new(HostRequest), `{"by":"k","digest":"` + strings.Repeat("A", 64) + `","made":1}`},
		{new(HostRequest), `{"by":"a/b","digest":"` + strings.Repeat("a", 64) + `","made":1}`},
		{new(HostRequest), `{"by":"k","digest":"` + strings.Repeat("a", 64) + `","made":-1}`},
		{new(HostReply), `{"state":"done","host":"k"}`},
		{new(HostReply), `{"state":"started"}`},
		{new(HostReply), `{"state":"started","host":"../k"}`},
		{new(HostReply), `{"state":"failed","error":"` + strings.Repeat("e", MaxHostError+1) + `"}`},
	} {
		err := Decode("procs/0000000005", []byte(c.data), c.v)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "procs/0000000005") {
			t.Errorf("Decode(%T, %s) = %v, want a corrupt-record error naming the object", c.v, c.data, err)
		}
	}
}

func TestRead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for _, size := range []int64{int64(len(data)), 0, -1, 1, int64(len(data)) - 1, int64(len(data)) + 5} {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(data)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			got, err := Read("x", r, size)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("Read(size hint %d, one byte at a time %v) = %d bytes, %v", size, oneByte, len(got), err)
			}
		}
	}
	if _, err := Read("procs/1", bytes.NewReader(nil), MaxSize+1); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "procs/1") {
		t.Errorf("Read of a size over MaxSize: %v", err)
	}
	big := make([]byte, MaxSize+1)
	if _, err := Read("procs/1", bytes.NewReader(big), 10); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Read of MaxSize+1 bytes: %v", err)
	}
	if got, err := Read("procs/1", bytes.NewReader(big[:MaxSize]), 0); err != nil || len(got) != MaxSize {
		t.Errorf("Read of MaxSize bytes: %d, %v", len(got), err)
	}
	boom := errors.New("boom")
	if _, err := Read("procs/1", iotest.ErrReader(boom), 5); !errors.Is(err, boom) {
		t.Errorf("Read of a failing body: %v", err)
	}
}

// FuzzDecode decodes any input as every record type: no panic, and a
// record that decodes re-encodes into one that decodes again.
func FuzzDecode(f *testing.F) {
	for _, v := range valid {
		f.Add(Encode(v))
	}
	f.Add([]byte(`{"pid":5,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{"-1":2}}}`))
	f.Add([]byte(`{"segments":-1}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range valid {
			r := newLike(v)
			if err := Decode("x", data, r); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Decode(%T, %q): %v does not wrap ErrCorrupt", r, data, err)
				}
				continue
			}
			again := newLike(v)
			if err := Decode("x", Encode(r), again); err != nil {
				t.Fatalf("%T %q decoded, but not re-encoded: %v", r, data, err)
			}
		}
	})
}

// FuzzSummaries parses any content type as every summary: no panic, and
// what parses is in range.
func FuzzSummaries(f *testing.F) {
	for _, s := range []string{
		ProcSummary(valid[0].(*Proc)), ExitSummary(valid[2].(*Exit)), HostSummary(&Host{Kernel: "k"}),
		LeaseSummary(30e9), StatusSummary("50% done"), SlotSummary(9), "application/x-rack-proc; pp=-1&k=x&t=1",
		SignalSummary(&Signal{PID: 7, Signal: 17, From: "k", Child: 9}), "application/x-rack-signal; p=1&s=300&f=k",
		SignalSummary(&Signal{PID: 7, Signal: 17, From: "k", Child: 9, Exit: &Exit{PID: 9, Code: 3, Signal: 9, Lost: true, Ended: 5, By: "k"}}),
		"application/x-rack-exit; c=99999999999999999999&e=1", "application/x-rack-proc; %zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		if p, ok := ParseProcSummary(7, ct); ok && (p.PPID < 0 || p.Group < 0) {
			t.Fatalf("ParseProcSummary(%q) = %+v: negative", ct, p)
		}
		if e, ok := ParseExitSummary(7, ct); ok && (e.Signal < 0 || e.Signal > maxSignal) {
			t.Fatalf("ParseExitSummary(%q) = %+v: signal out of range", ct, e)
		}
		ParseHostSummary(ct)
		if pid, ok := ParseSlotSummary(ct); ok && pid <= 0 {
			t.Fatalf("ParseSlotSummary(%q) = %d: not a pid", ct, pid)
		}
		if s, ok := ParseSignalSummary(ct); ok && s.validate() != nil {
			t.Fatalf("ParseSignalSummary(%q) = %+v: %v", ct, s, s.validate())
		} else if ok && SignalSummary(s) != ct {
			if again, ok := ParseSignalSummary(SignalSummary(s)); !ok || !cmp.Equal(again, s) {
				t.Fatalf("ParseSignalSummary(%q) = %+v, which does not survive a round trip: %+v", ct, s, again)
			}
		}
		ParseLeaseSummary(ct)
		ParseStatusSummary(ct)
		ParseNumber(ct)
	})
}

// FuzzRead reads any body with any size hint: what fits the limit comes
// back whole, read in one go or a byte at a time.
func FuzzRead(f *testing.F) {
	f.Add([]byte("{}"), int64(2), false)
	f.Add([]byte("{}"), int64(0), true)
	f.Add([]byte("hello"), int64(-1), false)
	f.Add([]byte("hello"), int64(MaxSize+1), false)
	f.Fuzz(func(t *testing.T, data []byte, size int64, oneByte bool) {
		var r io.Reader = bytes.NewReader(data)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		got, err := Read("x", r, size)
		if size > MaxSize {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read(size %d) = %v, want ErrCorrupt", size, err)
			}
			return
		}
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Read(%d bytes, size %d) = %d bytes, %v", len(data), size, len(got), err)
		}
	})
}

// TestCheckCountsOutsideStrings: commas, brackets and escaped quotes
// inside strings are text, not structure.
func TestCheckCountsOutsideStrings(t *testing.T) {
	p := &Proc{PID: 1, Kernel: "k", Args: []string{strings.Repeat(`,[{"\`, maxElements)}, Env: map[string]string{`"\,`: `\"`}}
	if err := Decode("x", Encode(p), new(Proc)); err != nil {
		t.Errorf("Decode of a record with JSON syntax in its strings: %v", err)
	}
	many := &Proc{PID: 1, Kernel: "k", Args: make([]string, maxElements)}
	if err := Check("procs/1", Encode(many)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "procs/1") {
		t.Errorf("Check of %d args: %v", maxElements, err)
	}
}
