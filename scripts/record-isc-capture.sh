#!/usr/bin/env bash
# Records a real ISC dhcpd failover pair on the wire, as test data for the failover codec's
# known-answer tests (server/wire/tests/failover_isc_capture.rs).
#
# Two ISC dhcpd servers (primary 10.77.0.1, secondary 10.77.0.2) and three dhclient clients run
# in network namespaces this script creates, plugged into one bridge; tshark captures TCP 647
# and UDP 67/68 on the primary's interface. Scenario, in order:
#   1. both servers start with empty lease files (RECOVER), UPDREQALL/UPDDONE both ways,
#      NORMAL; the primary balances the pool (BNDUPDs of BACKUP leases);
#   2. three dhclient clients (52:54:00:00:00:01..03) get leases one after the other, each ACK
#      followed by its BNDUPD/BNDACK (the load-balancing hash with split 128 sends one of them
#      to the secondary);
#   3. client 1 releases its lease (DHCPRELEASE, BNDUPD released);
#   4. the secondary is killed (SIGKILL: its TCP connection closes, no goodbye) and started
#      again from its lease file; both servers return to NORMAL.
# The outputs are checked (every BNDUPD acknowledged, both servers NORMAL twice, one client on
# the secondary) in a scratch directory and only then copied into the output directory.
#
# A new recording has other times and xids after the first keepalive, and may have another
# number of CONTACTs or DHCP retries: the constants of failover_isc_capture.rs are updated with
# it (each is derived there from the configs, logs and lease files).
#
# Usage (root):  sudo scripts/record-isc-capture.sh [OUTPUT_DIR]
# OUTPUT_DIR defaults to server/wire/tests/data/isc-pair/ in this repository.
# Needs: ip (iproute2), dhcpd and dhclient (Debian isc-dhcp-server / isc-dhcp-client), tshark.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/server/wire/tests/data/isc-pair}") # absolute: the script cd's

die() {
  echo "record-isc-capture: $*" >&2
  exit 1
}
say() { printf '==> %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"
for tool in ip dhcpd dhclient tshark timeout; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

# Everything this run creates is named after its PID, so concurrent runs cannot collide and
# cleanup touches nothing else.
TAG=iscrec-$$
NS_SW=$TAG-sw NS_P=$TAG-p NS_S=$TAG-s
NS_C=("$TAG-c1" "$TAG-c2" "$TAG-c3")
NAMESPACES=()
PIDS=()
WORK=$(mktemp -d "/tmp/$TAG.XXXXXX")
PCAP=$WORK/isc-pair.pcap
OK=0

cleanup() {
  set +e
  # Every process this script starts runs inside one of its namespaces: kill exactly the PIDs
  # found there (so a recorded PID that has exited and been reused elsewhere is never hit),
  # reap our children, then delete the namespaces.
  for ns in "${NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in "${NAMESPACES[@]}"; do ip netns delete "$ns" 2>/dev/null; done
  if [ "$OK" -eq 1 ]; then
    rm -rf "$WORK"
  else
    echo "record-isc-capture: FAILED; scratch files kept in $WORK" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s; fail after SECONDS.
wait_until() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}

# count_lines FILE NEEDLE: how many lines of FILE contain NEEDLE (a fixed string).
count_lines() { grep -cF -- "$2" "$1" 2>/dev/null || true; }
log_has() { [ "$(count_lines "$1" "$2")" -ge "${3:-1}" ]; }
alive() { kill -0 "$1" 2>/dev/null; }

# Failover messages in the capture so far, one per line: stream, sender, type, xid.
# (A capture still being written may end in the middle of a packet: tshark then reads what it
# can and exits non-zero.)
fo_messages() {
  { tshark -n -r "$PCAP" -d tcp.port==647,dhcpfo -Y dhcpfo -T fields -E separator=/t \
    -e tcp.stream -e ip.src -e dhcpfo.type -e dhcpfo.xid 2>/dev/null || true; } |
    awk -F'\t' '{ n = split($3, t, ","); split($4, x, ",");
                  for (i = 1; i <= n; i++) print $1, $2, t[i], x[i] }'
}
# How many BNDUPDs (type 3) have no BNDACK (type 4) with the same xid from the other side of
# the same connection.
unacked() {
  fo_messages | awk '
    $3 == 3 { upd[$1 " " $2 " " $4] = 1 }
    $3 == 4 { ack[$1 " " $2 " " $4] = 1 }
    END { n = 0
          for (k in upd) { split(k, f, " ")
            peer = (f[2] == "10.77.0.1") ? "10.77.0.2" : "10.77.0.1"
            if (!((f[1] " " peer " " f[3]) in ack)) n++ }
          print n }'
}
# settle WHAT: every BNDUPD acknowledged and no new failover message for 4 s (ISC acks in
# batches, and one update can trigger another, such as a rebalance after a release).
settle() {
  local what=$1 deadline=$((SECONDS + 60)) last=-1 since=$SECONDS n
  while :; do
    n=$(fo_messages | wc -l)
    if [ "$n" -ne "$last" ]; then
      last=$n
      since=$SECONDS
    elif [ "$(unacked)" -eq 0 ] && ((SECONDS - since >= 4)); then
      return 0
    fi
    ((SECONDS < deadline)) || die "timed out after 60s waiting for the failover link to settle ($what)"
    sleep 0.5
  done
}

# ------------------------------------------------------------------------------ network
say "network namespaces $TAG-*: a bridge, primary 10.77.0.1, secondary 10.77.0.2, three clients"
for ns in "$NS_SW" "$NS_P" "$NS_S" "${NS_C[@]}"; do
  ip netns add "$ns"
  NAMESPACES+=("$ns")
  ip -n "$ns" link set lo up
done
ip -n "$NS_SW" link add br0 type bridge forward_delay 0 stp_state 0
ip -n "$NS_SW" link set br0 up
plug() { # namespace port-name mac
  ip -n "$NS_SW" link add "$2" type veth peer name eth0 netns "$1"
  ip -n "$NS_SW" link set "$2" master br0
  ip -n "$NS_SW" link set "$2" up
  ip -n "$1" link set eth0 address "$3"
  ip -n "$1" link set eth0 up
}
plug "$NS_P" primary 52:54:00:77:00:01
plug "$NS_S" secondary 52:54:00:77:00:02
for i in 1 2 3; do plug "${NS_C[$((i - 1))]}" "client$i" "52:54:00:00:00:0$i"; done
ip -n "$NS_P" addr add 10.77.0.1/24 dev eth0
ip -n "$NS_S" addr add 10.77.0.2/24 dev eth0

# ------------------------------------------------------------------------------ configs
write_conf() { # role address peer-address primary-only-line
  cat <<CONF
authoritative;
ddns-update-style none;
default-lease-time 3600;
max-lease-time 7200;
failover peer "ref" {
  $1; address $2; peer address $3;$4
  port 647; peer port 647;
  max-response-delay 30; max-unacked-updates 10; load balance max seconds 3;
}
subnet 10.77.0.0 netmask 255.255.255.0 {
  option routers 10.77.0.1;
  option domain-name-servers 10.77.0.1;
  pool { failover peer "ref"; deny dynamic bootp clients; range 10.77.0.100 10.77.0.119; }
}
CONF
}
write_conf primary 10.77.0.1 10.77.0.2 " mclt 300; split 128;" >"$WORK/primary.conf"
write_conf secondary 10.77.0.2 10.77.0.1 "" >"$WORK/secondary.conf"
: >"$WORK/primary.leases"
: >"$WORK/secondary.leases"

for i in 1 2 3; do
  cat >"$WORK/c$i.conf" <<'CONF'
# no host name, no client identifier: the chaddr is the client's only key
request subnet-mask, broadcast-address, routers, domain-name-servers;
initial-interval 1;
backoff-cutoff 2;
timeout 30;
retry 5;
CONF
  # Our hook instead of dhclient-script: configures the address (so the DHCPRELEASE can be
  # unicast), records the lease, never touches /etc/resolv.conf.
  cat >"$WORK/c$i.hook" <<HOOK
#!/bin/sh
case "\$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "\$new_ip_address/\$new_subnet_mask" dev "\$interface"
    echo "\$new_ip_address \$new_dhcp_server_identifier" > "$WORK/c$i.bound" ;;
  RELEASE|EXPIRE|FAIL|STOP)
    ip -4 addr flush dev "\$interface"
    echo "\$reason" > "$WORK/c$i.released" ;;
esac
exit 0
HOOK
  chmod 755 "$WORK/c$i.hook"
  : >"$WORK/c$i.leases" # dhclient wants it to exist
done

# ------------------------------------------------------------------------------ processes
cd "$WORK" # dhcpd and dhclient are given relative paths: the logs show no scratch path

say "tshark on the primary's eth0 (tcp port 647, udp ports 67/68)"
ip netns exec "$NS_P" tshark -n -p -i eth0 -F pcap \
  -f "tcp port 647 or udp port 67 or udp port 68" -w "$PCAP" 2>"$WORK/tshark.log" &
TSHARK=$!
PIDS+=("$TSHARK")
wait_until 30 "tshark to capture" log_has "$WORK/tshark.log" "Capturing on"

DHCPD= # the PID start_dhcpd started last
start_dhcpd() { # namespace role log
  ip netns exec "$1" dhcpd -4 -f -d -cf "./$2.conf" -lf "./$2.leases" -pf "./$2.pid" eth0 \
    >"$WORK/$3" 2>&1 &
  DHCPD=$!
  PIDS+=("$DHCPD")
  wait_until 20 "dhcpd ($2) to start service" log_has "$WORK/$3" "Server starting service."
  alive "$DHCPD" || die "dhcpd ($2) exited: $(cat "$WORK/$3")"
}

say "1. both servers start with empty lease files (the secondary first, then the primary)"
T_START=$(date -u +%s)
start_dhcpd "$NS_S" secondary secondary.log
SECONDARY=$DHCPD
start_dhcpd "$NS_P" primary primary.log
wait_until 60 "both servers normal (primary)" log_has primary.log "Both servers normal"
wait_until 60 "both servers normal (secondary)" log_has secondary.log "Both servers normal"
wait_until 30 "the primary to balance the pool" log_has primary.log "balanced pool"
settle "initial synchronisation and pool balancing"

say "2. three dhclient clients, one after the other"
for i in 1 2 3; do
  ns=${NS_C[$((i - 1))]}
  ip netns exec "$ns" dhclient -4 -v -d -cf "./c$i.conf" -sf "$WORK/c$i.hook" \
    -lf "./c$i.leases" -pf "./c$i.pid" eth0 >"$WORK/c$i.log" 2>&1 &
  PIDS+=($!)
  wait_until 40 "client $i to get a lease" test -s "$WORK/c$i.bound"
  read -r ip server <"$WORK/c$i.bound"
  echo "    client $i (52:54:00:00:00:0$i): $ip from $server"
  settle "client $i's binding update"
done

say "3. client 1 releases its lease"
read -r _ server1 <"$WORK/c1.bound"
[ "$server1" = 10.77.0.2 ] && releaser=secondary.log || releaser=primary.log
timeout 30 ip netns exec "${NS_C[0]}" dhclient -4 -v -r -cf ./c1.conf -sf "$WORK/c1.hook" \
  -lf ./c1.leases -pf ./c1.pid eth0 >>"$WORK/c1.log" 2>&1 || die "dhclient -r failed"
wait_until 20 "the DHCPRELEASE in $releaser" log_has "$releaser" "DHCPRELEASE of"
settle "the release's binding update"

say "4. the secondary is killed and started again from its lease file"
kill -KILL "$SECONDARY"
wait "$SECONDARY" 2>/dev/null || true
wait_until 30 "the primary to see the secondary gone" \
  log_has primary.log "I move from normal to communications-interrupted"
sleep 2
start_dhcpd "$NS_S" secondary secondary-restart.log
wait_until 60 "both servers normal again (primary)" log_has primary.log "Both servers normal" 2
wait_until 60 "both servers normal again (secondary)" \
  log_has secondary-restart.log "Both servers normal"
settle "the restart"

say "stopping tshark"
kill -INT "$TSHARK"
for _ in $(seq 100); do alive "$TSHARK" || break; sleep 0.1; done
alive "$TSHARK" && die "tshark did not stop"
wait "$TSHARK" 2>/dev/null || true
# The lease files as the running servers left them (the trap then kills both).
cp primary.leases primary.leases.final
cp secondary.leases secondary.leases.final

# ------------------------------------------------------------------------------ checks
say "checking the capture"
fo_messages >"$WORK/messages.txt" || die "tshark cannot read the capture"
count() { awk -v t="$1" -v s="${2:-}" '$3 == t && (s == "" || $2 == s)' "$WORK/messages.txt" | wc -l; }
[ "$(unacked)" -eq 0 ] || die "$(unacked) BNDUPDs without BNDACK in the capture"
[ "$(count 5)" -ge 2 ] || die "fewer than 2 CONNECTs"
[ "$(count 6)" -ge 2 ] || die "fewer than 2 CONNECTACKs"
[ "$(count 7 10.77.0.1)" -ge 1 ] && [ "$(count 7 10.77.0.2)" -ge 1 ] ||
  die "an UPDREQALL is missing"
[ "$(count 8 10.77.0.1)" -ge 1 ] && [ "$(count 8 10.77.0.2)" -ge 1 ] ||
  die "an UPDDONE is missing"
[ "$(count 3 10.77.0.1)" -ge 10 ] || die "the primary sent fewer than 10 BNDUPDs"
on_secondary=0
for i in 1 2 3; do
  read -r _ server <"$WORK/c$i.bound"
  [ "$server" = 10.77.0.2 ] && on_secondary=$((on_secondary + 1))
done
[ "$on_secondary" -ge 1 ] && [ "$on_secondary" -le 2 ] ||
  die "$on_secondary of 3 clients were served by the secondary"
dhcp_msgs=$(tshark -n -r "$PCAP" -Y dhcp -T fields -e dhcp.option.dhcp 2>/dev/null | sort | uniq -c |
  awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }')

# ------------------------------------------------------------------------------ outputs
say "writing $OUT"
mkdir -p "$OUT"
install -m 644 "$PCAP" "$OUT/isc-pair.pcap"
install -m 644 primary.conf secondary.conf primary.log secondary.log secondary-restart.log "$OUT/"
install -m 644 primary.leases.final "$OUT/primary.leases"
install -m 644 secondary.leases.final "$OUT/secondary.leases"

names=([1]=POOLREQ POOLRESP BNDUPD BNDACK CONNECT CONNECTACK UPDREQALL UPDDONE UPDREQ STATE
  CONTACT DISCONNECT)
table=$(
  for t in 5 6 10 7 8 3 4 11 12; do
    p=$(count "$t" 10.77.0.1) s=$(count "$t" 10.77.0.2)
    if [ $((p + s)) -gt 0 ]; then
      printf '| %s (%s) | %s | %s |\n' "${names[$t]}" "$t" "$p" "$s"
    fi
  done
)
streams=$(awk '{ print $1 }' "$WORK/messages.txt" | sort -n | uniq -c |
  awk '{ printf "%s%s (%s messages)", sep, $2, $1; sep = ", " }')
clients=$(for i in 1 2 3; do
  read -r ip server <"$WORK/c$i.bound"
  printf -- '- client %s, 52:54:00:00:00:0%s: %s from %s\n' "$i" "$i" "$ip" "$server"
done)

cat >"$OUT/README.md" <<README
# A real ISC dhcpd failover pair on the wire

Test data for \`server/wire/tests/failover_isc_capture.rs\`, written by
\`scripts/record-isc-capture.sh\`. Do not edit by hand: regenerate everything here with

\`\`\`sh
sudo scripts/record-isc-capture.sh
\`\`\`

(as root, from the repository root; about a minute; it needs \`ip\`, \`dhcpd\`, \`dhclient\` and
\`tshark\`, and creates and removes its own network namespaces).

Recorded on $(date -u '+%Y-%m-%d %H:%M:%S UTC') (the servers were started at unix time
$T_START and after) with:

\`\`\`
$ dhcpd --version
$(dhcpd --version 2>&1)
$ dhclient --version
$(dhclient --version 2>&1)
$ tshark --version | head -1
$(tshark --version 2>/dev/null | head -1)
\`\`\`

## Setup

Network namespaces on one bridge: ISC dhcpd as primary 10.77.0.1 (MAC 52:54:00:77:00:01) and
secondary 10.77.0.2 (52:54:00:77:00:02), relationship \`ref\`, port 647 both ways, mclt 300,
split 128, max-response-delay 30, max-unacked-updates 10, load balance max seconds 3; one pool
10.77.0.100-119 with \`deny dynamic bootp clients\`; default lease time 3600. Configs:
\`primary.conf\`, \`secondary.conf\`. Three ISC dhclient clients (no host name, no client
identifier) with MACs 52:54:00:00:00:01..03.

## Scenario, in order

1. The secondary starts, then the primary, both with empty lease files (both RECOVER);
   UPDREQALL/UPDDONE both ways, RECOVER-DONE, NORMAL; the primary balances the pool (its log:
   \`balancing pool\` / \`balanced pool\`) and sends the secondary BNDUPDs of BACKUP leases.
2. The three clients get leases one after the other; each DHCPACK is followed by a BNDUPD and
   its BNDACK. The load-balancing hash (split 128) chose:
$clients
3. Client 1 releases its lease (\`dhclient -r\`: DHCPRELEASE, then a BNDUPD of the released
   lease).
4. The secondary is killed (SIGKILL: its TCP connection closes without DISCONNECT, the primary
   moves to COMMUNICATIONS-INTERRUPTED) and started again from its lease file; both servers
   return to NORMAL (\`secondary-restart.log\`).

## Files

- \`isc-pair.pcap\`: classic pcap, Ethernet, everything on the primary's interface matching
  \`tcp port 647 or udp port 67 or udp port 68\`. Unicast DHCP between a client and the
  secondary is not on the primary's port of the bridge, only broadcasts are.
- \`primary.conf\`, \`secondary.conf\`: the servers' configurations.
- \`primary.log\`, \`secondary.log\`, \`secondary-restart.log\`: the servers' own logs
  (\`dhcpd -f -d\`): state moves, pool balancing, DHCP exchanges, rejected updates.
- \`primary.leases\`, \`secondary.leases\`: their lease files at the end (binding states,
  tstp/tsfp/cltt, the failover state records with their times).

## What the capture holds

Failover messages per sender (\`tshark -r isc-pair.pcap -d tcp.port==647,dhcpfo\`; tshark
names types 7 and 9 the wrong way round: 7 is UPDREQALL, 9 is UPDREQ):

| message (type) | from the primary | from the secondary |
|---|---|---|
$table

TCP streams carrying failover messages (tshark's \`tcp.stream\`): $streams.
DHCP messages (option 53) on the primary's port: $dhcp_msgs.
README

OK=1
say "done: $(du -h "$OUT/isc-pair.pcap" | cut -f1) capture in $OUT"
