#!/usr/bin/env bash
# keystone-dev.sh - a throw-away OpenStack Keystone (identity v3) on loopback,
# from Debian (bookworm) packages, for CI and tests: sqlite (WAL) under uwsgi,
# its own keystone.conf in DIR (never /etc/keystone), nothing else touched.
#
# Usage:  keystone-dev.sh {install|start|stop|status|env|reset} [DIR]
#
#   install  apt-get install the Debian packages (no recommends) if missing
#   start    (default) db_sync + fernet/credential keys + bootstrap on first
#            use, start uwsgi, wait until it answers, make sure the users,
#            projects, roles and catalog below exist, write DIR/keystone.env,
#            DIR/admin.env and DIR/clouds.yaml and print keystone.env.
#            Idempotent: if this instance already runs healthy with the same
#            settings, it only prints.  Fails clearly if the port is taken.
#   stop     kill the uwsgi recorded in DIR/run/uwsgi.pid (never by name)
#   status   show the recorded process and whether /v3 answers
#   env      print DIR/keystone.env
#   reset    stop and delete DIR (only if this script created it)
#
# What 'start' sets up (region RegionOne, domain Default):
#   admin / $KEYSTONE_ADMIN_PASSWORD     role admin on project admin (bootstrap)
#   tester / testing                     roles member and rack-child on
#                                        project "test" (rack-child: not a
#                                        Swift operator role, what rack's
#                                        child credentials carry)
#   swift / $SWIFT_KS_SERVICE_PASSWORD   role admin on project "service" (the
#                                        Swift proxy's keystonemiddleware user)
#   catalog: identity  http://IP:PORT/v3/ (public, internal, admin)
#            object-store (swift) http://IP:$SWIFT_KS_PROXY_PORT/v1/AUTH_%(project_id)s
#                         (public, internal): the Keystone-authenticated proxy
#                         that 'SWIFT_KEYSTONE_URL=... swift-saio.sh start' runs
#            compute (nova) $NOVA_URL (public, internal), only if NOVA_URL is set
#   Endpoints are created or updated to these URLs on every (re)start.
#
# Policy (DIR/policy.yaml): creating EC2 credentials (OS-EC2, and the
# credentials API) needs the role member (or admin) besides owning them,
# so a token of an application credential that carries only rack-child or
# reader cannot make one (an EC2 credential has no access rules and
# outlives the application credential's revocation).
#
# Files written (mode 600 where they hold passwords):
#   DIR/keystone.env  OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME
#                     OS_USER_DOMAIN_NAME OS_PROJECT_DOMAIN_ID OS_REGION_NAME
#                     OS_IDENTITY_API_VERSION OS_INTERFACE (user tester)
#   DIR/admin.env     the same for admin
#   DIR/clouds.yaml   clouds "rack-test" (tester) and "rack-test-admin":
#                     OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml OS_CLOUD=rack-test
#
# Settings (environment):
#   KEYSTONE_DATA_DIR         DIR if no argument is given     (/tmp/keystone-dev)
#   KEYSTONE_BIND_IP          listen address                  (127.0.0.1)
#   KEYSTONE_PORT             listen port                     (5000)
#   KEYSTONE_ADMIN_PASSWORD   admin's password                (adminpw)
#   KEYSTONE_TOKEN_EXPIRATION token lifetime in seconds; short values are for
#                             token-refresh tests               (3600)
#   KEYSTONE_PROCESSES        uwsgi worker processes, ~140 MiB each (1)
#   KEYSTONE_THREADS          threads per worker process (8): uwsgi holds a
#                             thread until its client closes the connection
#                             (up to its 4 s socket timeout), and a busy
#                             Swift proxy closes late: with one thread,
#                             Keystone answered one request in ~5 s and its
#                             listen queue overflowed
#   KEYSTONE_START_TIMEOUT    seconds to wait for /v3         (60)
#   KEYSTONE_AUTO_INSTALL     1 = 'start' installs missing packages when root (1)
#   SWIFT_KS_PROXY_PORT       port of the Keystone-authenticated Swift proxy (8081)
#   SWIFT_KS_URL              object-store endpoint URL; overrides the above
#                             (http://127.0.0.1:PORT/v1/AUTH_%(project_id)s)
#   SWIFT_KS_SERVICE_PASSWORD password of the "swift" service user (swiftpw)
#   NOVA_URL                  if set, a "compute" service with this endpoint
#                             URL (e.g. http://127.0.0.1:8774/v2.1)
#
# Timings (2 cores, Debian 12, quiet machine): install ~31 s when Swift's
# packages are there already; first start ~6.5 s (db_sync + keys + bootstrap
# ~4.2 s, users/catalog ~0.7 s); restart of an existing DIR ~2-3 s; start
# when already running ~0.02 s; stop ~1 s.  Requests take a few ms (bcrypt
# at 4 rounds, in-process cache).  uwsgi RSS ~160 MiB.
#
# Needs: bash, curl, flock, the Debian packages in PACKAGES.  Gotchas handled:
# sqlite needs WAL or writes fail with "database is locked" (HTTP 500);
# /usr/bin/python3 is used because a python3 on PATH may be a pyenv shim.
set -euo pipefail

ACTION=${1:-start}
K=${2:-${KEYSTONE_DATA_DIR:-/tmp/keystone-dev}}
BIND=${KEYSTONE_BIND_IP:-127.0.0.1}
PORT=${KEYSTONE_PORT:-5000}
ADMIN_PW=${KEYSTONE_ADMIN_PASSWORD:-adminpw}
EXPIRATION=${KEYSTONE_TOKEN_EXPIRATION:-3600}
PROCESSES=${KEYSTONE_PROCESSES:-1}
THREADS=${KEYSTONE_THREADS:-8}
START_TIMEOUT=${KEYSTONE_START_TIMEOUT:-60}
AUTO_INSTALL=${KEYSTONE_AUTO_INSTALL:-1}
KS_PROXY_PORT=${SWIFT_KS_PROXY_PORT:-8081}
SWIFT_URL=${SWIFT_KS_URL:-http://$BIND:$KS_PROXY_PORT/v1/AUTH_%(project_id)s}
SWIFT_SVC_PW=${SWIFT_KS_SERVICE_PASSWORD:-swiftpw}
NOVA=${NOVA_URL:-}
PY=/usr/bin/python3
PACKAGES="keystone python3-keystonemiddleware sqlite3 uwsgi-core uwsgi-plugin-python3 curl"

case "$K" in /*) ;; *) K="$(pwd)/$K" ;; esac
K=${K%/}
RUN=$K/run LOG=$K/log
U=http://$BIND:$PORT/v3

log() { echo "keystone-dev: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

[[ "$PORT" =~ ^[0-9]+$ && "$KS_PROXY_PORT" =~ ^[0-9]+$ ]] || die "KEYSTONE_PORT and SWIFT_KS_PROXY_PORT must be numbers"
[[ "$EXPIRATION" =~ ^[0-9]+$ && "$EXPIRATION" -ge 10 ]] || die "KEYSTONE_TOKEN_EXPIRATION must be a number of seconds >= 10 (got '$EXPIRATION')"
[[ "$PROCESSES" =~ ^[1-9][0-9]*$ ]] || die "KEYSTONE_PROCESSES must be a positive number"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "KEYSTONE_THREADS must be a positive number"

# ---------------------------------------------------------------- install --
need_install() {
  local b
  for b in keystone-manage uwsgi sqlite3 curl flock; do
    command -v "$b" >/dev/null 2>&1 || return 0
  done
  [ -x /usr/bin/keystone-wsgi-public ] || return 0
  [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || [ -e /usr/lib/uwsgi/plugins/python311_plugin.so ] || return 0
  [ -r /usr/lib/python3/dist-packages/keystonemiddleware/__init__.py ] || return 0
  return 1
}

do_install() {
  need_install || { log "packages already installed"; return 0; }
  [ "$(id -u)" = 0 ] || die "packages missing and not root: apt-get install --no-install-recommends $PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  local t0; t0=$(date +%s%N)
  log "installing: $PACKAGES"
  # policy-rc.d (exit 101): the packaged init scripts must not start a
  # keystone on :5000; only create it when there is none.
  local prc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; prc=1
  fi
  local rc=0
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 $PACKAGES >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 $PACKAGES >/dev/null || rc=$?
  }
  [ "$prc" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install failed ($rc)"
  log "installed in $(ms_since "$t0") ms"
}

# ---------------------------------------------------------------- helpers --
port_busy() { (exec 3<>"/dev/tcp/$BIND/$1") 2>/dev/null; }

pid_alive() {   # pidfile -> 0 if the recorded process is alive and is ours
  local f=$1 pid marker cmd
  [ -s "$f" ] || return 1
  pid=$(sed -n 1p "$f"); marker=$(sed -n 2p "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [ -n "$cmd" ] && [[ "$cmd" == *"$marker"* ]]   # empty cmdline: a zombie
}

healthy() { curl -fsS -o /dev/null --max-time 3 "$U" 2>/dev/null; }

fingerprint() {
  echo "$BIND $PORT $ADMIN_PW $EXPIRATION $PROCESSES $THREADS $SWIFT_URL $SWIFT_SVC_PW $NOVA $(md5sum < "$0")" | md5sum | cut -c1-32
}

# ------------------------------------------------------------------ stop --
do_stop() {
  local f=$RUN/uwsgi.pid pid pgid
  [ -e "$f" ] || { log "nothing to stop in $K"; return 0; }
  if pid_alive "$f"; then
    pid=$(sed -n 1p "$f")
    pgid=$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f3 || true)
    # uwsgi runs in its own session (setsid): its group holds the workers
    if [ "$pgid" = "$pid" ]; then kill -TERM -- "-$pid" 2>/dev/null || true
    else kill -TERM "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 50); do pid_alive "$f" || break; sleep 0.1; done
    if pid_alive "$f"; then
      log "uwsgi ($pid) ignored SIGTERM, sending SIGKILL"
      if [ "$pgid" = "$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null || true
      else kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.2
    fi
    log "stopped uwsgi ($pid)"
  fi
  rm -f "$f" "$RUN/fingerprint"
}

# ----------------------------------------------------------------- config --
write_conf() {
  mkdir -p "$K/fernet-keys" "$K/credential-keys" "$LOG" "$RUN"
  chmod 700 "$K" "$K/fernet-keys" "$K/credential-keys"
  cat > "$K/keystone.conf" <<EOF
[DEFAULT]
use_stderr = true
log_file =
debug = false

[database]
connection = sqlite:///$K/keystone.sqlite

[token]
provider = fernet
expiration = $EXPIRATION

[fernet_tokens]
key_repository = $K/fernet-keys

[credential]
key_repository = $K/credential-keys

[oslo_policy]
policy_file = $K/policy.yaml

[identity]
# test passwords: the cheapest bcrypt (the default 12 rounds cost ~0.25 s a check)
password_hash_rounds = 4

[cache]
# in-process cache (one uwsgi process by default): token validation and
# role look-ups drop from ~250 ms to a few ms
enabled = true
backend = oslo_cache.dict
expiration_time = 600
EOF
  cat > "$K/policy.yaml" <<'EOF'
# keystone-dev.sh: an application credential's token without the role
# member (rack's child credentials carry rack-child or reader) cannot make
# EC2 credentials, which would carry the user's roles without its access
# rules and survive its revocation.
"identity:ec2_create_credential": "rule:admin_required or (role:member and rule:owner)"
"identity:create_credential": "rule:admin_required or (role:member and user_id:%(target.credential.user_id)s)"
EOF
  cat > "$K/uwsgi.ini" <<EOF
[uwsgi]
master = true
plugins = python3
lazy-apps = true
die-on-term = true
processes = $PROCESSES
threads = $THREADS
buffer-size = 65535
http-socket = $BIND:$PORT
chdir = $K
wsgi-file = /usr/bin/keystone-wsgi-public
env = OS_KEYSTONE_CONFIG_FILES=$K/keystone.conf
disable-logging = true
# http-socket closes the connection after each response but answers
# HTTP/1.1 without saying so: clients that reuse the connection get a reset
# (fatal for a POST). Keep-alive (http11-socket) would tie up the worker.
add-header = Connection: close
EOF
}

# First use: schema, keys, admin + identity endpoints.  db_sync and the two
# key setups are independent, so they run side by side.
init_db() {
  local KM=(keystone-manage --config-file "$K/keystone.conf") u g t0
  u=$(id -un) g=$(id -gn) t0=$(date +%s%N)
  rm -f "$K/keystone.sqlite" "$K/keystone.sqlite-wal" "$K/keystone.sqlite-shm"
  "${KM[@]}" db_sync >"$LOG/db_sync.log" 2>&1 & local p1=$!
  "${KM[@]}" fernet_setup --keystone-user "$u" --keystone-group "$g" >"$LOG/fernet_setup.log" 2>&1 & local p2=$!
  "${KM[@]}" credential_setup --keystone-user "$u" --keystone-group "$g" >"$LOG/credential_setup.log" 2>&1 & local p3=$!
  wait $p1 || { tail -n 20 "$LOG/db_sync.log" >&2; die "keystone-manage db_sync failed (log: $LOG/db_sync.log)"; }
  wait $p2 || die "keystone-manage fernet_setup failed (log: $LOG/fernet_setup.log)"
  wait $p3 || die "keystone-manage credential_setup failed (log: $LOG/credential_setup.log)"
  # WAL: without it the API hits "database is locked" (HTTP 500) on writes
  sqlite3 "$K/keystone.sqlite" 'PRAGMA journal_mode=WAL;' >/dev/null
  "${KM[@]}" bootstrap --bootstrap-password "$ADMIN_PW" --bootstrap-region-id RegionOne \
    --bootstrap-public-url "$U/" --bootstrap-internal-url "$U/" --bootstrap-admin-url "$U/" \
    >"$LOG/bootstrap.log" 2>&1 || { tail -n 20 "$LOG/bootstrap.log" >&2; die "keystone-manage bootstrap failed (log: $LOG/bootstrap.log)"; }
  echo "$ADMIN_PW" | md5sum | cut -c1-32 > "$RUN/bootstrapped"
  log "db_sync + keys + bootstrap: $(ms_since "$t0") ms"
}

# Users, projects, roles and catalog via the REST API, idempotently.
ensure_entities() {
  ADMIN_PW=$ADMIN_PW SWIFT_SVC_PW=$SWIFT_SVC_PW SWIFT_URL=$SWIFT_URL NOVA=$NOVA U=$U \
  "$PY" - <<'EOF'
import json, os, sys, urllib.error, urllib.request

U = os.environ['U']

def req(method, path, body=None, token=None, want=(200, 201, 204)):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(U + path, data=data, method=method)
    r.add_header('Content-Type', 'application/json')
    if token:
        r.add_header('X-Auth-Token', token)
    for attempt in range(5):
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                raw = resp.read()
                return resp, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            if e.code >= 500 and attempt < 4:      # sqlite busy under load
                continue
            if e.code in want:
                return e, None
            sys.exit('%s %s: HTTP %d %s' % (method, path, e.code, e.read()[:300]))

resp, _ = req('POST', '/auth/tokens', {'auth': {
    'identity': {'methods': ['password'], 'password': {'user': {
        'name': 'admin', 'domain': {'id': 'default'}, 'password': os.environ['ADMIN_PW']}}},
    'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}})
tok = resp.headers['X-Subject-Token']

def find(kind, **q):
    qs = '&'.join('%s=%s' % kv for kv in q.items())
    _, d = req('GET', '/%s?%s' % (kind, qs), token=tok)
    items = d[kind]
    return items[0] if items else None

def ensure(kind, body, **q):
    item = find(kind, **q)
    if item is None:
        _, d = req('POST', '/' + kind, {kind[:-1]: body}, token=tok)
        item = d[kind[:-1]]
    return item

def ensure_user(name, password, project, role):
    u = find('users', name=name, domain_id='default')
    if u is None:
        u = ensure('users', {'name': name, 'domain_id': 'default', 'password': password},
                   name=name, domain_id='default')
    else:   # keep the password in step with the settings
        req('PATCH', '/users/' + u['id'], {'user': {'password': password}}, token=tok)
    req('PUT', '/projects/%s/users/%s/roles/%s' % (project['id'], u['id'], role['id']), token=tok)

roles = {r: find('roles', name=r) for r in ('admin', 'member', 'rack-child', 'service')}
for r in ('member', 'rack-child', 'service'):
    if roles[r] is None:
        roles[r] = ensure('roles', {'name': r}, name=r)
service = ensure('projects', {'name': 'service', 'domain_id': 'default'}, name='service', domain_id='default')
test = ensure('projects', {'name': 'test', 'domain_id': 'default'}, name='test', domain_id='default')
ensure_user('swift', os.environ['SWIFT_SVC_PW'], service, roles['admin'])
ensure_user('swift', os.environ['SWIFT_SVC_PW'], service, roles['service'])
ensure_user('tester', 'testing', test, roles['member'])
ensure_user('tester', 'testing', test, roles['rack-child'])

def ensure_service(name, stype, url):
    svc = ensure('services', {'name': name, 'type': stype}, type=stype)
    _, d = req('GET', '/endpoints?service_id=' + svc['id'], token=tok)
    have = {e['interface']: e for e in d['endpoints'] if e.get('region_id') == 'RegionOne'}
    for iface in ('public', 'internal'):
        e = have.get(iface)
        if e is None:
            req('POST', '/endpoints', {'endpoint': {'service_id': svc['id'], 'interface': iface,
                                                    'region_id': 'RegionOne', 'url': url}}, token=tok)
        elif e['url'] != url:
            req('PATCH', '/endpoints/' + e['id'], {'endpoint': {'url': url}}, token=tok)

ensure_service('swift', 'object-store', os.environ['SWIFT_URL'])
if os.environ.get('NOVA'):
    ensure_service('nova', 'compute', os.environ['NOVA'])
else:   # NOVA_URL unset: no compute endpoints left over from an earlier start
    svc = find('services', type='compute')
    if svc is not None:
        _, d = req('GET', '/endpoints?service_id=' + svc['id'], token=tok)
        for e in d['endpoints']:
            req('DELETE', '/endpoints/' + e['id'], token=tok)
print(test['id'])
EOF
}

write_client_files() {
  local umask_was; umask_was=$(umask); umask 077
  local user pw proj f
  for f in keystone admin; do
    if [ "$f" = keystone ]; then user=tester pw=testing proj=test; else user=admin pw=$ADMIN_PW proj=admin; fi
    cat > "$K/$f.env.tmp" <<EOF
OS_AUTH_URL=$U
OS_USERNAME=$user
OS_PASSWORD=$pw
OS_PROJECT_NAME=$proj
OS_USER_DOMAIN_NAME=Default
OS_PROJECT_DOMAIN_ID=default
OS_REGION_NAME=RegionOne
OS_IDENTITY_API_VERSION=3
OS_INTERFACE=public
EOF
    mv -f "$K/$f.env.tmp" "$K/$f.env"
  done
  cat > "$K/clouds.yaml.tmp" <<EOF
# written by keystone-dev.sh: OS_CLIENT_CONFIG_FILE=$K/clouds.yaml
clouds:
  rack-test:
    auth_type: password
    auth:
      auth_url: $U
      username: tester
      password: testing
      project_name: test
      user_domain_name: Default
      project_domain_id: default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  rack-test-admin:
    auth_type: password
    auth:
      auth_url: $U
      username: admin
      password: "$ADMIN_PW"
      project_name: admin
      user_domain_name: Default
      project_domain_id: default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
EOF
  mv -f "$K/clouds.yaml.tmp" "$K/clouds.yaml"
  umask "$umask_was"
}

# ------------------------------------------------------------------ start --
do_start() {
  if need_install; then
    if [ "$AUTO_INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then do_install
    else die "keystone packages missing: run '$0 install' or apt-get install --no-install-recommends $PACKAGES"; fi
  fi
  if [ ! -e "$K/.keystone-dev" ]; then   # never adopt (and later 'reset') a foreign dir
    if [ -d "$K" ] && [ -n "$(ls -A "$K")" ]; then
      die "$K exists, is not empty and was not made by keystone-dev.sh; pick another directory"
    fi
    mkdir -p "$K" && touch "$K/.keystone-dev"
  fi
  exec 9>"$K/.lock"
  flock -w 120 9 || die "another keystone-dev.sh holds $K/.lock"

  local fp; fp=$(fingerprint)
  if pid_alive "$RUN/uwsgi.pid" && [ "$(cat "$RUN/fingerprint" 2>/dev/null)" = "$fp" ] && healthy; then
    log "already running at $U (dir $K)"
    cat "$K/keystone.env"; return 0
  fi
  do_stop >/dev/null 2>&1 || true   # a half-started or changed instance

  local t0; t0=$(date +%s%N)
  port_busy "$PORT" && die "port $BIND:$PORT is already in use (another Keystone? set KEYSTONE_PORT)"
  write_conf
  if [ ! -s "$K/keystone.sqlite" ] || [ ! -e "$RUN/bootstrapped" ] || \
     [ "$(cat "$RUN/bootstrapped")" != "$(echo "$ADMIN_PW" | md5sum | cut -c1-32)" ]; then
    init_db
  fi
  # setsid without --fork execs in place: $! is uwsgi's pid and its pgid;
  # 9>&- keeps the lock out of the daemon
  setsid uwsgi --ini "$K/uwsgi.ini" </dev/null >>"$LOG/uwsgi.log" 2>&1 9>&- &
  printf '%s\n%s\n' "$!" "$K/uwsgi.ini" > "$RUN/uwsgi.pid"
  local deadline=$(( $(date +%s) + START_TIMEOUT ))
  until healthy; do
    pid_alive "$RUN/uwsgi.pid" || { tail -n 30 "$LOG/uwsgi.log" >&2 || true; do_stop; die "uwsgi exited during start-up (log: $LOG/uwsgi.log)"; }
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 30 "$LOG/uwsgi.log" >&2 || true; do_stop; die "Keystone not answering at $U after ${START_TIMEOUT}s (log: $LOG/uwsgi.log)"; }
    sleep 0.1
  done
  log "answering at $U after $(ms_since "$t0") ms"
  local project_id
  project_id=$(ensure_entities 2>"$LOG/ensure.log") || { cat "$LOG/ensure.log" >&2; do_stop; die "setting up users and catalog failed"; }
  write_client_files
  echo "$project_id" > "$K/test-project-id"
  echo "$fp" > "$RUN/fingerprint"
  log "ready in $(ms_since "$t0") ms: project test = $project_id, object-store $SWIFT_URL${NOVA:+, compute $NOVA}; clouds: $K/clouds.yaml"
  cat "$K/keystone.env"
}

do_status() {
  if pid_alive "$RUN/uwsgi.pid"; then echo "uwsgi: running (pid $(sed -n 1p "$RUN/uwsgi.pid"))"
  elif [ -e "$RUN/uwsgi.pid" ]; then echo "uwsgi: DEAD (stale pid $(sed -n 1p "$RUN/uwsgi.pid"))"
  else echo "uwsgi: not started"; fi
  if healthy; then echo "keystone $U: OK"; else echo "keystone $U: not answering"; return 1; fi
}

do_reset() {
  do_stop
  [ -e "$K/.keystone-dev" ] || { log "$K was not created by keystone-dev.sh; not deleting"; return 0; }
  rm -rf "$K"
  log "removed $K"
}

case "$ACTION" in
  install) do_install ;;
  start)   do_start ;;
  stop)    do_stop ;;
  status)  do_status ;;
  env)     [ -s "$K/keystone.env" ] || die "no $K/keystone.env: run '$0 start $K' first"; cat "$K/keystone.env" ;;
  reset)   do_reset ;;
  *) echo "usage: $0 {install|start|stop|status|env|reset} [DIR]" >&2; exit 2 ;;
esac
