// Package credential gives a rack child the narrowest, expiring OpenStack
// credential that lets it do its job, and hands it over without the
// user's password or token ever reaching the child, its user-data, its
// server metadata, process records or logs.
//
// The parent, authenticated with the user's password (an application
// credential restricted by access rules may not create others), calls
// Issue once per namespace: it creates a Keystone application credential
// ("rack-<namespace>-<random>") that expires, is restricted (it cannot
// create credentials or trusts), carries the user's roles on the project
// minus admin, and has access rules that allow only
//
//   - object-store: GET, PUT, HEAD, DELETE and POST of the objects of the
//     namespace container and of its SLO segment container; GET and HEAD of
//     the namespace container itself (listing, metadata); PUT, GET and HEAD
//     of the segment container (a Store creates it on its first large Put);
//   - object-store: GET and HEAD of the objects of IssueOptions.ReadOnlyContainers;
//   - compute, with IssueOptions.AllowServerDelete: DELETE /servers/<any>.
//     Keystone access rules match paths, and the server's id is not known
//     when its user-data is written, so this lets the child delete any
//     server of the project (as far as Nova's policy lets the user).
//
// Rules name containers percent-escaped the way keystonemiddleware
// escapes the request path it matches them against; as it reads a rule as
// a regular expression without escaping it, Issue refuses containers
// whose escaped names hold . * + $ ( or ) (they would grant more).
//
// Keystone (22, Debian bookworm) does not apply access rules to its own
// API: the child's token can read its user's record, projects and list of
// application credentials (not their secrets). It cannot create or delete
// credentials (the credential is restricted), trade the token for another
// (Keystone refuses token-method authentication with it), nor change the
// password (that needs the old one).
// Revoke (or RevokeNamespace, for leftovers of a crashed parent) deletes
// it when the namespace is collected.
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
// containers, and, with AllowServerDelete, delete the project's servers.
// They cannot list the account, touch other containers of the project,
// set the account's Temp-URL key, make Keystone tokens for other scopes,
// credentials or trusts, nor learn the user's password or token; they can
// read the user's Keystone record and project list. Pending bootstrap objects of sibling children in the same
// container hold the same credential, so reading them gains nothing, but
// deleting them stops those siblings from starting.
//
// What remains: the application credential lives until IssueOptions.Expires
// or until the parent revokes it (with the namespace). Tokens issued from
// it never outlive it, but the Swift proxy may keep accepting a validated
// token for its token cache time (keystonemiddleware's token_cache_time)
// after a Revoke. Keystone keeps expired credentials listed until they
// are deleted.
package credential
