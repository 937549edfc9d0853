package novaemu

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// call is one API request being served.
type call struct {
	e     *Emulator
	w     http.ResponseWriter
	r     *http.Request
	minor int // negotiated microversion 2.minor
}

// Nova's fault names by status (nova.api.openstack.wsgi.Fault); any other
// status is a "computeFault".
var faultNames = map[int]string{
	400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
	405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
	429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable",
}

func (c *call) json(code int, v any) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(code)
	enc := json.NewEncoder(c.w)
	enc.SetEscapeHTML(false) // Python's json does not escape <, > and &
	enc.Encode(v)
}

func (c *call) fail(code int, format string, args ...any) {
	name := faultNames[code]
	if name == "" {
		name = "computeFault"
	}
	c.json(code, map[string]any{name: map[string]any{"code": code, "message": fmt.Sprintf(format, args...)}})
}

func (e *Emulator) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	// The metadata service of server ID lives at /servers/ID/metadata-service.
	if rest, ok := strings.CutPrefix(p, "/servers/"); ok {
		if id, rest, ok := strings.Cut(rest, "/metadata-service"); ok && !strings.Contains(id, "/") {
			e.serveMetadata(w, r, id, rest)
			return
		}
	}
	c := &call{e: e, w: w, r: r, minor: 1}
	if p == "/" || p == "/v2.1" || p == "/v2.1/" {
		e.count(r.Method + " " + strings.TrimSuffix(p, "/"))
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.fail(405, "The method specified is not allowed for this resource.")
			return
		}
		doc := e.versionDoc()
		if p == "/" {
			c.json(200, map[string]any{"versions": []any{doc}})
		} else {
			c.json(200, map[string]any{"version": doc})
		}
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2.1/")
	if !ok {
		e.count(r.Method + " /unknown")
		c.fail(404, "The resource could not be found.")
		return
	}
	segs := strings.Split(strings.Trim(rest, "/"), "/")
	if segs[0] == e.cfg.ProjectID { // endpoints may carry the project id
		segs = segs[1:]
	}
	route := routeOf(segs)
	e.count(r.Method + " " + route)

	// keystonemiddleware runs before Nova: auth failures come first.
	token := r.Header.Get("X-Auth-Token")
	if token == "" {
		c.unauthorized()
		return
	}
	if v := e.cfg.ValidateToken; v != nil {
		if err := v(r.Context(), token); errors.Is(err, ErrInvalidToken) {
			c.unauthorized()
			return
		} else if err != nil {
			c.fail(503, "Unable to validate the token: %v", err)
			return
		}
	}
	if !c.negotiate() {
		return
	}
	if c.injectFault() {
		return
	}

	id := ""
	if len(segs) > 1 {
		id = segs[1]
	}
	m := r.Method
	switch {
	case route == "/servers" && m == http.MethodGet:
		c.list(false)
	case route == "/servers" && m == http.MethodPost:
		c.create()
	case route == "/servers/detail" && m == http.MethodGet:
		c.list(true)
	case route == "/servers/{id}" && m == http.MethodGet:
		c.show(id)
	case route == "/servers/{id}" && m == http.MethodDelete:
		c.delete(id)
	case route == "/servers/{id}/metadata" && m == http.MethodGet:
		c.metadata(id, "")
	case route == "/servers/{id}/metadata/{key}" && m == http.MethodGet:
		c.metadata(id, segs[3])
	case route == "/servers/{id}/action" && m == http.MethodPost:
		c.action(id)
	case route == "/flavors/{id}" && m == http.MethodGet:
		c.flavor(id)
	case route == "/unknown":
		c.fail(404, "The resource could not be found.")
	default:
		c.fail(405, "The method specified is not allowed for this resource.")
	}
}

// routeOf names the route template of the path segments below /v2.1/.
func routeOf(segs []string) string {
	if len(segs) == 2 && segs[0] == "flavors" && segs[1] != "detail" {
		return "/flavors/{id}"
	}
	if len(segs) == 0 || segs[0] != "servers" {
		return "/unknown"
	}
	switch {
	case len(segs) == 1:
		return "/servers"
	case len(segs) == 2 && segs[1] == "detail":
		return "/servers/detail"
	case len(segs) == 2:
		return "/servers/{id}"
	case len(segs) == 3 && (segs[2] == "metadata" || segs[2] == "action"):
		return "/servers/{id}/" + segs[2]
	case len(segs) == 4 && segs[2] == "metadata":
		return "/servers/{id}/metadata/{key}"
	}
	return "/unknown"
}

func (e *Emulator) count(key string) {
	e.mu.Lock()
	e.calls[key]++
	e.mu.Unlock()
}

func (e *Emulator) versionDoc() map[string]any {
	return map[string]any{
		"id": "v2.1", "status": "CURRENT", "version": MaxMicroversion, "min_version": MinMicroversion,
		"updated": "2013-07-23T11:33:21Z",
		"links": []any{
			map[string]any{"rel": "self", "href": e.base + "/v2.1/"},
			map[string]any{"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
		},
		"media-types": []any{map[string]any{"base": "application/json",
			"type": "application/vnd.openstack.compute+json;version=2.1"}},
	}
}

// negotiate picks the microversion from OpenStack-API-Version (preferred)
// or X-OpenStack-Nova-API-Version, default 2.1, and echoes it.
func (c *call) negotiate() bool {
	want := ""
	for _, h := range c.r.Header.Values("OpenStack-API-Version") {
		for _, part := range strings.Split(h, ",") {
			if svc, v, ok := strings.Cut(strings.TrimSpace(part), " "); ok && strings.EqualFold(svc, "compute") {
				want = strings.TrimSpace(v)
			}
		}
	}
	if want == "" {
		want = strings.TrimSpace(c.r.Header.Get("X-OpenStack-Nova-API-Version"))
	}
	h := c.w.Header()
	h.Set("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")
	reqID := "req-" + newUUID()
	h.Set("X-Openstack-Request-Id", reqID)
	h.Set("X-Compute-Request-Id", reqID)
	switch {
	case want == "":
	case strings.EqualFold(want, "latest"):
		c.minor = maxMinor
	default:
		maj, min, ok := strings.Cut(want, ".")
		mj, err1 := strconv.Atoi(maj)
		mn, err2 := strconv.Atoi(min)
		if !ok || err1 != nil || err2 != nil || mj < 0 || mn < 0 {
			c.fail(400, "API Version String %s is of invalid format. Must be of format MajorNum.MinorNum.", want)
			return false
		}
		if mj != 2 || mn < 1 || mn > maxMinor {
			c.fail(406, "Version %s is not supported by the API. Minimum is %s and maximum is %s.",
				want, MinMicroversion, MaxMicroversion)
			return false
		}
		c.minor = mn
	}
	v := fmt.Sprintf("2.%d", c.minor)
	h.Set("OpenStack-API-Version", "compute "+v)
	h.Set("X-OpenStack-Nova-API-Version", v)
	return true
}

// unauthorized answers as keystonemiddleware does.
func (c *call) unauthorized() {
	c.json(401, map[string]any{"error": map[string]any{"code": 401, "title": "Unauthorized",
		"message": "The request you have made requires authentication."}})
}

// injectFault answers the request with an injected 500, 503 or 429, if the
// dice say so.
func (c *call) injectFault() bool {
	e := c.e
	e.mu.Lock()
	f := e.faults
	x := 2.0
	if f.ServerErrorRate+f.UnavailableRate+f.RateLimitRate > 0 {
		x = e.rng.Float64()
	}
	e.mu.Unlock()
	switch {
	case x < f.ServerErrorRate:
		c.fail(500, "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ "+
			"and attach the Nova API log if possible.\n<class 'novaemu.InjectedFault'>")
	case x < f.ServerErrorRate+f.UnavailableRate:
		c.fail(503, "The server is currently unavailable. Please try again at a later time.")
	case x < f.ServerErrorRate+f.UnavailableRate+f.RateLimitRate:
		after := int((f.RetryAfter + time.Second - 1) / time.Second)
		if f.RetryAfter <= 0 {
			after = 1
		}
		c.w.Header().Set("Retry-After", strconv.Itoa(after))
		c.json(429, map[string]any{"overLimit": map[string]any{"code": 429,
			"message": "This request was rate-limited.", "retryAfter": strconv.Itoa(after)}})
	default:
		return false
	}
	return true
}

// lookup returns server id, or answers 404 and returns nil. Called with
// e.mu held.
func (c *call) lookup(id string) *server {
	s := c.e.servers[id]
	if s == nil {
		c.fail(404, "Instance %s could not be found.", id)
	}
	return s
}

func (c *call) show(id string) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if s := c.lookup(id); s != nil {
		c.json(200, map[string]any{"server": c.view(s, true, true)})
	}
}

// findFlavor returns the flavor whose id is ref, else the one named ref
// (a server's flavorRef may be either here; Nova takes an id, and its
// create looks the flavor up by flavorid,
// nova/api/openstack/compute/servers.py).
func (e *Emulator) findFlavor(ref string) (Flavor, bool) {
	for _, f := range e.cfg.Flavors {
		if f.ID == ref {
			return f, true
		}
	}
	for _, f := range e.cfg.Flavors {
		if f.Name == ref {
			return f, true
		}
	}
	return Flavor{}, false
}

// flavor answers GET /flavors/{id} as nova/api/openstack/compute/flavors.py
// show does, with the view of nova/api/openstack/compute/views/flavors.py
// (description from 2.55, extra_specs from 2.61 are left out), and 404
// "Flavor X could not be found." (FlavorNotFound, nova/exception.py).
func (c *call) flavor(id string) {
	f, ok := c.e.findFlavor(id)
	if !ok {
		c.fail(404, "Flavor %s could not be found.", id)
		return
	}
	e := c.e
	c.json(200, map[string]any{"flavor": map[string]any{
		"id": f.ID, "name": f.Name, "vcpus": f.VCPUs, "ram": f.RAM, "disk": f.Disk,
		"OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": false, "swap": "",
		"rxtx_factor": 1.0, "os-flavor-access:is_public": true,
		"links": []any{
			map[string]any{"rel": "self", "href": e.base + "/v2.1/flavors/" + f.ID},
			map[string]any{"rel": "bookmark", "href": e.base + "/flavors/" + f.ID},
		},
	}})
}

func fmtTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

// view renders s as Nova's server view builder does for its owner (not an
// admin). Called with e.mu held.
func (c *call) view(s *server, detail, show bool) map[string]any {
	e := c.e
	m := map[string]any{"id": s.id, "name": s.name, "links": []any{
		map[string]any{"rel": "self", "href": e.base + "/v2.1/servers/" + s.id},
		map[string]any{"rel": "bookmark", "href": e.base + "/servers/" + s.id},
	}}
	if !detail {
		return m
	}
	var image any = ""
	if s.imageRef != "" {
		image = map[string]any{"id": s.imageRef, "links": []any{
			map[string]any{"rel": "bookmark", "href": e.base + "/images/" + s.imageRef}}}
	}
	var flavor any = map[string]any{"id": s.flavorRef, "links": []any{
		map[string]any{"rel": "bookmark", "href": e.base + "/flavors/" + s.flavorRef}}}
	if c.minor >= 47 {
		// A flavor the emulator does not know has unknown sizes: zero.
		fl, _ := e.findFlavor(s.flavorRef)
		flavor = map[string]any{"original_name": fl.Name, "vcpus": fl.VCPUs, "ram": fl.RAM, "disk": fl.Disk,
			"ephemeral": 0, "swap": 0, "extra_specs": map[string]any{}}
		if fl.Name == "" {
			flavor.(map[string]any)["original_name"] = s.flavorRef
		}
	}
	hostID := ""
	if s.vmState != vmBuilding {
		sum := sha256.Sum224([]byte(e.cfg.ProjectID + "novaemu-host"))
		hostID = fmt.Sprintf("%x", sum)
	}
	sgs := []any{}
	for _, g := range s.securityGroups {
		sgs = append(sgs, map[string]any{"name": g})
	}
	var taskState, keyName, launched any
	if s.taskState != "" {
		taskState = s.taskState
	}
	if s.keyName != "" {
		keyName = s.keyName
	}
	if !s.launchedAt.IsZero() {
		launched = s.launchedAt.UTC().Format("2006-01-02T15:04:05.000000")
	}
	configDrive := ""
	if s.configDrive {
		configDrive = "True"
	}
	for k, v := range map[string]any{
		"status": s.status(), "tenant_id": e.cfg.ProjectID, "user_id": e.cfg.UserID,
		"created": fmtTime(s.created), "updated": fmtTime(s.updated), "hostId": hostID,
		"addresses": map[string]any{}, "accessIPv4": s.accessIPv4, "accessIPv6": s.accessIPv6,
		"image": image, "flavor": flavor, "metadata": copyMap(s.metadata), "progress": 0,
		"key_name": keyName, "config_drive": configDrive, "security_groups": sgs,
		"OS-DCF:diskConfig": "MANUAL", "OS-EXT-AZ:availability_zone": s.az,
		"OS-EXT-STS:vm_state": s.vmState, "OS-EXT-STS:task_state": taskState,
		"OS-EXT-STS:power_state": s.powerState, "OS-SRV-USG:launched_at": launched,
		"OS-SRV-USG:terminated_at": nil, "os-extended-volumes:volumes_attached": []any{},
	} {
		m[k] = v
	}
	if s.fault != nil && (s.vmState == vmError || s.vmState == vmDeleted) {
		// Details of a 500 fault are for admins only.
		m["fault"] = map[string]any{"code": s.fault.code, "message": s.fault.message,
			"created": fmtTime(s.fault.created)}
	}
	if c.minor >= 9 {
		m["locked"] = false
	}
	if c.minor >= 19 {
		m["description"] = s.description
	}
	if c.minor >= 26 {
		m["tags"] = append([]string{}, s.tags...)
	}
	if c.minor >= 63 {
		m["trusted_image_certificates"] = nil
	}
	if c.minor >= 71 && show {
		m["server_groups"] = []any{}
	}
	if c.minor >= 73 {
		m["locked_reason"] = nil
	}
	if c.minor >= 90 {
		m["OS-EXT-SRV-ATTR:hostname"] = s.hostname
	}
	if c.minor >= 96 {
		m["pinned_availability_zone"] = nil
	}
	return m
}

// Query parameters of GET /servers that Nova rejects with "Invalid filter
// field" (joined tables). Nova has no metadata filter: finding servers by a
// label is what tags (2.26+) are for.
var joinedTableParams = map[string]bool{"block_device_mapping": true, "services": true,
	"metadata": true, "system_metadata": true, "info_cache": true, "security_groups": true,
	"pci_devices": true}

// Query parameters Nova accepts (query_params_v275) but the emulator, or
// Nova for a non-admin, ignores.
var ignoredParams = strings.Fields(`user_id project_id tenant_id launch_index image_ref image
	kernel_id ramdisk_id hostname key_name power_state vm_state task_state host node flavor
	launched_at terminated_at availability_zone display_name description display_description
	locked_by uuid root_device_name config_drive access_ip_v4 access_ip_v6 auto_disk_config
	progress sort_key sort_dir all_tenants soft_deleted deleted changes-since changes-before
	ip ip6 created_at locked`)

// validStatuses are the statuses Nova knows; the emulator's servers only
// ever have some of them.
var validStatuses = strings.Fields(`ACTIVE BUILD DELETED ERROR HARD_REBOOT MIGRATING PASSWORD
	PAUSED REBOOT REBUILD RESCUE RESIZE REVERT_RESIZE SHELVED SHELVED_OFFLOADED SHUTOFF
	SOFT_DELETED SUSPENDED UNKNOWN VERIFY_RESIZE`)

func (c *call) list(detail bool) {
	q := c.r.URL.Query()
	known := map[string]bool{"name": true, "status": true, "reservation_id": true, "limit": true,
		"marker": true, "tags": true, "tags-any": true, "not-tags": true, "not-tags-any": true}
	for _, k := range ignoredParams {
		known[k] = true
	}
	for k, v := range q {
		if joinedTableParams[k] || strings.HasPrefix(k, "_") {
			c.fail(400, "Invalid filter field: %s.", k)
			return
		}
		if c.minor >= 75 && !known[k] {
			c.fail(400, "Invalid input for query parameters %s. Value: %s. Additional properties are not allowed ('%s' was unexpected)", k, v, k)
			return
		}
	}
	limit := 1000 // Nova's [api]max_limit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.fail(400, "limit param must be an integer")
			return
		}
		if n < 0 {
			c.fail(400, "limit param must be positive")
			return
		}
		if n > 0 && n < limit {
			limit = n
		}
	}
	var nameRE *regexp.Regexp
	if v := q.Get("name"); v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			c.fail(400, "Invalid input for query parameters name. Value: %s. %v", v, err)
			return
		}
		nameRE = re
	}
	var statuses map[string]bool
	if vs, ok := q["status"]; ok {
		statuses = map[string]bool{}
		for _, v := range vs {
			v = strings.ToUpper(strings.TrimSpace(v))
			if v == "DELETED" {
				c.fail(403, "Only administrators may list deleted instances")
				return
			}
			if slices.Contains(validStatuses, v) {
				statuses[v] = true
			}
		}
		if len(statuses) == 0 {
			if c.minor >= 38 {
				c.fail(400, "Invalid status value")
				return
			}
			c.json(200, map[string]any{"servers": []any{}})
			return
		}
	}
	c.e.mu.Lock()
	all := make([]*server, 0, len(c.e.servers))
	for _, s := range c.e.servers {
		all = append(all, s)
	}
	// Nova's default order: created_at desc, id desc.
	sort.Slice(all, func(i, j int) bool { return all[i].seq > all[j].seq })
	if marker := q.Get("marker"); marker != "" {
		i := 0
		for i < len(all) && all[i].id != marker {
			i++
		}
		if i == len(all) {
			c.e.mu.Unlock()
			c.fail(400, "marker [%s] not found", marker)
			return
		}
		all = all[i+1:]
	}
	page := []any{}
	lastID := ""
	for _, s := range all {
		if len(page) == limit {
			break
		}
		if hidden := c.e.faults.HideFromListings; hidden > 0 && !s.launchedAt.IsZero() && time.Since(s.launchedAt) < hidden {
			continue // in a cell that does not respond (Faults.HideFromListings)
		}
		if nameRE != nil && !nameRE.MatchString(s.name) ||
			statuses != nil && !statuses[s.status()] ||
			q.Has("reservation_id") && s.reservationID != q.Get("reservation_id") ||
			c.minor >= 26 && !tagsMatch(q, s.tags) {
			continue
		}
		page = append(page, c.view(s, detail, false))
		lastID = s.id
	}
	c.e.mu.Unlock()
	body := map[string]any{"servers": page}
	if len(page) == limit { // as Nova: a full page links to the next one
		q.Set("limit", strconv.Itoa(limit))
		q.Set("marker", lastID)
		body["servers_links"] = []any{map[string]any{"rel": "next",
			"href": c.e.base + c.r.URL.Path + "?" + q.Encode()}}
	}
	c.json(200, body)
}

// tagsMatch applies the tag filters of 2.26: tags (all of), tags-any,
// not-tags (not all of) and not-tags-any (none of), each a comma-separated
// list.
func tagsMatch(q url.Values, tags []string) bool {
	count := func(k string) (n, of int) {
		for _, t := range strings.Split(q.Get(k), ",") {
			if of++; slices.Contains(tags, t) {
				n++
			}
		}
		return n, of
	}
	n, of := count("tags")
	if q.Has("tags") && n < of {
		return false
	}
	if n, _ := count("tags-any"); q.Has("tags-any") && n == 0 {
		return false
	}
	if n, of := count("not-tags"); q.Has("not-tags") && n == of {
		return false
	}
	n, _ = count("not-tags-any")
	return !q.Has("not-tags-any") || n == 0
}

func (c *call) metadata(id, key string) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	s := c.lookup(id)
	if s == nil {
		return
	}
	if key == "" {
		c.json(200, map[string]any{"metadata": copyMap(s.metadata)})
		return
	}
	v, ok := s.metadata[key]
	if !ok {
		c.fail(404, "Metadata item was not found")
		return
	}
	c.json(200, map[string]any{"meta": map[string]string{key: v}})
}

func (c *call) delete(id string) {
	e := c.e
	e.mu.Lock()
	s := c.lookup(id)
	if s == nil {
		e.mu.Unlock()
		return
	}
	if s.deleting || s.vmState == vmSoftDel {
		e.mu.Unlock()
		c.w.WriteHeader(204)
		return
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if e.faults.DeleteFailures > 0 {
		// The compute host fails the terminate: the VM dies, the server
		// stays, in ERROR (Faults.DeleteFailures).
		e.faults.DeleteFailures--
		pid, done := s.pid, s.done
		s.taskState = "deleting"
		e.mu.Unlock()
		killAndWait(pid, done)
		e.mu.Lock()
		s.setError(500, "Failed to terminate instance: the hypervisor did not answer (injected by novaemu).")
		s.powerState = powerShutdown
		e.mu.Unlock()
		c.w.WriteHeader(204)
		return
	}
	if reclaim := e.faults.ReclaimInterval; reclaim > 0 && !s.launchedAt.IsZero() {
		// A soft delete (Faults.ReclaimInterval): powered off, kept, and
		// reclaimed later.
		pid, done := s.pid, s.done
		s.vmState, s.taskState, s.powerState, s.updated = vmSoftDel, "", powerShutdown, time.Now().UTC()
		s.timer = time.AfterFunc(reclaim, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.servers[id] == s && s.vmState == vmSoftDel {
				delete(e.servers, id)
			}
		})
		e.mu.Unlock()
		killAndWait(pid, done)
		c.w.WriteHeader(204)
		return
	}
	s.deleting, s.taskState, s.updated = true, "deleting", time.Now().UTC()
	pid, done, delay := s.pid, s.done, e.faults.DeleteDelay
	e.mu.Unlock()

	killAndWait(pid, done)
	os.RemoveAll(s.dir)

	e.mu.Lock()
	if delay <= 0 {
		delete(e.servers, id)
	} else {
		// Nova: task_state deleting, then vm_state deleted, then gone.
		s.timer = time.AfterFunc(delay/2, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.closed {
				return
			}
			s.vmState, s.taskState, s.powerState = vmDeleted, "", powerNoState
			s.timer = time.AfterFunc(delay-delay/2, func() {
				e.mu.Lock()
				delete(e.servers, id)
				e.mu.Unlock()
			})
		})
	}
	e.mu.Unlock()
	c.w.WriteHeader(204)
}

func (c *call) action(id string) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(c.r.Body).Decode(&body); err != nil || len(body) != 1 {
		c.fail(400, "Malformed request body")
		return
	}
	e := c.e
	e.mu.Lock()
	s := c.lookup(id)
	if s == nil {
		e.mu.Unlock()
		return
	}
	for name, arg := range body {
		switch name {
		case "os-getConsoleOutput":
			noConsole := e.faults.ConsoleNotImplemented
			e.mu.Unlock()
			if noConsole {
				// common.raise_feature_not_supported (Faults.ConsoleNotImplemented).
				c.fail(501, "The requested functionality is not supported.")
				return
			}
			c.consoleOutput(s, arg)
			return
		case "forceDelete", "restore":
			// nova/api/openstack/compute/deferred_delete.py: only a
			// SOFT_DELETED server can be force-deleted or restored.
			if s.vmState != vmSoftDel {
				state := s.vmState
				e.mu.Unlock()
				c.fail(409, "Cannot '%s' instance %s while it is in vm_state %s", name, id, state)
				return
			}
			if s.timer != nil {
				s.timer.Stop()
				s.timer = nil
			}
			if name == "restore" {
				s.vmState, s.powerState, s.updated = vmActive, powerRunning, time.Now().UTC()
			} else {
				delete(e.servers, id)
				os.RemoveAll(s.dir)
			}
			e.mu.Unlock()
			c.w.WriteHeader(202)
			return
		case "os-stop", "os-start":
			want, next := vmActive, vmStopped
			if name == "os-start" {
				want, next = vmStopped, vmActive
			}
			if s.vmState != want && !(name == "os-stop" && s.vmState == vmError) || s.taskState != "" {
				attr, state := "vm_state", s.vmState
				if s.taskState != "" {
					attr, state = "task_state", s.taskState
				}
				e.mu.Unlock()
				c.fail(409, "Cannot '%s' instance %s while it is in %s %s", strings.TrimPrefix(name, "os-"), id, attr, state)
				return
			}
			if next == vmStopped {
				s.setStopped()
			} else {
				// cloud-init runs user scripts once per instance: a restarted
				// VM runs nothing and idles until stopped or deleted.
				s.vmState, s.powerState, s.updated = vmActive, powerRunning, time.Now().UTC()
			}
			pid, done := s.pid, s.done
			e.mu.Unlock()
			if next == vmStopped {
				killAndWait(pid, done)
			}
			c.w.WriteHeader(202)
			return
		}
		e.mu.Unlock()
		c.fail(404, "There is no such action: %s", name)
	}
}

// consoleOutput answers os-getConsoleOutput: like libvirt, the last 100 KiB
// of the console log, then the last length lines, as Nova's compute manager
// cuts them.
func (c *call) consoleOutput(s *server, arg json.RawMessage) {
	var opts map[string]any
	if err := json.Unmarshal(arg, &opts); err != nil || opts == nil {
		c.fail(400, "Invalid input for field/attribute os-getConsoleOutput. Value: %s. %s is not of type 'object'", arg, arg)
		return
	}
	length := -1
	for k, v := range opts {
		if k != "length" {
			c.fail(400, "Invalid input for field/attribute os-getConsoleOutput. Value: %s. Additional properties are not allowed ('%s' was unexpected)", arg, k)
			return
		}
		n, ok := intValue(v)
		if v != nil && (!ok || n < -1) {
			c.fail(400, "Invalid input for field/attribute length. Value: %v. %v is not a valid length (an integer >= -1)", v, v)
			return
		}
		if v != nil {
			length = n
		}
	}
	c.e.mu.Lock()
	building := s.vmState == vmBuilding
	dir := s.dir
	c.e.mu.Unlock()
	if building {
		c.fail(409, "Instance %s is not ready", s.id)
		return
	}
	b, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	if len(b) > 100<<10 {
		b = b[len(b)-100<<10:]
	}
	out := string(b)
	if length >= 0 {
		lines := strings.Split(out, "\n")
		if length < len(lines) {
			lines = lines[len(lines)-length:]
		}
		out = strings.Join(lines, "\n")
	}
	// Nova strips control characters other than tab and newline.
	out = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' {
			return -1
		}
		return r
	}, out)
	c.json(200, map[string]any{"output": out})
}

// intValue reads a JSON integer or a string of one, as Nova's schemas that
// take ['integer', 'string'] with pattern '^-?[0-9]+$' do.
func intValue(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		if x != float64(int(x)) {
			return 0, false
		}
		return int(x), true
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	return 0, false
}

// createRequest is the parsed body of POST /servers.
type createRequest struct {
	name, imageRef, flavorRef, keyName, az, adminPass string
	accessIPv4, accessIPv6                            string
	description                                       *string
	metadata                                          map[string]string
	tags, securityGroups                              []string
	userData                                          []byte
	hasUserData, configDrive, returnReservation       bool
	networksAuto, networksAbsent                      bool
	minCount, maxCount                                int
}

func (c *call) create() {
	req, code, msg := c.parseCreate()
	if code != 0 {
		c.fail(code, "%s", msg)
		return
	}
	e := c.e
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		c.fail(503, "The server is shutting down.")
		return
	}
	f := e.faults
	if f.NetworkAmbiguous && (req.networksAuto || req.networksAbsent && c.minor < 37) {
		e.mu.Unlock()
		c.fail(409, "Multiple possible networks found, use a Network ID to be more specific.")
		return
	}
	n := req.maxCount
	quotaFault := ""
	if q := f.InstanceQuota; q > 0 && len(e.servers)+req.maxCount > q {
		// Nova makes as many as the quota allows between min and max.
		n = q - len(e.servers)
		if n < req.minCount {
			used := len(e.servers)
			msg := e.quotaMessage(req.minCount, req.maxCount, used, q)
			if !f.RecheckQuota {
				e.mu.Unlock()
				c.fail(403, "%s", msg)
				return
			}
			// The API's check passed (a racing create); the conductor's
			// recheck will fail.
			n, quotaFault = req.maxCount, msg
		}
	}
	now := time.Now().UTC()
	resv := "r-" + randomString(8, "abcdefghijklmnopqrstuvwxyz0123456789")
	var first *server
	for i := 0; i < n; i++ {
		e.seq++
		name := req.name
		if n > 1 {
			name = fmt.Sprintf("%s-%d", req.name, i+1)
		}
		s := &server{
			id: newUUID(), name: name, imageRef: req.imageRef, flavorRef: req.flavorRef,
			keyName: req.keyName, az: req.az, description: req.description,
			accessIPv4: req.accessIPv4, accessIPv6: req.accessIPv6,
			metadata: copyMap(req.metadata), tags: append([]string{}, req.tags...),
			securityGroups: req.securityGroups, userData: req.userData, hasUserData: req.hasUserData,
			configDrive: req.configDrive, reservationID: resv, launchIndex: i, seq: e.seq,
			created: now, updated: now, vmState: vmBuilding, taskState: "scheduling", exitCode: -1,
		}
		s.hostname = sanitizeHostname(name, "Server-"+s.id)
		s.dir = filepath.Join(e.root, s.id)
		if err := os.MkdirAll(s.home(), 0o700); err != nil {
			e.mu.Unlock()
			c.fail(500, "Unexpected API Error: %v", err)
			return
		}
		delay := f.BootDelay
		if f.BootJitter > 0 {
			delay += time.Duration(e.rng.Int64N(int64(f.BootJitter)))
		}
		s.failBoot = f.BootFailureRate > 0 && e.rng.Float64() < f.BootFailureRate
		s.quotaFault = quotaFault
		if !f.StuckBuild || quotaFault != "" {
			s.timer = time.AfterFunc(delay, func() { e.boot(s) })
		}
		e.servers[s.id] = s
		if first == nil {
			first = s
		}
	}
	e.mu.Unlock()

	var body map[string]any
	if req.returnReservation {
		body = map[string]any{"reservation_id": resv}
	} else {
		e.mu.Lock()
		v := c.view(first, false, false)
		e.mu.Unlock()
		delete(v, "name") // Nova's create view has no name
		v["OS-DCF:diskConfig"] = "MANUAL"
		sgs := []any{}
		for _, g := range req.securityGroups {
			sgs = append(sgs, map[string]any{"name": g})
		}
		v["security_groups"] = sgs
		if pw := req.adminPass; pw != "" || e.cfg.EnableInstancePassword {
			if pw == "" {
				pw = randomString(12, "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
			}
			v["adminPass"] = pw
		}
		body = map[string]any{"server": v}
		c.w.Header().Set("Location", e.base+"/v2.1/servers/"+first.id)
	}
	if d := f.CreateResponseDelay; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			return
		case <-e.closing:
			return
		}
	}
	c.json(202, body)
}

// quotaMessage words a refusal of min..max more servers, used of quota
// being in use, as Faults.QuotaStyle says. Called with e.mu held.
func (e *Emulator) quotaMessage(minCount, maxCount, used, quota int) string {
	switch e.faults.QuotaStyle {
	case QuotaUnified:
		// ProjectOverLimit of an OverLimitInfo list (nova/limit/placement.py).
		return fmt.Sprintf("Project %s is over a limit for [Resource servers is over limit of %d due to current usage %d and delta %d]",
			e.cfg.ProjectID, quota, used, minCount)
	case QuotaPorts:
		return "Maximum number of ports exceeded"
	}
	want := strconv.Itoa(minCount)
	if minCount != maxCount {
		want = fmt.Sprintf("%d-%d", minCount, maxCount)
	}
	return fmt.Sprintf("Quota exceeded for instances: Requested %s, but already used %d of %d instances", want, used, quota)
}

// Fields of the server object of POST /servers by the microversion that
// introduced them (and, for personality, removed it), as Nova's
// base_create schemas have them (additionalProperties: false).
var createFields = map[string][2]int{
	"name": {1, 0}, "imageRef": {1, 0}, "flavorRef": {1, 0}, "adminPass": {1, 0},
	"metadata": {1, 0}, "networks": {1, 0}, "OS-DCF:diskConfig": {1, 0}, "accessIPv4": {1, 0},
	"accessIPv6": {1, 0}, "personality": {1, 57}, "availability_zone": {1, 0},
	"block_device_mapping": {1, 0}, "block_device_mapping_v2": {1, 0}, "config_drive": {1, 0},
	"key_name": {1, 0}, "min_count": {1, 0}, "max_count": {1, 0}, "return_reservation_id": {1, 0},
	"security_groups": {1, 0}, "user_data": {1, 0}, "description": {19, 0}, "tags": {52, 0},
	"trusted_image_certificates": {63, 0}, "host": {74, 0}, "hypervisor_hostname": {74, 0},
	"hostname": {90, 0},
}

// parseCreate validates a POST /servers body as Nova's schema and
// controller do. It returns a status code and message on failure.
func (c *call) parseCreate() (*createRequest, int, string) {
	var top map[string]json.RawMessage
	if err := json.NewDecoder(c.r.Body).Decode(&top); err != nil {
		return nil, 400, "Malformed request body: " + err.Error()
	}
	bad := func(field string, v json.RawMessage, why string) (*createRequest, int, string) {
		return nil, 400, fmt.Sprintf("Invalid input for field/attribute %s. Value: %s. %s", field, v, why)
	}
	for k := range top {
		if k != "server" && k != "os:scheduler_hints" && k != "OS-SCH-HNT:scheduler_hints" {
			return nil, 400, fmt.Sprintf("Additional properties are not allowed ('%s' was unexpected)", k)
		}
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(top["server"], &f); err != nil || f == nil {
		return nil, 400, "'server' is a required property"
	}
	rawServer := top["server"]
	for k := range f {
		r, ok := createFields[k]
		if !ok || c.minor < r[0] || r[1] != 0 && c.minor >= r[1] {
			return bad("server", rawServer, fmt.Sprintf("Additional properties are not allowed ('%s' was unexpected)", k))
		}
	}
	required := []string{"name", "flavorRef"}
	if c.minor >= 37 {
		required = append(required, "networks")
	}
	for _, k := range required {
		if _, ok := f[k]; !ok {
			return bad("server", rawServer, fmt.Sprintf("'%s' is a required property", k))
		}
	}
	req := &createRequest{az: c.e.cfg.AvailabilityZone, minCount: 1, securityGroups: []string{"default"}}
	str := func(k string, dst *string) string {
		v, ok := f[k]
		if !ok {
			return ""
		}
		if err := json.Unmarshal(v, dst); err != nil || string(v) == "null" {
			return fmt.Sprintf("Invalid input for field/attribute %s. Value: %s. %s is not of type 'string'", k, v, v)
		}
		return ""
	}
	for k, dst := range map[string]*string{"name": &req.name, "imageRef": &req.imageRef,
		"key_name": &req.keyName, "availability_zone": &req.az, "adminPass": &req.adminPass,
		"accessIPv4": &req.accessIPv4, "accessIPv6": &req.accessIPv6} {
		if msg := str(k, dst); msg != "" {
			return nil, 400, msg
		}
	}
	for k, v := range map[string]string{"name": req.name, "key_name": req.keyName, "availability_zone": req.az} {
		if _, ok := f[k]; ok && !validName(v) {
			return bad(k, f[k], fmt.Sprintf("An invalid '%s' value was provided. The name must be: printable characters. Can not start or end with whitespace.", k))
		}
	}
	// flavorRef: a non-empty string or an integer.
	var fl any
	json.Unmarshal(f["flavorRef"], &fl)
	switch x := fl.(type) {
	case string:
		req.flavorRef = x
	case float64:
		req.flavorRef = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return bad("flavorRef", f["flavorRef"], fmt.Sprintf("%s is not of type 'string', 'integer'", f["flavorRef"]))
	}
	if req.flavorRef == "" {
		return bad("flavorRef", f["flavorRef"], "'' is too short")
	}
	if v, ok := f["description"]; ok && string(v) != "null" {
		var d string
		if err := json.Unmarshal(v, &d); err != nil || utf8.RuneCountInString(d) > 255 {
			return bad("description", v, "must be a string of at most 255 characters or null")
		}
		req.description = &d
	}
	if v, ok := f["metadata"]; ok {
		var md map[string]any
		if err := json.Unmarshal(v, &md); err != nil || md == nil {
			return bad("metadata", v, fmt.Sprintf("%s is not of type 'object'", v))
		}
		req.metadata = map[string]string{}
		for k, x := range md {
			s, isStr := x.(string)
			switch {
			case !validMetaKey(k):
				return bad("metadata", v, fmt.Sprintf("Additional properties are not allowed ('%s' was unexpected)", k))
			case !isStr:
				return bad(k, v, fmt.Sprintf("%v is not of type 'string'", x))
			case utf8.RuneCountInString(s) > 255:
				return bad(k, v, fmt.Sprintf("'%s' is too long", s))
			}
			req.metadata[k] = s
		}
		if max := c.e.cfg.MetadataItems; len(md) > max {
			return nil, 403, fmt.Sprintf("Maximum number of metadata items exceeds %d", max)
		}
	}
	_, hasNetworks := f["networks"]
	req.networksAbsent = !hasNetworks
	if v, ok := f["networks"]; ok {
		var s string
		var list []map[string]any
		if json.Unmarshal(v, &list) != nil && (c.minor < 37 || json.Unmarshal(v, &s) != nil || s != "auto" && s != "none") {
			return bad("networks", v, fmt.Sprintf("%s is not valid under any of the given schemas", v))
		}
		req.networksAuto = s == "auto"
		for _, n := range list {
			for k := range n {
				if k != "uuid" && k != "port" && k != "fixed_ip" && !(k == "tag" && c.minor >= 32) {
					return bad("networks", v, fmt.Sprintf("Additional properties are not allowed ('%s' was unexpected)", k))
				}
			}
		}
	}
	if v, ok := f["security_groups"]; ok {
		var sgs []map[string]string
		if err := json.Unmarshal(v, &sgs); err != nil {
			return bad("security_groups", v, fmt.Sprintf("%s is not of type 'array' of {'name': string}", v))
		}
		req.securityGroups = nil
		seen := map[string]bool{}
		for _, g := range sgs {
			if n := g["name"]; n != "" && !seen[n] {
				seen[n] = true
				req.securityGroups = append(req.securityGroups, n)
			}
		}
	}
	if v, ok := f["user_data"]; ok {
		var s string
		if err := json.Unmarshal(v, &s); err != nil || string(v) == "null" {
			return bad("user_data", v, fmt.Sprintf("%s is not of type 'string'", v))
		}
		if len(s) > 65535 { // the limit is on the base64 text
			return bad("user_data", v, "is too long (the base64 text is limited to 65535 characters)")
		}
		b, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\n", "", "\r", "").Replace(s))
		if err != nil {
			return bad("user_data", v, fmt.Sprintf("'%s' is not a 'base64'", s))
		}
		req.userData, req.hasUserData = b, true
	}
	if v, ok := f["tags"]; ok {
		if err := json.Unmarshal(v, &req.tags); err != nil || len(req.tags) > 50 {
			return bad("tags", v, "must be an array of at most 50 strings")
		}
		for _, t := range req.tags {
			if t == "" || utf8.RuneCountInString(t) > 60 || strings.ContainsAny(t, "/,") {
				return bad("tags", v, fmt.Sprintf("'%s' is not a valid tag (1-60 characters, no '/' or ',')", t))
			}
		}
	}
	for k, dst := range map[string]*int{"min_count": &req.minCount, "max_count": &req.maxCount} {
		if v, ok := f[k]; ok {
			var x any
			json.Unmarshal(v, &x)
			n, isInt := intValue(x)
			if !isInt || n < 1 {
				return bad(k, v, fmt.Sprintf("%s is not a positive integer", v))
			}
			*dst = n
		}
	}
	if req.maxCount == 0 {
		req.maxCount = req.minCount
	}
	if req.minCount > req.maxCount {
		return nil, 400, "min_count must be <= max_count"
	}
	for k, dst := range map[string]*bool{"return_reservation_id": &req.returnReservation, "config_drive": &req.configDrive} {
		if v, ok := f[k]; ok {
			b, isBool := boolValue(v)
			if !isBool {
				return bad(k, v, fmt.Sprintf("%s is not of type 'boolean', 'string'", v))
			}
			*dst = b
		}
	}
	if req.imageRef == "" {
		_, bdm := f["block_device_mapping_v2"]
		_, bdm1 := f["block_device_mapping"]
		if !bdm && !bdm1 {
			return nil, 400, "Missing imageRef attribute"
		}
	}
	return req, 0, ""
}

// boolValue reads Nova's parameter_types.boolean: a JSON boolean or one of
// the strings oslo's bool_from_string accepts.
func boolValue(v json.RawMessage) (bool, bool) {
	var x any
	json.Unmarshal(v, &x)
	switch b := x.(type) {
	case bool:
		return b, true
	case string:
		switch strings.ToLower(b) {
		case "true", "1", "on", "yes", "y", "t":
			return true, true
		case "false", "0", "off", "no", "n", "f":
			return false, true
		}
	}
	return false, false
}

// validName is Nova's "name" format: 1-255 printable characters, not
// starting or ending with whitespace.
func validName(s string) bool {
	n := utf8.RuneCountInString(s)
	if n < 1 || n > 255 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	return !unicode.IsSpace(first) && !unicode.IsSpace(last)
}

// validMetaKey is Nova's metadata key pattern ^[a-zA-Z0-9-_:. ]{1,255}$.
// Note: no "/" and no "=".
func validMetaKey(k string) bool {
	if len(k) < 1 || len(k) > 255 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_:. ", r)) {
			return false
		}
	}
	return true
}
