#!/usr/bin/env bash
# Installs everything dhcpair's demo, tests and benchmark need on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped by apt. Run as root (or with sudo).
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PKGS=(
  iproute2 procps psmisc sqlite3 ca-certificates curl build-essential pkg-config
  isc-dhcp-client udhcpc dhcpcd-base isc-dhcp-relay isc-dhcp-server
  kea-dhcp4-server kea-admin tshark
  buildah debootstrap libcap2-bin
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
echo "install-deps: ok"
