package rack

import (
	"testing"

	"github.com/rackfork/rack/internal/record"
)

// FuzzProcRecord feeds any bytes to the kernel as a process record, as a
// forged or corrupt object in the store would: it is decoded and checked
// as the kernel reads it, and one that passes opens its pipe streams (the
// read positions of a moved reader, writer end numbers) without a panic or
// a huge allocation.
func FuzzProcRecord(f *testing.F) {
	for _, rec := range []record.Proc{
		{PID: 2, PPID: 1, Kernel: "0123456789abcdef", Name: "a",
			Stdin:  record.Stream{Kind: "pipe", Pipe: "0123456789abcdef-1", End: -1, Read: map[int]int{0: 2, 3: 1}},
			Stdout: record.Stream{Kind: "pipe", Pipe: "0123456789abcdef-2", End: 4},
			Stderr: record.Stream{Kind: "file", Path: "/c/log"}},
		{PID: 3, Kernel: "k", Stdin: record.Stream{Kind: "console"}},
	} {
		f.Add(record.Encode(rec))
	}
	// Finding 5 of the security review: a negative pipe end in stdin.read
	// panicked, a huge one allocated that much.
	f.Add([]byte(`{"pid":2,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{"-1":1}}}`))
	f.Add([]byte(`{"pid":2,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{"999999999999":1}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec record.Proc
		if err := record.Decode(record.ProcKey(2), data, &rec); err != nil {
			return
		}
		k := &Kernel{}
		pr := &proc{k: k, pid: PID(rec.PID), rec: &rec}
		if rec.Stdin.Kind != "console" {
			r, err := k.openInput(pr, rec.Stdin)
			if err != nil {
				t.Fatalf("open stdin of %s: %v", data, err)
			}
			if pr, ok := r.(*PipeReader); ok {
				if len(pr.ends) > record.MaxPipeEnd {
					t.Fatalf("stdin of %s: %d ends", data, len(pr.ends))
				}
				if _, err := pr.move(); err != nil {
					t.Fatalf("move stdin of %s: %v", data, err)
				}
			}
		}
		for _, s := range []record.Stream{rec.Stdout, rec.Stderr} {
			if s.Kind != "console" {
				if _, err := k.openOutput(pr, s, nil); err != nil {
					t.Fatalf("open output of %s: %v", data, err)
				}
			}
		}
	})
}
