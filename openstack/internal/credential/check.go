package credential

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	tokens3 "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/rackfork/rack/backend"
)

// ErrUnsafe is wrapped by Check's error when the cloud judges the
// requests Swift's middlewares make for the credential as an owner's: the
// credential would reach every container of the account.
var ErrUnsafe = errors.New("the child credential is not confined to its namespace")

// Findings are what Check learned of the cloud; Warnings say, in words,
// each way in which the credential reaches further than its namespace
// there (empty where the cloud has every safe setting).
type Findings struct {
	// ServiceTokenSkipsRules: keystonemiddleware in front of Swift does
	// not require a service role of an X-Service-Token
	// (service_token_roles_required = false, its default), so a request
	// that sends its own token as service token skips the access rules;
	// the ACLs (Grant) still hold.
	ServiceTokenSkipsRules bool
	// EC2Allowed: Keystone let the credential's token create an EC2
	// credential (Check deleted it at once). An EC2 credential carries
	// no access rules and outlives Revoke.
	EC2Allowed bool
	// Warnings describe the findings above, for a log.
	Warnings []string
}

// Check tries, with cred's own token, three things a child could do, and
// reports what the cloud allows:
//
//  1. PUT container/<probe> with X-Copy-From naming a container that does
//     not exist: keystoneauth must refuse the copy middleware's GET of
//     it (401/403) as it refuses every container that does not grant the
//     user. A 404 means the GET was judged as an account owner's (the
//     credential's role is in operator_roles or project_reader_roles):
//     Check fails with ErrUnsafe. A 2xx means the cluster has no copy
//     middleware (Check deletes the object; a warning).
//  2. HEAD container with X-Service-Token set to the same token: refused
//     where keystonemiddleware has service_token_roles_required = true.
//  3. POST /v3/users/{id}/credentials/OS-EC2: refused where Keystone's
//     policy (identity:ec2_create_credential) requires a role the child
//     credential lacks.
//
// container is the namespace container (Grant first). client nil means
// a client with a 30 s timeout. Errors and warnings never hold the secret
// or a token.
func Check(ctx context.Context, client *http.Client, cred *Credential, container string) (Findings, error) {
	var f Findings
	what := fmt.Sprintf("credential: check %s", cred)
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	if cred == nil || cred.ID == "" || cred.Secret == "" {
		return f, fmt.Errorf("credential: check: no credential: %w", backend.ErrInvalid)
	}
	pc, err := openstack.NewClient(cred.AuthURL)
	if err != nil {
		return f, fmt.Errorf("%s: auth URL %q: %v: %w", what, cred.AuthURL, err, backend.ErrInvalid)
	}
	pc.HTTPClient = *client
	if err := openstack.Authenticate(ctx, pc, gophercloud.AuthOptions{IdentityEndpoint: cred.AuthURL,
		ApplicationCredentialID: cred.ID, ApplicationCredentialSecret: cred.Secret}); err != nil {
		return f, fmt.Errorf("%s: authenticating: %s", what, strings.ReplaceAll(err.Error(), cred.Secret, "xxxxx"))
	}
	avail, _ := availability(cred.Interface)
	sc, err := openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: cred.Region, Availability: avail})
	if err != nil {
		return f, fmt.Errorf("%s: no object-store endpoint in the catalog: %w", what, backend.ErrInvalid)
	}
	token := pc.Token()
	send := func(method, u string, h map[string]string, body string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("X-Auth-Token", token)
		req.Close = true // a few requests: no connection reuse (some servers close without saying so)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %v: %w", method, strings.SplitN(u, "?", 2)[0], errors.Unwrap(err), backend.ErrTransient)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, b, nil
	}
	ns := containerURL(sc, container)

	// 1. A follow-on request outside the granted containers.
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	probe := ns + "/" + ".rack-check-" + hex.EncodeToString(rb[:])
	status, _, err := send("PUT", probe, map[string]string{
		"X-Copy-From": "/rack-no-such-container-" + hex.EncodeToString(rb[:]) + "/x", "Content-Length": "0"}, "")
	switch {
	case err != nil:
		return f, fmt.Errorf("%s: %w", what, err)
	case status == 401 || status == 403:
		// Confined.
	case status == 404:
		return f, fmt.Errorf("%s: Swift let a request its copy middleware made for the credential look into a container that grants it nothing (HTTP 404, not 403): its role is one keystoneauth treats as an account owner or reader (operator_roles, project_reader_roles), so copies, large objects, symlinks and versions would reach every container of the account; give the credential a role that is neither (IssueOptions.Roles): %w",
			what, ErrUnsafe)
	case status/100 == 2:
		_, _, _ = send("DELETE", probe, nil, "")
		f.Warnings = append(f.Warnings, "the Swift proxy has no copy middleware (X-Copy-From was ignored): whether the requests its other middlewares make are confined to the granted containers was not checked")
	default:
		return f, fmt.Errorf("%s: PUT with X-Copy-From: HTTP %d: %w", what, status, kindOf(status))
	}

	// 2. The same token as service token.
	status, _, err = send("HEAD", ns, map[string]string{"X-Service-Token": token}, "")
	if err != nil {
		return f, fmt.Errorf("%s: %w", what, err)
	}
	if status/100 == 2 {
		f.ServiceTokenSkipsRules = true
		f.Warnings = append(f.Warnings, "the Swift proxy's keystonemiddleware does not require a service role of an X-Service-Token (service_token_roles_required = false): a child that sends its own token as service token skips its access rules, and reaches what the container ACLs grant its user (the containers of every rack namespace of the user in the project)")
	}

	// 3. An EC2 credential.
	if cr, ok := pc.GetAuthResult().(tokens3.CreateResult); ok {
		if u, err := cr.ExtractUser(); err == nil && u != nil && u.ID != "" {
			if p, err := cr.ExtractProject(); err == nil && p != nil {
				base := strings.TrimSuffix(pc.IdentityEndpoint, "/")
				if !strings.HasSuffix(base, "/v3") {
					base += "/v3"
				}
				ec2 := base + "/users/" + u.ID + "/credentials/OS-EC2"
				status, body, err := send("POST", ec2, map[string]string{"Content-Type": "application/json"}, `{"tenant_id":"`+p.ID+`"}`)
				if err != nil {
					return f, fmt.Errorf("%s: %w", what, err)
				}
				if status/100 == 2 {
					f.EC2Allowed = true
					var r struct {
						Credential struct {
							Access string `json:"access"`
						} `json:"credential"`
					}
					_ = json.Unmarshal(body, &r)
					if a := r.Credential.Access; a != "" {
						// Keystone 22 fails some OS-EC2 deletes (KeyError
						// 'encrypted_blob'); the credentials API takes the
						// same credential by its id, sha256(access).
						s, _, err := send("DELETE", ec2+"/"+a, nil, "")
						if err != nil || s/100 != 2 {
							sum := sha256.Sum256([]byte(a))
							s, _, err = send("DELETE", base+"/credentials/"+hex.EncodeToString(sum[:]), nil, "")
						}
						if err != nil || s/100 != 2 {
							f.Warnings = append(f.Warnings, fmt.Sprintf("deleting the EC2 credential the check made (access %s) failed: HTTP %d %v", a, s, err))
						}
					}
					f.Warnings = append(f.Warnings, "Keystone lets an application credential's token create EC2 credentials, which carry the user's roles without access rules and survive the credential's revocation: set Keystone's policy identity:ec2_create_credential to require a role the child credential lacks, e.g. \"rule:admin_required or (role:member and rule:owner)\" (scripts/keystone-dev.sh does)")
				}
			}
		}
	}
	return f, nil
}
