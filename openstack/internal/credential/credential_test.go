package credential

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gophercloud/gophercloud/v2"
	tokens3 "github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"

	"github.com/rackfork/rack/backend"
)

const testSecret = "s3cr3t-DO-NOT-LEAK-0123456789"

func TestAccessRules(t *testing.T) {
	acct := "/v1/AUTH_p1"
	got, err := accessRules(acct+"/", "/v2.1/", IssueOptions{
		Container: "ns", SegmentContainer: "ns_segments", ReadOnlyContainers: []string{"bin"}, AllowServerDelete: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []Rule
	for _, p := range []string{"/ns/*", "/ns/*/**"} {
		for _, m := range []string{"GET", "PUT", "HEAD", "DELETE", "POST"} {
			want = append(want, Rule{"object-store", m, acct + p})
		}
	}
	want = append(want, Rule{"object-store", "GET", acct + "/ns"}, Rule{"object-store", "HEAD", acct + "/ns"})
	for _, p := range []string{"/ns_segments/*", "/ns_segments/*/**"} {
		for _, m := range []string{"GET", "PUT", "HEAD", "DELETE", "POST"} {
			want = append(want, Rule{"object-store", m, acct + p})
		}
	}
	want = append(want, Rule{"object-store", "HEAD", acct + "/ns_segments"})
	want = append(want, Rule{"object-store", "GET", acct + "/bin/*"}, Rule{"object-store", "HEAD", acct + "/bin/*"},
		Rule{"object-store", "GET", acct + "/bin/*/**"}, Rule{"object-store", "HEAD", acct + "/bin/*/**"},
		Rule{"compute", "DELETE", "/v2.1/servers/*"})
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}

	got, err = accessRules(acct, "", IssueOptions{Container: "ns", SegmentContainer: ""})
	if err != nil || len(got) != 12 {
		t.Errorf("without segments: %d rules, %v; want 12", len(got), err)
	}

	for _, o := range []IssueOptions{
		{Container: ""},
		{Container: "a.b"}, // '.' would also grant "aXb"
		{Container: "a*"},
		{Container: "a/b"},
		{Container: "ok", ReadOnlyContainers: []string{"b(in)"}},
		{Container: "ok", SegmentContainer: "s+"},
		{Container: strings.Repeat("c", 210)}, // the path exceeds Keystone's 225
		{Container: "ok\x01"},
	} {
		if _, err := accessRules(acct, "", o); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("accessRules(%+v): %v, want ErrInvalid", o, err)
		}
	}
	if _, err := accessRules("/v1/AUTH_x*", "", IssueOptions{Container: "ok"}); err == nil {
		t.Error("an account path with a pattern character was accepted")
	}
	if _, err := accessRules(acct, "", IssueOptions{Container: "ns", AllowServerDelete: true}); err == nil {
		t.Error("AllowServerDelete without a compute path was accepted")
	}
	// Paths are escaped as keystonemiddleware sees requests.
	got, err = accessRules(acct, "", IssueOptions{Container: "nä m{1}%", SegmentContainer: ""})
	if err != nil {
		t.Fatalf("a container with non-ASCII, space and braces: %v", err)
	}
	if p := got[0].Path; p != acct+"/n%C3%A4%20m%7B1%7D%25/*" {
		t.Errorf("escaped rule path %q", p)
	}
	if e := escapeSegment("a-Z_0.~!$&'()*+,;=:@ü/"); e != "a-Z_0.~!$&'()*+,;=:@%C3%BC/" {
		t.Errorf("escapeSegment: %q", e)
	}
}

func TestPickRoles(t *testing.T) {
	have := []tokens3.Role{{ID: "r1", Name: "member"}, {ID: "r2", Name: "admin"}, {ID: "r3", Name: "reader"}, {ID: "r4", Name: "ResellerAdmin"}}
	got, err := pickRoles(have, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "r3" {
		t.Errorf("default roles %+v, want reader (r3) alone", got)
	}
	got, err = pickRoles(append(have, tokens3.Role{ID: "r5", Name: "rack-child"}), nil)
	if err != nil || len(got) != 1 || got[0].ID != "r5" {
		t.Errorf("default roles with rack-child: %+v, %v; want rack-child (r5) alone", got, err)
	}
	if _, err := pickRoles(have[:2], nil); !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "rack-child") {
		t.Errorf("member and admin only: %v", err)
	}
	for _, op := range []string{"member", "Admin", "swiftoperator", "ResellerAdmin", "_member_"} {
		if _, err := pickRoles(have, []string{op}); !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), "operator role") {
			t.Errorf("operator role %s: %v", op, err)
		}
	}
	got, err = pickRoles(have, []string{"rack-child"})
	if err != nil || len(got) != 1 || got[0].Name != "rack-child" {
		t.Errorf("named roles: %+v, %v", got, err)
	}
	if _, err := pickRoles(have, []string{}); err == nil {
		t.Error("an empty, non-nil Roles was accepted")
	}
}

func TestNames(t *testing.T) {
	n, err := credentialName("ns-1")
	if err != nil {
		t.Fatal(err)
	}
	if !nameRegexp("ns-1").MatchString(n) {
		t.Errorf("%q does not match its namespace", n)
	}
	if nameRegexp("ns").MatchString(n) {
		t.Errorf("%q matches namespace ns", n)
	}
	long := strings.Repeat("ü", 300)
	n, err = credentialName(long)
	if err != nil {
		t.Fatal(err)
	}
	if l := len([]rune(n)); l > 255 || !nameRegexp(long).MatchString(n) {
		t.Errorf("long namespace: name of %d characters %q", l, n)
	}
	if nameLabel(long) == nameLabel(long+"x") {
		t.Error("two long namespaces share a label")
	}
}

// A Credential never shows its secret when printed, logged or marshalled.
func TestCredentialHidesSecret(t *testing.T) {
	c := Credential{ID: "id1", Secret: testSecret, Name: "rack-ns-0", ProjectID: "p", ExpiresAt: time.Now()}
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		out = append(out, fmt.Sprintf(f, c), fmt.Sprintf(f, &c))
	}
	out = append(out, fmt.Sprint(c), fmt.Sprint([]*Credential{&c}), fmt.Sprintf("%v", map[string]Credential{"a": c}))
	j, _ := json.Marshal(c)
	out = append(out, string(j))
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, nil))
	l.Info("x", "cred", c, "ptr", &c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "cred", c, "ptr", &c)
	out = append(out, buf.String())
	for _, s := range out {
		if strings.Contains(s, testSecret) || strings.Contains(s, testSecret[:10]) {
			t.Errorf("the secret shows: %s", s)
		}
	}
	if !strings.Contains(out[0], "id1") {
		t.Errorf("%%v does not name the credential: %s", out[0])
	}
}

func TestIssueChecksInput(t *testing.T) {
	ctx := context.Background()
	future := time.Now().Add(time.Hour)
	sc := &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{}}
	for _, tc := range []struct {
		name string
		idc  *gophercloud.ServiceClient
		opts IssueOptions
		want string
	}{
		{"nil client", nil, IssueOptions{Namespace: "n", Container: "c", Expires: future}, "no identity client"},
		{"no namespace", sc, IssueOptions{Container: "c", Expires: future}, "namespace"},
		{"no expiry", sc, IssueOptions{Namespace: "n", Container: "c"}, "must expire"},
		{"past expiry", sc, IssueOptions{Namespace: "n", Container: "c", Expires: time.Now().Add(-time.Minute)}, "not in the future"},
		{"no token", sc, IssueOptions{Namespace: "n", Container: "c", Expires: future}, "no Keystone v3 token"},
	} {
		_, err := Issue(ctx, tc.idc, "", tc.opts)
		if !errors.Is(err, backend.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
}

// fakeSwift serves one-time objects behind fake TempURLs.
type fakeSwift struct {
	mu      sync.Mutex
	objects map[string][]byte
	puts    []backend.PutOptions
	// lose, if set, makes the next DELETE succeed but answer 503.
	lose bool
	// beforeDelete runs before a DELETE is served.
	beforeDelete func(path string)
	srv          *httptest.Server
}

func newFakeSwift(t *testing.T) *fakeSwift {
	f := &fakeSwift{objects: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSwift) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("temp_url_sig") != "sig-"+r.Method {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodDelete && f.beforeDelete != nil {
		f.beforeDelete(r.URL.Path)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[r.URL.Path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet:
		_, _ = w.Write(b)
	case http.MethodDelete:
		delete(f.objects, r.URL.Path)
		if f.lose {
			f.lose = false
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fakeSwift) Put(_ context.Context, c, name string, r io.Reader, o *backend.PutOptions) (backend.ObjectInfo, error) {
	b, _ := io.ReadAll(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, *o)
	p := "/v1/AUTH_x/" + c + "/" + name
	if _, ok := f.objects[p]; ok && o.CreateOnly {
		return backend.ObjectInfo{}, backend.ErrExist
	}
	f.objects[p] = b
	return backend.ObjectInfo{Name: name}, nil
}

func (f *fakeSwift) Delete(_ context.Context, c, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, "/v1/AUTH_x/"+c+"/"+name)
	return nil
}

func (f *fakeSwift) TempURL(_ context.Context, method, c, name string, ttl time.Duration) (string, error) {
	if method == "DELETE" && c == "fail-delete-url" {
		return "", errors.New("no DELETE temp URL")
	}
	return fmt.Sprintf("%s/v1/AUTH_x/%s/%s?temp_url_sig=sig-%s&temp_url_expires=%d", f.srv.URL, c, name, method, time.Now().Add(ttl).Unix()), nil
}

func (f *fakeSwift) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.objects)
}

func TestDeliverFetch(t *testing.T) {
	ctx := context.Background()
	f := newFakeSwift(t)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	cred := &Credential{ID: "acid", Secret: testSecret, Name: "rack-ns-1", ExpiresAt: exp, Region: "RegionOne", Interface: "public"}
	get, del, err := Deliver(ctx, f, f, "ns", "", cred, "http://keystone:5000/v3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if o := f.puts[0]; !o.CreateOnly || o.DeleteAfter != time.Minute || o.ContentType != "application/json" {
		t.Errorf("Put options %+v", o)
	}
	if !strings.Contains(get, "/ns/"+BootstrapPrefix) {
		t.Errorf("GET URL %s is not under %s", get, BootstrapPrefix)
	}
	var errs []string
	got, err := Fetch(ctx, nil, get, del)
	if err != nil {
		t.Fatal(err)
	}
	want := Credential{ID: "acid", Secret: testSecret, Name: "rack-ns-1", ExpiresAt: exp, AuthURL: "http://keystone:5000/v3", Region: "RegionOne", Interface: "public"}
	if d := cmp.Diff(want, *got); d != "" {
		t.Errorf("fetched (-want +got):\n%s", d)
	}
	if n := f.count(); n != 0 {
		t.Errorf("%d objects left after Fetch", n)
	}
	_, err = Fetch(ctx, nil, get, del)
	if !errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "already taken or expired") {
		t.Errorf("second Fetch: %v, want ErrTaken", err)
	}
	errs = append(errs, err.Error())

	// Someone deletes it between our GET and DELETE.
	get, del, err = Deliver(ctx, f, f, "ns", "bootstrap/raced", cred, "http://keystone:5000/v3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f.beforeDelete = func(p string) {
		f.mu.Lock()
		delete(f.objects, p)
		f.mu.Unlock()
	}
	_, err = Fetch(ctx, nil, get, del)
	if !errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "someone else") {
		t.Errorf("raced Fetch: %v, want ErrTaken naming someone else", err)
	}
	errs = append(errs, err.Error())
	f.beforeDelete = nil

	// A lost DELETE answer is retried, and its 404 is ours.
	_, _, err = Deliver(ctx, f, f, "ns", "", cred, "", time.Minute)
	if err == nil {
		t.Fatal("Deliver without an auth URL succeeded")
	}
	errs = append(errs, err.Error())
	cred.AuthURL = "https://keystone/v3"
	get, del, err = Deliver(ctx, f, f, "ns", "", cred, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f.lose = true
	if got, err = Fetch(ctx, nil, get, del); err != nil || got.AuthURL != "https://keystone/v3" {
		t.Errorf("Fetch with a lost DELETE answer: %v, %v", got, err)
	}

	// Expired or tampered URLs.
	_, err = Fetch(ctx, nil, strings.Replace(get, "sig-GET", "sig-bad", 1), del)
	if !errors.Is(err, ErrURLRefused) || errors.Is(err, ErrTaken) || !strings.Contains(err.Error(), "401") {
		t.Errorf("bad signature: %v, want ErrURLRefused (HTTP 401), not ErrTaken", err)
	}
	errs = append(errs, err.Error())
	for _, bad := range [][2]string{{"", del}, {get, "ftp://x/y"}, {"http://host/v1/a/c/o", del}} {
		_, err = Fetch(ctx, nil, bad[0], bad[1])
		if !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Fetch(%q, %q): %v, want ErrInvalid", bad[0], bad[1], err)
		}
		errs = append(errs, err.Error())
	}

	// Deliver cleans up when it cannot sign.
	before := f.count()
	_, _, err = Deliver(ctx, f, f, "fail-delete-url", "", cred, "", time.Minute)
	if err == nil || f.count() != before {
		t.Errorf("Deliver with a failing signer: %v, %d objects (was %d)", err, f.count(), before)
	}
	errs = append(errs, err.Error())
	for _, bad := range []struct {
		cred *Credential
		ttl  time.Duration
	}{{nil, time.Minute}, {&Credential{ID: "x"}, time.Minute}, {cred, time.Millisecond}} {
		if _, _, err := Deliver(ctx, f, f, "ns", "", bad.cred, "", bad.ttl); !errors.Is(err, backend.ErrInvalid) {
			t.Errorf("Deliver(%v, %v): %v, want ErrInvalid", bad.cred, bad.ttl, err)
		} else {
			errs = append(errs, err.Error())
		}
	}

	// Unreachable server: a network error, without the signature.
	f.srv.Close()
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = Fetch(ctx2, nil, get, del)
	if !errors.Is(err, backend.ErrTransient) {
		t.Errorf("closed server: %v, want ErrTransient", err)
	}
	errs = append(errs, err.Error())
	for _, e := range errs {
		if strings.Contains(e, testSecret) || strings.Contains(e, "temp_url_sig=") || strings.Contains(e, "sig-") {
			t.Errorf("an error shows a secret or signature: %s", e)
		}
	}
}

// TestRevokeRetriesClosedConnection: a revoke whose connection the server
// closes without an answer (Keystone under uwsgi did, in CI: EOF) is
// tried again, and a retry that finds the credential gone (404) is done.
func TestRevokeRetriesClosedConnection(t *testing.T) {
	for _, second := range []int{http.StatusNoContent, http.StatusNotFound} {
		var deletes atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodDelete || r.URL.Path != "/v3/users/u1/application_credentials/c1" {
				http.NotFound(w, r)
				return
			}
			if deletes.Add(1) == 1 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close() // no answer
				}
				return
			}
			w.WriteHeader(second)
		}))
		identity := &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{HTTPClient: *srv.Client()}, Endpoint: srv.URL + "/v3/"}
		if err := Revoke(context.Background(), identity, "u1", "c1"); err != nil {
			t.Errorf("second answer %d: Revoke: %v", second, err)
		}
		if n := deletes.Load(); n != 2 {
			t.Errorf("second answer %d: %d deletes, want 2", second, n)
		}
		srv.Close()
	}
}
