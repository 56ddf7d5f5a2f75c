#!/usr/bin/env bash
# Smoke test of the container image without a Docker daemon or a registry (buildah, as root):
#   1. the base docker.io/library/debian:bookworm-slim comes from buildah's storage; if it is
#      not there, it is made with `debootstrap --variant=minbase bookworm` from the system's
#      Debian mirror (the rootfs tarball is cached in $CACHE) and committed under that name;
#   2. the release binaries are built on the host (a no-op when fresh);
#   3. `buildah bud --target runtime --build-arg BINARIES=host` builds the runtime stage from
#      them (the rust build stage, which cannot be pulled here, must be skipped);
#   4. inside the image, via `buildah run`: `dhcpair --version` and `dhcpair-operator --version`
#      print the Cargo version, as uid 10001; outside: the image config (user, entrypoint, cmd),
#      the file capabilities of /usr/local/bin/dhcpair, the binaries are the host's, and the
#      image holds no compiler, cargo or setcap.
# Exit status: 0 every check passed; 77 SKIPPED (with a banner: buildah/debootstrap/getcap are
# missing, this is not root, or the base can't be made: no mirror), which scripts/test.sh counts
# as a failure of its own; anything else: a check failed.
# Every wait is bounded; the working containers it creates are removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CACHE=${DHCPAIR_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dhcpair-image}
BASE=docker.io/library/debian:bookworm-slim
IMAGE=${IMAGE:-localhost/dhcpair:test}
ISO=(--isolation chroot)

skip() {
  echo "##################################################################"
  echo "## SKIPPED: $*"
  echo "## The container image was NOT built or checked."
  echo "##################################################################"
  exit 77
}

[ "$(id -u)" -eq 0 ] || skip "buildah needs root here (run: sudo $0)"
command -v buildah >/dev/null || skip "buildah is missing (scripts/install-deps.sh installs it)"
command -v getcap >/dev/null || skip "getcap is missing (libcap2-bin; scripts/install-deps.sh installs it)"
mkdir -p "$CACHE"

CTRS=()
MNT_CTR=""
cleanup() {
  set +e
  [ -n "$MNT_CTR" ] && buildah umount "$MNT_CTR" >/dev/null 2>&1
  for c in "${CTRS[@]}"; do buildah rm "$c" >/dev/null 2>&1; done
}
trap cleanup EXIT

phase() { echo "== $* [t+${SECONDS}s]"; }
fails=0
pass() { echo "   ok      $*"; }
fail() { echo "   FAILED  $*"; fails=$((fails+1)); }

# The Debian mirror the system's apt uses (first non-security bookworm source), for debootstrap.
system_mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | grep -E '^[[:space:]]*(deb|URIs:)[[:space:]]' \
        | grep -oE 'https?://[^[:space:]]+/debian/?([[:space:]]|$)' | head -1 | tr -d '[:space:]')
  echo "${m:-http://deb.debian.org/debian}"
}

phase "base image $BASE"
if buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  echo "   in buildah's storage: $(buildah inspect --type image --format '{{.FromImageID}}' "$BASE" | cut -c1-12)" \
       "$(buildah inspect --type image --format '{{index .ImageAnnotations "org.opencontainers.image.description"}}' "$BASE" 2>/dev/null)"
else
  TARBALL=$CACHE/debian-bookworm-minbase.tar
  if [ ! -s "$TARBALL" ]; then
    command -v debootstrap >/dev/null || skip "debootstrap is missing (scripts/install-deps.sh installs it)"
    MIRROR=${DEBIAN_MIRROR:-$(system_mirror)}
    echo "   debootstrap --variant=minbase bookworm from $MIRROR (about a minute; cached in $TARBALL)"
    ROOTFS=$CACHE/rootfs.tmp
    rm -rf "$ROOTFS"
    if ! timeout 900 debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1; then
      tail -15 "$CACHE/debootstrap.log"; rm -rf "$ROOTFS"
      skip "debootstrap of bookworm from $MIRROR failed (log: $CACHE/debootstrap.log)"
    fi
    # Like the official slim image: no downloaded packages, no package lists.
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/debootstrap
    tar -C "$ROOTFS" --numeric-owner -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$ROOTFS"
  fi
  echo "   importing $TARBALL"
  c=$(buildah from --name "dhcpair-base-$$" scratch)
  CTRS+=("$c")
  MNT_CTR=$c
  tar -C "$(buildah mount "$c")" --numeric-owner -xf "$TARBALL"
  buildah umount "$c" >/dev/null
  MNT_CTR=""
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash \
    --annotation "org.opencontainers.image.description=debootstrap --variant=minbase bookworm, made by scripts/test-image.sh" \
    "$c"
  buildah commit --quiet "$c" "$BASE" >/dev/null
  echo "   committed as $BASE"
fi

phase "release binaries (cargo build --release --locked -p dhcpair -p dhcpair-operator)"
timeout 1800 cargo build --release --locked --quiet -p dhcpair -p dhcpair-operator
VERSION=$(cargo pkgid -p dhcpair)
VERSION=${VERSION##*[#@]}
OP_VERSION=$(cargo pkgid -p dhcpair-operator)
OP_VERSION=${OP_VERSION##*[#@]}
echo "   Cargo versions: dhcpair $VERSION, dhcpair-operator $OP_VERSION"

phase "buildah bud --target runtime --build-arg BINARIES=host -t $IMAGE"
LOG=$CACHE/bud.log
start=$(date +%s)
if ! timeout 900 buildah bud "${ISO[@]}" --layers --target runtime --build-arg BINARIES=host \
     -t "$IMAGE" . > "$LOG" 2>&1; then
  grep -v 'Reading database' "$LOG" | tail -30
  echo "test-image: buildah bud FAILED (log: $LOG)"; exit 1
fi
grep -E '^\[[0-9]+/[0-9]+\] STEP' "$LOG" | sed 's/^/   /' | cut -c1-110
echo "   built in $(( $(date +%s) - start ))s"
if grep -q 'rust:1.95' "$LOG"; then fail "the rust build stage was not skipped"
else pass "the rust build stage was skipped"; fi
# The images this build made or reused (--layers caches them); drop those of the previous build
# that this one no longer uses, newest first, so repeated runs don't fill the disk.
IDS=$CACHE/bud.images
{ grep -oE '^--> (Using cache )?[0-9a-f]{11,64}' "$LOG" || true; } | awk '{id = substr($NF,1,11)} !seen[id]++ {print id}' \
  > "$IDS.new"
if [ -f "$IDS" ]; then
  base_id=$(buildah inspect --type image --format '{{.FromImageID}}' "$BASE" | cut -c1-11)
  tac "$IDS" | while read -r id; do
    grep -qx "$id" "$IDS.new" || [ "$id" = "$base_id" ] || buildah rmi "$id" >/dev/null 2>&1 || true
  done
fi
mv "$IDS.new" "$IDS"

phase "inside the image (buildah run --isolation chroot)"
CTR=$(buildah from --name "dhcpair-image-test-$$" "$IMAGE")
CTRS+=("$CTR")
run() { timeout 60 buildah run "${ISO[@]}" "$CTR" -- "$@" 2>&1; }
# The StatefulSet adds NET_BIND_SERVICE and NET_RAW; buildah's default set lacks NET_RAW, and the
# kernel refuses to exec a file whose effective file capabilities it can't all grant.
POD_CAPS=(--cap-add CAP_NET_BIND_SERVICE --cap-add CAP_NET_RAW)
out=$(timeout 60 buildah run "${ISO[@]}" "${POD_CAPS[@]}" "$CTR" -- dhcpair --version 2>&1) || true
echo "   dhcpair --version: $out"
if [ "$out" = "dhcpair $VERSION" ]; then pass "dhcpair --version inside the image: dhcpair $VERSION"
else fail "dhcpair --version inside the image: want 'dhcpair $VERSION'"; fi
out=$(timeout 60 buildah run "${ISO[@]}" --cap-drop CAP_NET_RAW "$CTR" -- dhcpair --version 2>&1) || true
if [[ "$out" == *"operation not permitted"* ]]; then
  pass "without NET_RAW the kernel refuses to exec dhcpair (its file capabilities are in force)"
else fail "dhcpair ran without NET_RAW in the bounding set: $out"; fi
out=$(run dhcpair-operator --version) || true
echo "   dhcpair-operator --version: $out"
if [ "$out" = "dhcpair-operator $OP_VERSION" ]; then
  pass "dhcpair-operator --version inside the image: dhcpair-operator $OP_VERSION"
else fail "dhcpair-operator --version inside the image: want 'dhcpair-operator $OP_VERSION'"; fi
out=$(run id) || true
echo "   id: $out"
if [[ "$out" == "uid=10001(dhcpair) "* ]]; then pass "processes run as uid 10001 (dhcpair)"
else fail "processes run as uid 10001 (dhcpair)"; fi
out=$(run sh -c 'test -d /var/lib/dhcpair && test -w /var/lib/dhcpair && echo writable') || true
if [ "$out" = writable ]; then pass "/var/lib/dhcpair is writable by the dhcpair user"
else fail "/var/lib/dhcpair is writable by the dhcpair user ($out)"; fi

phase "image config (buildah inspect)"
inspect() { buildah inspect --type image --format "$1" "$IMAGE"; }
expect_config() { # NAME GO-TEMPLATE WANT
  local got
  got=$(inspect "$2")
  if [ "$got" = "$3" ]; then pass "$1: $got"; else fail "$1: $got (want $3)"; fi
}
expect_config User '{{.OCIv1.Config.User}}' 10001
expect_config Entrypoint '{{range .OCIv1.Config.Entrypoint}}<{{.}}>{{end}}' '</usr/local/bin/dhcpair>'
expect_config Cmd '{{range .OCIv1.Config.Cmd}}<{{.}}>{{end}}' '<serve><--config></etc/dhcpair/dhcpair.yaml>'
expect_config Volumes '{{range $k, $v := .OCIv1.Config.Volumes}}<{{$k}}>{{end}}' '</var/lib/dhcpair>'

phase "the image's filesystem (buildah mount)"
MNT=$(buildah mount "$CTR")
MNT_CTR=$CTR
caps=$(getcap "$MNT/usr/local/bin/dhcpair")
echo "   getcap /usr/local/bin/dhcpair: ${caps#"$MNT"}"
if [[ "$caps" == *" cap_net_bind_service,cap_net_raw=ep" ]]; then
  pass "dhcpair has file capabilities cap_net_bind_service,cap_net_raw=ep"
else fail "dhcpair has file capabilities cap_net_bind_service,cap_net_raw=ep"; fi
if [ -z "$(getcap "$MNT/usr/local/bin/dhcpair-operator")" ]; then pass "dhcpair-operator has no file capabilities"
else fail "dhcpair-operator has no file capabilities"; fi
if cmp -s "$MNT/usr/local/bin/dhcpair" target/release/dhcpair \
   && cmp -s "$MNT/usr/local/bin/dhcpair-operator" target/release/dhcpair-operator; then
  pass "both binaries are the host's target/release builds"
else fail "both binaries are the host's target/release builds"; fi
mode=$(stat -c '%u %a' "$MNT/usr/local/bin/dhcpair" "$MNT/usr/local/bin/dhcpair-operator" | sort -u)
if [ "$mode" = "0 755" ]; then pass "both binaries are owned by root, mode 755 (not writable by uid 10001)"
else fail "both binaries are owned by root, mode 755: $mode"; fi
found=$(find "$MNT"/usr/bin "$MNT"/usr/sbin "$MNT"/usr/local/bin "$MNT"/bin "$MNT"/sbin -maxdepth 1 \
          \( -name cargo -o -name rustc -o -name rustup -o -name cc -o -name gcc -o -name 'gcc-[0-9]*' \
             -o -name c++ -o -name g++ -o -name ld -o -name 'ld.bfd' -o -name 'ld.gold' -o -name as \
             -o -name setcap \) 2>/dev/null | sed "s|^$MNT||" || true)
for d in /src /usr/local/cargo /usr/local/rustup /root/.cargo /usr/lib/gcc; do
  if [ -e "$MNT$d" ]; then found="$found $d"; fi
done
if [ -z "$found" ]; then pass "no compiler, linker, cargo/rustc, /src or setcap in the image"
else fail "the image holds: $found"; fi
echo "   image size: $(du -sh --apparent-size "$MNT" | cut -f1) (rootfs)"
buildah umount "$CTR" >/dev/null
MNT_CTR=""

if [ $fails -ne 0 ]; then echo "test-image: $fails check(s) FAILED"; exit 1; fi
echo "test-image: all checks passed (${SECONDS}s)"
