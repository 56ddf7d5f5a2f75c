#!/usr/bin/env bash
# The operator end to end without a cluster (issue #4), as one Rust e2e scenario
# (e2e/tests/operator_renders_a_pair_that_serves_a_client_and_writes_its_states_and_pool_counts_into_the_crs.rs,
# #[ignore]d in the default run because it needs the test API server):
#   1. node facts whose InternalIPs live in network namespaces the test creates (10.77.1.11/.12,
#      reached from the root namespace through a veth of the test);
#   2. examples/one-pair.yaml (its subnet moved to 10.77.2.0/24) rendered with
#      `dhcpair-operator render`; each node's pod run in its namespace as a kubelet would (the
#      ConfigMap and data volume bind-mounted at their mountPaths, the init container, the
#      container's args, user and capabilities); both servers reach NORMAL;
#   3. a real dhclient on the served LAN gets a lease;
#   4. a real CRD API server (etcd + apiextensions-apiserver) gets crds/*.yaml and the CRs;
#      `dhcpair-operator run --nodes FACTS` must write both roles NORMAL at the right
#      nodes/addresses and each server's pool counts (the lease active) into the CRs' status,
#      which is printed;
#   5. everything is stopped by PID and every namespace removed by name, also on failure.
# Needs root. Exit status as scripts/test-operator-apiserver.sh: 0 passed; 77 SKIPPED (with a
# banner: not root, or the API server's packages could not be downloaded, or a tool is missing),
# which scripts/test.sh counts as a failure of its own; anything else: a check failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/test-apiserver-lib.sh
. "$ROOT/scripts/test-apiserver-lib.sh"
TEST=operator_renders_a_pair_that_serves_a_client_and_writes_its_states_and_pool_counts_into_the_crs

skip() {
  echo "##################################################################"
  echo "## SKIPPED: $*"
  echo "## The rendered pair, the controller and the CRs' status were NOT"
  echo "## checked end to end."
  echo "##################################################################"
  exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, veth, mounts, port 67)"
ensure_test_apiserver

echo "== building dhcpair, dhcpair-operator and the e2e scenario"
timeout 1200 cargo build --quiet --locked -p dhcpair -p dhcpair-operator
timeout 1200 cargo nextest run --locked --no-run -p dhcpair-e2e

# Backstop for a run killed by the timeout below (the test stops everything itself, also on
# failure, but a killed process runs no destructors): etcd and the API server of a test whose
# process is gone, by the PIDs in its state directory, when those PIDs still run those binaries.
# Its namespaces are removed by the next e2e run (dpe2e-<pid>-*).
stop_orphans() {
  local base=${TMPDIR:-/tmp}/dhcpair-e2e
  for pidfile in "$base"/operator_e2e-*/apiserver/{etcd,apiserver}.pid; do
    [ -f "$pidfile" ] || continue
    owner=${pidfile#"$base"/operator_e2e-}; owner=${owner%%/*}
    [ -d "/proc/$owner" ] && continue
    pid=$(cat "$pidfile")
    if [[ "$pid" =~ ^[0-9]+$ ]] && grep -qE "(etcd|apiextensions-apiserver)" "/proc/$pid/cmdline" 2>/dev/null; then
      echo "stopping orphaned $(basename "$pidfile" .pid) (pid $pid)"; kill "$pid" 2>/dev/null || true
    fi
  done
}
trap stop_orphans EXIT

echo "== the operator end to end (usually under 30 s; every wait in it is bounded, 600 s is a backstop)"
DHCPAIR_KUBE_TOOLS=$TOOLS timeout 600 cargo nextest run --locked -p dhcpair-e2e \
  --run-ignored only --no-capture --no-fail-fast -E "test(=$TEST)"
echo "test-operator-e2e: passed"
