package novaemu

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
)

// GET /flavors/{id} shows a flavor by id (or, here, name) with its vCPUs;
// an unknown one is 404 with Nova's message; a server's embedded flavor
// (2.47) carries the sizes.
func TestFlavors(t *testing.T) {
	e, c := start(t, Config{})
	f, err := flavors.Get(context.Background(), c, "3").Extract()
	if err != nil || f.VCPUs != 2 || f.Name != "m1.medium" || f.RAM != 4096 {
		t.Fatalf("flavor 3: %+v, %v; want m1.medium of 2 vCPUs", f, err)
	}
	if f, err := flavors.Get(context.Background(), c, "c1.ten").Extract(); err != nil || f.VCPUs != 10 || f.ID != "10" {
		t.Errorf("flavor c1.ten: %+v, %v; want id 10 of 10 vCPUs", f, err)
	}
	r := raw(t, e, "GET", "/v2.1/flavors/nope", "", nil)
	if r.code != 404 || !strings.Contains(r.body, "Flavor nope could not be found.") {
		t.Errorf("unknown flavor: %d %s", r.code, r.body)
	}
	s := create(t, c, "sized", "", nil) // flavorRef "1"
	r = raw(t, e, "GET", "/v2.1/servers/"+s.ID, "", map[string]string{"OpenStack-API-Version": "compute 2.47"})
	var v struct {
		Server struct {
			Flavor struct {
				Name  string `json:"original_name"`
				VCPUs int    `json:"vcpus"`
			} `json:"flavor"`
		} `json:"server"`
	}
	if err := json.Unmarshal([]byte(r.body), &v); err != nil || v.Server.Flavor.Name != "m1.tiny" || v.Server.Flavor.VCPUs != 1 {
		t.Errorf("server's flavor at 2.47: %+v, %v (%s)", v.Server.Flavor, err, r.body)
	}
}
