#!/usr/bin/env bash
# Differential conformance: dhcpair against Kea and ISC dhcpd on the same hand-built DHCPv4
# packets, in network namespaces the harness creates (see e2e/conformance/README.md).
# Builds what it needs, runs every scenario and the random-sequence property, prints the
# divergence table and `N passed, M failed, 0 skipped`; exits non-zero on any failure.
# Needs root. Usage: sudo ./scripts/test-conformance.sh [--filter NAME ...] [--no-property]
set -euo pipefail
cd "$(dirname "$0")/.."

# The oracles (and tshark, relays, ...) come from install-deps.sh; only run it if one is missing.
need_deps=0
for t in kea-dhcp4 dhcpd; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || need_deps=1
done
[ "$need_deps" -eq 0 ] || ./scripts/install-deps.sh
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

cargo build --locked -p dhcpair -p dhcpair-conformance
mkdir -p target
exec ./target/debug/dhcpair-conformance --report target/conformance-report.md "$@"
