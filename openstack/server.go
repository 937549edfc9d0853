package openstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gcos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/openstack/internal/credential"
)

// The child side of a server: a program booted by a forker opens the
// namespace with the credential it was handed, and deletes its own server
// once its parent died.

// Environment of a child booted on OpenStack: where to fetch, once, the
// credential it opens the namespace with (TempURLs of a one-time object).
const (
	credentialGetEnv    = "RACK_CREDENTIAL_URL"
	credentialDeleteEnv = "RACK_CREDENTIAL_DELETE_URL"
)

// openOpenStackChild opens the namespace as a child booted by a forker:
// with the credential behind the one-time URLs in its environment, which
// it removes from the environment once read.
func openOpenStackChild(ctx context.Context, container, childURL string, opts []rack.Option) (*rack.Kernel, error) {
	getURL, delURL := os.Getenv(credentialGetEnv), os.Getenv(credentialDeleteEnv)
	os.Unsetenv(credentialGetEnv)
	os.Unsetenv(credentialDeleteEnv)
	cred, err := credential.Fetch(ctx, &http.Client{Timeout: time.Minute}, getURL, delURL)
	if err != nil {
		return nil, fmt.Errorf("fetching this child's credential: %w", err)
	}
	store, err := swift.New(ctx, swift.Config{
		AuthVersion:                 swift.AuthV3,
		AuthURL:                     cred.AuthURL,
		Region:                      cred.Region,
		Interface:                   cred.Interface,
		ApplicationCredentialID:     cred.ID,
		ApplicationCredentialSecret: cred.Secret,
	})
	if err != nil {
		return nil, err
	}
	k, err := rack.New(ctx, store, childCompute{cred: cred}, append([]rack.Option{rack.WithNamespace(container), rack.WithURL(childURL)}, opts...)...)
	if err != nil {
		store.Close()
		return nil, err
	}
	return k, nil
}

// childCompute is the compute of a child on OpenStack: its credential
// reaches only the namespace's container (and its large-object segments
// container) and server deletes, so it cannot boot servers; it can delete
// its own.
type childCompute struct {
	cred *credential.Credential
	// afterExit is how long DeleteSelfAfterExit waits for the forker;
	// default selfDeleteGrace.
	afterExit time.Duration
}

// selfDeleteGrace is how long a child whose program has ended leaves its
// forker to delete its server before it deletes it itself. The forker
// reads the exit within its inbox poll (at most 1.5 s) and deletes at
// once: past this, it cannot.
const selfDeleteGrace = 20 * time.Second

// DeleteSelfAfterExit deletes the server this program runs on unless its
// forker, which reads the exit just recorded, deletes it first (which
// ends this program): backend.ExitSelfDeleter, a fallback that keeps a
// finished child from holding quota until Nova shows it SHUTOFF, minutes
// later on some clouds.
func (c childCompute) DeleteSelfAfterExit(ctx context.Context) error {
	grace := c.afterExit
	if grace <= 0 {
		grace = selfDeleteGrace
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return c.DeleteSelf(ctx)
}

var _ backend.ExitSelfDeleter = childCompute{}

// DeleteSelf deletes the server this program runs on (backend.SelfDeleter):
// its id comes from the config drive, cloud-init or the metadata service
// (see ownServerID), the right to delete from the child's credential.
func (c childCompute) DeleteSelf(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id, err := ownServerID(ctx)
	if err != nil {
		return err
	}
	pc, err := gcos.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint:            c.cred.AuthURL,
		ApplicationCredentialID:     c.cred.ID,
		ApplicationCredentialSecret: c.cred.Secret,
	})
	if err != nil {
		return fmt.Errorf("authenticating with the child's credential (id %s) at %s: %v", c.cred.ID, c.cred.AuthURL, strings.ReplaceAll(err.Error(), c.cred.Secret, "xxxxx"))
	}
	avail := gophercloud.AvailabilityPublic
	if c.cred.Interface == "internal" {
		avail = gophercloud.AvailabilityInternal
	}
	sc, err := gcos.NewComputeV2(pc, gophercloud.EndpointOpts{Region: c.cred.Region, Availability: avail})
	if err != nil {
		return fmt.Errorf("finding the compute endpoint: %v", err)
	}
	if err := servers.Delete(ctx, sc, id).ExtractErr(); err != nil {
		return fmt.Errorf("deleting server %s: %v", id, err)
	}
	return nil
}

// ownServerID returns this server's id (its UUID). It looks first where no
// request is needed: a mounted config drive's
// openstack/latest/meta_data.json (RACK_CONFIG_DRIVE, else /mnt/config or
// /media/configdrive), then the instance-id cloud-init keeps
// (RACK_CLOUD_DIR, else /var/lib/cloud, then data/instance-id; the UUID
// with cloud-init's OpenStack and ConfigDrive datasources), and then asks
// the metadata service, which clouds that offer only a config drive lack.
func ownServerID(ctx context.Context) (string, error) {
	var tried []string
	drives := []string{"/mnt/config", "/media/configdrive"}
	if d := os.Getenv("RACK_CONFIG_DRIVE"); d != "" {
		drives = []string{d}
	}
	for _, d := range drives {
		b, err := readSmall(filepath.Join(d, "openstack", "latest", "meta_data.json"))
		if err != nil {
			tried = append(tried, "config drive: "+err.Error())
			continue
		}
		var md struct {
			UUID string `json:"uuid"`
		}
		if json.Unmarshal(b, &md) == nil && isUUID(md.UUID) {
			return md.UUID, nil
		}
		tried = append(tried, "config drive "+d+": no server id in meta_data.json")
	}
	cloud := os.Getenv("RACK_CLOUD_DIR")
	if cloud == "" {
		cloud = "/var/lib/cloud"
	}
	if b, err := readSmall(filepath.Join(cloud, "data", "instance-id")); err != nil {
		tried = append(tried, "cloud-init: "+err.Error())
	} else if id := strings.TrimSpace(string(b)); isUUID(id) {
		return id, nil
	} else {
		tried = append(tried, fmt.Sprintf("cloud-init: instance-id %q is not a server UUID", id))
	}
	id, err := metadataServerID(ctx)
	if err != nil {
		return "", fmt.Errorf("%w (and %s)", err, strings.Join(tried, "; "))
	}
	return id, nil
}

// readSmall reads a file of at most 1 MiB.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// isUUID reports whether s is a UUID in its usual form (Nova's server ids).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// metadataServerID asks the metadata service for this server's id.
func metadataServerID(ctx context.Context) (string, error) {
	base := os.Getenv("RACK_METADATA_URL")
	if base == "" {
		base = "http://169.254.169.254"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/openstack/latest/meta_data.json", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("metadata service: %w", err)
	}
	defer resp.Body.Close()
	var md struct {
		UUID string `json:"uuid"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metadata service: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil || md.UUID == "" {
		return "", fmt.Errorf("metadata service: no server id (%v)", err)
	}
	return md.UUID, nil
}

func (childCompute) Start(context.Context, *backend.StartRequest) (backend.Instance, error) {
	return backend.Instance{}, fmt.Errorf("%w: a process running on a server cannot fork servers yet (its credential reaches only the namespace's container); fork from the root", backend.ErrInvalid)
}
func (childCompute) Stop(context.Context, string) error { return backend.ErrNotFound }
func (childCompute) List(context.Context, string) ([]backend.Instance, error) {
	return nil, nil
}
func (childCompute) Close() error { return nil }

// StartsHosts reports false (backend.HostStarter): a host on a server
// cannot boot servers, so its forks that need a new host ask for one with
// a host request, which the namespace's root kernel serves.
func (childCompute) StartsHosts() bool { return false }

var (
	_ backend.SelfDeleter = childCompute{}
	_ backend.HostStarter = childCompute{}
)
