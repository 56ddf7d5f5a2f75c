# Sourced by the scripts that need the test API server (scripts/test-operator-apiserver.sh,
# scripts/test-operator-e2e.sh). Sets TOOLS (the project's scripts/k8s) and BIN (exported);
# `ensure_test_apiserver` makes sure etcd and k8s.io/apiextensions-apiserver are built (cached in
# BIN after the first, ~5 min, build) and python3 with PyYAML, openssl and curl are there, or calls
# the caller's `skip` with the reason (the caller exits 77: skipped, which scripts/test.sh fails);
# a build that breaks exits 1.
# BUILD_APISERVER=0 never builds (a developer's quick run).
TOOLS=$ROOT/scripts/k8s
BIN=${BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-test-apiserver/bin}
export BIN

ensure_test_apiserver() {
  command -v python3 >/dev/null || skip "python3 is missing (scripts/install-deps.sh installs it)"
  python3 -c 'import yaml' 2>/dev/null || skip "PyYAML is missing (python3-yaml; scripts/install-deps.sh installs it)"
  command -v openssl >/dev/null || skip "openssl is missing (scripts/install-deps.sh installs it)"
  command -v curl >/dev/null || skip "curl is missing (scripts/install-deps.sh installs it)"
  if ! [ -x "$BIN/apiextensions-apiserver" ] || ! [ -x "$BIN/etcd" ]; then
    [ "${BUILD_APISERVER:-1}" = 1 ] || skip "no apiextensions-apiserver/etcd in $BIN and BUILD_APISERVER=0"
    echo "== building apiextensions-apiserver (cached in $BIN afterwards; ~5 min the first time)"
    local rc=0
    PREFIX=$(dirname "$BIN") timeout 1800 "$TOOLS/build-apiextensions-apiserver.sh" || rc=$?
    # 3: the packages could not be had (no mirror): the checks cannot run here. Anything else
    # is a broken build: a failure.
    [ $rc = 3 ] && skip "the apiextensions-apiserver packages could not be downloaded (see above)"
    if [ $rc != 0 ]; then
      echo "building apiextensions-apiserver FAILED (exit $rc; see above)"; exit 1
    fi
    [ -x "$BIN/apiextensions-apiserver" ] && [ -x "$BIN/etcd" ] || skip "no apiextensions-apiserver/etcd in $BIN after the build"
  fi
}
