package rack

import (
	"context"
	"errors"
	"testing"
	"time"

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
	// A host runs over its slot count when a forker's claim took the
	// slot of a child forked there (hostfork.go): still a host.
	over := `{"kernel":"` + id + `","slots":4,"used":6}`
	if err := record.Decode("hostd/"+id, []byte(over), &rec); err != nil || rec.Used != 6 {
		t.Fatalf("a host record of a host over its slot count: %v (%+v)", err, rec)
	}
	for _, bad := range []string{
		`{"kernel":"` + id + `","slots":1000000000}`,
		`{"kernel":"` + id + `","slots":0}`,
		`{"kernel":"../x","slots":2}`,
		`{"kernel":"` + id + `","slots":2,"used":-1}`,
		`{"kernel":"` + id + `","slots":2,"idle":-1}`,
		`{"kernel":"` + id + `","slots":2,"claim":-4}`,
	} {
		var rec hostRecord
		if err := record.Decode("hostd/"+id, []byte(bad), &rec); !errors.Is(err, record.ErrCorrupt) {
			t.Errorf("host record %s: %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestHostsSkipsCorruptRecord: one host record that fails its checks (the
// store may be hostile, or a host wrote one an older reader refuses) does
// not hide the namespace's other hosts: Hosts shows the rest.
func TestHostsSkipsCorruptRecord(t *testing.T) {
	ctx := context.Background()
	k, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	good, bad := newID(), newID()
	now := time.Now().UnixNano()
	if err := k.putHostRecord(ctx, &hostRecord{Kernel: good, Slots: 2, Idle: 1, Started: now, Up: now}); err != nil {
		t.Fatal(err)
	}
	if err := k.ns.put(ctx, hostKey(bad), []byte(`{"kernel":"`+bad+`","slots":0}`), false); err != nil {
		t.Fatal(err)
	}
	hs, err := k.Hosts(ctx)
	if err != nil || len(hs) != 1 || hs[0].Kernel != good {
		t.Fatalf("Hosts = %+v, %v; want host %s alone", hs, err, good)
	}
}
