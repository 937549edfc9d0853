package handoff

import (
	"maps"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{"RACK_PROC": ""},
		{"RACK_PROC": `{"pid":7,"env":{"A":"b=c"}}`, "X": "y\nz"},
	} {
		data := Encode(vars)
		got, ok := Decode(data)
		if !ok || !maps.Equal(got, vars) {
			t.Errorf("Decode(Encode(%q)) = %q, %v", vars, got, ok)
		}
		// Cut short anywhere: refused, never half taken.
		for n := range len(data) {
			if got, ok := Decode(data[:n]); ok {
				t.Errorf("Decode of %d of %d bytes of %q = %q, want refused", n, len(data), vars, got)
			}
		}
	}
	for _, bad := range []string{"\x00\x00", "noequals\x00\x00", "=v\x00\x00", "k=v"} {
		if got, ok := Decode([]byte(bad)); ok {
			t.Errorf("Decode(%q) = %q, want refused", bad, got)
		}
	}
}
