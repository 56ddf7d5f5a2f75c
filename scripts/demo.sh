#!/usr/bin/env bash
# The main job, locally, with no cluster: dhcpair in one network namespace serving a real
# DHCP client (ISC dhclient) in another, then the client's lease and the pool counts.
# Usage: sudo ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

./scripts/install-deps.sh >/dev/null
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -p dhcpair -q
BIN=$ROOT/target/release/dhcpair

WORK=$(mktemp -d /tmp/dhcpair-demo.XXXXXX)
NS_S=dhcpair-demo-server
NS_C=dhcpair-demo-client
SERVER_PID=""
cleanup() {
  # dhclient forks into the background once bound: stop everything in the client namespace.
  for pid in $(ip netns pids "$NS_C" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  ip netns del "$NS_S" 2>/dev/null || true
  ip netns del "$NS_C" 2>/dev/null || true
  rm -rf "/etc/netns/$NS_C" "$WORK"
}
trap cleanup EXIT
# Leftovers from an interrupted run.
ip netns del "$NS_S" 2>/dev/null || true
ip netns del "$NS_C" 2>/dev/null || true

ip netns add "$NS_S"
ip netns add "$NS_C"
ip -n "$NS_S" link add srv0 type veth peer name cli0 netns "$NS_C"
ip -n "$NS_S" addr add 10.200.0.1/24 dev srv0
ip -n "$NS_S" link set srv0 up
ip -n "$NS_S" link set lo up
ip -n "$NS_C" link set cli0 address 52:54:00:de:00:01
ip -n "$NS_C" link set cli0 up
ip -n "$NS_C" link set lo up
# dhclient's hooks must never touch the host's resolv.conf.
mkdir -p "/etc/netns/$NS_C" && : > "/etc/netns/$NS_C/resolv.conf"

cat > "$WORK/dhcpair.yaml" <<YAML
server: {interfaces: [srv0], dataDir: $WORK/data, http: "127.0.0.1:9167"}
pools:
  - name: lan
    subnet: 10.200.0.0/24
    ranges: [{start: 10.200.0.100, end: 10.200.0.199}]
    options: {routers: [10.200.0.1], domainNameServers: [10.200.0.53], domainName: demo.example}
    defaultLeaseTime: 3600
    maxLeaseTime: 86400
    deny: [dynamicBootpClients]
YAML
"$BIN" check --config "$WORK/dhcpair.yaml"

ip netns exec "$NS_S" "$BIN" serve --config "$WORK/dhcpair.yaml" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  ip netns exec "$NS_S" curl -sf http://127.0.0.1:9167/readyz >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
  sleep 0.1
done

cat > "$WORK/hook.sh" <<'HOOK'
#!/bin/sh
# Records what the client was told; configures the address but nothing else on the host.
case "$reason" in BOUND|RENEW|REBOOT)
  ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface" 2>/dev/null
  echo "client got $new_ip_address/$new_subnet_mask router $new_routers dns $new_domain_name_servers domain $new_domain_name lease ${new_dhcp_lease_time}s" ;;
esac
HOOK
chmod +x "$WORK/hook.sh"

echo "== client: dhclient in namespace $NS_C"
timeout 30 ip netns exec "$NS_C" dhclient -4 -1 -sf "$WORK/hook.sh" -lf "$WORK/dhclient.leases" \
  -pf "$WORK/dhclient.pid" cli0
ip -n "$NS_C" -4 -br addr show cli0

echo "== server: dhcpair leases"
"$BIN" leases --data-dir "$WORK/data"
echo "== server: pool counts (/v1/status)"
for _ in $(seq 30); do
  out=$(ip netns exec "$NS_S" curl -sf http://127.0.0.1:9167/v1/status)
  echo "$out" | grep -q '"active":1' && break
  sleep 0.2
done
echo "$out" | python3 -m json.tool
echo "== server log"
sed 's/^/  /' "$WORK/server.log"
