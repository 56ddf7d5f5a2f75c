#!/usr/bin/env bash
# perfdhcp benchmark of DHCPv4 4-way exchanges (DISCOVER-OFFER-REQUEST-ACK)
# against several servers in one topology: two network namespaces joined by a
# veth pair, perfdhcp in the client namespace acting as a relay.
#
#   e2e/bench/run.sh [--smoke] [--servers a,b,...] [--out DIR]
#
# See e2e/bench/README.md. Needs root (network namespaces).
set -uo pipefail

usage() {
  cat <<'EOF'
usage: e2e/bench/run.sh [--smoke] [--servers LIST] [--out DIR] [--keep]

  --smoke          one short low-rate step per available server (< 60 s)
  --servers LIST   comma-separated subset of: ceiling,isc,kea-st,kea-mt,dhcpair
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
  BENCH_REQUIRE_DHCPAIR=0  1: a missing/unready dhcpair is an error
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

NS_SRV=dhcpbench-srv
NS_CLI=dhcpbench-cli
IF_SRV=dhcpb-srv0
IF_CLI=dhcpb-cli0
SRV_IP=10.77.0.1
CLI_IP=10.77.0.2
PREFIX=16
SUBNET=10.77.0.0
NETMASK=255.255.0.0
POOL_START=10.77.1.0
POOL_END=10.77.240.255
POOL_SIZE=61440 # 240 * 256, identical for every server
HTTP_PORT=9167

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

ALL_SERVERS=(ceiling isc kea-st kea-mt dhcpair)
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

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --------------------------------------------------------------------------
# preflight

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces)"
for t in ip perfdhcp kea-dhcp4 awk flock timeout; do
  command -v "$t" >/dev/null || die "missing tool: $t"
done
DHCPD_BIN=$(command -v dhcpd || echo /usr/sbin/dhcpd)

# Children get fd 9 closed (9>&-), so only this script holds the lock and a
# killed run's leftovers do not block the next run.
exec 9>"$LOCK_FILE"
flock -n 9 || die "another run.sh holds $LOCK_FILE"

# --------------------------------------------------------------------------
# cleanup (this run's, and leftovers of an earlier run that was killed)

SERVER_PID=
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
  for ns in "$NS_SRV" "$NS_CLI"; do
    [[ -e /run/netns/$ns ]] || continue
    # Whatever still runs inside our namespaces is ours: end it by PID.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill_pid "$pid"
    done
    ip netns del "$ns" 2>/dev/null
  done
  ip link del "$IF_SRV" 2>/dev/null
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
  if [[ -e /run/netns/$NS_SRV || -e /run/netns/$NS_CLI ]]; then
    log "removing leftover namespaces"
  fi
  teardown_net
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  kill_pid "$PERF_PID"
  kill_pid "$SERVER_PID"
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
echo "server,phase,offered_rate,period_s,do_sent,do_recv,ra_sent,ra_recv,leases_per_s,loss_pct,do_min_ms,do_avg_ms,do_max_ms,ra_min_ms,ra_avg_ms,ra_max_ms,cpu_s,cpu_s_per_1k,pass" >"$RESULTS_CSV"

# --------------------------------------------------------------------------
# topology

setup_net() {
  ip netns add "$NS_SRV" || die "ip netns add $NS_SRV"
  ip netns add "$NS_CLI" || die "ip netns add $NS_CLI"
  ip link add "$IF_SRV" type veth peer name "$IF_CLI" || die "veth"
  ip link set "$IF_SRV" netns "$NS_SRV" || die "veth to $NS_SRV"
  ip link set "$IF_CLI" netns "$NS_CLI" || die "veth to $NS_CLI"
  ip -n "$NS_SRV" addr add "$SRV_IP/$PREFIX" dev "$IF_SRV" || die "addr"
  ip -n "$NS_CLI" addr add "$CLI_IP/$PREFIX" dev "$IF_CLI" || die "addr"
  local ns
  for ns in "$NS_SRV" "$NS_CLI"; do
    ip -n "$ns" link set lo up
  done
  ip -n "$NS_SRV" link set "$IF_SRV" up || die "link up"
  ip -n "$NS_CLI" link set "$IF_CLI" up || die "link up"
  return 0
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
}

# Why a server is not available (empty: it is).
declare -A UNAVAILABLE=()

server_optional() { [[ $1 == dhcpair && $REQUIRE_DHCPAIR != 1 ]]; }

check_server_present() {
  local s=$1
  case $s in
    ceiling) [[ -x $RESPONDER_BIN ]] || UNAVAILABLE[$s]="no $RESPONDER_BIN" ;;
    isc) [[ -x $DHCPD_BIN ]] || UNAVAILABLE[$s]="no $DHCPD_BIN" ;;
    kea-st | kea-mt) command -v kea-dhcp4 >/dev/null || UNAVAILABLE[$s]="no kea-dhcp4" ;;
    dhcpair) [[ -x $DHCPAIR_BIN ]] || UNAVAILABLE[$s]="no $DHCPAIR_BIN" ;;
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

# perfdhcp run in the client namespace; output to $1, rest are perfdhcp args.
perf() {
  local out=$1 budget=$2
  shift 2
  timeout --signal=KILL "$budget" ip netns exec "$NS_CLI" perfdhcp -4 -l "$CLI_IP" "$@" "$SRV_IP" >"$out" 2>&1 9>&- &
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
  kill_pid "$SERVER_PID"
  SERVER_PID=
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
  local out="$WORK/out/$s-$phase-$rate.txt" c0 c1
  c0=$(cpu_ticks "$SERVER_PID")
  perf "$out" $((period + 30)) -r "$rate" -p "$period" -R "$CLIENTS" -s "$SEED" -W "$EXIT_WAIT_US"
  c1=$(cpu_ticks "$SERVER_PID")
  S_NOTE=
  kill -0 "$SERVER_PID" 2>/dev/null || S_NOTE="server died"
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
  echo "$s,$phase,$rate,$period,$P_DO_SENT,$P_DO_RECV,$P_RA_SENT,$P_RA_RECV,$S_LEASES,$S_LOSS,$P_DO_MIN,$P_DO_AVG,$P_DO_MAX,$P_RA_MIN,$P_RA_AVG,$P_RA_MAX,$S_CPU,$S_CPU1K,$S_PASS" >>"$RESULTS_CSV"
  log "[$s] $(printf '%6d/s' "$rate"): DO $P_DO_RECV/$P_DO_SENT RA $P_RA_RECV/$P_RA_SENT" \
    "-> $S_LEASES leases/s, loss $S_LOSS%, delay avg DO $P_DO_AVG RA $P_RA_AVG ms," \
    "cpu $S_CPU s ($S_CPU1K s/1k) $( ((S_PASS)) && echo pass || echo FAIL) $S_NOTE"
  return 0
}

# --------------------------------------------------------------------------
# knee search

declare -A K_RATE=() K_LEASES=() K_LOSS=() K_DO=() K_RA=() K_CPU1K=() K_FIRSTFAIL=()
declare -A C_LEASES=() C_LOSS=() C_CPU1K=() C_DO=() C_RA=()

save_knee() {
  local s=$1 rate=$2
  K_RATE[$s]=$rate
  K_LEASES[$s]=$S_LEASES
  K_LOSS[$s]=$S_LOSS
  K_DO[$s]="$P_DO_AVG/$P_DO_MIN/$P_DO_MAX"
  K_RA[$s]="$P_RA_AVG/$P_RA_MIN/$P_RA_MAX"
  K_CPU1K[$s]=$S_CPU1K
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
  local s base_c base_km base_ks base_i
  base_c=${K_LEASES[ceiling]:-}
  base_km=${K_LEASES[kea-mt]:-}
  base_ks=${K_LEASES[kea-st]:-}
  base_i=${K_LEASES[isc]:-}
  echo
  echo "== Knee: highest offered rate with <= ${MAX_LOSS}% loss of 4-way exchanges (and >= $(awk -v m=$MIN_ACHIEVED 'BEGIN{print m*100}')% of it achieved)"
  echo "   ${PERIOD}s steps, $CLIENTS clients, pool $POOL_SIZE addresses, fresh lease DB per step"
  printf '%-9s %9s %10s %7s %21s %21s %10s %8s %8s %8s %8s\n' \
    server "knee/s" "leases/s" "loss%" "DO avg/min/max ms" "RA avg/min/max ms" "CPU s/1k" "/ceiling" "/kea-mt" "/kea-st" "/isc"
  for s in "${SERVERS[@]}"; do
    if [[ -n ${UNAVAILABLE[$s]:-} ]]; then
      printf '%-9s not available (%s)\n' "$s" "${UNAVAILABLE[$s]}"
      continue
    fi
    if [[ -z ${K_RATE[$s]:-} ]]; then
      printf '%-9s no passing step (fails already at %s/s)\n' "$s" "${K_FIRSTFAIL[$s]:-$START_RATE}"
      continue
    fi
    local knee=${K_RATE[$s]}
    [[ -z ${K_FIRSTFAIL[$s]:-} ]] && knee=">=$knee"
    printf '%-9s %9s %10s %7s %21s %21s %10s %8s %8s %8s %8s\n' "$s" "$knee" "${K_LEASES[$s]}" \
      "${K_LOSS[$s]}" "${K_DO[$s]}" "${K_RA[$s]}" "${K_CPU1K[$s]}" \
      "$(fmt_ratio "${K_LEASES[$s]}" "$base_c")" "$(fmt_ratio "${K_LEASES[$s]}" "$base_km")" \
      "$(fmt_ratio "${K_LEASES[$s]}" "$base_ks")" "$(fmt_ratio "${K_LEASES[$s]}" "$base_i")"
  done
  if [[ -n $COMMON_RATE ]]; then
    echo
    echo "== Common rate: ${COMMON_RATE}/s offered to every server for ${PERIOD}s"
    printf '%-9s %10s %7s %10s %10s %10s %8s %8s %8s\n' \
      server "leases/s" "loss%" "DO avg ms" "RA avg ms" "CPU s/1k" "/ceiling" "/kea-mt" "/isc"
    for s in "${SERVERS[@]}"; do
      [[ -n ${C_LEASES[$s]:-} ]] || continue
      printf '%-9s %10s %7s %10s %10s %10s %8s %8s %8s\n' "$s" "${C_LEASES[$s]}" "${C_LOSS[$s]}" \
        "${C_DO[$s]}" "${C_RA[$s]}" "${C_CPU1K[$s]}" \
        "$(fmt_ratio "${C_CPU1K[$s]}" "${C_CPU1K[ceiling]:-}")" \
        "$(fmt_ratio "${C_CPU1K[$s]}" "${C_CPU1K[kea-mt]:-}")" \
        "$(fmt_ratio "${C_CPU1K[$s]}" "${C_CPU1K[isc]:-}")"
    done
    echo "   (ratios here are CPU per lease relative to the named server: lower is cheaper)"
  fi
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
if [[ " ${SERVERS[*]} " == *" dhcpair "* && -z ${UNAVAILABLE[dhcpair]:-} ]]; then
  # A private copy: a rebuild during the run must not swap the binary under us.
  cp "$DHCPAIR_BIN" "$WORK/dhcpair-bin" && DHCPAIR_BIN=$WORK/dhcpair-bin ||
    UNAVAILABLE[dhcpair]="cannot copy $DHCPAIR_BIN"
fi

setup_net
write_configs
log "topology: $NS_CLI ($CLI_IP, perfdhcp as relay) <-> $NS_SRV ($SRV_IP); pool $POOL_START-$POOL_END ($POOL_SIZE); work dir $WORK"
log "load on this box before starting: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"

BROKEN=()

if ((SMOKE)); then
  TABLE=$(printf '%-9s %8s %9s %9s %7s %10s %10s %10s  %s' server "rate/s" "ACKs" "leases/s" "loss%" "DO avg ms" "RA avg ms" "CPU s/1k" note)
  for s in "${SERVERS[@]}"; do
    if [[ -z ${UNAVAILABLE[$s]:-} ]] && ! run_step "$s" "$SMOKE_RATE" "$SMOKE_PERIOD" smoke; then
      UNAVAILABLE[$s]="failed to start"
    fi
    if [[ -n ${UNAVAILABLE[$s]:-} ]]; then
      TABLE+=$'\n'$(printf '%-9s not available (%s)' "$s" "${UNAVAILABLE[$s]}")
      server_optional "$s" || BROKEN+=("$s: ${UNAVAILABLE[$s]}")
      continue
    fi
    TABLE+=$'\n'$(printf '%-9s %8s %9s %9s %7s %10s %10s %10s  %s' "$s" "$SMOKE_RATE" "$P_RA_RECV" "$S_LEASES" "$S_LOSS" \
      "$P_DO_AVG" "$P_RA_AVG" "$S_CPU1K" "$S_NOTE")
    if ((P_RA_RECV == 0)) || [[ -n $S_NOTE ]]; then
      BROKEN+=("$s: ${S_NOTE:-no ACK received}")
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
