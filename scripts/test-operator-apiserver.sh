#!/usr/bin/env bash
# The CRDs, the example CRs and `dhcpair-operator run` against a real API server
# (k8s.io/apiextensions-apiserver + etcd on loopback, built and started by scripts/k8s/):
#   1. crds/*.yaml are accepted (structural schema, CEL compiles) and become Established;
#   2. every example CR (examples/*.yaml, all in one namespace) is accepted;
#   3. bad CRs are rejected with 422 and the expected messages;
#   4. the controller runs for a bounded time and writes every CR's status (Ready/InvalidSpec
#      conditions, observedGeneration, placement), follows a spec change, and stops on SIGTERM;
#   5. with --leader-election, of two replicas one holds the Lease and the other stands by;
#      when the leader stops, the other takes over.
# Exit status: 0 every check passed; 77 SKIPPED (with a banner saying why: the API server's
# packages could not be downloaded, or python3/PyYAML/openssl/curl are missing), which
# scripts/test.sh counts as a failure of its own; anything else: a check failed. Events and the
# Lease are served by the stand-in CRDs scripts/k8s/start-test-apiserver.sh creates, so their
# checks always run. Every wait is bounded; every process started here is stopped by its PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/test-apiserver-lib.sh
. "$ROOT/scripts/test-apiserver-lib.sh"
RUN_SECONDS=${RUN_SECONDS:-90}

skip() {
  echo "##################################################################"
  echo "## SKIPPED: $*"
  echo "## The CRDs and the controller were NOT checked against an API server."
  echo "##################################################################"
  exit 77
}

ensure_test_apiserver

echo "== building dhcpair-operator"
timeout 900 cargo build --quiet -p dhcpair-operator
OPERATOR=$ROOT/target/debug/dhcpair-operator

STATE=$(mktemp -d -t dhcpair-apiserver.XXXXXX)
OP_PID=""
cleanup() {
  set +e
  [ -n "$OP_PID" ] && kill "$OP_PID" 2>/dev/null
  for f in apiserver.pid etcd.pid; do
    [ -f "$STATE/$f" ] && kill "$(cat "$STATE/$f")" 2>/dev/null
  done
  sleep 0.5
  for f in apiserver.pid etcd.pid; do
    [ -f "$STATE/$f" ] && kill -9 "$(cat "$STATE/$f")" 2>/dev/null
  done
  [ "${KEEP_STATE:-0}" = 1 ] && echo "state kept in $STATE" || rm -rf "$STATE"
}
trap cleanup EXIT

echo "== starting etcd + apiextensions-apiserver in $STATE"
if ! timeout 120 "$TOOLS/start-test-apiserver.sh" "$STATE" > "$STATE/start.log" 2>&1; then
  cat "$STATE/start.log"; tail -20 "$STATE/apiserver.log" 2>/dev/null
  echo "test-operator-apiserver: the test apiserver did not start"; exit 1
fi
export KUBECONFIG=$STATE/kubeconfig

DRIVER=$STATE/driver.py
cat > "$DRIVER" <<'PY'
"""Checks against the test apiserver; phase in argv[1]. Exit 1 on a failed check."""
import json, ssl, sys, time, urllib.request, urllib.error, glob, yaml

state, phase = sys.argv[2], sys.argv[1]
kc = yaml.safe_load(open(f"{state}/kubeconfig"))
server = kc["clusters"][0]["cluster"]["server"]
ctx = ssl.create_default_context(cafile=f"{state}/pki/ca.crt")
ctx.load_cert_chain(f"{state}/pki/admin.crt", f"{state}/pki/admin.key")
fails = []

def req(method, path, body=None, ctype="application/json"):
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = urllib.request.Request(server + path, data=data, method=method,
                               headers={"Content-Type": ctype, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(r, context=ctx, timeout=20) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"message": raw.decode(errors="replace")}

def check(ok, what):
    print(("   ok      " if ok else "   FAILED  ") + what)
    if not ok:
        fails.append(what)

PLURAL = {"FailoverPeer": "failoverpeers", "Pool": "pools"}
def cr_path(kind, ns, name=None):
    p = f"/apis/dhcpair.io/v1alpha1/namespaces/{ns}/{PLURAL[kind]}"
    return p + (f"/{name}" if name else "")

def apply_cr(doc):
    m = doc["metadata"]
    return req("PATCH", cr_path(doc["kind"], m.get("namespace", "default"), m["name"])
               + "?fieldManager=test-script&force=true", doc, "application/apply-patch+yaml")

def cond(obj, t):
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == t:
            return c
    return {}

def crs():
    out = []
    for f in sorted(glob.glob("examples/*.yaml")):
        for d in yaml.safe_load_all(open(f)):
            if isinstance(d, dict) and d.get("kind") in PLURAL:
                out.append(d)
    return out

# A spec that passes the schema but not the operator: a range outside its subnet.
OUTSIDE = {"apiVersion": "dhcpair.io/v1alpha1", "kind": "Pool",
           "metadata": {"name": "lan-outside", "namespace": "dhcp"},
           "spec": {"failoverPeerRef": "lan", "subnet": "100.64.0.0/24",
                    "ranges": [{"start": "100.64.0.10", "end": "100.64.1.20"}]}}

def bad_peer(**spec):
    base = {"primary": {"nodeName": "node-a"}, "secondary": {"nodeName": "node-b"},
            "interfaces": ["eth1"]}
    base.update(spec)
    return {"apiVersion": "dhcpair.io/v1alpha1", "kind": "FailoverPeer",
            "metadata": {"name": "bad", "namespace": "bad"}, "spec": base}

def bad_pool(**spec):
    base = {"failoverPeerRef": "lan", "subnet": "192.0.2.0/24"}
    base.update(spec)
    return {"apiVersion": "dhcpair.io/v1alpha1", "kind": "Pool",
            "metadata": {"name": "bad", "namespace": "bad"}, "spec": base}

BAD = [
    ("split and hba together", bad_peer(split=100, hba="ff" * 32), "give split or hba, not both"),
    ("nodeName and nodeSelector together",
     bad_peer(primary={"nodeName": "node-a", "nodeSelector": {"a": "b"}}),
     "give exactly one of nodeName or nodeSelector"),
    ("neither nodeName nor nodeSelector", bad_peer(secondary={"port": 647}),
     "give exactly one of nodeName or nodeSelector"),
    ("hotStandby with split", bad_peer(mode="hotStandby", split=200),
     "mode hotStandby sets split 256"),
    ("split above 256", bad_peer(split=300), "should be less than or equal to 256"),
    ("unknown mode", bad_peer(mode="roundRobin"), "Unsupported value"),
    ("no interfaces", bad_peer(interfaces=[]), "should have at least 1 items"),
    ("hostPath and volumeClaimTemplate",
     bad_peer(storage={"hostPath": {"path": "/x"}, "volumeClaimTemplate": {}}),
     "give hostPath or volumeClaimTemplate, not both"),
    ("relative hostPath", bad_peer(storage={"hostPath": {"path": "x"}}), "should match"),
    ("subnet not in CIDR form", bad_pool(subnet="192.0.2.0"), "should match"),
    ("range end not an IPv4 address", bad_pool(ranges=[{"start": "192.0.2.1", "end": "x"}]),
     "spec.ranges[0].end"),
    ("reservation with hardwareAddress and clientId",
     bad_pool(reservations=[{"hardwareAddress": "52:54:00:12:34:56", "clientId": "01:02",
                             "ipAddress": "192.0.2.5"}]),
     "give exactly one of hardwareAddress or clientId"),
    ("empty failoverPeerRef", bad_pool(failoverPeerRef=""), "should be at least 1 chars long"),
]

if phase == "setup":
    print("== CRDs (crds/*.yaml) via server-side apply")
    names = []
    for f in sorted(glob.glob("crds/*.yaml")):
        doc = yaml.safe_load(open(f))
        name = doc["metadata"]["name"]
        names.append(name)
        code, body = req("PATCH", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
                         "?fieldManager=test-script", open(f, "rb").read(),
                         "application/apply-patch+yaml")
        check(code in (200, 201), f"{f}: HTTP {code} {body.get('message', '')}")
    for name in names:
        est = {}
        for _ in range(60):
            _, crd = req("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            est = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions", [])}
            if est.get("Established") == "True" and est.get("NamesAccepted") == "True":
                break
            time.sleep(0.5)
        check(est.get("Established") == "True", f"{name}: Established ({est})")
    # The CRs' endpoints answer once established (discovery can lag a little).
    for _ in range(40):
        if req("GET", cr_path("Pool", "dhcp"))[0] == 200:
            break
        time.sleep(0.5)

    print("== every example CR (examples/*.yaml) is accepted")
    for d in crs() + [OUTSIDE]:
        code, body = apply_cr(d)
        check(code in (200, 201), f"{d['kind']} {d['metadata']['name']}: HTTP {code} "
              f"{body.get('message', '')}")

    print("== bad CRs are rejected with 422 and the expected message")
    for what, doc, want in BAD:
        code, body = req("POST", cr_path(doc["kind"], "bad"), doc)
        msg = body.get("message", "")
        check(code == 422 and want in msg, f"{what}: HTTP {code}: {msg}")

elif phase == "status":
    deadline = time.time() + float(sys.argv[3])
    want = crs() + [OUTSIDE]
    print(f"== the controller writes status for all {len(want)} CRs")
    pending = want
    while pending and time.time() < deadline:
        left = []
        for d in pending:
            code, obj = req("GET", cr_path(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]))
            st = obj.get("status") or {}
            if not (code == 200 and st.get("observedGeneration") == obj["metadata"].get("generation")
                    and cond(obj, "Ready")):
                left.append(d)
        pending = left
        if pending:
            time.sleep(1)
    check(not pending, "every CR has observedGeneration == generation and a Ready condition"
          + (f" (missing: {[d['metadata']['name'] for d in pending]})" if pending else ""))

    def get(kind, name):
        return req("GET", cr_path(kind, "dhcp", name))[1]
    lan = get("FailoverPeer", "lan")
    st = lan.get("status") or {}
    print("   lan status: " + json.dumps(st, sort_keys=True))
    check(cond(lan, "InvalidSpec").get("status") == "False", "lan: InvalidSpec False")
    check(cond(lan, "Ready").get("status") == "False" and cond(lan, "Ready").get("reason") == "NotNormal",
          "lan: Ready False / NotNormal (no server answers /v1/status here)")
    check((st.get("primary") or {}).get("node") == "node-a"
          and (st.get("primary") or {}).get("address") == "10.0.0.11"
          and (st.get("secondary") or {}).get("node") == "node-b",
          "lan: primary node-a/10.0.0.11, secondary node-b")
    managers = [(m.get("manager"), m.get("subresource")) for m in lan["metadata"].get("managedFields", [])]
    check(("dhcpair-operator", "status") in managers, f"lan: status applied by field manager dhcpair-operator {managers}")
    for kind, name, reason in [("FailoverPeer", "site-1", "NodeAddressConflict"),
                               ("Pool", "site-1-lan", "PeerInvalid"),
                               ("Pool", "lan-outside", "RangeOutsideSubnet")]:
        o = get(kind, name)
        c = cond(o, "InvalidSpec")
        check(c.get("status") == "True" and c.get("reason") == reason,
              f"{kind} {name}: InvalidSpec True / {reason}: {c.get('message')}")
        check(cond(o, "Ready").get("status") == "False", f"{kind} {name}: Ready False")
    code, evs = req("GET", "/apis/events.k8s.io/v1/namespaces/dhcp/events")
    if code == 200:
        seen = [(e.get("type"), e.get("reason"), (e.get("regarding") or {}).get("name"))
                for e in evs.get("items", [])]
        check(("Warning", "RangeOutsideSubnet", "lan-outside") in seen
              and ("Warning", "NodeAddressConflict", "site-1") in seen,
              f"Warning Events for the invalid CRs ({len(seen)} events)")
    else:
        check(False, f"events.k8s.io/v1 Events can be listed (HTTP {code}: {evs.get('message', '').strip()})")
    ok_pool = get("Pool", "lan-192-0-2")
    check(cond(ok_pool, "InvalidSpec").get("status") == "False", "Pool lan-192-0-2: InvalidSpec False")

    print("== a spec change is seen: fix lan-outside's range, observedGeneration follows")
    fixed = json.loads(json.dumps(OUTSIDE))
    fixed["spec"]["ranges"] = [{"start": "100.64.0.10", "end": "100.64.0.20"}]
    code, obj = apply_cr(fixed)
    gen = obj.get("metadata", {}).get("generation")
    check(code == 200 and gen == 2, f"lan-outside updated to generation {gen}")
    o = {}
    for _ in range(30):
        o = get("Pool", "lan-outside")
        if (o.get("status") or {}).get("observedGeneration") == gen:
            break
        time.sleep(1)
    check((o.get("status") or {}).get("observedGeneration") == gen
          and cond(o, "InvalidSpec").get("status") == "False",
          f"lan-outside: observedGeneration {gen}, InvalidSpec False "
          f"({cond(o, 'InvalidSpec').get('reason')})")
    time.sleep(2)
    for kind, name in [("FailoverPeer", "lan"), ("FailoverPeer", "office"), ("Pool", "lan-192-0-2"),
                       ("Pool", "office-known")]:
        c = cond(get(kind, name), "InvalidSpec")
        check(c.get("status") == "False", f"{kind} {name} still valid: InvalidSpec {c.get('status')} "
              f"{c.get('reason')} {c.get('message')}")

elif phase == "live":
    print("== with servers answering /v1/status (stand-ins on 127.0.0.11/.12), lan turns Ready")
    def get(kind, name):
        return req("GET", cr_path(kind, "dhcp", name))[1]
    lan, pool = {}, {}
    for _ in range(40):
        lan, pool = get("FailoverPeer", "lan"), get("Pool", "lan-192-0-2")
        if cond(lan, "Ready").get("status") == "True" and (pool.get("status") or {}).get("free") is not None:
            break
        time.sleep(1)
    st = lan.get("status") or {}
    print("   lan status: " + json.dumps({k: st.get(k) for k in ("primary", "secondary")}, sort_keys=True))
    check(cond(lan, "Ready").get("status") == "True" and cond(lan, "Ready").get("reason") == "AllNormal",
          f"lan: Ready True / AllNormal ({cond(lan, 'Ready').get('message')})")
    check(cond(lan, "Degraded").get("status") == "False", "lan: Degraded False")
    p, q = st.get("primary") or {}, st.get("secondary") or {}
    check(p.get("state") == "NORMAL" and p.get("partnerState") == "NORMAL" and p.get("lastContact")
          and p.get("address") == "127.0.0.11", f"lan primary: {p}")
    check(q.get("state") == "NORMAL" and q.get("node") == "node-b", f"lan secondary: {q}")
    ps = pool.get("status") or {}
    print("   lan-192-0-2 status: " + json.dumps({k: ps.get(k) for k in ("free", "backup", "active", "servers")}, sort_keys=True))
    check(ps.get("free") == 40 and ps.get("backup") == 45 and ps.get("active") == 3,
          "lan-192-0-2: free/backup/active from the primary's view")
    check(sorted((x["role"], x["node"], x["free"]) for x in ps.get("servers", []))
          == [("primary", "node-a", 40), ("secondary", "node-b", 51)], "lan-192-0-2: counts per server")
    office = get("FailoverPeer", "office")
    check(cond(office, "Ready").get("status") == "False" and "does not know relationship" in
          cond(office, "Ready").get("message", ""), f"office: Ready False ({cond(office, 'Ready').get('message')})")
    code, evs = req("GET", "/apis/events.k8s.io/v1/namespaces/dhcp/events")
    if code == 200:
        seen = [(e.get("type"), e.get("reason"), (e.get("regarding") or {}).get("name"))
                for e in evs.get("items", [])]
        check(("Normal", "AllNormal", "lan") in seen, "a Normal AllNormal Event for lan")
    else:
        check(False, f"events.k8s.io/v1 Events can be listed (HTTP {code}: {evs.get('message', '').strip()})")

elif phase == "leader":
    # argv[3]: the replica that must hold the Lease within argv[4] seconds (and keep it).
    want, within = sys.argv[3], float(sys.argv[4])
    path = "/apis/coordination.k8s.io/v1/namespaces/dhcp/leases/dhcpair-operator"
    holder, deadline = None, time.time() + within
    while time.time() < deadline:
        code, lease = req("GET", path)
        holder = (lease.get("spec") or {}).get("holderIdentity") if code == 200 else f"HTTP {code}"
        if holder == want:
            break
        time.sleep(0.5)
    check(holder == want, f"Lease dhcpair-operator held by {want} within {within:.0f}s (holder: {holder})")
    time.sleep(6)  # more than one renewal period: the other replica must not take it
    code, lease = req("GET", path)
    spec = lease.get("spec") or {}
    check(spec.get("holderIdentity") == want, f"still held by {want} after 6s: {spec}")

if fails:
    print(f"{len(fails)} check(s) FAILED")
    sys.exit(1)
PY

fails=0
timeout 180 python3 "$DRIVER" setup "$STATE" || fails=$((fails+1))

echo "== dhcpair-operator run --nodes examples/nodes.facts.yaml (at most ${RUN_SECONDS}s)"
RUST_LOG=${RUST_LOG:-info} timeout "$RUN_SECONDS" "$OPERATOR" run --nodes examples/nodes.facts.yaml \
  --status-timeout-ms 300 > "$STATE/operator.log" 2>&1 &
OP_PID=$!
timeout $((RUN_SECONDS - 10)) python3 "$DRIVER" status "$STATE" 45 || fails=$((fails+1))

echo "== the operator is still running and stops on SIGTERM"
if kill -0 "$OP_PID" 2>/dev/null; then
  kill -TERM "$OP_PID"
  for _ in $(seq 1 50); do kill -0 "$OP_PID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$OP_PID" 2>/dev/null; then
    echo "   FAILED  the operator did not stop within 10s of SIGTERM"; fails=$((fails+1))
  else
    wait "$OP_PID" && rc=0 || rc=$?
    if [ "$rc" = 0 ]; then echo "   ok      stopped, exit 0"; else echo "   FAILED  exit $rc"; fails=$((fails+1)); fi
  fi
else
  echo "   FAILED  the operator exited early"; fails=$((fails+1))
fi
OP_PID=""
echo "-- operator log (last 25 lines):"
tail -25 "$STATE/operator.log"
if grep -q 'panicked' "$STATE/operator.log"; then echo "   FAILED  the operator panicked"; fails=$((fails+1)); fi

echo "== stand-in servers for /v1/status on 127.0.0.11 and 127.0.0.12"
HTTP_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$STATE/fake-status.py" <<'PY'
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port = int(sys.argv[1])
def view(role, free):
    rel = {"name": "lan", "role": role, "myState": "normal", "partnerState": "normal", "startup": False,
           "connected": True, "mclt": 1800, "unackedUpdates": 0, "queuedUpdates": 0,
           "secondsSinceContact": 2, "skew": 0}
    pool = {"name": "lan-192-0-2", "subnet": "192.0.2.0/24", "total": 100, "free": free, "backup": 45,
            "active": 3, "expired": 0, "released": 0, "abandoned": 0, "reserved": 0}
    return {"pools": [pool], "failover": [rel]}
VIEWS = {"127.0.0.11": view("primary", 40), "127.0.0.12": view("secondary", 51)}
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(VIEWS[self.server.server_address[0]]).encode()
        if self.path != "/v1/status":
            self.send_response(404); self.end_headers(); return
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
servers = [ThreadingHTTPServer((a, port), H) for a in VIEWS]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
PY
timeout "$RUN_SECONDS" python3 "$STATE/fake-status.py" "$HTTP_PORT" &
FAKE_PID=$!
cat > "$STATE/nodes-loopback.yaml" <<'YAML'
- {name: node-a, internalIP: 127.0.0.11, labels: {dhcpair.io/role: primary}}
- {name: node-b, internalIP: 127.0.0.12}
- {name: node-c, internalIP: 127.0.0.13, labels: {dhcpair.io/role: secondary}}
YAML
RUST_LOG=${RUST_LOG:-info} timeout "$RUN_SECONDS" "$OPERATOR" run --nodes "$STATE/nodes-loopback.yaml" \
  --http-port "$HTTP_PORT" --status-timeout-ms 500 --resync-seconds 5 > "$STATE/operator-live.log" 2>&1 &
OP_PID=$!
timeout 60 python3 "$DRIVER" live "$STATE" || { fails=$((fails+1)); tail -20 "$STATE/operator-live.log"; }
kill "$OP_PID" "$FAKE_PID" 2>/dev/null; wait "$OP_PID" "$FAKE_PID" 2>/dev/null || true
OP_PID=""

echo "== leader election: of two replicas one leads and the other stands by; when the leader stops, the other takes over"
if [ "$(timeout 10 python3 - "$STATE" <<'PY'
import json, ssl, sys, urllib.request, yaml
state = sys.argv[1]
kc = yaml.safe_load(open(f"{state}/kubeconfig"))
ctx = ssl.create_default_context(cafile=f"{state}/pki/ca.crt")
ctx.load_cert_chain(f"{state}/pki/admin.crt", f"{state}/pki/admin.key")
url = kc["clusters"][0]["cluster"]["server"] + "/apis/coordination.k8s.io/v1"
try:
    print(urllib.request.urlopen(url, context=ctx, timeout=5).status)
except Exception as e:
    print(getattr(e, "code", "unreachable"))
PY
)" != 200 ]; then
  echo "   FAILED  this API server does not serve coordination.k8s.io/v1 (the Lease stand-in CRD"
  echo "           of scripts/k8s/start-test-apiserver.sh is missing): leader election NOT checked"
  fails=$((fails+1))
else
  leader_run() {
    POD_NAME=$1 POD_NAMESPACE=dhcp RUST_LOG=${RUST_LOG:-info} timeout "$RUN_SECONDS" "$OPERATOR" run \
      --leader-election --nodes examples/nodes.facts.yaml --status-timeout-ms 300 > "$STATE/$1.log" 2>&1 &
  }
  leader_run op-1; OP1=$!
  timeout 60 python3 "$DRIVER" leader "$STATE" op-1 20 || fails=$((fails+1))
  leader_run op-2; OP2=$!
  timeout 60 python3 "$DRIVER" leader "$STATE" op-1 5 || fails=$((fails+1))
  if grep -q "standing by" "$STATE/op-2.log"; then echo "   ok      op-2 logs that it stands by"
  else echo "   FAILED  op-2 does not say it stands by: $(tail -1 "$STATE/op-2.log")"; fails=$((fails+1)); fi
  kill -TERM "$OP1"; wait "$OP1" && rc=0 || rc=$?
  if [ "$rc" = 0 ]; then echo "   ok      op-1 stopped on SIGTERM, exit 0"; else echo "   FAILED  op-1 exit $rc"; fails=$((fails+1)); fi
  timeout 60 python3 "$DRIVER" leader "$STATE" op-2 20 || fails=$((fails+1))
  kill -TERM "$OP2" 2>/dev/null; wait "$OP2" 2>/dev/null || true
  if grep -q panicked "$STATE/op-1.log" "$STATE/op-2.log"; then echo "   FAILED  a replica panicked"; fails=$((fails+1)); fi
fi

if [ $fails -ne 0 ]; then echo "test-operator-apiserver: $fails phase(s) FAILED"; exit 1; fi
echo "test-operator-apiserver: all checks passed"
