package credential

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/rackfork/rack/backend"
)

// Grantee is the container ACL entry Grant writes for user userID of
// project projectID: keystoneauth's "<project id>:<user id>", which
// matches every token of that user scoped to that project (see
// swift/common/middleware/keystoneauth.py, _authorize_cross_tenant).
func Grantee(projectID, userID string) string { return projectID + ":" + userID }

// Grant prepares the containers of opts for a child credential of user
// userID ("" for the identity client's token's user) that carries a role
// which is not a Swift operator role: such a token reaches a container
// only through its ACL, for direct requests and for the ones Swift's
// middlewares make on its behalf alike. Grant
//
//   - creates opts.SegmentContainer if it does not exist (the child's
//     role may not create containers) and opts.Container too;
//   - adds Grantee(project, user) to the read ACL (X-Container-Read) and
//     write ACL (X-Container-Write) of both, keeping the entries already
//     there;
//   - adds it to the read ACL of opts.ReadOnlyContainers (which must
//     exist).
//
// identity is authenticated as the user (an owner of the account); the
// object-store endpoint is the catalog's (opts.Region, opts.Interface).
// Call it before handing the credential out. The grant outlives the
// credential: it is what any token of that user in that project gets, so
// the containers of every namespace of the user grant each other's
// children (see the package documentation).
func Grant(ctx context.Context, identity *gophercloud.ServiceClient, userID string, opts IssueOptions) error {
	what := fmt.Sprintf("credential: grant namespace %q", opts.Namespace)
	if identity == nil || identity.ProviderClient == nil {
		return fmt.Errorf("%s: no identity client: %w", what, backend.ErrInvalid)
	}
	auth, err := tokenInfo(identity)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if userID == "" {
		userID = auth.userID
	}
	if userID == "" {
		return fmt.Errorf("%s: no user id: %w", what, backend.ErrInvalid)
	}
	if err := checkContainer("container", opts.Container); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	avail, err := availability(opts.Interface)
	if err != nil {
		return fmt.Errorf("%s: %v: %w", what, err, backend.ErrInvalid)
	}
	sc, err := openstack.NewObjectStorageV1(identity.ProviderClient, gophercloud.EndpointOpts{Region: opts.Region, Availability: avail})
	if err != nil {
		return fmt.Errorf("%s: no object-store endpoint (interface %s, region %q) in the catalog: %w", what, avail, opts.Region, backend.ErrInvalid)
	}
	g := Grantee(auth.projectID, userID)
	rw := []string{opts.Container}
	if opts.SegmentContainer != "" {
		rw = append(rw, opts.SegmentContainer)
	}
	for _, c := range rw {
		if err := containerRequest(ctx, sc, "PUT", c, nil, 201, 202); err != nil {
			return fmt.Errorf("%s: creating container %s: %w", what, c, err)
		}
		if err := addACL(ctx, sc, c, g, true); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	for _, c := range opts.ReadOnlyContainers {
		if err := checkContainer("read-only container", c); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := addACL(ctx, sc, c, g, false); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// addACL adds grantee to container c's read ACL, and its write ACL if
// write, unless they hold it already.
func addACL(ctx context.Context, sc *gophercloud.ServiceClient, c, grantee string, write bool) error {
	h, err := containerHead(ctx, sc, c)
	if err != nil {
		return fmt.Errorf("reading the ACLs of container %s: %w", c, err)
	}
	set := map[string]string{}
	for _, k := range []string{"X-Container-Read", "X-Container-Write"} {
		if k == "X-Container-Write" && !write {
			continue
		}
		cur := h.Get(k)
		var entries []string
		for _, e := range strings.Split(cur, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
		found := false
		for _, e := range entries {
			found = found || e == grantee
		}
		if !found {
			set[k] = strings.Join(append(entries, grantee), ",")
		}
	}
	if len(set) == 0 {
		return nil
	}
	if err := containerRequest(ctx, sc, "POST", c, set, 204, 202); err != nil {
		return fmt.Errorf("setting the ACLs of container %s: %w", c, err)
	}
	return nil
}

func containerURL(sc *gophercloud.ServiceClient, c string) string {
	return sc.ServiceURL(escapeSegment(c))
}

func containerHead(ctx context.Context, sc *gophercloud.ServiceClient, c string) (http.Header, error) {
	resp, err := sc.Head(ctx, containerURL(sc, c), &gophercloud.RequestOpts{OkCodes: []int{200, 204}})
	if err != nil {
		return nil, keystoneErrAs("Swift", err)
	}
	return resp.Header, nil
}

func containerRequest(ctx context.Context, sc *gophercloud.ServiceClient, method, c string, h map[string]string, ok ...int) error {
	_, err := sc.Request(ctx, method, containerURL(sc, c), &gophercloud.RequestOpts{MoreHeaders: h, OkCodes: ok, KeepResponseBody: false})
	if err != nil {
		return keystoneErrAs("Swift", err)
	}
	return nil
}
