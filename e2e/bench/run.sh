#!/usr/bin/env bash
# perfdhcp benchmark of DHCPv4 4-way exchanges (DISCOVER-OFFER-REQUEST-ACK)
# against several servers and failover pairs in one topology: a bridge in the
# client namespace with two server namespaces on it, perfdhcp in the client
# namespace acting as a relay (unicast to a single server, broadcast to a pair).
#
#   e2e/bench/run.sh [--smoke] [--servers a,b,...] [--out DIR]
#
# See e2e/bench/README.md. Needs root (network namespaces).
set -uo pipefail
export LC_ALL=C # sort/comm agree on order; awk prints decimal points

usage() {
  cat <<'EOF'
usage: e2e/bench/run.sh [--smoke] [--servers LIST] [--out DIR] [--keep]

  --smoke          one short low-rate step per available server (< 2 min)
  --servers LIST   comma-separated subset of: ceiling,isc,kea-st,kea-mt,dhcpair,
                   isc-pair,dhcpair-pair,kea-ha
  --out DIR        keep every perfdhcp output and results.csv in DIR
  --keep           keep the temporary directory (configs, logs, lease files)

Environment (all optional):
  BENCH_PERIOD=8         seconds per step (perfdhcp -p)
  BENCH_CLIENTS=60000    simulated client MACs (perfdhcp -R; < pool size 61440)
  BENCH_START_RATE=200   first offered rate of the ladder
  BENCH_MAX_RATE=51200   highest offered rate tried
  BENCH_BISECT=4         bisection steps between the last pass and first fail
  BENCH_MAX_LOSS=1       loss (%) a step may have and still pass
  BENCH_COMMON_RATE=     rate of the common-rate CPU comparison
                         (default: 80% of the lowest knee, rounded down, <= 1000)
  BENCH_SMOKE_RATE=200   offered rate of the --smoke step
  BENCH_REQUIRE_DHCPAIR=0  1: a missing/unready dhcpair is an error in a full
                         run too (--smoke always requires dhcpair and its pair)
  BENCH_PAIR_BLOCKS=240  pool of the pair rows: 10.77.1.0 - 10.77.N.255
                         (N /24 blocks; --smoke: 8)
  BENCH_PAIR_SETTLE=10   seconds a pair may take after a step until both
                         servers hold every lease granted
  BENCH_PAIR_BASELINE_TIMEOUT=1200  seconds a new pair may take to reach
                         NORMAL with its pool balanced (once per run)
  DHCPAIR_BIN=target/release/dhcpair
  DHCPAIR_RUST_LOG=warn  RUST_LOG given to dhcpair
  TMPDIR                 where the temporary directory goes (must be a real
                         disk, not tmpfs, or fsync costs nothing)
EOF
}

# --------------------------------------------------------------------------
# settings

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DHCPAIR_BIN=${DHCPAIR_BIN:-$TARGET_DIR/release/dhcpair}
RESPONDER_BIN=${BENCH_RESPONDER:-$TARGET_DIR/release/bench-responder}

NS_SRV=dhcpbench-srv   # single servers; the primary of a pair
NS_SRV2=dhcpbench-srv2 # the secondary of a pair
NS_CLI=dhcpbench-cli   # perfdhcp, and the bridge joining the three
IF_SRV=dhcpb-srv0
IF_SRV2=dhcpb-srv1
IF_CLI=dhcpb-cli0 # bridge ports (peers of IF_SRV, IF_SRV2) in NS_CLI
IF_CLI2=dhcpb-cli1
IF_BR=dhcpb-br0
SRV_IP=10.77.0.1
SRV2_IP=10.77.0.3
CLI_IP=10.77.0.2
BCAST=255.255.255.255
PREFIX=16
SUBNET=10.77.0.0
NETMASK=255.255.0.0
POOL_START=10.77.1.0
POOL_END=10.77.240.255
POOL_SIZE=61440 # 240 * 256, identical for every server
HTTP_PORT=9167
KEA_HA_PORT=8001 # Kea HA's own HTTP listener (lease updates, heartbeats)
FO_NAME=pair     # failover relationship name (both pairs)

PERIOD=${BENCH_PERIOD:-8}
CLIENTS=${BENCH_CLIENTS:-60000}
START_RATE=${BENCH_START_RATE:-200}
MAX_RATE=${BENCH_MAX_RATE:-51200}
BISECT=${BENCH_BISECT:-4}
MAX_LOSS=${BENCH_MAX_LOSS:-1}
COMMON_RATE=${BENCH_COMMON_RATE:-}
SMOKE_RATE=${BENCH_SMOKE_RATE:-200}
SMOKE_PERIOD=2
REQUIRE_DHCPAIR=${BENCH_REQUIRE_DHCPAIR:-0}
SEED=42
# perfdhcp waits this long (us) after the last send for replies in flight.
EXIT_WAIT_US=1000000
# A step passes only if the generator really offered the load: ACKs/s must
# reach this fraction of the offered rate (besides loss <= MAX_LOSS).
MIN_ACHIEVED=0.95

STATE_FILE=/run/dhcpbench.state
LOCK_FILE=/run/lock/dhcpbench.lock

ALL_SERVERS=(ceiling isc kea-st kea-mt dhcpair isc-pair dhcpair-pair kea-ha)
SMOKE=0
OUT_DIR=
KEEP=0
SERVERS=("${ALL_SERVERS[@]}")

while (($#)); do
  case $1 in
    --smoke) SMOKE=1 ;;
    --servers)
      [[ $# -ge 2 ]] || { usage >&2; exit 2; }
      IFS=, read -r -a SERVERS <<<"$2"
      shift
      ;;
    --out)
      [[ $# -ge 2 ]] || { usage >&2; exit 2; }
      OUT_DIR=$2
      shift
      ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
for s in "${SERVERS[@]}"; do
  case " ${ALL_SERVERS[*]} " in
    *" $s "*) ;;
    *) echo "unknown server: $s" >&2; exit 2 ;;
  esac
done

# Pair rows: pool 10.77.1.0 - 10.77.$PAIR_BLOCKS.255. A new failover pair
# must move half of its pool to the secondary (one BNDUPD per address) before
# it can serve, which takes minutes for 61,440 addresses; the smoke uses a
# small pool so that it stays short.
if ((SMOKE)); then PAIR_BLOCKS=${BENCH_PAIR_BLOCKS:-8}; else PAIR_BLOCKS=${BENCH_PAIR_BLOCKS:-240}; fi
[[ $PAIR_BLOCKS =~ ^[0-9]+$ ]] && ((PAIR_BLOCKS >= 1 && PAIR_BLOCKS <= 240)) ||
  { echo "BENCH_PAIR_BLOCKS must be 1..240" >&2; exit 2; }
PAIR_POOL_END=10.77.$PAIR_BLOCKS.255
PAIR_POOL_SIZE=$((PAIR_BLOCKS * 256))
# Same ratio as the single rows (60,000 clients for 61,440 addresses).
PAIR_CLIENTS=$((PAIR_POOL_SIZE * 125 / 128))
((PAIR_CLIENTS > CLIENTS)) && PAIR_CLIENTS=$CLIENTS
PAIR_SETTLE=${BENCH_PAIR_SETTLE:-10}
PAIR_BASELINE_TIMEOUT=${BENCH_PAIR_BASELINE_TIMEOUT:-1200}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --------------------------------------------------------------------------
# preflight

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
for t in ip perfdhcp kea-dhcp4 awk flock timeout comm; do
  command -v "$t" >/dev/null || die "missing tool: $t"
done
DHCPD_BIN=$(command -v dhcpd || echo /usr/sbin/dhcpd)

# Children get fd 9 closed (9>&-), so only this script holds the lock and a
# killed run's leftovers do not block the next run.
exec 9>"$LOCK_FILE"
flock -n 9 || die "another run.sh holds $LOCK_FILE"

# --------------------------------------------------------------------------
# cleanup (this run's, and leftovers of an earlier run that was killed)

SERVER_PID=  # the server, or the primary of a pair
SERVER_PID2= # the secondary of a pair
PERF_PID=
WORK=

kill_pid() { # PID: TERM, wait up to 5 s, then KILL
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

teardown_net() {
  local ns pid
  for ns in "$NS_SRV" "$NS_SRV2" "$NS_CLI"; do
    [[ -e /run/netns/$ns ]] || continue
    # Whatever still runs inside our namespaces is ours: end it by PID.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill_pid "$pid"
    done
    ip netns del "$ns" 2>/dev/null
  done
  ip link del "$IF_SRV" 2>/dev/null
  ip link del "$IF_SRV2" 2>/dev/null
  return 0
}

cleanup_leftovers() {
  if [[ -f $STATE_FILE ]]; then
    local key val
    while IFS='=' read -r key val; do
      case $key in
        pid)
          # Only if it still is one of the programs we start.
          if [[ -r /proc/$val/cmdline ]] &&
            tr '\0' ' ' <"/proc/$val/cmdline" |
            grep -qE 'perfdhcp|kea-dhcp4|dhcpd|bench-responder|dhcpair'; then
            log "killing leftover pid $val"
            kill_pid "$val"
          fi
          ;;
        work)
          [[ $val == */dhcpbench.* && -d $val ]] && rm -rf -- "$val"
          ;;
      esac
    done <"$STATE_FILE"
    rm -f "$STATE_FILE"
  fi
  if [[ -e /run/netns/$NS_SRV || -e /run/netns/$NS_SRV2 || -e /run/netns/$NS_CLI ]]; then
    log "removing leftover namespaces"
  fi
  teardown_net
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  kill_pid "$PERF_PID"
  kill_pid "$SERVER_PID"
  kill_pid "$SERVER_PID2"
  teardown_net
  if [[ -n $WORK && -d $WORK ]]; then
    if ((KEEP)); then
      log "kept $WORK"
    else
      rm -rf -- "$WORK"
    fi
  fi
  rm -f "$STATE_FILE"
  exit "$rc"
}

note_pid() { echo "pid=$1" >>"$STATE_FILE"; }

cleanup_leftovers
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dhcpbench.XXXXXX") || die "mktemp failed"
echo "work=$WORK" >"$STATE_FILE"
mkdir -p "$WORK/out"
if [[ $(stat -f -c %T "$WORK") == tmpfs ]]; then
  log "WARNING: $WORK is on tmpfs: fsync is free there, durable servers look faster"
fi
if [[ -n $OUT_DIR ]]; then
  mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
  OUT_DIR=$(cd "$OUT_DIR" && pwd)
fi
RESULTS_CSV=${OUT_DIR:-$WORK}/results.csv
echo "server,phase,offered_rate,period_s,do_sent,do_recv,ra_sent,ra_recv,leases_per_s,loss_pct,do_min_ms,do_avg_ms,do_max_ms,ra_min_ms,ra_avg_ms,ra_max_ms,cpu_s,cpu_s_per_1k,granted,held_by_both,pass" >"$RESULTS_CSV"

# --------------------------------------------------------------------------
# topology

setup_net() {
  local ns
  for ns in "$NS_SRV" "$NS_SRV2" "$NS_CLI"; do
    ip netns add "$ns" || die "ip netns add $ns"
    ip -n "$ns" link set lo up
  done
  ip -n "$NS_CLI" link add "$IF_BR" type bridge || die "bridge"
  ip -n "$NS_CLI" addr add "$CLI_IP/$PREFIX" dev "$IF_BR" || die "addr"
  ip -n "$NS_CLI" link set "$IF_BR" up || die "link up"
  _attach "$NS_SRV" "$IF_SRV" "$IF_CLI" "$SRV_IP"
  _attach "$NS_SRV2" "$IF_SRV2" "$IF_CLI2" "$SRV2_IP"
  return 0
}

_attach() { # NS IF_IN_NS BRIDGE_PORT ADDR: a veth from the bridge into NS
  local ns=$1 dev=$2 port=$3 addr=$4
  ip link add "$dev" type veth peer name "$port" || die "veth $dev"
  ip link set "$dev" netns "$ns" || die "veth to $ns"
  ip link set "$port" netns "$NS_CLI" || die "veth to $NS_CLI"
  ip -n "$NS_CLI" link set "$port" master "$IF_BR" || die "bridge port $port"
  ip -n "$NS_CLI" link set "$port" up || die "link up"
  ip -n "$ns" addr add "$addr/$PREFIX" dev "$dev" || die "addr"
  ip -n "$ns" link set "$dev" up || die "link up"
}

# --------------------------------------------------------------------------
# servers

write_configs() {
  mkdir -p "$WORK/kea-run"
  cat >"$WORK/dhcpd.conf" <<EOF
# ISC dhcpd 4.4: same subnet and pool as every other server.
authoritative;
ddns-update-style none;
ping-check false;
default-lease-time 3600;
max-lease-time 7200;
subnet $SUBNET netmask $NETMASK {
  range $POOL_START $POOL_END;
  option subnet-mask $NETMASK;
}
EOF
  local mt threads
  for mt in st mt; do
    if [[ $mt == mt ]]; then threads='"enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64'; else threads='"enable-multi-threading": false'; fi
    cat >"$WORK/kea-$mt.json" <<EOF
{
  "Dhcp4": {
    "interfaces-config": { "interfaces": [ "$IF_SRV" ], "dhcp-socket-type": "udp" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/kea-$mt/leases4.csv", "lfc-interval": 0 },
    "multi-threading": { $threads },
    "valid-lifetime": 3600,
    "max-valid-lifetime": 7200,
    "subnet4": [
      { "id": 1, "subnet": "$SUBNET/$PREFIX", "pools": [ { "pool": "$POOL_START - $POOL_END" } ],
        "option-data": [ { "name": "subnet-mask", "data": "$NETMASK" } ] }
    ],
    "loggers": [
      { "name": "kea-dhcp4", "output_options": [ { "output": "$WORK/kea-$mt.log" } ], "severity": "WARN" }
    ]
  }
}
EOF
  done
  cat >"$WORK/dhcpair.yaml" <<EOF
server:
  interfaces: [$IF_SRV]
  dataDir: $WORK/dhcpair-data
  http: "$SRV_IP:$HTTP_PORT"
  serverId: $SRV_IP
pools:
  - name: bench
    subnet: $SUBNET/$PREFIX
    ranges: [{start: $POOL_START, end: $POOL_END}]
    defaultLeaseTime: 3600
    maxLeaseTime: 7200
EOF
  write_pair_configs
}

# The pairs: the primary on SRV_IP ($NS_SRV), the secondary on SRV2_IP
# ($NS_SRV2), failover over the bridge; the same relationship settings for
# ISC and dhcpair (those of e2e/src/failover.rs with production timers):
# split 128, MCLT 3600 s, max-response-delay 60 s, max-unacked-updates 10,
# load balance max seconds 3. mclt and split are set on the primary only.
write_pair_configs() {
  local role me peer iface primary_only
  for role in p s; do
    if [[ $role == p ]]; then
      me=$SRV_IP peer=$SRV2_IP iface=$IF_SRV
    else
      me=$SRV2_IP peer=$SRV_IP iface=$IF_SRV2
    fi
    primary_only=
    [[ $role == p ]] && primary_only=$'  mclt 3600;\n  split 128;\n'
    cat >"$WORK/isc-pair-$role.conf" <<EOF
# ISC dhcpd 4.4 as the $([[ $role == p ]] && echo primary || echo secondary) of a load-balancing pair.
authoritative;
ddns-update-style none;
ping-check false;
default-lease-time 3600;
max-lease-time 7200;
failover peer "$FO_NAME" {
  $([[ $role == p ]] && echo primary || echo secondary);
  address $me;
  port 647;
  peer address $peer;
  peer port 647;
  max-response-delay 60;
  max-unacked-updates 10;
  load balance max seconds 3;
${primary_only}}
subnet $SUBNET netmask $NETMASK {
  option subnet-mask $NETMASK;
  pool {
    failover peer "$FO_NAME";
    range $POOL_START $PAIR_POOL_END;
  }
}
EOF
    primary_only=
    [[ $role == p ]] && primary_only=$'    mclt: 3600\n    split: 128\n'
    cat >"$WORK/dhcpair-pair-$role.yaml" <<EOF
server:
  interfaces: [$iface]
  dataDir: $WORK/dhcpair-pair-$role
  http: "$me:$HTTP_PORT"
  serverId: $me
peers:
  - name: $FO_NAME
    role: $([[ $role == p ]] && echo primary || echo secondary)
    address: $me
    peerAddress: $peer
    maxResponseDelay: 60
    maxUnackedUpdates: 10
    loadBalanceMaxSeconds: 3
${primary_only}pools:
  - name: bench
    subnet: $SUBNET/$PREFIX
    ranges: [{start: $POOL_START, end: $PAIR_POOL_END}]
    defaultLeaseTime: 3600
    maxLeaseTime: 7200
    failoverPeer: $FO_NAME
EOF
    # Kea HA (load-balancing) needs multi-threading for its own HTTP listener
    # (no kea-ctrl-agent); raw sockets to receive the broadcast.
    cat >"$WORK/kea-ha-$role.json" <<EOF
{
  "Dhcp4": {
    "interfaces-config": { "interfaces": [ "$iface" ], "dhcp-socket-type": "raw" },
    "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/kea-ha-$role/leases4.csv", "lfc-interval": 0 },
    "multi-threading": { "enable-multi-threading": true, "thread-pool-size": 2, "packet-queue-size": 64 },
    "valid-lifetime": 3600,
    "max-valid-lifetime": 7200,
    "hooks-libraries": [
      { "library": "$KEA_HOOKS/libdhcp_lease_cmds.so" },
      { "library": "$KEA_HOOKS/libdhcp_ha.so",
        "parameters": { "high-availability": [ {
          "this-server-name": "$([[ $role == p ]] && echo server1 || echo server2)",
          "mode": "load-balancing",
          "heartbeat-delay": 1000,
          "max-response-delay": 60000,
          "max-ack-delay": 5000,
          "max-unacked-clients": 0,
          "multi-threading": { "enable-multi-threading": true, "http-dedicated-listener": true,
                               "http-listener-threads": 2, "http-client-threads": 2 },
          "peers": [
            { "name": "server1", "url": "http://$SRV_IP:$KEA_HA_PORT/", "role": "primary", "auto-failover": true },
            { "name": "server2", "url": "http://$SRV2_IP:$KEA_HA_PORT/", "role": "secondary", "auto-failover": true }
          ] } ] } }
    ],
    "subnet4": [
      { "id": 1, "subnet": "$SUBNET/$PREFIX", "pools": [ { "pool": "$POOL_START - $PAIR_POOL_END" } ],
        "option-data": [ { "name": "subnet-mask", "data": "$NETMASK" } ] }
    ],
    "loggers": [
      { "name": "kea-dhcp4", "output_options": [ { "output": "$WORK/kea-ha-$role.log" } ], "severity": "WARN" }
    ]
  }
}
EOF
  done
}

# Why a server is not available (empty: it is).
declare -A UNAVAILABLE=()

# dhcpair and its pair are what this benchmark is for: the smoke (which scripts/test.sh runs)
# requires both to start, serve and (the pair) replicate every lease; a full run may go without
# them unless BENCH_REQUIRE_DHCPAIR=1.
server_optional() { ((!SMOKE)) && [[ ($1 == dhcpair || $1 == dhcpair-pair) && $REQUIRE_DHCPAIR != 1 ]]; }

is_pair() { [[ $1 == isc-pair || $1 == dhcpair-pair || $1 == kea-ha ]]; }

# Kea's hook libraries (HA and lease_cmds), for kea-ha.
KEA_HOOKS=${KEA_HOOKS_DIR:-}
if [[ -z $KEA_HOOKS ]]; then
  for d in /usr/lib/*/kea/hooks /usr/lib/kea/hooks /usr/local/lib/kea/hooks; do
    [[ -e $d/libdhcp_ha.so ]] && { KEA_HOOKS=$d; break; }
  done
fi

check_server_present() {
  local s=$1
  case $s in
    ceiling) [[ -x $RESPONDER_BIN ]] || UNAVAILABLE[$s]="no $RESPONDER_BIN" ;;
    isc) [[ -x $DHCPD_BIN ]] || UNAVAILABLE[$s]="no $DHCPD_BIN" ;;
    kea-st | kea-mt) command -v kea-dhcp4 >/dev/null || UNAVAILABLE[$s]="no kea-dhcp4" ;;
    dhcpair | dhcpair-pair) [[ -x $DHCPAIR_BIN ]] || UNAVAILABLE[$s]="no $DHCPAIR_BIN" ;;
    isc-pair) [[ -x $DHCPD_BIN ]] || UNAVAILABLE[$s]="no $DHCPD_BIN" ;;
    kea-ha)
      if ! command -v kea-dhcp4 >/dev/null; then
        UNAVAILABLE[$s]="no kea-dhcp4"
      elif [[ ! -e $KEA_HOOKS/libdhcp_ha.so || ! -e $KEA_HOOKS/libdhcp_lease_cmds.so ]]; then
        UNAVAILABLE[$s]="no Kea HA/lease_cmds hook libraries (set KEA_HOOKS_DIR)"
      elif ! command -v curl >/dev/null; then
        UNAVAILABLE[$s]="no curl (HA state)"
      fi
      ;;
  esac
}

# Starts server $1 with a fresh lease database; sets SERVER_PID.
server_launch() {
  local s=$1 logf="$WORK/$1.stderr"
  case $s in
    ceiling)
      ip netns exec "$NS_SRV" "$RESPONDER_BIN" --bind "$SRV_IP" --server-id "$SRV_IP" \
        --pool-start "$POOL_START" --pool-size "$POOL_SIZE" --mask "$NETMASK" >>"$logf" 2>&1 9>&- &
      ;;
    isc)
      rm -rf "$WORK/isc" && mkdir -p "$WORK/isc" && : >"$WORK/isc/dhcpd.leases"
      ip netns exec "$NS_SRV" "$DHCPD_BIN" -4 -f -q -cf "$WORK/dhcpd.conf" \
        -lf "$WORK/isc/dhcpd.leases" -pf "$WORK/isc/dhcpd.pid" "$IF_SRV" >>"$logf" 2>&1 9>&- &
      ;;
    kea-st | kea-mt)
      local mt=${s#kea-}
      rm -rf "$WORK/kea-$mt" "$WORK/kea-run" && mkdir -p "$WORK/kea-$mt" "$WORK/kea-run"
      ip netns exec "$NS_SRV" env KEA_LOCKFILE_DIR="$WORK/kea-run" KEA_PIDFILE_DIR="$WORK/kea-run" \
        kea-dhcp4 -c "$WORK/kea-$mt.json" >>"$logf" 2>&1 9>&- &
      ;;
    dhcpair)
      rm -rf "$WORK/dhcpair-data" && mkdir -p "$WORK/dhcpair-data"
      ip netns exec "$NS_SRV" env RUST_LOG="${DHCPAIR_RUST_LOG:-warn}" \
        "$DHCPAIR_BIN" serve --config "$WORK/dhcpair.yaml" >>"$logf" 2>&1 9>&- &
      ;;
  esac
  SERVER_PID=$!
  note_pid "$SERVER_PID"
}

# Where perfdhcp sends: unicast to a single server; to a pair, the broadcast
# address (-B sets SO_BROADCAST), which the bridge floods to both members, so
# each answers the clients of its own hash buckets (RFC 3074), as with a relay
# that forwards to both servers. Either way giaddr is CLI_IP.
PERF_DEST=("$SRV_IP")
set_dest() {
  if is_pair "$1"; then PERF_DEST=(-B "$BCAST"); else PERF_DEST=("$SRV_IP"); fi
}

# perfdhcp run in the client namespace; output to $1, rest are perfdhcp args.
perf() {
  local out=$1 budget=$2
  shift 2
  timeout --signal=KILL "$budget" ip netns exec "$NS_CLI" perfdhcp -4 -l "$CLI_IP" "$@" "${PERF_DEST[@]}" >"$out" 2>&1 9>&- &
  PERF_PID=$!
  wait "$PERF_PID"
  local rc=$?
  PERF_PID=
  return $rc
}

# A few exchanges from a client outside the benchmark's MAC range.
probe() {
  local out="$WORK/probe.txt"
  perf "$out" 5 -b mac=02:00:5e:00:00:01 -r 50 -n 3 -W 300000
  parse_perf "$out"
  ((P_RA_RECV > 0))
}

server_start() { # NAME -> 0 when it answers, SERVER_PID set
  local s=$1 deadline i
  set_dest "$s"
  if is_pair "$s"; then
    pair_start "$s"
    return
  fi
  server_launch "$s"
  deadline=$((SECONDS + 20))
  [[ $s == dhcpair ]] && deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null
      log "[$s] exited during startup (status $?); see below"
      tail -n 15 "$WORK/$s.stderr" >&2
      SERVER_PID=
      return 1
    fi
    if [[ $s == dhcpair ]] &&
      ! ip netns exec "$NS_SRV" curl -fsS -m 1 -o /dev/null "http://$SRV_IP:$HTTP_PORT/readyz" 2>/dev/null; then
      sleep 0.2
      continue
    fi
    probe && return 0
    sleep 0.2
  done
  log "[$s] did not answer within the startup deadline; log tail:"
  tail -n 15 "$WORK/$s.stderr" >&2
  server_stop
  return 1
}

server_stop() {
  if [[ -n $SERVER_PID2 ]]; then
    # A pair's data is thrown away after the step: no graceful failover
    # shutdown (ISC waits for its partner on SIGTERM).
    kill_now "$SERVER_PID" "$SERVER_PID2"
    SERVER_PID2=
  else
    kill_pid "$SERVER_PID"
  fi
  SERVER_PID=
}

kill_now() { # PID...: SIGKILL and reap
  local pid
  for pid in "$@"; do
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  done
  for pid in "$@"; do
    [[ -n $pid ]] && wait "$pid" 2>/dev/null
  done
  return 0
}

server_alive() {
  kill -0 "$SERVER_PID" 2>/dev/null || return 1
  [[ -z $SERVER_PID2 ]] || kill -0 "$SERVER_PID2" 2>/dev/null
}

server_ticks() { # CPU ticks of the server, or of both members of a pair
  local a b
  a=$(cpu_ticks "$SERVER_PID")
  [[ -z $SERVER_PID2 ]] && { echo "$a"; return; }
  b=$(cpu_ticks "$SERVER_PID2")
  if ((a < 0 || b < 0)); then echo -1; else echo $((a + b)); fi
}

# --------------------------------------------------------------------------
# failover pairs (isc-pair, dhcpair-pair, kea-ha)
#
# Member p (primary, server1) runs in $NS_SRV on SRV_IP, member s (secondary,
# server2) in $NS_SRV2 on SRV2_IP; data in $WORK/<pair>-<p|s>, log in
# $WORK/<pair>-<p|s>.stderr (new at every start).

member_ns() { if [[ $1 == p ]]; then echo "$NS_SRV"; else echo "$NS_SRV2"; fi; }
member_ip() { if [[ $1 == p ]]; then echo "$SRV_IP"; else echo "$SRV2_IP"; fi; }
member_if() { if [[ $1 == p ]]; then echo "$IF_SRV"; else echo "$IF_SRV2"; fi; }

member_launch() { # PAIR ROLE -> LAUNCHED_PID
  local s=$1 role=$2 ns iface logf="$WORK/$1-$2.stderr"
  ns=$(member_ns "$role")
  iface=$(member_if "$role")
  case $s in
    isc-pair)
      # -d: the failover state changes go to stderr (the log is our only view
      # of ISC's state); it logs every packet there too.
      rm -f "$WORK/$s-$role.pid"
      ip netns exec "$ns" "$DHCPD_BIN" -4 -f -d -cf "$WORK/$s-$role.conf" \
        -lf "$WORK/$s-$role/dhcpd.leases" -pf "$WORK/$s-$role.pid" "$iface" >"$logf" 2>&1 9>&- &
      ;;
    dhcpair-pair)
      ip netns exec "$ns" env RUST_LOG="${DHCPAIR_RUST_LOG:-warn}" \
        "$DHCPAIR_BIN" serve --config "$WORK/$s-$role.yaml" >"$logf" 2>&1 9>&- &
      ;;
    kea-ha)
      rm -rf "$WORK/$s-$role-run" && mkdir -p "$WORK/$s-$role-run"
      ip netns exec "$ns" env KEA_LOCKFILE_DIR="$WORK/$s-$role-run" KEA_PIDFILE_DIR="$WORK/$s-$role-run" \
        kea-dhcp4 -c "$WORK/$s-$role.json" >"$logf" 2>&1 9>&- &
      ;;
  esac
  LAUNCHED_PID=$!
  note_pid "$LAUNCHED_PID"
}

pair_launch() { # PAIR: primary first; sets SERVER_PID, SERVER_PID2
  member_launch "$1" p
  SERVER_PID=$LAUNCHED_PID
  member_launch "$1" s
  SERVER_PID2=$LAUNCHED_PID
}

json_num() { # JSON KEY: the first number of "KEY":N
  grep -o "\"$2\":[0-9-]*" <<<"$1" | head -n 1 | cut -d: -f2
}

dhcpair_status() { # ROLE: /v1/status of that member (JSON), empty when it does not answer
  ip netns exec "$(member_ns "$1")" "$DHCPAIR_BIN" status --json \
    --http "$(member_ip "$1"):$HTTP_PORT" 2>/dev/null 9>&-
}

kea_ha_state() { # ROLE: the member's HA state (ha-heartbeat on its HA listener)
  ip netns exec "$NS_CLI" curl -fsS -m 1 -H 'Content-Type: application/json' \
    -d '{"command": "ha-heartbeat", "service": ["dhcp4"]}' \
    "http://$(member_ip "$1"):$KEA_HA_PORT/" 2>/dev/null 9>&- |
    grep -o '"state": *"[a-z-]*"' | head -n 1 | sed 's/.*"\([a-z-]*\)"$/\1/'
}

# ISC's lease file: the binding state of every address from its last block.
ISC_LEASES_AWK='
$1 == "lease" && NF >= 3 { ip = $2; next }
ip != "" && $1 == "binding" && $2 == "state" { st = $3; sub(/;$/, "", st); state[ip] = st; next }
$1 == "}" { ip = "" }'

isc_count() { # LEASE_FILE STATE
  awk "$ISC_LEASES_AWK"' END { n = 0; for (a in state) if (state[a] == want) n++; print n }' \
    want="$2" "$1" 2>/dev/null || echo 0
}

member_normal() { # PAIR ROLE: this member is NORMAL with its partner NORMAL
  local s=$1 role=$2 j
  case $s in
    dhcpair-pair)
      j=$(dhcpair_status "$role")
      [[ $j == *'"myState":"normal"'* && $j == *'"partnerState":"normal"'* &&
        $j == *'"connected":true'* && $j != *'"startup":true'* ]]
      ;;
    isc-pair)
      grep -q "failover peer $FO_NAME: I move from .* to normal" "$WORK/$s-$role.stderr" &&
        grep -q "failover peer $FO_NAME: Both servers normal" "$WORK/$s-$role.stderr"
      ;;
    kea-ha) [[ $(kea_ha_state "$role") == load-balancing ]] ;;
  esac
}

# A new pair is usable once both are NORMAL and the primary has handed half of
# the pool to the secondary (backup leases; the secondary allocates only
# those), with nothing left to send.
pair_balanced() { # PAIR; sets PAIR_PROGRESS
  local s=$1 jp js fp bp fs bs qp qs up us
  case $s in
    dhcpair-pair)
      jp=$(dhcpair_status p)
      js=$(dhcpair_status s)
      fp=$(json_num "$jp" free) bp=$(json_num "$jp" backup) qp=$(json_num "$jp" queuedUpdates) up=$(json_num "$jp" unackedUpdates)
      fs=$(json_num "$js" free) bs=$(json_num "$js" backup) qs=$(json_num "$js" queuedUpdates) us=$(json_num "$js" unackedUpdates)
      PAIR_PROGRESS="primary free ${fp:-?} backup ${bp:-?} queued ${qp:-?}; secondary free ${fs:-?} backup ${bs:-?} queued ${qs:-?}"
      member_normal "$s" p && member_normal "$s" s || return 1
      [[ -n $fp && $fp == "$fs" && $bp == "$bs" && $qp == 0 && $qs == 0 && $up == 0 && $us == 0 ]] || return 1
      ((fp + bp == PAIR_POOL_SIZE && (fp > bp ? fp - bp : bp - fp) * 50 <= PAIR_POOL_SIZE))
      ;;
    isc-pair)
      bp=$(isc_count "$WORK/$s-p/dhcpd.leases" backup)
      bs=$(isc_count "$WORK/$s-s/dhcpd.leases" backup)
      PAIR_PROGRESS="backup leases in the primary's lease file $bp, in the secondary's $bs"
      member_normal "$s" p && member_normal "$s" s || return 1
      ((bp == bs && bs * 100 >= PAIR_POOL_SIZE * 49))
      ;;
    *) return 1 ;;
  esac
}

member_tails() { # PAIR
  local role
  for role in p s; do
    log "[$1] $role log tail:"
    grep -v -e '^DHCP' -e '^bind update on' "$WORK/$1-$role.stderr" | tail -n 10 >&2
  done
}

# Once per run and pair: a new pair (empty databases) until NORMAL and balanced,
# then both are killed and their data kept in $WORK/base as the start of every
# step (a balanced pair without leases). Kea HA keeps no free leases and needs
# none of this.
pair_baseline() { # PAIR
  local s=$1 role t0 report
  [[ -d $WORK/base/$s-p && -d $WORK/base/$s-s ]] && return 0
  log "[$s] new pair: waiting for NORMAL and a balanced pool of $PAIR_POOL_SIZE (once per run)"
  for role in p s; do
    rm -rf "${WORK:?}/$s-$role" && mkdir -p "$WORK/$s-$role"
    [[ $s == isc-pair ]] && : >"$WORK/$s-$role/dhcpd.leases"
  done
  pair_launch "$s"
  t0=$SECONDS
  report=$((SECONDS + 30))
  while :; do
    if ! server_alive; then
      log "[$s] a member exited while the new pair synchronised"
      member_tails "$s"
      server_stop
      return 1
    fi
    pair_balanced "$s" && break
    if ((SECONDS - t0 >= PAIR_BASELINE_TIMEOUT)); then
      log "[$s] not NORMAL and balanced within ${PAIR_BASELINE_TIMEOUT}s ($PAIR_PROGRESS)"
      member_tails "$s"
      server_stop
      return 1
    fi
    if ((SECONDS >= report)); then
      log "[$s] $((SECONDS - t0))s: $PAIR_PROGRESS"
      report=$((SECONDS + 30))
    fi
    sleep 2
  done
  log "[$s] NORMAL and balanced after $((SECONDS - t0))s ($PAIR_PROGRESS)"
  # SIGKILL: what is on disk is a pair in NORMAL, as after a power cut.
  server_stop
  mkdir -p "$WORK/base"
  for role in p s; do
    mv "$WORK/$s-$role" "$WORK/base/$s-$role" || return 1
  done
  return 0
}

# Fresh pair for one step: the baseline copied back (Kea: empty), both
# started, NORMAL with each other, then a probe that needs both halves.
pair_start() { # PAIR
  local s=$1 role deadline
  if [[ $s != kea-ha ]]; then
    pair_baseline "$s" || return 1
  fi
  for role in p s; do
    rm -rf "${WORK:?}/$s-$role"
    if [[ $s == kea-ha ]]; then
      mkdir -p "$WORK/$s-$role"
    else
      cp -a "$WORK/base/$s-$role" "$WORK/$s-$role" || return 1
    fi
  done
  pair_launch "$s"
  deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if ! server_alive; then
      log "[$s] a member exited during startup"
      member_tails "$s"
      server_stop
      return 1
    fi
    if member_normal "$s" p && member_normal "$s" s && probe_pair; then
      return 0
    fi
    sleep 0.2
  done
  log "[$s] not NORMAL and answering within 60s"
  member_tails "$s"
  server_stop
  return 1
}

# 32 clients outside the benchmark's MAC range, broadcast: about half belong to
# each member, so nearly all are answered only when both serve.
probe_pair() {
  local out="$WORK/probe.txt"
  perf "$out" 8 -b mac=02:00:5e:00:00:00 -R 32 -r 64 -n 32 -W 1000000
  parse_perf "$out"
  ((P_RA_RECV >= 29))
}

# Sorted active addresses in one member's database.
active_addrs() { # PAIR ROLE
  local s=$1 d="$WORK/$1-$2"
  case $s in
    dhcpair-pair)
      "$DHCPAIR_BIN" leases --data-dir "$d" 2>/dev/null 9>&- | awk 'NR > 1 && $2 == "active" { print $1 }'
      ;;
    isc-pair)
      awk "$ISC_LEASES_AWK"' END { for (a in state) if (state[a] == "active") print a }' "$d/dhcpd.leases" 2>/dev/null
      ;;
    kea-ha)
      # address,hwaddr,client_id,valid_lifetime,expire,subnet_id,...,state: last row wins.
      awk -F, 'NR > 1 { live[$1] = ($4 != 0 && $10 == 0) } END { for (a in live) if (live[a]) print a }' \
        "$d/leases4.csv" 2>/dev/null
      ;;
  esac | sort
}

# After a step: poll (PAIR_SETTLE s at most) until both members hold every
# lease either of them granted. Sets S_GRANTED (addresses active on either
# member) and S_BOTH (active on both).
check_replication() { # PAIR
  local s=$1 deadline=$((SECONDS + PAIR_SETTLE))
  while :; do
    active_addrs "$s" p >"$WORK/active-p"
    active_addrs "$s" s >"$WORK/active-s"
    S_GRANTED=$(sort -u "$WORK/active-p" "$WORK/active-s" | wc -l)
    S_BOTH=$(comm -12 "$WORK/active-p" "$WORK/active-s" | wc -l)
    ((S_GRANTED > 0 && S_BOTH == S_GRANTED)) && return 0
    ((SECONDS >= deadline)) && return 1
    sleep 1
  done
}

cpu_ticks() { # utime+stime of all threads of PID, in clock ticks
  [[ -r /proc/$1/stat ]] || { echo -1; return; }
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
CLK_TCK=$(getconf CLK_TCK)

# --------------------------------------------------------------------------
# perfdhcp output

# Sets P_DO_SENT P_DO_RECV P_RA_SENT P_RA_RECV P_DO_{MIN,AVG,MAX} P_RA_{MIN,AVG,MAX}
parse_perf() {
  read -r P_DO_SENT P_DO_RECV P_RA_SENT P_RA_RECV P_DO_MIN P_DO_AVG P_DO_MAX \
    P_RA_MIN P_RA_AVG P_RA_MAX < <(awk '
    /Statistics for: DISCOVER-OFFER/ { s = "do" }
    /Statistics for: REQUEST-ACK/    { s = "ra" }
    s != "" && /^sent packets: [0-9]+/     { v[s "sent"] = $3 }
    s != "" && /^received packets: [0-9]+/ { v[s "recv"] = $3 }
    s != "" && /^(min|avg|max) delay: [0-9.]+ ms/ { v[s $1] = $3 }
    END {
      n = split("dosent dorecv rasent rarecv", k, " ")
      for (i = 1; i <= n; i++) printf "%d ", v[k[i]] + 0
      n = split("domin doavg domax ramin raavg ramax", k, " ")
      for (i = 1; i <= n; i++) printf "%s ", ((k[i] in v) ? v[k[i]] : "-")
      print ""
    }' "$1")
}

# --------------------------------------------------------------------------
# one step: fresh server, perfdhcp at RATE for PERIOD seconds

# Sets the P_* figures plus S_LEASES S_LOSS S_CPU S_CPU1K S_PASS S_NOTE.
# Returns 1 when the server could not be started.
run_step() {
  local s=$1 rate=$2 period=$3 phase=$4
  server_start "$s" || return 1
  local out="$WORK/out/$s-$phase-$rate.txt" c0 c1 nclients=$CLIENTS
  is_pair "$s" && nclients=$PAIR_CLIENTS
  c0=$(server_ticks)
  perf "$out" $((period + 30)) -r "$rate" -p "$period" -R "$nclients" -s "$SEED" -W "$EXIT_WAIT_US"
  S_NOTE= S_DIED=0 S_GRANTED=- S_BOTH=- S_REPL=
  server_alive || S_NOTE="server died" S_DIED=1
  if is_pair "$s" && ((!S_DIED)); then
    # A lease counts once both members hold it: a step whose replication is
    # still incomplete after the settle time fails (and is flagged).
    check_replication "$s" || S_NOTE="replication incomplete after ${PAIR_SETTLE}s"
    S_REPL="$S_BOTH/$S_GRANTED"
  fi
  # After the settle wait: a pair's catching up is part of its cost.
  c1=$(server_ticks)
  server_alive || S_NOTE="server died" S_DIED=1
  server_stop
  [[ -n $OUT_DIR ]] && cp "$out" "$OUT_DIR/"
  parse_perf "$out"
  read -r S_LEASES S_LOSS S_CPU S_CPU1K S_PASS S_MARGINAL < <(awk -v do_sent="$P_DO_SENT" \
    -v ra_recv="$P_RA_RECV" -v period="$period" -v rate="$rate" -v c0="$c0" -v c1="$c1" \
    -v tck="$CLK_TCK" -v maxloss="$MAX_LOSS" -v minach="$MIN_ACHIEVED" 'BEGIN {
      leases = ra_recv / period
      loss = do_sent > 0 ? 100 * (1 - ra_recv / do_sent) : 100
      if (loss < 0) loss = 0
      cpu = (c0 >= 0 && c1 >= 0) ? (c1 - c0) / tck : -1
      cpu1k = (cpu >= 0 && ra_recv > 0) ? sprintf("%.3f", 1000 * cpu / ra_recv) : "-"
      pass = (do_sent > 0 && loss <= maxloss && leases >= minach * rate) ? 1 : 0
      marginal = (!pass && loss < 5 * maxloss && leases >= (minach - 0.1) * rate) ? 1 : 0
      printf "%.1f %.3f %.2f %s %d %d\n", leases, loss, cpu, cpu1k, pass, marginal
    }')
  [[ -n $S_NOTE ]] && S_PASS=0 S_MARGINAL=0
  echo "$s,$phase,$rate,$period,$P_DO_SENT,$P_DO_RECV,$P_RA_SENT,$P_RA_RECV,$S_LEASES,$S_LOSS,$P_DO_MIN,$P_DO_AVG,$P_DO_MAX,$P_RA_MIN,$P_RA_AVG,$P_RA_MAX,$S_CPU,$S_CPU1K,$S_GRANTED,$S_BOTH,$S_PASS" >>"$RESULTS_CSV"
  log "[$s] $(printf '%6d/s' "$rate"): DO $P_DO_RECV/$P_DO_SENT RA $P_RA_RECV/$P_RA_SENT" \
    "-> $S_LEASES leases/s, loss $S_LOSS%, delay avg DO $P_DO_AVG RA $P_RA_AVG ms," \
    "cpu $S_CPU s ($S_CPU1K s/1k)${S_REPL:+, held by both $S_REPL}" \
    "$( ((S_PASS)) && echo pass || echo FAIL) $S_NOTE"
  return 0
}

# --------------------------------------------------------------------------
# knee search

declare -A K_RATE=() K_LEASES=() K_LOSS=() K_DO=() K_RA=() K_CPU1K=() K_FIRSTFAIL=() K_REPL=()
declare -A C_LEASES=() C_LOSS=() C_CPU1K=() C_DO=() C_RA=() C_REPL=()

save_knee() {
  local s=$1 rate=$2
  K_RATE[$s]=$rate
  K_LEASES[$s]=$S_LEASES
  K_LOSS[$s]=$S_LOSS
  K_DO[$s]="$P_DO_AVG/$P_DO_MIN/$P_DO_MAX"
  K_RA[$s]="$P_RA_AVG/$P_RA_MIN/$P_RA_MAX"
  K_CPU1K[$s]=$S_CPU1K
  K_REPL[$s]=${S_REPL:--}
}

nice_mid() { # midpoint of $1 and $2, rounded to a multiple of 25 (or 5 below 500)
  local lo=$1 hi=$2 mid q
  mid=$(((lo + hi) / 2))
  q=25
  ((mid < 500)) && q=5
  echo $(((mid + q / 2) / q * q))
}

# run_step at the knee search's period; a narrow fail (loss < 5x the limit) is
# repeated once and the repeat counts: a short disturbance from other load
# on the machine should not decide the knee.
try_rate() { # SERVER RATE PHASE
  run_step "$1" "$2" "$PERIOD" "$3" || return 1
  if ((!S_PASS && S_MARGINAL)); then
    log "[$1] narrow fail at $2/s: repeating the step once"
    run_step "$1" "$2" "$PERIOD" "$3-retry" || return 1
  fi
  return 0
}

find_knee() {
  local s=$1 rate=$START_RATE lo=0 hi=0 i mid
  while :; do
    try_rate "$s" "$rate" ladder || return 1
    if ((S_PASS)); then
      lo=$rate
      save_knee "$s" "$rate"
      ((rate * 2 > MAX_RATE)) && break
      rate=$((rate * 2))
    else
      hi=$rate
      break
    fi
  done
  if ((hi > 0)); then
    for ((i = 0; i < BISECT; i++)); do
      mid=$(nice_mid "$lo" "$hi")
      ((mid > lo && mid < hi)) || break
      try_rate "$s" "$mid" bisect || return 1
      if ((S_PASS)); then
        lo=$mid
        save_knee "$s" "$mid"
      else
        hi=$mid
      fi
    done
    K_FIRSTFAIL[$s]=$hi
  fi
  return 0
}

# --------------------------------------------------------------------------
# report

fmt_ratio() { # a / b, or "-"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0 || a + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'
}

print_tables() {
  local s base_c base_km base_ks base_i base_ip
  base_c=${K_LEASES[ceiling]:-}
  base_km=${K_LEASES[kea-mt]:-}
  base_ks=${K_LEASES[kea-st]:-}
  base_i=${K_LEASES[isc]:-}
  base_ip=${K_LEASES[isc-pair]:-}
  echo
  echo "== Knee: highest offered rate with <= ${MAX_LOSS}% loss of 4-way exchanges (and >= $(awk -v m=$MIN_ACHIEVED 'BEGIN{print m*100}')% of it achieved)"
  echo "   ${PERIOD}s steps, $CLIENTS clients, pool $POOL_SIZE addresses, fresh lease DB per step"
  if has_pairs; then
    echo "   pairs: $PAIR_CLIENTS clients, pool $PAIR_POOL_SIZE, both members on this box, CPU of both;"
    echo "   a pair's step passes only if both members hold every lease granted (held: both/granted)"
  fi
  printf '%-12s %9s %10s %7s %21s %21s %10s %13s %8s %8s %8s %8s %9s\n' \
    server "knee/s" "leases/s" "loss%" "DO avg/min/max ms" "RA avg/min/max ms" "CPU s/1k" "held" \
    "/ceiling" "/kea-mt" "/kea-st" "/isc" "/isc-pair"
  for s in "${SERVERS[@]}"; do
    if [[ -n ${UNAVAILABLE[$s]:-} ]]; then
      printf '%-12s not available (%s)\n' "$s" "${UNAVAILABLE[$s]}"
      continue
    fi
    if [[ -z ${K_RATE[$s]:-} ]]; then
      printf '%-12s no passing step (fails already at %s/s)\n' "$s" "${K_FIRSTFAIL[$s]:-$START_RATE}"
      continue
    fi
    local knee=${K_RATE[$s]}
    [[ -z ${K_FIRSTFAIL[$s]:-} ]] && knee=">=$knee"
    printf '%-12s %9s %10s %7s %21s %21s %10s %13s %8s %8s %8s %8s %9s\n' "$s" "$knee" "${K_LEASES[$s]}" \
      "${K_LOSS[$s]}" "${K_DO[$s]}" "${K_RA[$s]}" "${K_CPU1K[$s]}" "${K_REPL[$s]:--}" \
      "$(fmt_ratio "${K_LEASES[$s]}" "$base_c")" "$(fmt_ratio "${K_LEASES[$s]}" "$base_km")" \
      "$(fmt_ratio "${K_LEASES[$s]}" "$base_ks")" "$(fmt_ratio "${K_LEASES[$s]}" "$base_i")" \
      "$(fmt_ratio "${K_LEASES[$s]}" "$base_ip")"
  done
  if [[ -n $COMMON_RATE ]]; then
    echo
    echo "== Common rate: ${COMMON_RATE}/s offered to every server for ${PERIOD}s"
    printf '%-12s %10s %7s %10s %10s %10s %13s %8s %8s %8s %9s\n' \
      server "leases/s" "loss%" "DO avg ms" "RA avg ms" "CPU s/1k" "held" "/ceiling" "/kea-mt" "/isc" "/isc-pair"
    for s in "${SERVERS[@]}"; do
      [[ -n ${C_LEASES[$s]:-} ]] || continue
      printf '%-12s %10s %7s %10s %10s %10s %13s %8s %8s %8s %9s\n' "$s" "${C_LEASES[$s]}" "${C_LOSS[$s]}" \
        "${C_DO[$s]}" "${C_RA[$s]}" "${C_CPU1K[$s]}" "${C_REPL[$s]:--}" \
        "$(fmt_ratio "${C_CPU1K[$s]}" "${C_CPU1K[ceiling]:-}")" \
        "$(fmt_ratio "${C_CPU1K[$s]}" "${C_CPU1K[kea-mt]:-}")" \
        "$(fmt_ratio "${C_CPU1K[$s]}" "${C_CPU1K[isc]:-}")" \
        "$(fmt_ratio "${C_CPU1K[$s]}" "${C_CPU1K[isc-pair]:-}")"
    done
    echo "   (ratios here are CPU per lease relative to the named server: lower is cheaper)"
  fi
}

has_pairs() {
  local s
  for s in "${SERVERS[@]}"; do is_pair "$s" && return 0; done
  return 1
}

# --------------------------------------------------------------------------
# main

T0=$SECONDS
if [[ " ${SERVERS[*]} " == *" ceiling "* ]]; then
  # Rebuild only when stale: the build lock may be held by other builds.
  if [[ -z ${BENCH_RESPONDER:-} ]] && command -v cargo >/dev/null &&
    { [[ ! -x $RESPONDER_BIN ]] ||
      [[ -n $(find "$ROOT/e2e/bench/responder" -newer "$RESPONDER_BIN" -type f -print -quit) ]]; }; then
    log "building bench-responder (release)"
    (cd "$ROOT" && cargo build --release -q -p bench-responder 9>&-) || die "cargo build -p bench-responder failed"
  fi
fi
for s in "${SERVERS[@]}"; do check_server_present "$s"; done
if [[ (" ${SERVERS[*]} " == *" dhcpair "* || " ${SERVERS[*]} " == *" dhcpair-pair "*) && -x $DHCPAIR_BIN ]]; then
  # A private copy: a rebuild during the run must not swap the binary under us.
  if cp "$DHCPAIR_BIN" "$WORK/dhcpair-bin"; then
    DHCPAIR_BIN=$WORK/dhcpair-bin
  else
    for s in dhcpair dhcpair-pair; do UNAVAILABLE[$s]="cannot copy $DHCPAIR_BIN"; done
  fi
fi

setup_net
write_configs
log "topology: $NS_CLI ($CLI_IP on bridge $IF_BR, perfdhcp as relay) <-> $NS_SRV ($SRV_IP), $NS_SRV2 ($SRV2_IP); pool $POOL_START-$POOL_END ($POOL_SIZE); work dir $WORK"
has_pairs && log "pairs: primary $SRV_IP, secondary $SRV2_IP, perfdhcp broadcasts; pool $POOL_START-$PAIR_POOL_END ($PAIR_POOL_SIZE), $PAIR_CLIENTS clients"
log "load on this box before starting: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"

BROKEN=()

if ((SMOKE)); then
  TABLE=$(printf '%-12s %8s %9s %9s %7s %10s %10s %10s %11s  %s' server "rate/s" "ACKs" "leases/s" "loss%" "DO avg ms" "RA avg ms" "CPU s/1k" "held" note)
  for s in "${SERVERS[@]}"; do
    if [[ -z ${UNAVAILABLE[$s]:-} ]] && ! run_step "$s" "$SMOKE_RATE" "$SMOKE_PERIOD" smoke; then
      UNAVAILABLE[$s]="failed to start"
    fi
    if [[ -n ${UNAVAILABLE[$s]:-} ]]; then
      TABLE+=$'\n'$(printf '%-12s not available (%s)' "$s" "${UNAVAILABLE[$s]}")
      server_optional "$s" || BROKEN+=("$s: ${UNAVAILABLE[$s]}")
      continue
    fi
    TABLE+=$'\n'$(printf '%-12s %8s %9s %9s %7s %10s %10s %10s %11s  %s' "$s" "$SMOKE_RATE" "$P_RA_RECV" "$S_LEASES" "$S_LOSS" \
      "$P_DO_AVG" "$P_RA_AVG" "$S_CPU1K" "${S_REPL:--}" "$S_NOTE")
    # No ACK, or a server that died, is a broken set-up. Incomplete
    # replication fails the smoke for dhcpair's pair (every lease it granted
    # must be held by both members); for the other pairs it is a result
    # (flagged in the note).
    if ((P_RA_RECV == 0 || S_DIED)); then
      BROKEN+=("$s: $( ((S_DIED)) && echo "server died" || echo "no ACK received")")
    elif [[ $s == dhcpair-pair && -n $S_NOTE ]]; then
      BROKEN+=("$s: $S_NOTE: held by both members $S_BOTH of the $S_GRANTED addresses granted")
    fi
  done
  echo
  echo "== Smoke: ${SMOKE_PERIOD}s at ${SMOKE_RATE}/s per server (figures are not meaningful at this length)"
  echo "$TABLE"
else
  for s in "${SERVERS[@]}"; do
    [[ -n ${UNAVAILABLE[$s]:-} ]] && { log "[$s] not available: ${UNAVAILABLE[$s]}"; continue; }
    log "[$s] searching the knee"
    if ! find_knee "$s"; then
      UNAVAILABLE[$s]="failed to start"
      server_optional "$s" || BROKEN+=("$s: failed to start")
      continue
    fi
    if [[ $s == ceiling && -z ${K_RATE[ceiling]:-} ]]; then
      BROKEN+=("ceiling: no passing step, the setup is broken")
    fi
  done
  if [[ -z $COMMON_RATE ]]; then
    # 80 % of the lowest knee, rounded down to a round figure, at most 1000/s.
    min=1250
    for s in "${SERVERS[@]}"; do
      [[ -n ${K_RATE[$s]:-} ]] && ((K_RATE[$s] < min)) && min=${K_RATE[$s]}
    done
    min=$((min * 4 / 5))
    for r in 1000 750 500 400 300 250 200 150 100 50; do
      if ((r <= min)); then COMMON_RATE=$r; break; fi
    done
    COMMON_RATE=${COMMON_RATE:-50}
  fi
  log "common-rate pass at ${COMMON_RATE}/s"
  for s in "${SERVERS[@]}"; do
    [[ -n ${UNAVAILABLE[$s]:-} ]] && continue
    run_step "$s" "$COMMON_RATE" "$PERIOD" common || continue
    C_LEASES[$s]=$S_LEASES
    C_LOSS[$s]=$S_LOSS
    C_CPU1K[$s]=$S_CPU1K
    C_DO[$s]=$P_DO_AVG
    C_RA[$s]=$P_RA_AVG
    C_REPL[$s]=${S_REPL:--}
  done
  print_tables
fi

echo
echo "elapsed: $((SECONDS - T0)) s; load average now: $(cut -d' ' -f1-3 /proc/loadavg); per-step CSV: $RESULTS_CSV$([[ -z $OUT_DIR ]] && ((!KEEP)) && echo ' (removed; use --out DIR to keep)')"
if ((${#BROKEN[@]})); then
  for b in "${BROKEN[@]}"; do log "BROKEN: $b"; done
  exit 1
fi
exit 0
