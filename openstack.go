package rack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/internal/credential"
)

// Environment of a child booted on OpenStack: where to fetch, once, the
// credential it opens the namespace with (TempURLs of a one-time object).
const (
	credentialGetEnv    = "RACK_CREDENTIAL_URL"
	credentialDeleteEnv = "RACK_CREDENTIAL_DELETE_URL"
)

// BinariesContainer holds the programs staged for servers to boot, as
// bin/<sha256> (content addressed: a build is uploaded once).
const BinariesContainer = "rack-bin"

// credentialLifetime is how long a namespace's application credential
// lasts: past it, children lose the store (and a leaked credential dies).
const credentialLifetime = 24 * time.Hour

// openstackOptions are the query options of an openstack URL: per-server
// defaults, which Spec.Options override per fork and children inherit.
var openstackOptions = map[string]bool{
	"image": true, "flavor": true, "network": true, "key_name": true,
	"security_groups": true, "availability_zone": true, "max_boots": true,
}

// openOpenStack opens openstack://CLOUD/CONTAINER?image=...&flavor=...: a
// Swift store with Nova servers as processes. The forker authenticates as
// CLOUD says (clouds.yaml or OS_*); a child booted by it finds in its
// environment the one-time URL of a narrow credential instead.
func openOpenStack(ctx context.Context, u *url.URL, opts []Option) (*Kernel, error) {
	container := strings.Trim(u.Path, "/")
	if container == "" {
		return nil, fmt.Errorf("%w: the URL names no container (openstack://CLOUD/CONTAINER?image=...&flavor=...)", ErrInvalid)
	}
	if err := validContainer(container); err != nil {
		return nil, err
	}
	if u.User != nil || u.Port() != "" {
		return nil, fmt.Errorf("%w: an openstack URL is openstack://CLOUD/CONTAINER (credentials come from clouds.yaml or OS_*, never the URL)", ErrInvalid)
	}
	q := u.Query()
	for key, vals := range q {
		if !openstackOptions[key] || len(vals) != 1 {
			return nil, fmt.Errorf("%w: URL option %q is not supported (supported: image, flavor, network, key_name, security_groups, availability_zone, max_boots)", ErrInvalid, key)
		}
	}
	maxBoots := 0
	if s := q.Get("max_boots"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: max_boots=%q: want a positive number", ErrInvalid, s)
		}
		maxBoots = n
	}
	// Children open the namespace with the same options and no cloud name.
	childURL := (&url.URL{Scheme: "openstack", Path: "/" + container, RawQuery: q.Encode()}).String()
	if os.Getenv(credentialGetEnv) != "" {
		return openOpenStackChild(ctx, container, childURL, opts)
	}

	cfg, err := swift.CloudConfig(u.Host)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	store, err := swift.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// One Keystone login serves identity and compute (swift's reading of
	// clouds.yaml, which also works around a gophercloud v2.10 bug with
	// user_domain_name beside project_domain_id).
	identity, err := swift.IdentityClient(ctx, cfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	avail := gophercloud.AvailabilityPublic
	switch cfg.Interface {
	case "internal":
		avail = gophercloud.AvailabilityInternal
	case "admin":
		avail = gophercloud.AvailabilityAdmin
	}
	client, err := openstack.NewComputeV2(identity.ProviderClient, gophercloud.EndpointOpts{Region: cfg.Region, Availability: avail})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("%w: cloud %q has no compute endpoint (region %q, interface %q): %v", ErrInvalid, u.Host, cfg.Region, cfg.Interface, err)
	}
	creds := &namespaceCredential{identity: identity, store: store, container: container, cfg: cfg}
	var groups []string
	if s := q.Get("security_groups"); s != "" {
		groups = strings.Split(s, ",")
	}
	compute, err := nova.New(nova.Config{
		Client:           client,
		Image:            q.Get("image"),
		Flavor:           q.Get("flavor"),
		Network:          q.Get("network"),
		KeyName:          q.Get("key_name"),
		SecurityGroups:   groups,
		AvailabilityZone: q.Get("availability_zone"),
		Stager:           &nova.SwiftStager{Store: store, TempURLs: store, Container: BinariesContainer},
		ExtraEnv:         creds.env,
		MaxBootsInFlight: maxBoots,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	k, err := New(ctx, store, &credentialedCompute{Compute: compute, creds: creds, client: client},
		append([]Option{WithNamespace(container), WithURL(childURL)}, opts...)...)
	if err != nil {
		compute.Close()
		store.Close()
		return nil, err
	}
	return k, nil
}

// openOpenStackChild opens the namespace as a child booted by a forker:
// with the credential behind the one-time URLs in its environment, which
// it removes from the environment once read.
func openOpenStackChild(ctx context.Context, container, childURL string, opts []Option) (*Kernel, error) {
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
	k, err := New(ctx, store, childCompute{cred: cred}, append([]Option{WithNamespace(container), WithURL(childURL)}, opts...)...)
	if err != nil {
		store.Close()
		return nil, err
	}
	return k, nil
}

// namespaceCredential issues, once, the application credential children
// of a forker get, and hands each child its own one-time copy.
type namespaceCredential struct {
	identity  *gophercloud.ServiceClient
	store     *swift.Store
	container string
	cfg       swift.Config

	mu   sync.Mutex
	cred *credential.Credential
}

// env returns the environment that tells a child where its credential is.
func (n *namespaceCredential) env(ctx context.Context, req *backend.StartRequest) (map[string]string, error) {
	cred, err := n.get(ctx)
	if err != nil {
		return nil, err
	}
	get, del, err := credential.Deliver(ctx, n.store, n.store, n.container, "", cred, "", nova.DefaultStageTTL)
	if err != nil {
		return nil, fmt.Errorf("handing process %d its credential: %w", req.PID, err)
	}
	return map[string]string{credentialGetEnv: get, credentialDeleteEnv: del}, nil
}

// get issues the namespace's credential the first time.
func (n *namespaceCredential) get(ctx context.Context) (*credential.Credential, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cred == nil {
		cred, err := credential.Issue(ctx, n.identity, "", credential.IssueOptions{
			Namespace: n.container,
			Container: n.container,
			Expires:   time.Now().Add(credentialLifetime),
			Region:    n.cfg.Region,
			Interface: n.cfg.Interface,
			// A child whose parent died deletes its own server. Access
			// rules cannot name a server not made yet: any server of the
			// project (see the threat model).
			AllowServerDelete: true,
		})
		if err != nil {
			return nil, fmt.Errorf("issuing the namespace's credential: %w", err)
		}
		n.cred = cred
	}
	return n.cred, nil
}

// revoke deletes the credential, if one was issued.
func (n *namespaceCredential) revoke(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cred == nil {
		return nil
	}
	err := credential.Revoke(ctx, n.identity, "", n.cred.ID)
	n.cred = nil
	return err
}

// credentialedCompute is the forker's Nova compute: closing it deletes its
// servers, then revokes the credential its children got.
type credentialedCompute struct {
	*nova.Compute
	creds  *namespaceCredential
	client *gophercloud.ServiceClient
}

// Sweep deletes the servers of dead namespaces and those past their
// delete-at (the project's, whoever started them), and revokes the
// credentials of the dead namespaces.
func (c *credentialedCompute) Sweep(ctx context.Context, dead func(ctx context.Context, namespace string) (bool, error)) ([]string, error) {
	var deadSeen []string
	swept, err := nova.Sweep(ctx, c.client, time.Now(), func(ctx context.Context, ns string) (bool, error) {
		d, err := dead(ctx, ns)
		if d {
			deadSeen = append(deadSeen, ns)
		}
		return d, err
	})
	names := make([]string, len(swept))
	for i, s := range swept {
		names[i] = s.Name
	}
	for _, ns := range deadSeen {
		if _, rerr := credential.RevokeNamespace(ctx, c.creds.identity, "", ns); rerr != nil && err == nil {
			err = rerr
		}
	}
	return names, err
}

func (c *credentialedCompute) Close() error {
	err := c.Compute.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if rerr := c.creds.revoke(ctx); err == nil {
		err = rerr
	}
	return err
}

// childCompute is the compute of a child on OpenStack: its credential
// reaches only the namespace's container (and its large-object segments
// container) and server deletes, so it cannot boot servers; it can delete
// its own.
type childCompute struct{ cred *credential.Credential }

// deleteSelf deletes the server this program runs on: its id comes from
// the metadata service (RACK_METADATA_URL, or OpenStack's link-local
// address), the right to delete from the child's credential.
func (c childCompute) deleteSelf(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id, err := ownServerID(ctx)
	if err != nil {
		return err
	}
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
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
	sc, err := openstack.NewComputeV2(pc, gophercloud.EndpointOpts{Region: c.cred.Region, Availability: avail})
	if err != nil {
		return fmt.Errorf("finding the compute endpoint: %v", err)
	}
	if err := servers.Delete(ctx, sc, id).ExtractErr(); err != nil {
		return fmt.Errorf("deleting server %s: %v", id, err)
	}
	return nil
}

// ownServerID asks the metadata service for this server's id.
func ownServerID(ctx context.Context) (string, error) {
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
