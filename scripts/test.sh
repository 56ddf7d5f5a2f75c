#!/usr/bin/env bash
# Runs every test of dhcpair: lints, unit/property/store tests, the netns e2e scenarios
# with real DHCP clients, and the benchmark in smoke mode. Needs root (network namespaces).
# Usage: sudo ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
# shellcheck disable=SC1091
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "dependency rules: the pure crates never depend on tokio, sockets or kube"
for crate in dhcpair-wire dhcpair-config dhcpair-engine; do
  if cargo tree -p "$crate" -e normal --prefix none | grep -Eq '^(tokio|kube|axum|socket2|nix|rusqlite|anyhow|clap) '; then
    echo "$crate depends on a forbidden crate:"; cargo tree -p "$crate" -e normal | grep -E 'tokio|kube|axum|socket2|nix|rusqlite|anyhow|clap'
    exit 1
  fi
done
echo ok

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --bins --locked

step "tests (unit, property, store battery, e2e with real clients)"
cargo nextest run --workspace --locked --no-fail-fast

step "long simulation: 2,000 seeds per fault family, then 30,000 random seeds (release build)"
DHCPAIR_SIM_SEEDS=2000 cargo test --release --locked -p dhcpair-sim
DHCPAIR_SIM_SEEDS=30000 cargo test --release --locked -p dhcpair-sim --test sim -- --ignored long_simulation

step "Kubernetes: helm lint --strict, helm template | kubernetes-validate (tools cached in target/)"
./scripts/test-k8s.sh

step "Kubernetes: CRDs, example and bad CRs, and the controller against a real CRD API server"
./scripts/test-operator-apiserver.sh

step "Kubernetes: the rendered example pair in two namespaces serves a dhclient; the controller writes NORMAL and pool counts into the CRs"
./scripts/test-operator-e2e.sh

step "benchmark smoke (the script must keep working; no timing is judged here)"
cargo build --release --locked -p dhcpair -p bench-responder
./e2e/bench/run.sh --smoke

step "image: buildah bud of the runtime stage, dhcpair --version inside it"
./scripts/test-image.sh

echo
echo "all tests passed"
