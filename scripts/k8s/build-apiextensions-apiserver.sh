#!/usr/bin/env bash
# Builds the test API server the Kubernetes checks run against (scripts/test-operator-apiserver.sh,
# scripts/test-operator-e2e.sh): k8s.io/apiextensions-apiserver, the upstream code that serves
# CRDs inside kube-apiserver, and etcd. Both come from Debian's package archive: sid carries the
# Kubernetes Go sources as golang-k8s-*-dev packages (plain source trees), a current Go toolchain
# and etcd-server.
#
#   scripts/k8s/build-apiextensions-apiserver.sh
#
# The system's apt sources and dpkg database are never touched: a private apt state under
# $PREFIX/work resolves and downloads the packages (about 270 MB), which are only unpacked
# (dpkg -x) under $PREFIX/root; the API server is built from them in GOPATH mode with the network
# off for Go (about 5 minutes on 2 idle cores), then the unpacked tree and the private apt state are
# removed (KEEP_SRC=1 keeps the tree).
#
# Result: $PREFIX/bin/apiextensions-apiserver and $PREFIX/bin/etcd, PREFIX defaulting to
# ~/.cache/kube-test-apiserver. A no-op when both are there. Exit status: 0 built (or already
# there), 3 the packages could not be had (no mirror, sid without them), 1 anything else.
# Environment: PREFIX, DEBIAN_MIRROR (default: the first Debian mirror of the system's apt
# sources), KEEP_SRC=1.
set -euo pipefail
PREFIX=${PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-test-apiserver}
BIN=$PREFIX/bin
WORK=$PREFIX/work
ROOTFS=$PREFIX/root

say() { echo "build-apiextensions-apiserver: $*" >&2; }
unavailable() { say "$*"; exit 3; }

if [ -x "$BIN/apiextensions-apiserver" ] && [ -x "$BIN/etcd" ]; then
  say "already built in $BIN"
  exit 0
fi
for tool in apt-get dpkg dpkg-deb awk; do
  command -v "$tool" >/dev/null || unavailable "needs $tool (a Debian system)"
done

# The Debian mirror the system's apt uses: the first URIs: line (deb822) or deb line whose URL
# ends in /debian.
system_mirror() {
  cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      2>/dev/null \
    | grep -oE '^[[:space:]]*(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
    | grep -oE 'https?://[^[:space:]]+' | head -1 || true
}
MIRROR=${DEBIAN_MIRROR:-$(system_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ARCH=$(dpkg --print-architecture)

rm -rf "$WORK" "$ROOTFS"
mkdir -p "$WORK/lists/partial" "$WORK/archives/partial" "$WORK/debs" "$ROOTFS" "$BIN"
signed_by=
[ -r /usr/share/keyrings/debian-archive-keyring.gpg ] &&
  signed_by="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
echo "deb ${signed_by}$MIRROR sid main" > "$WORK/sources.list"
: > "$WORK/status"
# Every path apt would use points into WORK; its lock is WORK's alone.
APT=(
  -o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$WORK/lists" -o "Dir::Cache=$WORK" -o "Dir::Cache::Archives=$WORK/archives"
  -o "Dir::State::status=$WORK/status" -o "APT::Architecture=$ARCH" -o "APT::Architectures=$ARCH"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root
)

say "package lists of sid from $MIRROR (private apt state in $WORK)"
apt-get "${APT[@]}" update -qq --error-on=any || unavailable "apt-get update of sid from $MIRROR failed"

# The Go sources the API server needs and a Go toolchain: with an empty dpkg status apt lists the
# whole closure; the golang-* packages of it are what a GOPATH build reads (the rest, libc and
# friends, is not needed to build a static binary). golang-go and golang-src are the unversioned
# metapackages; the versioned golang-1.NN-go/-src they pull in are kept.
sim=$(apt-get "${APT[@]}" install -s --no-install-recommends \
        golang-k8s-apiextensions-apiserver-dev golang-go 2>&1) ||
  unavailable "sid cannot give golang-k8s-apiextensions-apiserver-dev and golang-go: $(tail -3 <<<"$sim")"
mapfile -t pkgs < <(awk '/^Inst golang-/ {print $2}' <<<"$sim" |
  grep -vxE 'golang-(go|any|src|golang-x-tools)')
[ ${#pkgs[@]} -gt 10 ] || unavailable "odd dependency closure: ${pkgs[*]}"
say "downloading ${#pkgs[@]} golang-* packages and etcd-server"
(cd "$WORK/debs" && apt-get "${APT[@]}" download "${pkgs[@]}" etcd-server >"$WORK/download.log" 2>&1) ||
  { tail -5 "$WORK/download.log" >&2; unavailable "apt-get download failed (log: $WORK/download.log)"; }

say "unpacking into $ROOTFS"
for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$ROOTFS"; done

dev=$(ls "$WORK"/debs/golang-k8s-apiextensions-apiserver-dev_*.deb)
version=$(dpkg-deb -f "$dev" Version) # 0.MINOR.PATCH-REV, for k8s 1.MINOR.PATCH
minor=$(cut -d. -f2 <<<"$version")
patch=$(cut -d. -f3 <<<"$version" | cut -d- -f1)
goroot=$(find "$ROOTFS/usr/lib" -maxdepth 1 -type d -name 'go-1.*' | sort -V | tail -1)
[ -x "$goroot/bin/go" ] || { say "no Go toolchain unpacked under $ROOTFS/usr/lib"; exit 1; }
gover=$("$goroot/bin/go" version)

say "building k8s.io/apiextensions-apiserver v1.$minor.$patch with $gover (GOPATH mode, offline)"
vpkg=k8s.io/component-base/version
env -i HOME="$WORK" PATH="$goroot/bin:/usr/bin:/bin" GOROOT="$goroot" \
  GOPATH="$ROOTFS/usr/share/gocode" GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local GOFLAGS= \
  CGO_ENABLED=0 GOCACHE="$WORK/gocache" \
  go build -trimpath \
    -ldflags "-s -w -X $vpkg.gitVersion=v1.$minor.$patch -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor" \
    -o "$BIN/apiextensions-apiserver.tmp" k8s.io/apiextensions-apiserver
install -m 0755 "$ROOTFS/usr/bin/etcd" "$BIN/etcd"
mv "$BIN/apiextensions-apiserver.tmp" "$BIN/apiextensions-apiserver"

# The package lists, downloads and build cache, and the unpacked Go sources and toolchain
# (about 2.3 GB): none is needed to run the two binaries.
rm -rf "$WORK"
[ "${KEEP_SRC:-0}" = 1 ] || rm -rf "$ROOTFS"
say "$("$BIN/etcd" --version | head -1)"
say "built $BIN/apiextensions-apiserver (Kubernetes v1.$minor.$patch) and $BIN/etcd"
