// Package credential gives a rack child the narrowest, expiring OpenStack
// credential that lets it do its job, and hands it over without the
// user's password or token ever reaching the child, its user-data, its
// server metadata, process records or logs.
//
// The parent, authenticated with the user's password (an application
// credential restricted by access rules may not create others), calls
// Grant, Issue and Check once per namespace.
//
// Why not access rules alone: keystonemiddleware checks them once, on
// the client's own method and path. The copy, dlo, slo, symlink and
// versioned_writes middlewares run after it, and the requests they make
// for the client (the source of an X-Copy-From, a manifest's segments, a
// symlink's target, a version's container) are judged by keystoneauth on
// the token's roles and the containers' ACLs only. A token with an
// operator role (member, in many clouds) owns the whole account there.
// So the credential carries a role that is not a Swift operator role
// (DefaultChildRoles: rack-child, else reader; Issue refuses admin,
// member, _member_, swiftoperator and ResellerAdmin), and Grant gives the
// user's tokens (ACL entry "<project>:<user>") read and write on the
// namespace container and its segments container, which it creates:
// keystoneauth then refuses every request, direct or follow-on, outside
// the containers that grant the user. The access rules are a second
// layer that confines direct requests to one namespace:
//
//   - object-store: GET, PUT, HEAD, DELETE and POST of ".../NS/*" and
//     ".../NS/*/**" (every object; "*" needs a non-empty segment, so
//     ".../NS/", which Swift takes for the container, does not match);
//     GET and HEAD of ".../NS" (listing, metadata); the same object rules
//     for the segment container, and HEAD of it;
//   - object-store: GET and HEAD of the objects of IssueOptions.ReadOnlyContainers
//     (which Grant grants read);
//   - compute, with IssueOptions.AllowServerDelete: DELETE /servers/<any>.
//     Keystone access rules match paths, and the server's id is not known
//     when its user-data is written, so this lets the child delete any
//     server of the project (as far as Nova's policy lets its role).
//
// Check then tries, with the credential's own token, a copy from a
// container that grants nothing (a 404 instead of 401/403 means its role
// is an owner's there: ErrUnsafe), its own token as X-Service-Token, and
// creating an EC2 credential, and reports what the cloud allows.
//
// What a cloud must provide, which rack cannot set: a non-operator role
// the user holds; service_token_roles_required = true in the Swift
// proxy's keystonemiddleware (its default, false, lets a request that
// carries any valid token as X-Service-Token skip the access rules, and
// then only the ACLs hold); a Keystone policy that refuses EC2
// credentials to the child's role (Keystone 22 stores one made with an
// application credential's token without the credential's id: its tokens
// carry the user's roles, no access rules, and outlive Revoke).
// scripts/keystone-dev.sh and scripts/swift-saio.sh configure all three.
//
// The ACL names the user, not the namespace (keystoneauth matches users,
// projects and roles, and an ordinary user cannot make a role per
// namespace): a follow-on request of one namespace's child reaches the
// objects of every container that grants the same user, i.e. the other
// rack namespaces of that user in that project. Direct requests stay
// confined by the access rules.
//
// Rules name containers percent-escaped the way keystonemiddleware
// escapes the request path it matches them against; as it reads a rule as
// a regular expression without escaping it, Issue refuses containers
// whose escaped names hold . * + $ ( or ) (they would grant more).
//
// Keystone (22, Debian bookworm) does not apply access rules to its own
// API: the child's token can read its user's record, projects and list of
// application credentials (not their secrets). It cannot create or delete
// application credentials (the credential is restricted), trade the token
// for another (Keystone refuses token-method authentication with it), nor
// change the password (that needs the old one). Revoke (or
// RevokeNamespace, for leftovers of a crashed parent) deletes it when the
// namespace is collected.
//
// Access rules are enforced by the service, not by Keystone: the Swift
// proxy's keystonemiddleware authtoken filter needs
// "service_type = object-store" (else every request of such a token is
// refused with 401) and must not set "include_service_catalog = False"
// (keystonemiddleware 10.1 then fails such requests with a 500, as it
// looks for the object-store service in the token's catalog). A service
// that does not run keystonemiddleware at all would not enforce them (Nova
// likewise needs service_type = compute for the compute rule).
//
// Delivery: Deliver writes the credential as a small JSON object into a
// private container, expiring after a ttl, and returns a GET and a DELETE
// TempURL for it (both valid for the ttl); only those URLs go into the
// child's user-data. The child calls Fetch, which reads the object and
// deletes it. A second Fetch fails with ErrTaken.
//
// # Threat model
//
// An attacker who reads a child's user-data (from inside the VM, through
// the metadata service, or through Nova) gets two TempURLs, valid for the
// ttl, to one object that exists until the child fetches it. If they use
// them first the object is gone (or goes while the child reads it) and the
// child fails loudly with ErrTaken instead of running; after the child's
// Fetch they get nothing. What one-time delivery cannot catch is a reader
// who GETs the object without deleting it before the child does: keep the
// ttl short (the child's boot time). Swift has no atomic read-and-delete.
// The user-data never holds the password, a token, or the secret itself.
//
// An attacker who owns a child VM gets the application credential: until
// it expires or is revoked they can read, write and delete the objects of
// the namespace container (and its segment container), read the read-only
// containers, and, with AllowServerDelete, delete the project's servers;
// through copies, manifests and symlinks also the objects of other
// containers that grant the same user (other rack namespaces of the user).
// They cannot list the account, change a container (ACLs, keys, versions),
// touch other containers of the project, set a Temp-URL key, make
// Keystone tokens for other scopes, application credentials or trusts,
// nor learn the user's password or token; they can read the user's
// Keystone record and project list, and, where the cloud lacks the EC2
// policy, make an EC2 credential (Check warns). Pending bootstrap objects
// of sibling children in the same container hold the same credential, so
// reading them gains nothing, but deleting them stops those siblings from
// starting.
//
// What remains: the application credential lives until IssueOptions.Expires
// or until the parent revokes it (with the namespace). Tokens issued from
// it never outlive it, but the Swift proxy may keep accepting a validated
// token for its token cache time (keystonemiddleware's token_cache_time)
// after a Revoke. Keystone keeps expired credentials listed until they
// are deleted.
package credential
