#!/usr/bin/env bash
# Kubernetes-layer checks that need no cluster: helm lint, and kubernetes-validate over the
# chart's objects and over the objects the operator renders for every example.
# Exit status: 0 every check passed; 77 SKIPPED (with a banner: the tools could not be downloaded
# or python3 with pip and venv is missing), which scripts/test.sh counts as a failure of its own; anything
# else: a check failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
K8S_VERSION=${K8S_VERSION:-1.32.0}
skip() {
  echo "##################################################################"
  echo "## SKIPPED: $*"
  echo "## The chart and the rendered objects were NOT checked."
  echo "##################################################################"
  exit 77
}
command -v python3 >/dev/null || skip "python3 is missing (scripts/install-deps.sh installs it)"
python3 -c 'import pip' 2>/dev/null || skip "python3-pip is missing (scripts/install-deps.sh installs it)"
python3 -c 'import venv, ensurepip' 2>/dev/null ||
  skip "python3-venv is missing (scripts/install-deps.sh installs it)"
set +e
BIN=$(bash scripts/k8s-tools.sh | tail -1); rc=$?
set -e
if [ $rc -ne 0 ]; then
  [ $rc -eq 3 ] && skip "helm / kubernetes-validate could not be downloaded (see the message above)"
  echo "test-k8s: installing the tools failed (exit $rc)" >&2; exit 1
fi
for tool in helm kubernetes-validate; do
  [ -x "$BIN/$tool" ] || { echo "test-k8s: no $tool in $BIN" >&2; exit 1; }
done
export PATH="$BIN:$PATH"
OUT=$ROOT/target/k8s-test; mkdir -p "$OUT"
fails=0
step() { echo "== $*"; if "$@"; then echo "   ok"; else echo "   FAILED"; fails=$((fails+1)); fi; }
render_to() { local out=$1; shift; "$@" > "$out"; }
validate() { kubernetes-validate --strict -k "$K8S_VERSION" "$1"; }

step helm lint --strict charts/dhcpair
step helm lint --strict charts/dhcpair --set clusterWide=false \
  --set metrics.podMonitor.enabled=true --set metrics.prometheusRule.enabled=true \
  --set metrics.grafanaDashboard.enabled=true
helm template dhcpair charts/dhcpair --namespace dhcpair-system > "$OUT/chart.yaml"
helm template dhcpair charts/dhcpair --namespace dhcpair-system --set clusterWide=false \
  --set metrics.grafanaDashboard.enabled=true > "$OUT/chart-namespaced.yaml"
step validate "$OUT/chart.yaml"
step validate "$OUT/chart-namespaced.yaml"
# PodMonitor/PrometheusRule are CRs (kubernetes-validate only warns on them): check they render.
step helm template dhcpair charts/dhcpair --set metrics.podMonitor.enabled=true \
  --set metrics.prometheusRule.enabled=true --set metrics.grafanaDashboard.enabled=true \
  --output-dir "$OUT/monitoring"
# The CRDs themselves are built-in kinds (apiextensions.k8s.io/v1).
step validate crds/failoverpeer.yaml
step validate crds/pool.yaml

cargo build --quiet -p dhcpair-operator
for ex in examples/one-pair.yaml examples/known-unknown.yaml examples/shared-secondary.yaml; do
  name=$(basename "$ex" .yaml)
  step render_to "$OUT/$name.yaml" target/debug/dhcpair-operator render --nodes examples/nodes.facts.yaml \
    --image registry.example/dhcpair:test "$ex"
  step validate "$OUT/$name.yaml"
done
if [ $fails -ne 0 ]; then echo "test-k8s: $fails check(s) FAILED"; exit 1; fi
echo "test-k8s: all checks passed"
