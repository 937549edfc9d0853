package novaemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

func start(t *testing.T, cfg Config) (*Emulator, *gophercloud.ServiceClient) {
	t.Helper()
	e, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, client(e, "token")
}

// client is a gophercloud compute client with a fixed token: no Keystone.
func client(e *Emulator, token string) *gophercloud.ServiceClient {
	return &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{TokenID: token},
		Endpoint:       e.URL() + "/",
		Type:           "compute",
	}
}

func create(t *testing.T, c *gophercloud.ServiceClient, name, script string, md map[string]string) *servers.Server {
	t.Helper()
	s, err := servers.Create(context.Background(), c, servers.CreateOpts{
		Name: name, ImageRef: "img-1", FlavorRef: "1", UserData: []byte(script), Metadata: md,
	}, nil).Extract()
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return s
}

func waitStatus(t *testing.T, c *gophercloud.ServiceClient, id, status string) *servers.Server {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := servers.Get(context.Background(), c, id).Extract()
		if err != nil {
			t.Fatalf("get %s: %v", id, err)
		}
		if s.Status == status {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s is %s, want %s", id, s.Status, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statusOf returns the HTTP status of a gophercloud error, and its body.
func statusOf(err error) (int, string) {
	var e gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &e) {
		return e.Actual, string(e.Body)
	}
	return 0, fmt.Sprint(err)
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

func info(e *Emulator, id string) ServerInfo {
	for _, s := range e.Servers() {
		if s.ID == id {
			return s
		}
	}
	return ServerInfo{}
}

func TestScriptRunsAndPowersOff(t *testing.T) {
	e, c := start(t, Config{Faults: Faults{BootDelay: 20 * time.Millisecond, BootJitter: 10 * time.Millisecond}})
	script := "#!/bin/sh\necho \"hello from $HOME\"\necho \"url=$RACK_METADATA_URL\"\nenv | sort\n" +
		"echo data > \"$HOME/out.txt\"\necho oops >&2\nexit 3\n"
	s := create(t, c, "rack-1", script, map[string]string{"rack:pid": "101", "delete at": "2030"})
	if s.Status != "" || s.AdminPass != "" {
		t.Errorf("create response: status %q adminPass %q, want neither", s.Status, s.AdminPass)
	}
	if got, err := servers.Get(context.Background(), c, s.ID).Extract(); err != nil || got.Status != "BUILD" {
		t.Errorf("just created: %v %+v", err, got)
	}
	got := waitStatus(t, c, s.ID, "SHUTOFF")
	if got.Name != "rack-1" || got.Metadata["rack:pid"] != "101" || got.PowerState != servers.SHUTDOWN {
		t.Errorf("server %+v", got)
	}
	out, err := servers.ShowConsoleOutput(context.Background(), c, s.ID, servers.ShowConsoleOutputOpts{}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	si := info(e, s.ID)
	if !strings.Contains(out, "hello from "+si.Dir) || !strings.Contains(out, "oops") {
		t.Errorf("console output %q", out)
	}
	for _, l := range strings.Split(out, "\n") { // only the emulator's variables (+ what sh adds)
		if k, _, ok := strings.Cut(l, "="); ok && k != "url" && k != "PATH" && k != "HOME" &&
			k != "RACK_METADATA_URL" && k != "RACK_CLOUD_DIR" && k != "PWD" && k != "SHLVL" && k != "_" && k != "OLDPWD" {
			t.Errorf("unexpected environment variable %s", l)
		}
	}
	tail, _ := servers.ShowConsoleOutput(context.Background(), c, s.ID, servers.ShowConsoleOutputOpts{Length: 2}).Extract()
	if tail != "oops\n" {
		t.Errorf("tail 2 = %q, want %q (Nova counts the empty piece after the last newline)", tail, "oops\n")
	}
	if b, _ := os.ReadFile(filepath.Join(si.Dir, "out.txt")); string(b) != "data\n" || si.ExitCode != 3 || si.PID != 0 {
		t.Errorf("out.txt %q, exit %d, pid %d", b, si.ExitCode, si.PID)
	}

	// The metadata service, at the URL the script was given.
	_, mdURL, _ := strings.Cut(out, "url=")
	mdURL, _, _ = strings.Cut(mdURL, "\n")
	var md struct {
		UUID, Name, Hostname string
		Meta                 map[string]string
		LaunchIndex          int `json:"launch_index"`
	}
	getJSON(t, mdURL+"/openstack/latest/meta_data.json", &md)
	if md.UUID != s.ID || md.Name != "rack-1" || md.Meta["delete at"] != "2030" || md.Hostname != "rack-1.novalocal" {
		t.Errorf("meta_data.json %+v", md)
	}
	if ud := get(t, mdURL+"/openstack/latest/user_data"); ud != script {
		t.Errorf("user_data %q", ud)
	}
	if id := get(t, mdURL+"/latest/meta-data/instance-id"); !strings.HasPrefix(id, "i-") {
		t.Errorf("instance-id %q", id)
	}

	// os-start: ACTIVE again (running nothing); start again is a conflict.
	if err := servers.Start(context.Background(), c, s.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, s.ID, "ACTIVE")
	err = servers.Start(context.Background(), c, s.ID).ExtractErr()
	if code, body := statusOf(err); code != 409 || !strings.Contains(body, "conflictingRequest") {
		t.Errorf("second start: %d %s", code, body)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, url)), v); err != nil {
		t.Fatal(err)
	}
}

func TestListFiltersAndPagination(t *testing.T) {
	e, c := start(t, Config{})
	for _, n := range []string{"rack-1", "rack-10", "other"} {
		create(t, c, n, "", map[string]string{"ns": "a"})
	}
	names := func(opts servers.ListOpts) []string {
		t.Helper()
		pages, err := servers.List(c, opts).AllPages(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		all, err := servers.ExtractServers(pages)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range all {
			out = append(out, s.Name)
		}
		return out
	}
	if got := fmt.Sprint(names(servers.ListOpts{Name: "^rack-1$"})); got != "[rack-1]" {
		t.Errorf("name ^rack-1$: %s", got)
	}
	if got := fmt.Sprint(names(servers.ListOpts{Name: "rack-1"})); got != "[rack-10 rack-1]" {
		t.Errorf("name rack-1 (a regex search, newest first): %s", got)
	}
	e.ResetCalls()
	if got := names(servers.ListOpts{Limit: 1}); len(got) != 3 {
		t.Errorf("paginated list: %v", got)
	}
	if n := e.Calls()["GET /servers/detail"]; n != 4 { // 3 full pages and an empty one
		t.Errorf("%d list calls, want 4", n)
	}
	time.Sleep(50 * time.Millisecond) // let the (empty) VMs boot
	if got := names(servers.ListOpts{Status: "active"}); len(got) != 3 {
		t.Errorf("status=active: %v", got)
	}
	md, err := servers.Metadata(context.Background(), c, e.Servers()[0].ID).Extract()
	if err != nil || md["ns"] != "a" {
		t.Errorf("metadata %v %v", md, err)
	}
	// Nova has no metadata filter: it is refused.
	r := raw(t, e, "GET", "/v2.1/servers?metadata=ns", "", nil)
	if r.code != 400 || !strings.Contains(r.body, "Invalid filter field: metadata.") {
		t.Errorf("metadata filter: %d %s", r.code, r.body)
	}
	r = raw(t, e, "GET", "/v2.1/servers?status=bogus", "", map[string]string{"X-OpenStack-Nova-API-Version": "2.38"})
	if r.code != 400 {
		t.Errorf("bad status at 2.38: %d", r.code)
	}
	r = raw(t, e, "GET", "/v2.1/servers?marker=nope", "", nil)
	if r.code != 400 || !strings.Contains(r.body, "marker [nope] not found") {
		t.Errorf("bad marker: %d %s", r.code, r.body)
	}
}

type rawResp struct {
	code int
	body string
	hdr  http.Header
}

// raw makes one API request with a token, without gophercloud.
func raw(t *testing.T, e *Emulator, method, path, body string, hdr map[string]string) rawResp {
	t.Helper()
	req, _ := http.NewRequest(method, e.BaseURL()+path, strings.NewReader(body))
	req.Header.Set("X-Auth-Token", "token")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, string(b), resp.Header}
}

func TestBootFailureAndKill(t *testing.T) {
	e, c := start(t, Config{Faults: Faults{BootFailureRate: 1}})
	s := create(t, c, "doomed", "#!/bin/sh\nexit 0\n", nil)
	got := waitStatus(t, c, s.ID, "ERROR")
	if got.Fault.Code != 500 || !strings.HasPrefix(got.Fault.Message, "No valid host was found.") {
		t.Errorf("fault %+v", got.Fault)
	}
	e.SetFaults(Faults{})
	for _, toError := range []bool{false, true} {
		s := create(t, c, "victim", "#!/bin/sh\nsleep 300\n", nil)
		waitStatus(t, c, s.ID, "ACTIVE")
		pid := info(e, s.ID).PID
		if err := e.Kill(s.ID, toError); err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{false: "SHUTOFF", true: "ERROR"}[toError]
		waitStatus(t, c, s.ID, want)
		if alive(pid) {
			t.Errorf("killed server's process %d is alive", pid)
		}
	}
}

func TestQuotaAndMultiCreate(t *testing.T) {
	e, c := start(t, Config{Faults: Faults{InstanceQuota: 3}})
	var resp struct {
		ReservationID string `json:"reservation_id"`
	}
	res := servers.Create(context.Background(), c, withResv{servers.CreateOpts{
		Name: "multi", ImageRef: "img", FlavorRef: "1", Min: 2, Max: 5}}, nil)
	if err := res.Result.ExtractInto(&resp); err != nil || !strings.HasPrefix(resp.ReservationID, "r-") {
		t.Fatalf("multi-create: %v %+v", err, resp)
	}
	var names []string
	for _, s := range e.Servers() {
		names = append(names, fmt.Sprintf("%s/%d/%t", s.Name, s.LaunchIndex, s.ReservationID == resp.ReservationID))
	}
	if got := fmt.Sprint(names); got != "[multi-1/0/true multi-2/1/true multi-3/2/true]" {
		t.Errorf("servers %s (quota 3 allows 3 of 2-5)", got)
	}
	_, err := servers.Create(context.Background(), c, servers.CreateOpts{Name: "x", ImageRef: "i", FlavorRef: "1"}, nil).Extract()
	code, body := statusOf(err)
	if code != 403 || !strings.Contains(body, `"forbidden"`) ||
		!strings.Contains(body, "Quota exceeded for instances: Requested 1, but already used 3 of 3 instances") {
		t.Errorf("over quota: %d %s", code, body)
	}
}

// withResv adds return_reservation_id, which gophercloud's CreateOpts lacks.
type withResv struct{ servers.CreateOpts }

func (o withResv) ToServerCreateMap() (map[string]any, error) {
	m, err := o.CreateOpts.ToServerCreateMap()
	if err == nil {
		m["server"].(map[string]any)["return_reservation_id"] = true
	}
	return m, err
}

func TestInjectedErrors(t *testing.T) {
	e, c := start(t, Config{Seed: 1})
	for _, tc := range []struct {
		f    Faults
		code int
		name string
	}{
		{Faults{ServerErrorRate: 1}, 500, "computeFault"},
		{Faults{UnavailableRate: 1}, 503, "serviceUnavailable"},
		{Faults{RateLimitRate: 1, RetryAfter: 2 * time.Second}, 429, "overLimit"},
	} {
		e.SetFaults(tc.f)
		_, err := servers.Get(context.Background(), c, "x").Extract()
		if code, body := statusOf(err); code != tc.code || !strings.Contains(body, tc.name) {
			t.Errorf("%+v: %d %s", tc.f, code, body)
		}
	}
	if r := raw(t, e, "GET", "/v2.1/servers", "", nil); r.hdr.Get("Retry-After") != "2" {
		t.Errorf("Retry-After %q", r.hdr.Get("Retry-After"))
	}
	// Half the requests fail, the same ones for the same seed.
	pattern := func() string {
		e2, c2 := start(t, Config{Seed: 7, Faults: Faults{ServerErrorRate: 0.5}})
		defer e2.Close()
		var b strings.Builder
		for range 20 {
			_, err := servers.Get(context.Background(), c2, "x").Extract()
			code, _ := statusOf(err)
			b.WriteString(strconv.Itoa(code / 100))
		}
		return b.String()
	}
	p1, p2 := pattern(), pattern()
	if p1 != p2 || !strings.Contains(p1, "5") || !strings.Contains(p1, "4") {
		t.Errorf("patterns %s %s", p1, p2)
	}
}

func TestDeleteKillsProcessGroup(t *testing.T) {
	e, c := start(t, Config{Faults: Faults{DeleteDelay: 100 * time.Millisecond}})
	s := create(t, c, "long", "#!/bin/sh\nsleep 300 &\necho $! > \"$HOME/child.pid\"\nsleep 300\n", nil)
	waitStatus(t, c, s.ID, "ACTIVE")
	si := info(e, s.ID)
	var child int
	for deadline := time.Now().Add(5 * time.Second); child == 0 && time.Now().Before(deadline); {
		b, _ := os.ReadFile(filepath.Join(si.Dir, "child.pid"))
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(5 * time.Millisecond)
	}
	if child == 0 || !alive(si.PID) || !alive(child) {
		t.Fatalf("pid %d child %d not running", si.PID, child)
	}
	if err := servers.Delete(context.Background(), c, s.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if got, err := servers.Get(context.Background(), c, s.ID).Extract(); err != nil || got.TaskState != "deleting" {
		t.Errorf("just deleted: %v %+v", err, got)
	}
	waitStatus(t, c, s.ID, "DELETED")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, err := servers.Get(context.Background(), c, s.ID).Extract()
		if code, body := statusOf(err); code == 404 && strings.Contains(body, "itemNotFound") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after delete: %d %s", code, body)
		}
	}
	if alive(si.PID) || alive(child) {
		t.Errorf("process %d or its child %d outlived the delete", si.PID, child)
	}
	if _, err := os.Stat(si.Dir); !os.IsNotExist(err) {
		t.Errorf("work dir left: %v", err)
	}
}

func TestStopAndClose(t *testing.T) {
	e, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := client(e, "t")
	a := create(t, c, "a", "#!/bin/sh\nsleep 300\n", nil)
	b := create(t, c, "b", "#!/bin/sh\nsleep 300\n", nil)
	waitStatus(t, c, a.ID, "ACTIVE")
	waitStatus(t, c, b.ID, "ACTIVE")
	pa, pb := info(e, a.ID).PID, info(e, b.ID).PID
	if err := servers.Stop(context.Background(), c, a.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, a.ID, "SHUTOFF")
	if alive(pa) {
		t.Errorf("stopped server's process %d alive", pa)
	}
	e.Close()
	if alive(pb) {
		t.Errorf("process %d outlived Close", pb)
	}
}

func TestSlowCreateThenRetryFindsServer(t *testing.T) {
	e, c := start(t, Config{Faults: Faults{CreateResponseDelay: 5 * time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := servers.Create(ctx, c, servers.CreateOpts{Name: "rack-ns-101", ImageRef: "i", FlavorRef: "1"}, nil).Extract()
	if err == nil {
		t.Fatal("create succeeded despite the delay")
	}
	pages, err := servers.ListSimple(c, servers.ListOpts{Name: "^rack-ns-101$"}).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found, _ := servers.ExtractServers(pages)
	if len(found) != 1 || len(e.Servers()) != 1 || found[0].ID != e.Servers()[0].ID {
		t.Errorf("found %+v", found)
	}
}

func TestMicroversionsAndVersions(t *testing.T) {
	e, c := start(t, Config{})
	var v struct {
		Version struct{ ID, Version, MinVersion string } `json:"version"`
	}
	resp, err := http.Get(e.URL()) // no token needed
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if v.Version.ID != "v2.1" || v.Version.Version != MaxMicroversion {
		t.Errorf("version doc %+v", v)
	}
	r := raw(t, e, "GET", "/v2.1/servers", "", map[string]string{"OpenStack-API-Version": "compute latest"})
	if r.hdr.Get("OpenStack-API-Version") != "compute "+MaxMicroversion || r.hdr.Get("X-OpenStack-Nova-API-Version") != MaxMicroversion {
		t.Errorf("headers %v", r.hdr)
	}
	if r := raw(t, e, "GET", "/v2.1/servers", "", map[string]string{"X-OpenStack-Nova-API-Version": "2.200"}); r.code != 406 {
		t.Errorf("2.200: %d", r.code)
	}
	c.Microversion = "2.47"
	_, err = servers.Create(context.Background(), c, servers.CreateOpts{Name: "n", ImageRef: "i", FlavorRef: "m1.small"}, nil).Extract()
	if code, body := statusOf(err); code != 400 || !strings.Contains(body, "'networks' is a required property") {
		t.Errorf("2.37+ without networks: %d %s", code, body)
	}
	s, err := servers.Create(context.Background(), c, servers.CreateOpts{Name: "n", ImageRef: "i", FlavorRef: "m1.small", Networks: "none"}, nil).Extract()
	if err != nil {
		t.Fatal(err)
	}
	got, err := servers.Get(context.Background(), c, s.ID).Extract()
	if err != nil || got.Flavor["original_name"] != "m1.small" || got.Locked == nil {
		t.Errorf("2.47 view: %v %+v", err, got)
	}

	// Tags (2.52 to set, 2.26 to filter) are Nova's way to find servers by label.
	c.Microversion = "2.52"
	for _, tags := range [][]string{{"ns-a", "pid-100"}, {"ns-b"}} {
		_, err := servers.Create(context.Background(), c, servers.CreateOpts{Name: "t", ImageRef: "i",
			FlavorRef: "1", Networks: "none", Tags: tags}, nil).Extract()
		if err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]int{"tags=ns-a,pid-100": 1, "tags=ns-a,ns-b": 0, "tags-any=ns-a,ns-b": 2,
		"not-tags=ns-a,pid-100": 2, "not-tags-any=ns-b": 2, "tags=ns-b&not-tags-any=ns-a": 1} {
		var body struct{ Servers []servers.Server }
		r := raw(t, e, "GET", "/v2.1/servers/detail?"+q, "", map[string]string{"X-OpenStack-Nova-API-Version": "2.52"})
		if json.Unmarshal([]byte(r.body), &body); len(body.Servers) != want {
			t.Errorf("%s: %d servers, want %d (%s)", q, len(body.Servers), want, r.body)
		}
	}
}

func TestBadInput(t *testing.T) {
	e, _ := start(t, Config{})
	long := strings.Repeat("x", 256)
	many := map[string]string{}
	for i := range 129 {
		many[fmt.Sprint("k", i)] = "v"
	}
	manyJSON, _ := json.Marshal(many)
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{`{"server": `, 400, "Malformed request body"},
		{`{"server": {"name": "a", "flavorRef": "1"}}`, 400, "Missing imageRef attribute"},
		{`{"server": {"flavorRef": "1", "imageRef": "i"}}`, 400, "'name' is a required property"},
		{`{"server": {"name": 7, "flavorRef": "1", "imageRef": "i"}}`, 400, "field/attribute name"},
		{`{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "bogus": 1}}`, 400, "('bogus' was unexpected)"},
		{`{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "metadata": {"a/b": "v"}}}`, 400, "('a/b' was unexpected)"},
		{`{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "metadata": {"k": "` + long + `"}}}`, 400, "is too long"},
		{`{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "metadata": ` + string(manyJSON) + `}}`, 403, "Maximum number of metadata items exceeds 128"},
		{`{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "user_data": "!!"}}`, 400, "is not a 'base64'"},
		{`{"server": {"name": "a", "flavorRef": "1", "imageRef": "i", "min_count": 3, "max_count": 2}}`, 400, "min_count must be <= max_count"},
	} {
		r := raw(t, e, "POST", "/v2.1/servers", tc.body, nil)
		if r.code != tc.code || !strings.Contains(r.body, tc.want) {
			t.Errorf("%.60s: %d %s, want %d %q", tc.body, r.code, r.body, tc.code, tc.want)
		}
	}
	if r := raw(t, e, "POST", "/v2.1/servers/nope/action", `{"os-getConsoleOutput": {}}`, nil); r.code != 404 ||
		!strings.Contains(r.body, `{"itemNotFound":{"code":404,"message":"Instance nope could not be found."}}`) {
		t.Errorf("console of missing server: %d %s", r.code, r.body)
	}
	if len(e.Servers()) != 0 {
		t.Errorf("bad requests made servers")
	}
}

func TestAuth(t *testing.T) {
	var keystoneCalls int
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keystoneCalls++
		if r.URL.Path != "/v3/auth/tokens" || r.Header.Get("X-Auth-Token") != "admin" {
			w.WriteHeader(401)
			return
		}
		if r.Header.Get("X-Subject-Token") != "good" {
			w.WriteHeader(404)
			return
		}
		fmt.Fprintf(w, `{"token": {"expires_at": %q}}`, time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z"))
	}))
	defer ks.Close()
	e, _ := start(t, Config{ValidateToken: KeystoneValidator(ks.URL, "admin")})
	list := func(token string) int {
		_, err := servers.List(client(e, token), nil).AllPages(context.Background())
		code, _ := statusOf(err)
		return code
	}
	if got := []int{list(""), list("bad"), list("good"), list("good")}; fmt.Sprint(got) != "[401 401 0 0]" {
		t.Errorf("codes %v", got)
	}
	if keystoneCalls != 2 {
		t.Errorf("%d keystone calls, want 2 (good is cached)", keystoneCalls)
	}
	ks.Close()
	if code := list("other"); code != 503 {
		t.Errorf("keystone down: %d", code)
	}
}
