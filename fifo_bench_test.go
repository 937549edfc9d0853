package rack_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/rackfork/rack"
)

// BenchmarkNamedPipeSession: one use of a named pipe, as a shell
// pipeline through it would: a reader opens, a writer opens, writes a
// line and closes, the reader reads to EOF and closes. It reports the
// store requests per use (Kernel.Stats).
func BenchmarkNamedPipeSession(b *testing.B) {
	for _, store := range []string{"mem", "file"} {
		b.Run(store, func(b *testing.B) {
			ctx := context.Background()
			url := "mem://"
			if store == "file" {
				url = "file://" + b.TempDir()
			}
			k, err := rack.Open(ctx, url, rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
			if err != nil {
				b.Fatal(err)
			}
			defer k.Close()
			if err := k.Mkfifo(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
			var requests int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, err := k.Start(ctx, rack.Spec{Name: "use"}, func(ctx context.Context, self *rack.Self) error {
					before := k.Stats()["total"]
					r, err := self.OpenFifoReader(ctx, "bench")
					if err != nil {
						return err
					}
					w, err := self.OpenFifoWriter(ctx, "bench")
					if err != nil {
						return err
					}
					if _, err := io.WriteString(w, "line\n"); err != nil {
						return err
					}
					if err := w.Close(); err != nil {
						return err
					}
					if _, err := io.ReadAll(r); err != nil {
						return err
					}
					err = r.Close()
					requests += k.Stats()["total"] - before
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
		})
	}
}
