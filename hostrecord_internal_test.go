package rack

import (
	"errors"
	"testing"

	"github.com/rackfork/rack/internal/record"
)

// TestHostRecordValidated: a host's record read from the store is checked
// as records are (the store may be hostile): a slot count a forker would
// loop over, a kernel id it would use in keys, negative times.
func TestHostRecordValidated(t *testing.T) {
	const id = "0123456789abcdef"
	good := `{"kernel":"` + id + `","digest":"d","slots":10,"idle":1,"started":1,"instance":"ns-host-` + id + `","used":3}`
	var rec hostRecord
	if err := record.Decode("hostd/"+id, []byte(good), &rec); err != nil || rec.Slots != 10 {
		t.Fatalf("a valid host record: %v (%+v)", err, rec)
	}
	for _, bad := range []string{
		`{"kernel":"` + id + `","slots":1000000000}`,
		`{"kernel":"` + id + `","slots":0}`,
		`{"kernel":"../x","slots":2}`,
		`{"kernel":"` + id + `","slots":2,"used":3}`,
		`{"kernel":"` + id + `","slots":2,"idle":-1}`,
		`{"kernel":"` + id + `","slots":2,"claim":-4}`,
	} {
		var rec hostRecord
		if err := record.Decode("hostd/"+id, []byte(bad), &rec); !errors.Is(err, record.ErrCorrupt) {
			t.Errorf("host record %s: %v, want ErrCorrupt", bad, err)
		}
	}
}
