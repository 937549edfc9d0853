package novaemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Nova's vm_state and power_state values that the emulator uses.
const (
	vmBuilding = "building"
	vmActive   = "active"
	vmStopped  = "stopped"
	vmError    = "error"
	vmDeleted  = "deleted"
	vmSoftDel  = "soft-delete"

	powerNoState  = 0
	powerRunning  = 1
	powerShutdown = 4
)

// server is one emulated Nova instance. All fields are guarded by
// Emulator.mu.
type server struct {
	id, name, hostname  string
	imageRef, flavorRef string
	keyName, az         string
	description         *string
	accessIPv4          string
	accessIPv6          string
	metadata            map[string]string
	tags                []string
	securityGroups      []string
	userData            []byte
	hasUserData         bool
	configDrive         bool
	reservationID       string
	launchIndex         int
	seq                 int64
	created, updated    time.Time
	launchedAt          time.Time
	vmState, taskState  string
	powerState          int
	fault               *fault
	deleting            bool
	failBoot            bool
	quotaFault          string // the recheck's fault: the boot goes ERROR with it
	timer               *time.Timer
	dir                 string // console.log, user-data and home/
	pid, exitCode       int
	done                chan struct{} // closed once the process is reaped
}

type fault struct {
	code    int
	message string
	created time.Time
}

func (s *server) home() string { return filepath.Join(s.dir, "home") }

// status maps vm_state to the API status, as nova.api.openstack.common does
// for the states the emulator has.
func (s *server) status() string {
	switch s.vmState {
	case vmBuilding:
		return "BUILD"
	case vmActive:
		return "ACTIVE"
	case vmStopped:
		return "SHUTOFF"
	case vmError:
		return "ERROR"
	case vmDeleted:
		return "DELETED"
	case vmSoftDel:
		return "SOFT_DELETED"
	}
	return "UNKNOWN"
}

func (s *server) setError(code int, msg string) {
	now := time.Now().UTC()
	s.vmState, s.taskState, s.updated = vmError, "", now
	if s.powerState == powerRunning {
		s.powerState = powerShutdown
	}
	s.fault = &fault{code: code, message: msg, created: now}
}

func (s *server) setStopped() {
	s.vmState, s.taskState, s.powerState, s.updated = vmStopped, "", powerShutdown, time.Now().UTC()
}

// boot ends the BUILD phase of s: ERROR for an injected failure, else
// ACTIVE with its user-data script started.
func (e *Emulator) boot(s *server) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || s.deleting || e.servers[s.id] != s || s.vmState != vmBuilding {
		return
	}
	s.timer = nil
	if s.quotaFault != "" {
		// The conductor's quota recheck failed: ERROR before any host.
		s.setError(403, s.quotaFault)
		return
	}
	if s.failBoot {
		s.setError(500, "No valid host was found. There are not enough hosts available.")
		return
	}
	now := time.Now().UTC()
	s.vmState, s.taskState, s.powerState, s.launchedAt, s.updated = vmActive, "", powerRunning, now, now
	if err := e.startProcess(s); err != nil {
		s.setError(500, fmt.Sprintf("Build of instance %s aborted: %v", s.id, err))
	}
}

// startProcess runs s's user data if it is a "#!" script. Other user data
// is left alone, as cloud-init would leave data it does not run: the VM
// just idles. Called with e.mu held.
func (e *Emulator) startProcess(s *server) error {
	if !bytes.HasPrefix(s.userData, []byte("#!")) {
		return nil
	}
	line, _, _ := bytes.Cut(s.userData[2:], []byte("\n"))
	// Linux passes everything after the interpreter as one argument.
	interp, arg, _ := strings.Cut(strings.TrimSpace(string(line)), " ")
	arg = strings.TrimSpace(arg)
	if interp == "" {
		return fmt.Errorf("empty #! line")
	}
	script := filepath.Join(s.dir, "user-data")
	if err := os.WriteFile(script, s.userData, 0o600); err != nil {
		return err
	}
	console, err := os.OpenFile(filepath.Join(s.dir, "console.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer console.Close()
	// The script is passed to its interpreter rather than executed, so it
	// need not be executable and a concurrent fork cannot make exec fail
	// with ETXTBSY.
	var args []string
	if arg != "" {
		args = append(args, arg)
	}
	cmd := exec.Command(interp, append(args, script)...)
	cmd.Dir = s.home()
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	cmd.Env = []string{"PATH=" + path, "HOME=" + s.home(),
		"RACK_METADATA_URL=" + e.base + "/servers/" + s.id + "/metadata-service"}
	env, err := e.writeIdentity(s)
	if err != nil {
		return err
	}
	cmd.Env = append(cmd.Env, env...)
	// A file, not a pipe: Wait then returns when the script exits even if
	// a straggler still holds the descriptor.
	cmd.Stdout, cmd.Stderr = console, console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.pid, s.done = cmd.Process.Pid, make(chan struct{})
	go e.reap(s, cmd, s.pid, s.done)
	return nil
}

// reap waits for s's process. When the script exits, the VM's OS has
// powered off: whatever it left running dies with it and the server goes
// SHUTOFF (unless a stop, kill or delete already decided its state).
func (e *Emulator) reap(s *server, cmd *exec.Cmd, pid int, done chan struct{}) {
	cmd.Wait()
	syscall.Kill(-pid, syscall.SIGKILL)
	e.mu.Lock()
	s.pid, s.exitCode = 0, cmd.ProcessState.ExitCode()
	if s.vmState == vmActive && !s.deleting {
		if d := e.faults.ShutoffDelay; d > 0 && !e.closed {
			// Powered off, but Nova does not know yet (Faults.ShutoffDelay).
			s.powerState = powerShutdown
			s.timer = time.AfterFunc(d, func() {
				e.mu.Lock()
				defer e.mu.Unlock()
				if s.vmState == vmActive && !s.deleting && e.servers[s.id] == s {
					s.timer = nil
					s.setStopped()
				}
			})
		} else {
			s.setStopped()
		}
	}
	e.mu.Unlock()
	close(done)
}

// writeIdentity writes what a VM knows of itself without a metadata
// service, and returns the environment that points the VM at it:
// RACK_CLOUD_DIR (what cloud-init keeps in /var/lib/cloud:
// data/instance-id, the server's UUID, as cloud-init's OpenStack and
// ConfigDrive datasources name the instance) and, for a server with a
// config drive (asked for, or forced when there is no metadata service),
// RACK_CONFIG_DRIVE (the mounted config-2 filesystem, with
// openstack/latest/meta_data.json, as nova/virt/configdrive.py writes
// what nova/api/metadata/base.py serves). Called with e.mu held.
func (e *Emulator) writeIdentity(s *server) ([]string, error) {
	cloud := filepath.Join(s.dir, "cloud")
	if err := os.MkdirAll(filepath.Join(cloud, "data"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cloud, "data", "instance-id"), []byte(s.id+"\n"), 0o600); err != nil {
		return nil, err
	}
	env := []string{"RACK_CLOUD_DIR=" + cloud}
	if s.configDrive || e.faults.NoMetadataService {
		drive := filepath.Join(s.dir, "config-2")
		md := filepath.Join(drive, "openstack", "latest")
		if err := os.MkdirAll(md, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(md, "meta_data.json"), e.metaData(s), 0o600); err != nil {
			return nil, err
		}
		env = append(env, "RACK_CONFIG_DRIVE="+drive)
	}
	return env, nil
}

// metaData is s's openstack/latest/meta_data.json. Called with e.mu held.
func (e *Emulator) metaData(s *server) []byte {
	body, _ := json.Marshal(map[string]any{
		"uuid": s.id, "name": s.name, "hostname": s.hostname + ".novalocal",
		"meta": copyMap(s.metadata), "availability_zone": s.az,
		"project_id": e.cfg.ProjectID, "launch_index": s.launchIndex, "devices": []any{},
	})
	return body
}

// serveMetadata serves the per-server metadata service, the emulated
// http://169.254.169.254: rest is the path below it.
func (e *Emulator) serveMetadata(w http.ResponseWriter, r *http.Request, id, rest string) {
	e.mu.Lock()
	s := e.servers[id]
	if s == nil || s.deleting || e.faults.NoMetadataService || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		e.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	var body []byte
	ctype := "text/plain; charset=UTF-8"
	switch strings.Trim(rest, "/") {
	case "openstack/latest/meta_data.json":
		body = e.metaData(s)
		ctype = "application/json"
	case "openstack/latest/user_data", "latest/user-data":
		if !s.hasUserData {
			break
		}
		body = append([]byte{}, s.userData...)
		ctype = "application/octet-stream"
	case "latest/meta-data/instance-id":
		body = fmt.Appendf(nil, "i-%08x", s.seq) // EC2 ids are not the UUID
	}
	e.mu.Unlock()
	if body == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Write(body)
}

// sanitizeHostname derives a hostname from a display name as Nova's
// utils.sanitize_hostname does.
func sanitizeHostname(name, def string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		switch {
		case c == ' ' || c == '_' || c == '.':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteRune(c)
		}
	}
	h := b.String()
	if len(h) > 63 {
		h = h[:63]
	}
	h = strings.Trim(h, ".-")
	if h == "" {
		return def
	}
	return h
}
