# Sourced by the scripts that need the test API server (scripts/test-operator-apiserver.sh,
# scripts/test-operator-e2e.sh). Sets TOOLS and BIN (exported); `ensure_test_apiserver` makes
# sure etcd and k8s.io/apiextensions-apiserver are built (cached in BIN after the first, ~5 min,
# build) and the start script is there, or calls the caller's `skip` with the reason.
TOOLS=${TOOLS:-$ROOT/../shared/tools/k8s}
BIN=${BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-test-apiserver/bin}
export BIN

ensure_test_apiserver() {
  if ! [ -x "$BIN/apiextensions-apiserver" ] || ! [ -x "$BIN/etcd" ]; then
    if [ -x "$TOOLS/build-apiextensions-apiserver.sh" ] && [ "${BUILD_APISERVER:-1}" = 1 ]; then
      echo "== building apiextensions-apiserver (cached afterwards; ~5 min the first time)"
      timeout 1200 "$TOOLS/build-apiextensions-apiserver.sh" || skip "building apiextensions-apiserver failed"
    fi
    [ -x "$BIN/apiextensions-apiserver" ] && [ -x "$BIN/etcd" ] || skip "no apiextensions-apiserver/etcd in $BIN"
  fi
  [ -x "$TOOLS/start-test-apiserver.sh" ] || skip "no $TOOLS/start-test-apiserver.sh"
}
