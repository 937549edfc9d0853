package novaemu

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// The knobs that model a real cloud, as the API shows them (the driver's
// handling of each is tested in backend/nova).

func TestShutoffDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	e, c := start(t, Config{Faults: Faults{ShutoffDelay: delay}})
	s := create(t, c, "late", "#!/bin/sh\nexit 0\n", nil)
	waitStatus(t, c, s.ID, "ACTIVE")
	for info(e, s.ID).ExitCode != 0 {
		time.Sleep(5 * time.Millisecond)
	}
	off := time.Now()
	if got, _ := servers.Get(context.Background(), c, s.ID).Extract(); got.Status != "ACTIVE" || got.PowerState != servers.SHUTDOWN {
		t.Errorf("just powered off: %s, power state %v; want ACTIVE and SHUTDOWN", got.Status, got.PowerState)
	}
	waitStatus(t, c, s.ID, "SHUTOFF")
	if d := time.Since(off); d < delay-50*time.Millisecond {
		t.Errorf("SHUTOFF %v after the power-off, want about %v", d, delay)
	}
}

func TestQuotaStylesAndRecheck(t *testing.T) {
	for style, want := range map[QuotaStyle]string{
		QuotaClassic: "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances",
		QuotaUnified: "is over a limit for [Resource servers is over limit of 1 due to current usage 1 and delta 1]",
		QuotaPorts:   "Maximum number of ports exceeded",
	} {
		e, c := start(t, Config{Faults: Faults{InstanceQuota: 1, QuotaStyle: style}})
		create(t, c, "a", "", nil)
		_, err := servers.Create(context.Background(), c, servers.CreateOpts{Name: "b", ImageRef: "i", FlavorRef: "1"}, nil).Extract()
		if code, body := statusOf(err); code != 403 || !strings.Contains(body, want) {
			t.Errorf("style %d: %d %s, want 403 %q", style, code, body, want)
		}
		// The recheck: accepted, then ERROR with the same words.
		e.SetFaults(Faults{InstanceQuota: 1, QuotaStyle: style, RecheckQuota: true})
		b := create(t, c, "b", "", nil)
		got := waitStatus(t, c, b.ID, "ERROR")
		if !strings.Contains(got.Fault.Message, want) || got.Fault.Code != 403 {
			t.Errorf("style %d: recheck fault %+v, want 403 %q", style, got.Fault, want)
		}
	}
}

func TestStuckBuildAndHidden(t *testing.T) {
	e, c := start(t, Config{Faults: Faults{StuckBuild: true}})
	s := create(t, c, "stuck", "", nil)
	time.Sleep(100 * time.Millisecond)
	if got := info(e, s.ID); got.Status != "BUILD" {
		t.Errorf("stuck server is %s", got.Status)
	}
	e.SetFaults(Faults{HideFromListings: time.Hour})
	h := create(t, c, "hidden", "", nil)
	waitStatus(t, c, h.ID, "ACTIVE") // GET finds it
	pages, err := servers.List(c, servers.ListOpts{}).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	list, _ := servers.ExtractServers(pages)
	for _, x := range list {
		if x.ID == h.ID {
			t.Error("a hidden server is listed")
		}
	}
	if len(list) != 1 || list[0].ID != s.ID {
		t.Errorf("listing = %v, want the building server only", list)
	}
}

func TestNetworkAmbiguousAndConsole501(t *testing.T) {
	_, c := start(t, Config{Faults: Faults{NetworkAmbiguous: true, ConsoleNotImplemented: true}})
	c.Microversion = "2.37"
	_, err := servers.Create(context.Background(), c, servers.CreateOpts{Name: "a", ImageRef: "i", FlavorRef: "1", Networks: "auto"}, nil).Extract()
	if code, body := statusOf(err); code != 409 || !strings.Contains(body, "Multiple possible networks found") {
		t.Errorf("networks auto: %d %s, want 409 NetworkAmbiguous", code, body)
	}
	s, err := servers.Create(context.Background(), c, servers.CreateOpts{Name: "b", ImageRef: "i", FlavorRef: "1", Networks: "none"}, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, s.ID, "ACTIVE")
	_, err = servers.ShowConsoleOutput(context.Background(), c, s.ID, servers.ShowConsoleOutputOpts{}).Extract()
	if code, _ := statusOf(err); code != 501 {
		t.Errorf("console: %v, want 501", err)
	}
}

func TestDeleteFailureAndSoftDelete(t *testing.T) {
	ctx := context.Background()
	e, c := start(t, Config{Faults: Faults{DeleteFailures: 1, ReclaimInterval: time.Hour, InstanceQuota: 1}})
	s := create(t, c, "a", "", nil)
	waitStatus(t, c, s.ID, "ACTIVE")
	if err := servers.Delete(ctx, c, s.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, c, s.ID, "ERROR") // the delete failed
	if got.TaskState != "" || got.Fault.Message == "" {
		t.Errorf("after a failed delete: task state %q, fault %+v", got.TaskState, got.Fault)
	}
	if err := servers.Delete(ctx, c, s.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, s.ID, "SOFT_DELETED") // it had run: a soft delete
	if _, err := servers.Create(ctx, c, servers.CreateOpts{Name: "b", ImageRef: "i", FlavorRef: "1"}, nil).Extract(); err == nil {
		t.Error("a soft-deleted server freed its quota")
	}
	if err := servers.ForceDelete(ctx, c, s.ID).ExtractErr(); err != nil {
		t.Fatalf("forceDelete: %v", err)
	}
	if _, err := servers.Get(ctx, c, s.ID).Extract(); err == nil {
		t.Error("a force-deleted server is still there")
	}
	if len(e.Servers()) != 0 {
		t.Errorf("servers left: %v", e.Servers())
	}
}

func TestNoMetadataService(t *testing.T) {
	e, c := start(t, Config{Faults: Faults{NoMetadataService: true}})
	s := create(t, c, "a", "#!/bin/sh\necho \"drive=$RACK_CONFIG_DRIVE cloud=$RACK_CLOUD_DIR\"\nsleep 600\n", nil)
	waitStatus(t, c, s.ID, "ACTIVE")
	si := info(e, s.ID)
	if code := getStatus(t, e.BaseURL()+"/servers/"+s.ID+"/metadata-service/openstack/latest/meta_data.json"); code != 404 {
		t.Errorf("metadata service answered %d, want 404", code)
	}
	root := filepath.Dir(si.Dir)
	md, err := os.ReadFile(filepath.Join(root, "config-2", "openstack", "latest", "meta_data.json"))
	if err != nil || !strings.Contains(string(md), `"uuid":"`+s.ID+`"`) {
		t.Errorf("config drive meta_data.json: %s, %v", md, err)
	}
	id, err := os.ReadFile(filepath.Join(root, "cloud", "data", "instance-id"))
	if err != nil || strings.TrimSpace(string(id)) != s.ID {
		t.Errorf("cloud-init instance-id: %q, %v", id, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(info(e, s.ID).Console, "drive="+filepath.Join(root, "config-2")) {
		if time.Now().After(deadline) {
			t.Fatalf("the VM's environment does not point at its config drive: %q", info(e, s.ID).Console)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getStatus returns the status of a GET of url.
func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
