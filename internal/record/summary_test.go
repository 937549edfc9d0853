package record

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummariesRoundTrip(t *testing.T) {
	p := &Proc{PID: 123, PPID: 1, Group: 7, Name: "worker", Args: []string{"-n", "a b&c=d;e%", "", "é"},
		Kernel: "k1", Started: 1700000000123456789}
	got, ok := ParseProcSummary(123, ProcSummary(p))
	if !ok {
		t.Fatalf("ParseProcSummary(%q) failed", ProcSummary(p))
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("proc summary round trip (-want +got):\n%s", diff)
	}
	for _, s := range []string{ProcSummary(p), ExitSummary(&Exit{Code: 1}), StatusSummary("ünïcode\n"), HostSummary(&Host{Kernel: "k"})} {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				t.Fatalf("summary %q has a byte outside printable ASCII", s)
			}
		}
	}

	ex := &Exit{PID: 5, Code: -1, Signal: 9, Lost: true, Ended: 42}
	if got, ok := ParseExitSummary(5, ExitSummary(ex)); !ok || *got != *ex {
		t.Errorf("exit summary round trip: got %+v, %v, want %+v", got, ok, ex)
	}
	if k, ok := ParseHostSummary(HostSummary(&Host{Kernel: "abc"})); !ok || k != "abc" {
		t.Errorf("host summary round trip: %q, %v", k, ok)
	}
	if pid, ok := ParseSlotSummary(SlotSummary(42)); !ok || pid != 42 {
		t.Errorf("ParseSlotSummary(SlotSummary(42)) = %d, %v", pid, ok)
	}
	for _, ct := range []string{"", SlotSummary(0), SlotSummary(-3), "application/x-rack-slot; p=x", HostSummary(&Host{Kernel: "k"})} {
		if pid, ok := ParseSlotSummary(ct); ok {
			t.Errorf("ParseSlotSummary(%q) = %d, want no pid", ct, pid)
		}
	}
	if d, ok := ParseLeaseSummary(LeaseSummary(30e9)); !ok || d != 30e9 {
		t.Errorf("lease summary round trip: %d, %v", d, ok)
	}
	if s, ok := ParseStatusSummary(StatusSummary("50% done")); !ok || s != "50% done" {
		t.Errorf("status summary round trip: %q, %v", s, ok)
	}
	for _, sig := range []*Signal{{PID: 7, Signal: 15, From: "5f2c"}, {PID: 1, Signal: 17, From: "k&=;", Child: 99},
		{PID: 3, Signal: 17, From: "k1", Child: 4, Exit: &Exit{PID: 4, Ended: 1700000000123456789, By: "k1"}},
		{PID: 3, Signal: 17, From: "k1", Child: 4, Exit: &Exit{PID: 4, Code: 137, Signal: 9, Ended: 1, By: "k2"}},
		{PID: 3, Signal: 17, From: "k1", Child: 4, Exit: &Exit{PID: 4, Code: -1, Lost: true, Ended: 1, By: "k1"}}} {
		if got, ok := ParseSignalSummary(SignalSummary(sig)); !ok || !cmp.Equal(got, sig) {
			t.Errorf("signal summary round trip: got %+v, %v, want %+v (%s)", got, ok, sig, cmp.Diff(sig, got))
		}
	}
	for _, ct := range []string{"", SlotSummary(3), SignalSummary(&Signal{PID: -1, Signal: 9}), SignalSummary(&Signal{PID: 1}),
		"application/x-rack-signal; p=1&s=300", "application/x-rack-signal; p=1&s=9&c=x", "application/x-rack-signal; p=1&s=9&c=0",
		"application/x-rack-signal; p=1&s=4294967305",
		// An exit with no child, naming no kernel, or out of range.
		SignalSummary(&Signal{PID: 3, Signal: 17, From: "k", Exit: &Exit{PID: 4, By: "k"}}),
		SignalSummary(&Signal{PID: 3, Signal: 17, From: "k", Child: 4, Exit: &Exit{PID: 4}}),
		"application/x-rack-signal; p=3&s=17&f=k&c=4&xc=0&xe=1&xb=k&xs=300",
		"application/x-rack-signal; p=3&s=17&f=k&c=4&xc=0&xe=1&xb=k&xs=0",
		"application/x-rack-signal; p=3&s=17&f=k&c=4&xc=0&xe=1&xb=k&xl=2",
		"application/x-rack-signal; p=3&s=17&f=k&c=4&xc=0&xb=k"} {
		if s, ok := ParseSignalSummary(ct); ok {
			t.Errorf("ParseSignalSummary(%q) = %+v, want none", ct, s)
		}
	}
}

// TestSignalCarriesItsChildsExit: an exit note's exit is its child's,
// names the kernel that recorded it, and is in range.
func TestSignalCarriesItsChildsExit(t *testing.T) {
	for _, s := range []*Signal{
		{PID: 3, Signal: 17, From: "k", Child: 4, Exit: &Exit{PID: 5, By: "k"}},
		{PID: 3, Signal: 17, From: "k", Exit: &Exit{PID: 4, By: "k"}},
		{PID: 3, Signal: 17, From: "k", Child: 4, Exit: &Exit{PID: 4}},
		{PID: 3, Signal: 17, From: "k", Child: 4, Exit: &Exit{PID: 4, By: "k", Signal: 300}},
	} {
		var got Signal
		if err := Decode(SignalInbox("k")+"x", Encode(s), &got); err == nil {
			t.Errorf("signal %+v with exit %+v: no error", s, s.Exit)
		}
	}
	ok := &Signal{PID: 3, Signal: 17, From: "k", Child: 4, Exit: &Exit{PID: 4, By: "k"}}
	var got Signal
	if err := Decode(SignalInbox("k")+"x", Encode(ok), &got); err != nil || !cmp.Equal(&got, ok) {
		t.Errorf("signal %+v with exit %+v: %v", ok, ok.Exit, err)
	}
}

func TestSummariesCutShort(t *testing.T) {
	long := &Proc{PID: 1, Name: "x", Kernel: "k", Args: []string{strings.Repeat("a", 2000)}}
	s := ProcSummary(long)
	if len(s) > MaxSummary {
		t.Errorf("summary of %d bytes, limit %d", len(s), MaxSummary)
	}
	if _, ok := ParseProcSummary(1, s); ok {
		t.Errorf("a summary without the args reads as complete")
	}
	if _, ok := ParseStatusSummary(StatusSummary(strings.Repeat("s", 4096))); ok {
		t.Errorf("a status summary without the text reads as complete")
	}
	for _, bad := range []string{"", "application/octet-stream", "application/x-rack-proc; pp=x&k=k&t=1", "application/x-rack-exit; c=1"} {
		if _, ok := ParseProcSummary(1, bad); ok {
			t.Errorf("ParseProcSummary(%q) succeeded", bad)
		}
		if _, ok := ParseExitSummary(1, bad); ok {
			t.Errorf("ParseExitSummary(%q) succeeded", bad)
		}
	}
}
