#!/usr/bin/env bash
# Starts a test API server on loopback: etcd and k8s.io/apiextensions-apiserver (built by
# scripts/k8s/build-apiextensions-apiserver.sh) on free ports, with a throwaway CA, a serving
# certificate for 127.0.0.1 and an admin client certificate (group system:masters).
#
#   scripts/k8s/start-test-apiserver.sh [DIR]
#
# Everything goes into DIR (a new temporary directory if not given), which it prints last:
#   DIR/kubeconfig                       the server's URL and the admin credentials
#   DIR/env                              `export KUBECONFIG=DIR/kubeconfig`
#   DIR/pki/{ca,server,admin}.{crt,key}  X.509 v3 certificates (rustls refuses v1)
#   DIR/{etcd,apiserver}.pid, .log       stop with: kill $(cat DIR/apiserver.pid DIR/etcd.pid)
# It returns once the API server answers /livez (/readyz may stay red: an informer of a built-in
# API it does not serve never syncs, which is harmless). Unless SHIMS=0 it then creates CRDs that
# stand in for events.k8s.io/v1 Events and coordination.k8s.io/v1 Leases, which this server does
# not serve, so that kube-rs's event recorder and lease-based leader election have somewhere to
# write. Exit status: 0 up, 3 the binaries are missing, 1 it did not come up (logs in DIR).
# Environment: BIN (default ~/.cache/kube-test-apiserver/bin), SHIMS.
set -euo pipefail
BIN=${BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-test-apiserver/bin}
DIR=${1:-$(mktemp -d -t kube-test-apiserver.XXXXXX)}
DIR=$(mkdir -p "$DIR" && cd "$DIR" && pwd)
PKI=$DIR/pki

say() { echo "start-test-apiserver: $*" >&2; }
for b in etcd apiextensions-apiserver; do
  [ -x "$BIN/$b" ] || { say "no $BIN/$b (run scripts/k8s/build-apiextensions-apiserver.sh)"; exit 3; }
done
for tool in openssl curl python3; do
  command -v "$tool" >/dev/null || { say "needs $tool"; exit 3; }
done

# Three distinct free loopback ports (etcd clients, etcd peers, the API server), held open
# together while they are chosen so that they differ.
read -r ETCD_PORT PEER_PORT API_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

# PKI: a CA, the serving certificate (SAN 127.0.0.1 and localhost), the admin client certificate.
mkdir -p "$PKI"
openssl_quiet() { openssl "$@" 2>>"$PKI/openssl.log"; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=dhcpair-test-ca \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt"
issue() { # NAME SUBJECT EXTENSIONS...
  local name=$1 subject=$2
  shift 2
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "$@" \
    > "$PKI/$name.ext"
  openssl_quiet req -newkey rsa:2048 -nodes -subj "$subject" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr"
  openssl_quiet x509 -req -days 30 -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -extfile "$PKI/$name.ext" -out "$PKI/$name.crt"
}
issue server /CN=localhost extendedKeyUsage=serverAuth "subjectAltName=IP:127.0.0.1,DNS:localhost"
issue admin "/O=system:masters/CN=admin" extendedKeyUsage=clientAuth

URL=https://127.0.0.1:$API_PORT
cat > "$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "$URL", certificate-authority: "$PKI/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$PKI/admin.crt", client-key: "$PKI/admin.key"}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: default}
current-context: test
EOF

# Both run in the background with their PIDs written down; the caller stops them once this
# script has succeeded. If it fails, it stops whatever it started itself.
stop_on_failure() {
  local rc=$? f
  [ $rc = 0 ] && return
  for f in "$DIR/apiserver.pid" "$DIR/etcd.pid"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
  done
  return 0
}
trap stop_on_failure EXIT
"$BIN/etcd" --name test --data-dir "$DIR/etcd" --unsafe-no-fsync \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "test=http://127.0.0.1:$PEER_PORT" \
  > "$DIR/etcd.log" 2>&1 &
echo $! > "$DIR/etcd.pid"
"$BIN/apiextensions-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --secure-port "$API_PORT" \
  --tls-cert-file "$PKI/server.crt" --tls-private-key-file "$PKI/server.key" --client-ca-file "$PKI/ca.crt" \
  --kubeconfig "$DIR/kubeconfig" --authentication-kubeconfig "$DIR/kubeconfig" \
  --authorization-kubeconfig "$DIR/kubeconfig" --authentication-skip-lookup \
  --enable-priority-and-fairness=false \
  --disable-admission-plugins NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy \
  > "$DIR/apiserver.log" 2>&1 &
echo $! > "$DIR/apiserver.pid"

api() { # METHOD PATH [JSON]: with the admin certificate; fails on an HTTP error
  curl -sSf -m 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} "$URL$2"
}

up=0
for _ in $(seq 1 120); do
  for pid in "$(cat "$DIR/etcd.pid")" "$(cat "$DIR/apiserver.pid")"; do
    kill -0 "$pid" 2>/dev/null || { say "pid $pid exited during startup"; break 2; }
  done
  if api GET /livez >/dev/null 2>&1; then up=1; break; fi
  sleep 0.5
done
if [ $up != 1 ]; then
  say "the API server did not answer /livez within 60 s; last lines of its log:"
  tail -20 "$DIR/apiserver.log" >&2
  exit 1
fi

if [ "${SHIMS:-1}" = 1 ]; then
  for shim in events.k8s.io:Event:events coordination.k8s.io:Lease:leases; do
    IFS=: read -r group kind plural <<<"$shim"
    crd=$(cat <<EOF
{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "$plural.$group",
              "annotations": {"api-approved.kubernetes.io": "unapproved, test-only stand-in"}},
 "spec": {"group": "$group", "scope": "Namespaced", "names": {"plural": "$plural", "kind": "$kind"},
          "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object",
                                                       "x-kubernetes-preserve-unknown-fields": true}}}]}}
EOF
)
    api POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions "$crd" >/dev/null ||
      { say "creating the $kind stand-in CRD failed"; exit 1; }
  done
  # Served once established: wait for both, so that callers can use them at once.
  for shim in events.k8s.io/v1/namespaces/default/events coordination.k8s.io/v1/namespaces/default/leases; do
    for _ in $(seq 1 40); do
      api GET "/apis/$shim" >/dev/null 2>&1 && continue 2
      sleep 0.25
    done
    say "/apis/$shim is not served 10 s after its CRD was created"; exit 1
  done
fi

echo "export KUBECONFIG=$DIR/kubeconfig" > "$DIR/env"
say "up at $URL (etcd pid $(cat "$DIR/etcd.pid"), apiextensions-apiserver pid $(cat "$DIR/apiserver.pid"))"
echo "$DIR"
