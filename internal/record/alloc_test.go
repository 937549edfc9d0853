package record

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestDecodeAllocation decodes, as a process record, records of about
// MaxSize shaped to make decoding allocate the most (many small array
// items or map members, of the types that cost the most memory per JSON
// byte), and checks that what decoding allocates (TotalAlloc, freed or
// not) stays within 4 × MaxSize. Without the shape check of Check, the
// files case allocated over a gigabyte.
func TestDecodeAllocation(t *testing.T) {
	distinct := func(prefix, format string, n int) string {
		var b strings.Builder
		b.WriteString(prefix)
		for i := 0; b.Len() < MaxSize-100 && i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.ReplaceAll(format, "N", strconv.Itoa(i)))
		}
		return b.String()
	}
	for _, c := range []struct{ name, data string }{
		{"args", `{"pid":1,"kernel":"k","args":[` + strings.Repeat(`"",`, (MaxSize-100)/3) + `""]}`},
		{"args under the element limit", `{"pid":1,"kernel":"k","args":[` + strings.Repeat(`"",`, maxElements-10) + `""]}`},
		{"files", `{"pid":1,"kernel":"k","files":[` + strings.Repeat(`{},`, (MaxSize-100)/3) + `{}]}`},
		{"files under the container limit", `{"pid":1,"kernel":"k","files":[` + strings.Repeat(`{"read":{}},`, maxContainers/2-4) + `{}]}`},
		{"env", distinct(`{"pid":1,"kernel":"k","env":{`, `"N":""`, maxElements-2) + `}}`},
		{"read", distinct(`{"pid":1,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{`, `"N":1`, maxElements-10) + `}}}`},
		{"read, keys out of range", distinct(`{"pid":1,"kernel":"k","stdin":{"kind":"pipe","pipe":"p","end":-1,"read":{`, `"1000N":1`, maxElements-10) + `}}}`},
		{"deep", `{"pid":1,"kernel":"k","env":` + strings.Repeat(`[`, MaxSize/2-100) + `}`},
	} {
		data := []byte(c.data)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var p Proc
		err := Decode("procs/1", data, &p)
		runtime.ReadMemStats(&after)
		grew := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d bytes: allocated %.1f MiB: %v", c.name, len(c.data), float64(grew)/(1<<20), err)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v does not wrap ErrCorrupt", c.name, err)
		}
		if grew > 4*MaxSize {
			t.Errorf("%s: decoding %d bytes allocated %d, over 4 × MaxSize", c.name, len(c.data), grew)
		}
	}
}
