package openstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/nova"
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/openstack/internal/credential"
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
	"security_groups": true, "availability_zone": true, "max_boots": true, "build_timeout": true,
}

// hostsOptions are the URL options of hosts (rack.HostsFromQuery).
var hostsOptions = map[string]bool{"hosts": true, "slots": true, "idle": true}

// sameChildURL reports whether own, the URL a child was given (RACK_URL),
// names the namespace childURL does with the same options. The kernel's
// own parameters (timeout=, which rack.Open takes out before an opener
// sees the URL, and which the forker's kernel adds to the URL it hands
// children) are not the opener's to compare.
func sameChildURL(own, childURL string) bool {
	u, err := url.Parse(own)
	if err != nil {
		return false
	}
	q := u.Query()
	q.Del("timeout")
	u.RawQuery = q.Encode()
	return u.String() == childURL
}

// openOpenStack opens openstack://CLOUD/CONTAINER?image=...&flavor=...: a
// Swift store with Nova servers as processes. The forker authenticates as
// CLOUD says (clouds.yaml or OS_*); a child booted by it finds in its
// environment the one-time URL of a narrow credential instead.
func openOpenStack(ctx context.Context, u *url.URL, opts []rack.Option) (*rack.Kernel, error) {
	container := strings.Trim(u.Path, "/")
	if container == "" {
		return nil, fmt.Errorf("%w: the URL names no container (openstack://CLOUD/CONTAINER?image=...&flavor=...)", rack.ErrInvalid)
	}
	if err := rack.CheckNamespace(container); err != nil {
		return nil, err
	}
	if u.User != nil || u.Port() != "" {
		return nil, fmt.Errorf("%w: an openstack URL is openstack://CLOUD/CONTAINER (credentials come from clouds.yaml or OS_*, never the URL)", rack.ErrInvalid)
	}
	q := u.Query()
	// hosts=1, slots=N, idle=D: warm hosts (rack.WithHosts). They stay in
	// the children's URL: a host opens the namespace as its forker did.
	hq := url.Values{}
	for _, key := range []string{"hosts", "slots", "idle"} {
		if v, ok := q[key]; ok {
			hq[key] = v
		}
	}
	hosts, err := rack.HostsFromQuery(hq)
	if err != nil {
		return nil, err
	}
	for key, vals := range q {
		if hostsOptions[key] {
			continue
		}
		if !openstackOptions[key] || len(vals) != 1 {
			return nil, fmt.Errorf("%w: URL option %q is not supported (supported: image, flavor, network, key_name, security_groups, availability_zone, max_boots, build_timeout, hosts, slots, idle)", rack.ErrInvalid, key)
		}
	}
	if hosts != nil {
		opts = append([]rack.Option{hosts}, opts...) // the caller's options win
	}
	maxBoots := 0
	if s := q.Get("max_boots"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: max_boots=%q: want a positive number", rack.ErrInvalid, s)
		}
		maxBoots = n
	}
	var buildTimeout time.Duration
	if s := q.Get("build_timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: build_timeout=%q: want a positive duration such as 10m", rack.ErrInvalid, s)
		}
		buildTimeout = d
	}
	// Children open the namespace with the same options and no cloud name.
	childURL := (&url.URL{Scheme: "openstack", Path: "/" + container, RawQuery: q.Encode()}).String()
	if os.Getenv(credentialGetEnv) != "" {
		// A child booted by a forker: its one-time credential reaches its
		// own namespace only, and it has nothing else to log in with.
		if own := os.Getenv(rack.URLEnv); !sameChildURL(own, childURL) {
			return nil, fmt.Errorf("%w: this program is a child booted in namespace %s (%s=%q): its one-time credential reaches only that namespace, and a child cannot log in as the user, so it cannot open %s (the credential was left unused)",
				rack.ErrInvalid, own, rack.URLEnv, own, childURL)
		}
		return openOpenStackChild(ctx, container, childURL, opts)
	}

	login, err := NewLogin(ctx, u.Host)
	if err != nil {
		return nil, err
	}
	cfg := login.Config
	client, err := login.ComputeClient()
	if err != nil {
		return nil, err
	}
	cfg.Login = login.Identity.ProviderClient // one Keystone login for Swift too
	store, err := swift.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	identity := login.Identity
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
		BuildTimeout:     buildTimeout,
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	k, err := rack.New(ctx, store, &credentialedCompute{Compute: compute, creds: creds, client: client},
		append([]rack.Option{rack.WithNamespace(container), rack.WithURL(childURL)}, opts...)...)
	if err != nil {
		compute.Close()
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
		opts := credential.IssueOptions{
			Namespace:        n.container,
			Container:        n.container,
			SegmentContainer: swift.SegmentContainer(n.container),
			Expires:          time.Now().Add(credentialLifetime),
			Region:           n.cfg.Region,
			Interface:        n.cfg.Interface,
			// A child whose parent died deletes its own server. Access
			// rules cannot name a server not made yet: any server of the
			// project (see the threat model).
			AllowServerDelete: true,
		}
		// The credential's role is not a Swift operator role: it reaches
		// the namespace's containers through the ACLs Grant writes.
		if err := credential.Grant(ctx, n.identity, "", opts); err != nil {
			return nil, fmt.Errorf("granting the namespace's containers to its children: %w", err)
		}
		cred, err := credential.Issue(ctx, n.identity, "", opts)
		if err != nil {
			return nil, fmt.Errorf("issuing the namespace's credential: %w", err)
		}
		// What the cloud lets it do beyond the namespace: an operator
		// role is refused, the rest is logged.
		f, err := credential.Check(ctx, nil, cred, n.container)
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_ = credential.Revoke(rctx, n.identity, "", cred.ID)
			cancel()
			return nil, fmt.Errorf("checking the namespace's credential: %w", err)
		}
		log := n.cfg.Logger
		if log == nil {
			log = slog.Default()
		}
		for _, w := range f.Warnings {
			log.Warn("openstack: the children's credential reaches beyond the namespace", "namespace", n.container, "why", w)
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
// servers, then revokes the credential its children got, unless it
// started a host: a host outlives its forker (backend.HostOption) and
// runs on that credential until it ends itself. The credential then
// lapses at its expiry (credentialLifetime), or when gc finds the
// namespace dead (Sweep revokes the dead namespaces' credentials).
type credentialedCompute struct {
	*nova.Compute
	creds  *namespaceCredential
	client *gophercloud.ServiceClient
	hosts  atomic.Bool // a host was started: keep the credential
}

// Start boots a server (nova.Compute.Start), noting a host.
func (c *credentialedCompute) Start(ctx context.Context, req *backend.StartRequest) (backend.Instance, error) {
	if req != nil && req.Options[backend.HostOption] != "" {
		c.hosts.Store(true)
	}
	return c.Compute.Start(ctx, req)
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

// Close deletes the servers of this compute's children and revokes their
// credential, unless a host may run on it (see credentialedCompute).
func (c *credentialedCompute) Close() error {
	err := c.Compute.Close()
	if c.hosts.Load() {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if rerr := c.creds.revoke(ctx); err == nil {
		err = rerr
	}
	return err
}
