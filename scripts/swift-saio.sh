#!/usr/bin/env bash
# swift-saio.sh - rack's own copy of the shared swift-saio.sh (adapted: a low
# listing limit, SWIFT_LISTING_LIMIT).  A throw-away OpenStack Swift "all in one" on loopback, built
# from Debian (bookworm) packages, for CI and tests.
#
# Usage:  swift-saio.sh {install|start|stop|restart|status|env|sweep|reset} [DATA_DIR]
#
#   install  apt-get install the Debian packages (no recommends) if missing
#   start    (default) write configs, build 1-replica rings, start memcached,
#            account/container/object servers, proxy (+ background runner),
#            wait until healthy and authenticated, print the credentials.
#            Idempotent: if this instance already runs healthy, it only prints.
#   stop     kill the processes recorded in DATA_DIR/run/*.pid (never by name)
#   restart  stop + start
#   sweep    one pass of container-updater, object-expirer, object-updater
#            (account stats, expired objects leave listings), ~2 s
#   status   show the recorded processes and the proxy health
#   env      print the shell variables (auth URL, user, key, storage URL)
#   reset    stop and delete DATA_DIR (only if it was created by this script)
#
# Keystone: with SWIFT_KEYSTONE_URL set (e.g. http://127.0.0.1:5000, the
# Keystone of scripts/keystone-dev.sh), 'start' also runs a second proxy on
# SWIFT_KS_PROXY_PORT (8081) on the same backends, memcached and rings, whose
# pipeline has keystonemiddleware's authtoken + Swift's keystoneauth where
# the first proxy has tempauth (tempurl, formpost, slo, dlo, ... as there).
# Accounts are AUTH_<project_id>; roles admin and member own their project's
# account (and so may set X-Account-Meta-Temp-URL-Key); any other role (e.g.
# rack-child, reader) reaches only what container ACLs grant.  authtoken
# has service_token_roles_required = true (a service token needs the role
# service), and the pipeline has the middlewares a production Swift runs
# (bulk, tempurl, copy, slo, dlo, versioned_writes, symlink), so rack's
# credential tests see their follow-on requests.  Its pid is recorded
# like the others; stop/reset stop it; the tempauth proxy is unchanged.
# Typical use (after 'keystone-dev.sh start'):
#   SWIFT_KEYSTONE_URL=http://127.0.0.1:5000 swift-saio.sh start DATA_DIR
#
# Settings (environment):
#   SWIFT_DATA_DIR         data dir if no argument is given   (/tmp/swift-saio)
#   SWIFT_BIND_IP          listen address                     (127.0.0.1)
#   SWIFT_PORT             proxy port                         (8080)
#   SWIFT_OBJECT_PORT      object server port                 (6200)
#   SWIFT_CONTAINER_PORT   container server port              (6201)
#   SWIFT_ACCOUNT_PORT     account server port                (6202)
#   SWIFT_MEMCACHED_PORT   private memcached port             (11212)
#   SWIFT_USER / SWIFT_KEY tempauth admin user and key        (test:tester / testing)
#   SWIFT_DEVICES          where object/container/account data lives
#                          (DATA_DIR/srv; falls back to /dev/shm or a tmpfs
#                          mount when that file system has no user xattrs)
#   SWIFT_SHM              tmpfs dir for that fallback         (/dev/shm)
#   SWIFT_RUN_AS           OS user the daemons run as         (current user)
#   SWIFT_WORKERS          proxy/backend worker processes, 0 = no fork  (0)
#   SWIFT_BACKGROUND       1 = run one extra process that loops over swift's
#                          ContainerUpdater, ObjectExpirer and ObjectUpdater
#                          (run_once, in-process): account object/byte counts
#                          get updated and expired objects leave listings.
#                          Without it GET of an expired object is still 404,
#                          but listings keep it; 'sweep' does one pass.  The
#                          stock daemons are not used: on bookworm each of
#                          their sweeps forks children that spend ~1.5 CPU-s
#                          in eventlet monkey-patching (2 cores saturated at
#                          interval 2).                        (1)
#   SWIFT_BACKGROUND_INTERVAL  seconds between passes; a pass never takes
#                          more than 1/3 of one core           (5)
#   SWIFT_LOG_LEVEL        DEBUG/INFO/WARNING                 (INFO)
#   SWIFT_START_TIMEOUT    seconds to wait for health         (60)
#   SWIFT_AUTO_INSTALL     1 = 'start' installs missing packages when root (1)
#   SWIFT_LISTING_LIMIT    container_listing_limit and account_listing_limit
#                          set in /etc/swift/swift.conf [swift-constraints]:
#                          the largest page a listing returns.  rack keeps it
#                          low so that ordinary tests exercise pagination;
#                          Swift's default is 10000.                (100)
#   SWIFT_KEYSTONE_URL     Keystone for the second proxy; unset = no second
#                          proxy                              (unset)
#   SWIFT_KS_PROXY_PORT    the Keystone proxy's port          (8081)
#   SWIFT_KS_SERVICE_USER / SWIFT_KS_SERVICE_PASSWORD / SWIFT_KS_SERVICE_PROJECT
#                          keystonemiddleware's service user (swift / swiftpw /
#                          service, as keystone-dev.sh creates them)
#   SWIFT_KS_TOKEN_CACHE_TIME  seconds keystonemiddleware caches a validated
#                          token in memcached: a revoked token stays valid
#                          that long (an expired one never does)  (300)
#
# Needs: bash, curl, the Debian packages listed in PACKAGES, /etc/swift/swift.conf
# (shipped by the 'swift' package; written here if missing).  No internet, no
# XFS, no loop device, no systemd.
set -euo pipefail

ACTION=${1:-start}
DATA=${2:-${SWIFT_DATA_DIR:-/tmp/swift-saio}}
BIND=${SWIFT_BIND_IP:-127.0.0.1}
PROXY_PORT=${SWIFT_PORT:-8080}
OBJ_PORT=${SWIFT_OBJECT_PORT:-6200}
CONT_PORT=${SWIFT_CONTAINER_PORT:-6201}
ACC_PORT=${SWIFT_ACCOUNT_PORT:-6202}
MC_PORT=${SWIFT_MEMCACHED_PORT:-11212}
AUTH_USER=${SWIFT_USER:-test:tester}
AUTH_KEY=${SWIFT_KEY:-testing}
RUN_AS=${SWIFT_RUN_AS:-$(id -un)}
WORKERS=${SWIFT_WORKERS:-0}
BACKGROUND=${SWIFT_BACKGROUND:-1}
BG_INTERVAL=${SWIFT_BACKGROUND_INTERVAL:-5}
LOG_LEVEL=${SWIFT_LOG_LEVEL:-INFO}
START_TIMEOUT=${SWIFT_START_TIMEOUT:-60}
AUTO_INSTALL=${SWIFT_AUTO_INSTALL:-1}
LISTING_LIMIT=${SWIFT_LISTING_LIMIT:-100}
KS_URL=${SWIFT_KEYSTONE_URL:-}
KS_URL=${KS_URL%/}
KS_PORT=${SWIFT_KS_PROXY_PORT:-8081}
KS_SVC_USER=${SWIFT_KS_SERVICE_USER:-swift}
KS_SVC_PW=${SWIFT_KS_SERVICE_PASSWORD:-swiftpw}
KS_SVC_PROJECT=${SWIFT_KS_SERVICE_PROJECT:-service}
KS_CACHE_TIME=${SWIFT_KS_TOKEN_CACHE_TIME:-300}
SHM=${SWIFT_SHM:-/dev/shm}
PY=/usr/bin/python3            # the system python that has the swift modules
PACKAGES="swift swift-proxy swift-account swift-container swift-object swift-object-expirer memcached python3-swiftclient curl"
[ -z "$KS_URL" ] || PACKAGES+=" python3-keystonemiddleware"

case "$DATA" in /*) ;; *) DATA="$(pwd)/$DATA" ;; esac
DATA=${DATA%/}
ETC=$DATA/etc RUN=$DATA/run LOG=$DATA/log CACHE=$DATA/cache
DEVICES=${SWIFT_DEVICES:-$DATA/srv}
ACCOUNT=${AUTH_USER%%:*} UNAME=${AUTH_USER#*:}
AUTH_URL="http://$BIND:$PROXY_PORT/auth/v1.0"
STORAGE_URL="http://$BIND:$PROXY_PORT/v1/AUTH_$ACCOUNT"

log() { echo "swift-saio: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- install --
need_install() {
  local b
  for b in swift-proxy-server swift-account-server swift-container-server \
           swift-object-server swift-object-expirer swift-container-updater \
           swift-object-updater memcached curl; do
    command -v "$b" >/dev/null 2>&1 || return 0
  done
  [ -r /usr/lib/python3/dist-packages/swift/__init__.py ] || return 0
  [ -z "$KS_URL" ] || [ -r /usr/lib/python3/dist-packages/keystonemiddleware/__init__.py ] || return 0
  return 1
}

do_install() {
  need_install || { log "packages already installed"; return 0; }
  [ "$(id -u)" = 0 ] || die "packages missing and not root: apt-get install $PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  log "installing: $PACKAGES"
  # policy-rc.d (exit 101) keeps the packaged init scripts from starting
  # daemons on the default ports; only create it when there is none.
  local prc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; prc=1
  fi
  local rc=0
  apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null || rc=$?
  }
  [ "$prc" = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || die "apt-get install failed ($rc)"
}

# ---------------------------------------------------------------- helpers --
port_busy() { (exec 3<>"/dev/tcp/$BIND/$1") 2>/dev/null; }

pid_alive() {   # pidfile -> 0 if the recorded process is alive and is ours
  local f=$1 pid marker
  [ -s "$f" ] || return 1
  pid=$(sed -n 1p "$f"); marker=$(sed -n 2p "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  local cmd
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *"$marker"* ]]
}

xattr_ok() {    # dir [chunks] -> 0 if a file there takes that many 254-byte user.* xattrs
  # swift pickles object metadata into 254-byte chunks user.swift.metadata,
  # user.swift.metadata1, ...; 4 KiB of user metadata + system metadata needs
  # ~32 chunks (~8 KiB).  ext4 keeps all xattrs of an inode in one block
  # (~3.5 KiB usable): big metadata then fails with ENOSPC -> 507 -> the proxy
  # error-limits the only device and answers 503 for a while.
  "$PY" - "$1" "${2:-2}" <<'EOF' 2>/dev/null
import os, sys
p = os.path.join(sys.argv[1], '.swift-saio-xattr-probe')
open(p, 'w').close()
try:
    for i in range(int(sys.argv[2])):
        os.setxattr(p, 'user.swift.metadata%s' % (i or ''), b'x' * 254)
    ok = os.getxattr(p, 'user.swift.metadata') == b'x' * 254
except OSError:
    ok = False
finally:
    os.unlink(p)
sys.exit(0 if ok else 1)
EOF
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

fingerprint() {
  echo "$BIND $PROXY_PORT $OBJ_PORT $CONT_PORT $ACC_PORT $MC_PORT $AUTH_USER $AUTH_KEY" \
       "$RUN_AS $WORKERS $BACKGROUND $BG_INTERVAL $LOG_LEVEL $LISTING_LIMIT ${SWIFT_DEVICES:-}" \
       "$KS_URL $KS_PORT $KS_SVC_USER $KS_SVC_PW $KS_SVC_PROJECT $KS_CACHE_TIME $(md5sum < "$0")" | md5sum | cut -c1-32
}

services() {
  echo "memcached account container object proxy"
  [ -n "$KS_URL" ] && echo "proxy-ks"
  [ "$BACKGROUND" = 1 ] && echo "background"
  return 0
}

# ------------------------------------------------------------------ stop --
stop_one() {
  local name=$1 f="$RUN/$1.pid" pid pgid
  [ -e "$f" ] || return 0
  if pid_alive "$f"; then
    pid=$(sed -n 1p "$f")
    pgid=$(sed -E 's/^.*\) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f3 || true)
    if [ "$pgid" = "$pid" ]; then   # own process group (setsid): take forked children too
      kill -TERM -- "-$pid" 2>/dev/null || true
    else
      kill -TERM "$pid" 2>/dev/null || true
    fi
    for _ in $(seq 1 50); do pid_alive "$f" || break; sleep 0.1; done
    if pid_alive "$f"; then
      log "$name ($pid) ignored SIGTERM, sending SIGKILL"
      if [ "$pgid" = "$pid" ]; then kill -KILL -- "-$pid" 2>/dev/null || true
      else kill -KILL "$pid" 2>/dev/null || true; fi
      sleep 0.2
    fi
    log "stopped $name ($pid)"
  fi
  rm -f "$f"
}

do_stop() {
  [ -d "$RUN" ] || { log "nothing to stop in $DATA"; return 0; }
  local n f
  # proxy first, memcached last
  for n in background proxy-ks proxy object container account memcached; do
    stop_one "$n"
  done
  for f in "$RUN"/*.pid; do      # anything else recorded (older layouts)
    [ -e "$f" ] && stop_one "$(basename "$f" .pid)"
  done
  rm -f "$RUN/fingerprint"
}

# ----------------------------------------------------------------- config --
set_constraint() {   # key value: set key in swift.conf's [swift-constraints]
  local f=/etc/swift/swift.conf key=$1 val=$2
  [[ "$val" =~ ^[0-9]+$ && "$val" -gt 0 ]] || die "$key must be a positive integer (got '$val')"
  grep -qE '^\[swift-constraints\]' "$f" || printf '\n[swift-constraints]\n' >> "$f"
  if grep -qE "^[[:space:]]*${key}[[:space:]]*=" "$f"; then
    grep -qE "^[[:space:]]*${key}[[:space:]]*=[[:space:]]*${val}[[:space:]]*\$" "$f" && return 0
    sed -i -E "s/^[[:space:]]*${key}[[:space:]]*=.*/$key = $val/" "$f"
  else
    sed -i -E "/^\[swift-constraints\]/a $key = $val" "$f"
  fi
  log "set $key = $val in $f"
}

write_configs() {
  mkdir -p "$ETC" "$RUN" "$LOG" "$CACHE" "$DEVICES"

  # swift.conf is always read from /etc/swift (hard-coded in swift.common.utils)
  if ! grep -qsE '^\s*swift_hash_path_(suffix|prefix)\s*=' /etc/swift/swift.conf; then
    [ -w /etc/swift ] || mkdir -p /etc/swift 2>/dev/null || die "/etc/swift/swift.conf missing and not writable"
    log "writing /etc/swift/swift.conf"
    cat > /etc/swift/swift.conf <<EOF
[swift-hash]
swift_hash_path_suffix = saio-suffix
swift_hash_path_prefix = saio-prefix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
EOF
  fi
  # listing limits: constraints are only read from /etc/swift/swift.conf
  set_constraint container_listing_limit "$LISTING_LIMIT"
  set_constraint account_listing_limit "$LISTING_LIMIT"

  # object data needs user xattrs (and room for ~8 KiB of them per file);
  # fall back to /dev/shm or a tmpfs mount (tmpfs has user xattrs since 6.6)
  local devs=$DEVICES full=32 fstype
  fstype=$(stat -f -c %T "$devs" 2>/dev/null || echo '?')
  if ! xattr_ok "$devs" "$full"; then
    local alt why="no user xattrs"
    alt="$SHM/swift-saio-$(echo "$DATA" | md5sum | cut -c1-8)"
    xattr_ok "$devs" 2 && why="xattr space per inode < 8 KiB"
    if [ -n "${SWIFT_DEVICES:-}" ] && [ "$why" != "no user xattrs" ]; then
      log "WARNING: $devs ($fstype): $why; objects with large metadata will get 507/503"
    elif mkdir -p "$alt" 2>/dev/null && xattr_ok "$alt" "$full"; then
      log "$devs ($fstype): $why; object data goes to $alt (tmpfs)"
      devs=$alt
      echo "$devs" > "$RUN/devices-fallback"
    elif [ "$(id -u)" = 0 ] && { mountpoint -q "$devs" || mount -t tmpfs -o "size=${SWIFT_TMPFS_SIZE:-2g}" tmpfs "$devs"; } \
         && xattr_ok "$devs" "$full"; then
      log "$devs ($fstype): $why; mounted a tmpfs there"
      echo "$devs" > "$RUN/tmpfs-mount"
    elif [ "$why" != "no user xattrs" ]; then
      log "WARNING: $devs ($fstype): $why and no tmpfs fallback; large metadata will fail"
    else
      die "$devs ($fstype) has no user xattrs and no tmpfs fallback worked; set SWIFT_DEVICES"
    fi
  fi
  echo "$devs" > "$RUN/devices"
  mkdir -p "$devs/sdb1"
  if [ "$RUN_AS" != "$(id -un)" ]; then
    [ "$(id -u)" = 0 ] || die "SWIFT_RUN_AS=$RUN_AS needs root"
    chown -R "$RUN_AS:" "$DATA" "$devs"
  fi

  local common="swift_dir = $ETC
devices = $devs
mount_check = false
disable_fallocate = true
fallocate_reserve = 0
bind_ip = $BIND
workers = $WORKERS
user = $RUN_AS
log_level = $LOG_LEVEL
recon_cache_path = $CACHE
eventlet_debug = false"

  cat > "$ETC/account-server.conf" <<EOF
[DEFAULT]
$common
bind_port = $ACC_PORT
log_name = account-server

[pipeline:main]
pipeline = healthcheck account-server

[app:account-server]
use = egg:swift#account

[filter:healthcheck]
use = egg:swift#healthcheck

[account-replicator]
[account-auditor]
[account-reaper]
EOF

  cat > "$ETC/container-server.conf" <<EOF
[DEFAULT]
$common
bind_port = $CONT_PORT
log_name = container-server

[pipeline:main]
pipeline = healthcheck container-server

[app:container-server]
use = egg:swift#container

[filter:healthcheck]
use = egg:swift#healthcheck

[container-replicator]
[container-updater]
log_name = container-updater
concurrency = 1
# default 60: after one failed account update the account is skipped 60 s
account_suppression_time = 1
[container-auditor]
[container-sync]
[container-sharder]
EOF

  cat > "$ETC/object-server.conf" <<EOF
[DEFAULT]
$common
bind_port = $OBJ_PORT
log_name = object-server

[pipeline:main]
pipeline = healthcheck object-server

[app:object-server]
use = egg:swift#object

[filter:healthcheck]
use = egg:swift#healthcheck

[object-replicator]
[object-reconstructor]
[object-updater]
log_name = object-updater
[object-auditor]
EOF

  local proxy_app="use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# one device only: a single 507/timeout must not blackhole it for the default 60 s
error_suppression_interval = 1"
  # memcache_max_connections: the default is 2 per server
  # (swift/common/middleware/memcache.py), with a 1 s wait for one; a busy
  # proxy timed out waiting, 10 timeouts in 60 s error-limit memcached for
  # 60 s (swift/common/memcached.py), and with it Keystone's token cache:
  # every request then went to Keystone, whose queue overflowed
  local cache="use = egg:swift#memcache
memcache_servers = $BIND:$MC_PORT
memcache_max_connections = 64"

  # extra tempauth users for ACL / reseller tests (skip one that clashes)
  local extra_users="" u
  for u in "test_tester3 = testing3" "test2_tester2 = testing2 .admin" "admin_admin = admin .admin .reseller_admin"; do
    [ "${u%% *}" = "${ACCOUNT}_${UNAME}" ] || extra_users+="user_$u"$'\n'
  done

  cat > "$ETC/proxy-server.conf" <<EOF
[DEFAULT]
$common
bind_port = $PROXY_PORT
log_name = proxy-server

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl formpost tempauth staticweb copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
$proxy_app
allow_versioned_writes = true
allow_object_versioning = true

[filter:tempauth]
use = egg:swift#tempauth
user_${ACCOUNT}_${UNAME} = $AUTH_KEY .admin
${extra_users}token_life = 86400

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
$cache
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:formpost]
use = egg:swift#formpost
[filter:staticweb]
use = egg:swift#staticweb
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true
[filter:symlink]
use = egg:swift#symlink
EOF

  # the Keystone proxy: the same file with authtoken + keystoneauth for
  # tempauth (tempurl and formpost stay in front of them, where Swift's
  # docs put them)
  rm -f "$ETC/proxy-server-ks.conf"
  if [ -n "$KS_URL" ]; then
    sed -e "s/^bind_port = .*/bind_port = $KS_PORT/" \
        -e "s/^log_name = proxy-server\$/log_name = proxy-server-ks/" \
        -e "s/^\(pipeline = .*\) tempauth /\1 authtoken keystoneauth /" \
        -e '/^\[filter:tempauth\]/,/^\[/{/^\[filter:catch_errors\]/!d}' \
        "$ETC/proxy-server.conf" > "$ETC/proxy-server-ks.conf"
    cat >> "$ETC/proxy-server-ks.conf" <<EOF

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = $KS_URL
auth_url = $KS_URL
auth_type = password
project_domain_id = default
user_domain_id = default
project_name = $KS_SVC_PROJECT
username = $KS_SVC_USER
password = $KS_SVC_PW
delay_auth_decision = True
# keep validated tokens in swift's memcached (the cache filter's client)
cache = swift.cache
token_cache_time = $KS_CACHE_TIME
# no retries: keystoneauth sleeps between them with time.sleep, which Swift's
# eventlet does not patch (swift/common/utils.py eventlet_monkey_patch patches
# socket, select and thread only), so one retry froze this whole one-process
# proxy for 0.5-4 s; its memcached client then timed out, was error-limited,
# the token cache went and every request hit Keystone, whose queue overflowed.
# A failed check is a 503 now, which clients retry.
http_request_max_retries = 0
# access rules of application credentials are enforced only with the
# service type set, and keystonemiddleware needs the catalog to check them
include_service_catalog = True
service_type = object-store
# an X-Service-Token counts only with a service role: without this a client
# that sends its own token as service token skips its access rules
# (keystonemiddleware returns early for any service token)
service_token_roles = service
service_token_roles_required = true

[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
reseller_admin_role = ResellerAdmin
EOF
    chmod 600 "$ETC/proxy-server-ks.conf"
    grep -q '^pipeline = .* tempurl formpost authtoken keystoneauth ' "$ETC/proxy-server-ks.conf" \
      || die "could not derive the Keystone proxy's pipeline from $ETC/proxy-server.conf"
  fi

  # legacy object-expirer.conf (the name must contain "expirer"): it embeds
  # the internal client's proxy pipeline.
  cat > "$ETC/object-expirer.conf" <<EOF
[DEFAULT]
$common
log_name = object-expirer

[object-expirer]

[pipeline:main]
pipeline = catch_errors proxy-logging cache proxy-server

[app:proxy-server]
$proxy_app

[filter:cache]
$cache
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:proxy-logging]
use = egg:swift#proxy_logging
EOF

  cp -f /etc/swift/mime.types "$ETC/mime.types" 2>/dev/null || true

  # background runner: swift's own updater/expirer classes, run_once in a loop
  # in ONE process (the stock daemons fork per sweep and re-monkey-patch)
  cat > "$ETC/background.py" <<'EOF'
import signal, sys, time
from swift.common.utils import readconf, get_logger, eventlet_monkey_patch, drop_privileges
eventlet_monkey_patch()
from swift.container.updater import ContainerUpdater
from swift.obj.expirer import ObjectExpirer
from swift.obj.updater import ObjectUpdater

etc, interval = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0
once = interval <= 0
cconf = readconf(etc + '/container-server.conf', 'container-updater', log_name='container-updater')
oconf = readconf(etc + '/object-server.conf', 'object-updater', log_name='object-updater')
econf = readconf(etc + '/object-expirer.conf', 'object-expirer', log_name='object-expirer')
drop_privileges(cconf.get('user', 'swift'))
logger = get_logger(cconf, log_route='saio-background', log_to_console=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
# order: container-updater registers the auto-created .expiring_objects
# containers in their account (the expirer lists them from there), the
# expirer deletes due objects, the object-updater replays async pendings;
# the next container-updater pass carries the changes to the account stats
daemons = (('container-updater', ContainerUpdater(cconf)),
           ('object-expirer', ObjectExpirer(econf)),
           ('object-updater', ObjectUpdater(oconf)))
if once:
    daemons += (daemons[0],)
while True:
    t = time.time()
    for name, d in daemons:
        try:
            d.run_once()
        except Exception:
            logger.exception('%s pass failed', name)
    if once:
        break
    took = time.time() - t
    time.sleep(max(interval - took, 2 * took, 0.5))
EOF
}

build_rings() {
  local want="$ACC_PORT $CONT_PORT $OBJ_PORT $BIND pp0-0-10"
  if [ -s "$ETC/object.ring.gz" ] && [ -s "$ETC/container.ring.gz" ] && \
     [ -s "$ETC/account.ring.gz" ] && [ "$(cat "$ETC/rings.key" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "building 1-replica rings"
  # same code path as: swift-ring-builder X.builder create PP 1 1;
  #   swift-ring-builder X.builder add r1z1-IP:PORT/sdb1 1; ... rebalance
  # but one python process instead of nine (~0.8 s instead of ~6 s).
  # Account/container rings get ONE partition (part power 0): the
  # container-updater forks one child per partition holding containers.
  (cd "$ETC" && rm -rf backups ./*.builder ./*.ring.gz && "$PY" - "$BIND" "$ACC_PORT" "$CONT_PORT" "$OBJ_PORT" <<'EOF')
import sys
from swift.common.ring import RingBuilder
ip = sys.argv[1]
for name, port, pp in (('account', sys.argv[2], 0), ('container', sys.argv[3], 0),
                       ('object', sys.argv[4], 10)):
    b = RingBuilder(pp, 1, 1)          # part_power, 1 replica, min_part_hours 1
    b.add_dev({'region': 1, 'zone': 1, 'ip': ip, 'port': int(port),
               'replication_ip': ip, 'replication_port': int(port),
               'device': 'sdb1', 'weight': 1.0, 'meta': ''})
    b.rebalance()
    b.save(name + '.builder')
    b.get_ring().save(name + '.ring.gz')
EOF
  echo "$want" > "$ETC/rings.key"
}

# ------------------------------------------------------------------ start --
launch() {      # name marker cmd... ; runs in its own session, pid recorded
  local name=$1 marker=$2; shift 2
  # setsid without --fork: bash's background child is not a group leader, so
  # setsid execs in place and $! is the daemon's pid (and its pgid)
  # with workers = 0 swift never drops privileges (only forked workers do),
  # so switch user up front; setpriv execs in place too (no extra pid)
  local as=()
  [ "$RUN_AS" = "$(id -un)" ] || as=(setpriv "--reuid=$RUN_AS" "--regid=$(id -g "$RUN_AS")" --init-groups --)
  setsid "${as[@]}" "$@" </dev/null >>"$LOG/$name.log" 2>&1 9>&- &
  printf '%s\n%s\n' "$!" "$marker" > "$RUN/$name.pid"
}

all_alive() {
  local s
  for s in $(services); do pid_alive "$RUN/$s.pid" || return 1; done
}

auth_ok() {
  curl -fsS -o /dev/null --max-time 5 -H "X-Auth-User: $AUTH_USER" -H "X-Auth-Key: $AUTH_KEY" "$AUTH_URL" 2>/dev/null
}

print_env() {
  cat <<EOF
SWIFT_AUTH_URL=$AUTH_URL
SWIFT_USER=$AUTH_USER
SWIFT_KEY=$AUTH_KEY
SWIFT_STORAGE_URL=$STORAGE_URL
ST_AUTH=$AUTH_URL
ST_USER=$AUTH_USER
ST_KEY=$AUTH_KEY
EOF
  [ -z "$KS_URL" ] || echo "SWIFT_KS_PROXY_URL=http://$BIND:$KS_PORT"
}

do_start() {
  [[ "$ACCOUNT" =~ ^[A-Za-z0-9]+$ && "$UNAME" =~ ^[A-Za-z0-9_]+$ && "$AUTH_USER" == *:* ]] \
    || die "SWIFT_USER must look like account:user (account alphanumeric)"
  if need_install; then
    if [ "$AUTO_INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then do_install
    else die "swift packages missing: run '$0 install' or apt-get install $PACKAGES"; fi
  fi
  if [ ! -e "$DATA/.swift-saio" ]; then   # never adopt (and later 'reset') a foreign dir
    if [ -d "$DATA" ] && [ -n "$(ls -A "$DATA")" ]; then
      die "$DATA exists, is not empty and was not made by swift-saio; pick another data dir"
    fi
    mkdir -p "$DATA" && touch "$DATA/.swift-saio"
  fi
  exec 9>"$DATA/.lock"
  flock -w 120 9 || die "another swift-saio holds $DATA/.lock"

  local fp; fp=$(fingerprint)
  if all_alive && [ "$(cat "$RUN/fingerprint" 2>/dev/null)" = "$fp" ] && \
     http_ok "http://$BIND:$PROXY_PORT/healthcheck" && auth_ok; then
    log "already running (data $DATA)"
    print_env; return 0
  fi
  do_stop >/dev/null 2>&1 || true    # leftovers of a half-started or changed instance

  local t0; t0=$(date +%s%N)
  local p
  for p in "$PROXY_PORT" "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT" "$MC_PORT" ${KS_URL:+"$KS_PORT"}; do
    port_busy "$p" && die "port $BIND:$p is already in use (set SWIFT_*PORT)"
  done
  if [ -n "$KS_URL" ]; then
    [[ "$KS_URL" =~ ^https?://[^/]+ ]] || die "SWIFT_KEYSTONE_URL '$KS_URL' is not an http(s) URL"
    [ "$KS_PORT" != "$PROXY_PORT" ] || die "SWIFT_KS_PROXY_PORT must differ from SWIFT_PORT"
    http_ok "$KS_URL/v3" || log "no Keystone answers at $KS_URL/v3 (yet): the Keystone proxy refuses tokens until one does"
  fi
  write_configs
  build_rings

  local mcu=(); [ "$(id -u)" = 0 ] && [ "$RUN_AS" = root ] && mcu=(-u root)  # memcached refuses root without -u
  launch memcached "-p $MC_PORT" memcached -l "$BIND" -p "$MC_PORT" -U 0 -m 64 -c 1024 "${mcu[@]}"
  # -v: swift logs to stderr too (-> DATA/log/NAME.log); syslog has no listener here
  launch account   "$ETC/account-server.conf"   swift-account-server   "$ETC/account-server.conf" -v
  launch container "$ETC/container-server.conf" swift-container-server "$ETC/container-server.conf" -v
  launch object    "$ETC/object-server.conf"    swift-object-server    "$ETC/object-server.conf" -v
  launch proxy     "$ETC/proxy-server.conf"     swift-proxy-server     "$ETC/proxy-server.conf" -v
  local health=("http://$BIND:$ACC_PORT/healthcheck" "http://$BIND:$CONT_PORT/healthcheck"
                "http://$BIND:$OBJ_PORT/healthcheck" "http://$BIND:$PROXY_PORT/healthcheck")
  if [ -n "$KS_URL" ]; then
    launch proxy-ks "$ETC/proxy-server-ks.conf" swift-proxy-server "$ETC/proxy-server-ks.conf" -v
    health+=("http://$BIND:$KS_PORT/healthcheck")
  fi
  local deadline=$(( $(date +%s) + START_TIMEOUT )) s url
  for url in "${health[@]}" auth; do
    until if [ "$url" = auth ]; then auth_ok; else http_ok "$url"; fi; do
      for s in $(services); do
        [ "$s" = background ] && continue
        pid_alive "$RUN/$s.pid" || { tail -n 30 "$LOG/$s.log" >&2 || true; do_stop; die "$s exited during start-up (log: $LOG/$s.log)"; }
      done
      [ "$(date +%s)" -lt "$deadline" ] || { do_stop; die "not healthy after ${START_TIMEOUT}s (logs: $LOG)"; }
      sleep 0.2
    done
  done
  if [ "$BACKGROUND" = 1 ]; then   # after the servers answer, so its first pass succeeds
    launch background "$ETC/background.py" "$PY" "$ETC/background.py" "$ETC" "$BG_INTERVAL"
  fi
  echo "$fp" > "$RUN/fingerprint"
  print_env > "$DATA/swift.env"
  log "healthy in $(( ($(date +%s%N) - t0) / 1000000 )) ms; data $DATA, devices $(cat "$RUN/devices"), logs $LOG"
  print_env
}

do_status() {
  local s rc=0
  for s in memcached account container object proxy proxy-ks background; do
    [ -e "$RUN/$s.pid" ] || continue
    if pid_alive "$RUN/$s.pid"; then echo "$s: running (pid $(sed -n 1p "$RUN/$s.pid"))"
    else echo "$s: DEAD (stale pid $(sed -n 1p "$RUN/$s.pid"))"; rc=1; fi
  done
  if http_ok "http://$BIND:$PROXY_PORT/healthcheck"; then echo "proxy http://$BIND:$PROXY_PORT/healthcheck: OK"
  else echo "proxy http://$BIND:$PROXY_PORT/healthcheck: not answering"; rc=1; fi
  if [ -e "$RUN/proxy-ks.pid" ]; then
    if http_ok "http://$BIND:$KS_PORT/healthcheck"; then echo "Keystone proxy http://$BIND:$KS_PORT/healthcheck: OK"
    else echo "Keystone proxy http://$BIND:$KS_PORT/healthcheck: not answering"; rc=1; fi
  fi
  return $rc
}

do_sweep() {    # one synchronous pass: container-updater, expirer, object-updater, container-updater
  [ -s "$ETC/background.py" ] || die "not set up: run '$0 start' first"
  local t0 rc=0; t0=$(date +%s%N)
  "$PY" "$ETC/background.py" "$ETC" 0 >>"$LOG/sweep.log" 2>&1 || rc=$?
  log "sweep done in $(( ($(date +%s%N) - t0) / 1000000 )) ms (rc $rc, log $LOG/sweep.log)"
  return $rc
}

do_reset() {
  do_stop
  [ -e "$DATA/.swift-saio" ] || { log "$DATA was not created by swift-saio; not deleting"; return 0; }
  local m devs
  devs=$(cat "$RUN/devices-fallback" 2>/dev/null || true)   # a dir we chose in /dev/shm
  m=$(cat "$RUN/tmpfs-mount" 2>/dev/null || true)
  if [ -n "$m" ] && mountpoint -q "$m"; then umount "$m"; fi
  case "$devs" in */swift-saio-????????) rm -rf "$devs" ;; esac
  rm -rf "$DATA"
  log "removed $DATA"
}

case "$ACTION" in
  install) do_install ;;
  start)   do_start ;;
  stop)    do_stop ;;
  restart) do_stop; do_start ;;
  sweep)   do_sweep ;;
  status)  do_status ;;
  env)     print_env ;;
  reset)   do_reset ;;
  *) echo "usage: $0 {install|start|stop|restart|status|env|sweep|reset} [DATA_DIR]" >&2; exit 2 ;;
esac
