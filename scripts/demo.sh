#!/usr/bin/env bash
# The main job, locally, with no cluster: a dhcpair failover pair (primary and secondary, each
# in its own network namespace) and a real DHCP client (ISC dhclient) on one bridge. Shows both
# servers reaching NORMAL, the client's lease on both, and the pool's free/backup split.
# Usage: sudo ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# The demo needs no Kubernetes tools (INSTALL_K8S_TOOLS=0: no helm, no test API server build).
INSTALL_K8S_TOOLS=0 ./scripts/install-deps.sh >/dev/null
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -p dhcpair -q
BIN=$ROOT/target/release/dhcpair

WORK=$(mktemp -d /tmp/dhcpair-demo.XXXXXX)
NS=(dhcpair-demo-sw dhcpair-demo-primary dhcpair-demo-secondary dhcpair-demo-client)
SW=${NS[0]} P=${NS[1]} S=${NS[2]} C=${NS[3]}
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "${NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "/etc/netns/$C" "$WORK"
}
trap cleanup EXIT
for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done # leftovers

# One bridge ("the switch"), three hosts plugged into it.
for ns in "${NS[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$SW" link add br0 type bridge && ip -n "$SW" link set br0 up
i=0
for ns in "$P" "$S" "$C"; do
  i=$((i + 1))
  ip -n "$SW" link add "port$i" type veth peer name eth0 netns "$ns"
  ip -n "$SW" link set "port$i" master br0 && ip -n "$SW" link set "port$i" up
  ip -n "$ns" link set eth0 up
done
ip -n "$P" addr add 10.200.0.1/24 dev eth0
ip -n "$S" addr add 10.200.0.2/24 dev eth0
ip -n "$C" link set eth0 address 52:54:00:de:00:01
mkdir -p "/etc/netns/$C" && : > "/etc/netns/$C/resolv.conf" # dhclient must not touch the host's

write_config() { # role address peer-address extra
  cat > "$WORK/$1.yaml" <<YAML
server: {interfaces: [eth0], dataDir: $WORK/$1, http: "$2:9167"}
peers:
  - {name: demo, role: $1, address: $2, peerAddress: $3, maxResponseDelay: 10, loadBalanceMaxSeconds: 3$4}
pools:
  - name: lan
    subnet: 10.200.0.0/24
    failoverPeer: demo
    ranges: [{start: 10.200.0.100, end: 10.200.0.199}]
    options: {routers: [10.200.0.1], domainNameServers: [10.200.0.53], domainName: demo.example}
    defaultLeaseTime: 3600
    deny: [dynamicBootpClients]
YAML
  "$BIN" check --config "$WORK/$1.yaml"
}
write_config primary 10.200.0.1 10.200.0.2 ", mclt: 60, split: 128"
write_config secondary 10.200.0.2 10.200.0.1 ""

ip netns exec "$P" "$BIN" serve --config "$WORK/primary.yaml" 2>"$WORK/primary.log" & PIDS+=($!)
ip netns exec "$S" "$BIN" serve --config "$WORK/secondary.yaml" 2>"$WORK/secondary.log" & PIDS+=($!)

status() { ip netns exec "$1" "$BIN" status --http "$2:9167" "${@:3}"; }
state_of() { status "$1" "$2" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["failover"][0]["myState"])' 2>/dev/null || true; }
echo "== waiting for both servers to reach NORMAL"
for _ in $(seq 300); do
  [ "$(state_of "$P" 10.200.0.1)" = normal ] && [ "$(state_of "$S" 10.200.0.2)" = normal ] && break
  sleep 0.1
done
grep -h "I move from\|peer moves from\|balanced pool" "$WORK/primary.log" | sed 's/^.*INFO [a-z_:]*: /  primary:   /'
grep -h "I move from\|peer moves from" "$WORK/secondary.log" | sed 's/^.*INFO [a-z_:]*: /  secondary: /'

cat > "$WORK/hook.sh" <<'HOOK'
#!/bin/sh
case "$reason" in BOUND|RENEW|REBOOT)
  ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface" 2>/dev/null
  echo "  client got $new_ip_address from server $new_dhcp_server_identifier (lease ${new_dhcp_lease_time}s, router $new_routers, dns $new_domain_name_servers)" ;;
esac
HOOK
chmod +x "$WORK/hook.sh"
echo "== client: dhclient"
timeout 30 ip netns exec "$C" dhclient -4 -1 -sf "$WORK/hook.sh" -lf "$WORK/dhclient.leases" -pf "$WORK/dhclient.pid" eth0
ADDR=$(ip -n "$C" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)

echo "== the lease on both servers (the one that did not answer learnt it by BNDUPD)"
for role in primary secondary; do
  for _ in $(seq 50); do "$BIN" leases --data-dir "$WORK/$role" | grep -q "^$ADDR .*active" && break; sleep 0.1; done
  printf '  %-9s ' "$role:"; "$BIN" leases --data-dir "$WORK/$role" | grep "^$ADDR " || echo "(missing)"
done
echo "== both servers"
active_of() { status "$1" "$2" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["pools"][0]["active"])' 2>/dev/null || true; }
for _ in $(seq 50); do
  [ "$(active_of "$P" 10.200.0.1)" = 1 ] && [ "$(active_of "$S" 10.200.0.2)" = 1 ] && break
  sleep 0.1
done
status "$P" 10.200.0.1 | sed 's/^/  /'
status "$S" 10.200.0.2 | sed 's/^/  /'
