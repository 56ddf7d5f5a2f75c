//! The operator end to end without a cluster (issue #4): the example pair
//! (`examples/one-pair.yaml`, its subnet moved to the test's) is rendered with
//! `dhcpair-operator render`; each node's pod runs in that node's namespace as a kubelet would
//! run it (the ConfigMap mounted read-only at `/etc/dhcpair`, the data volume at
//! `/var/lib/dhcpair`, the init container's `chown`, the container's args, user and
//! capabilities); the two servers reach NORMAL; a real dhclient gets a lease; then a real CRD
//! API server gets the CRDs and the CRs, `dhcpair-operator run --nodes FACTS` is pointed at it,
//! and the CRs' status must show both servers NORMAL at the right nodes and addresses and the
//! pool counts each server reports, with the client's lease active.
//!
//! Topology: the node network `10.77.1.0/24` (node-a `.11`, node-b `.12` on `eth0`, the root
//! namespace `.1`, where the operator and the API server run) and the served LAN
//! `10.77.2.0/24` (the nodes' `eth1`, `.11` and `.12`, and the client), each on its own bridge.
//!
//! Ignored by default (it needs etcd and apiextensions-apiserver, built and cached by
//! `scripts/test-operator-e2e.sh`, which runs it).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use dhcpair_e2e::failover::FailoverStatus;
use dhcpair_e2e::operator::{
    cr_path, http_get, operator_bin, rename_link, render, workspace_root, yaml_documents,
    ApiServer, MountPoints, Pod, RootLink,
};
use dhcpair_e2e::server::tail;
use dhcpair_e2e::{scenario, wait_until, Dhclient, Net24, Netns, Process, Switch, TestEnv};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

/// The node network: the nodes' InternalIPs, reachable from the root namespace.
const NODES: Net24 = Net24::new(10, 77, 1);
/// The served LAN (the example's subnet, moved here).
const LAN: Net24 = Net24::new(10, 77, 2);
/// The servers' HTTP port the operator asks (its default, and the rendered `http`).
const HTTP_PORT: u16 = 9167;

#[test]
#[ignore = "needs the test API server (etcd + apiextensions-apiserver); run by scripts/test-operator-e2e.sh"]
fn operator_renders_a_pair_that_serves_a_client_and_writes_its_states_and_pool_counts_into_the_crs()
{
    scenario("operator_e2e", body);
}

/// One node: its namespace and InternalIP.
struct Node {
    name: String,
    ns: Netns,
    ip: Ipv4Addr,
}

fn body(env: &TestEnv) -> Result<()> {
    for tool in ["curl", "setpriv", "dhclient", "bash"] {
        env.require(tool)?;
    }
    let tools = std::env::var_os("DHCPAIR_KUBE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("scripts/k8s"));
    let start_script = tools.join("start-test-apiserver.sh");

    // The example CRs with the pool's subnet moved to the test's LAN; node names as they are.
    let example_path = workspace_root().join("examples/one-pair.yaml");
    let example = std::fs::read_to_string(&example_path)
        .with_context(|| format!("read {}", example_path.display()))?;
    let docs = yaml_documents(&example)?;
    let pool_doc = only(&docs, "Pool")?;
    let subnet = text(pool_doc, &["spec", "subnet"])?;
    let prefix = subnet
        .strip_suffix("0/24")
        .with_context(|| format!("the example's pool subnet {subnet} is not a /24"))?;
    let crs_text = example.replace(prefix, &format!("{}.{}.{}.", LAN.0[0], LAN.0[1], LAN.0[2]));
    let crs = yaml_documents(&crs_text)?;
    let (peer, pool) = (only(&crs, "FailoverPeer")?, only(&crs, "Pool")?);
    ensure!(
        text(pool, &["spec", "subnet"])? == LAN.cidr(),
        "the moved pool serves {}",
        text(pool, &["spec", "subnet"])?
    );
    let peer_name = text(peer, &["metadata", "name"])?;
    let pool_name = text(pool, &["metadata", "name"])?;
    let range_start: Ipv4Addr = text(pool, &["spec", "ranges", "0", "start"])?.parse()?;
    let range_end: Ipv4Addr = text(pool, &["spec", "ranges", "0", "end"])?.parse()?;
    let pool_size = u64::from(u32::from(range_end) - u32::from(range_start) + 1);
    let primary_node = text(peer, &["spec", "primary", "nodeName"])?;
    let secondary_node = text(peer, &["spec", "secondary", "nodeName"])?;
    let crs_path = env.path("crs.yaml");
    std::fs::write(&crs_path, &crs_text)?;

    // 1. The networks. Mount points first: they are removed after every pod is gone.
    let mut mount_points = MountPoints::default();
    let node_switch = Switch::new()?;
    let lan_switch = Switch::new()?;
    let _root = RootLink::new(&node_switch, &NODES.addr(1))?;
    let mut nodes = Vec::new();
    for (name, host) in [(&primary_node, 11), (&secondary_node, 12)] {
        let ns = Netns::new()?;
        let eth0 = node_switch.attach(&ns)?;
        rename_link(&ns, &eth0, "eth0")?;
        ns.addr("eth0", &NODES.addr(host))?;
        let eth1 = lan_switch.attach(&ns)?;
        rename_link(&ns, &eth1, "eth1")?;
        ns.addr("eth1", &LAN.addr(host))?;
        nodes.push(Node {
            name: name.clone(),
            ns,
            ip: NODES.host(host),
        });
    }
    let client_ns = Netns::new()?;
    let client_if = lan_switch.attach(&client_ns)?;
    let facts = env.path("nodes.facts.yaml");
    let facts_text: String = nodes
        .iter()
        .map(|n| format!("- {{name: {}, internalIP: {}}}\n", n.name, n.ip))
        .collect();
    std::fs::write(&facts, facts_text)?;

    // 2. Render, and run each node's pod in its namespace.
    let rendered = render(env, &facts, &[&crs_path])?;
    let names: Vec<&String> = rendered.keys().collect();
    ensure!(
        names == [&primary_node, &secondary_node],
        "rendered nodes {names:?}, expected {primary_node} and {secondary_node}"
    );
    let mut pods = Vec::new();
    for n in &nodes {
        let r = &rendered[&n.name];
        println!(
            "== {}: StatefulSet {}, config.yaml:\n{}",
            n.name,
            r.stateful_set,
            r.config_file("config.yaml").unwrap_or("(none)")
        );
        let mut pod = Pod::start(env, &n.ns, n.ip, r, &mut mount_points)?;
        pod.wait_ready(Duration::from_secs(20))?;
        let user = std::fs::read_to_string(format!("/proc/{}/status", pod.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or_default()
            .to_string();
        println!(
            "{}: ready at {} (pid {}, {user})",
            n.name,
            pod.readiness_url,
            pod.pid()
        );
        pods.push(pod);
    }
    // Both reach NORMAL, as seen at the nodes' addresses from the root namespace.
    let status_of = |n: &Node| -> Result<FailoverStatus> {
        let body = http_get(&format!("http://{}:{HTTP_PORT}/v1/status", n.ip))?;
        serde_json::from_str(&body).with_context(|| format!("parse /v1/status: {body}"))
    };
    let mut last = Vec::new();
    wait_until("both servers NORMAL", Duration::from_secs(30), || {
        last = nodes.iter().map(|n| status_of(n).ok()).collect();
        last.iter()
            .all(|s| {
                s.as_ref()
                    .and_then(|s| s.failover.iter().find(|r| r.name == peer_name))
                    .is_some_and(|r| is_normal(&r.my_state) && is_normal(&r.partner_state))
            })
            .then_some(())
    })
    .with_context(|| format!("last /v1/status: {last:#?}"))?;
    println!("both servers report NORMAL for {peer_name}");

    // 3. A real client gets a lease from the pair.
    let dhclient = Dhclient::start(env, &client_ns, &client_if)?;
    let ev = dhclient.events.wait_bound(0, Duration::from_secs(30))?;
    let ip = ev
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address: {ev:?}"))?;
    ensure!(
        (u32::from(range_start)..=u32::from(range_end)).contains(&u32::from(ip)),
        "{ip} is outside {range_start}..{range_end}"
    );
    let server_ids = [LAN.host(11), LAN.host(12)];
    ensure!(
        ev.server_id().is_some_and(|s| server_ids.contains(&s)),
        "server id {:?} is not one of the nodes' LAN addresses {server_ids:?}",
        ev.server_id()
    );
    println!("dhclient bound {ip} from {:?}", ev.server_id());
    // Both servers count it (the ACKing one, and its partner through BNDUPD).
    wait_until(
        "both servers count the lease",
        Duration::from_secs(10),
        || {
            nodes
                .iter()
                .all(|n| {
                    status_of(n)
                        .ok()
                        .and_then(|s| s.pools.into_iter().find(|p| p.name == pool_name))
                        .is_some_and(|p| p.active >= 1)
                })
                .then_some(())
        },
    )?;

    // 4. The API server, the CRDs, the CRs, and the controller.
    let api = ApiServer::start(env, &start_script)?;
    let mut crd_files: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("crds"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    crd_files.sort();
    let mut crds = Vec::new();
    for f in &crd_files {
        crds.push(
            api.apply_crd(&std::fs::read_to_string(f)?)
                .with_context(|| format!("CRD {}", f.display()))?,
        );
    }
    let mut paths = BTreeMap::new();
    for doc in &crs {
        let path = cr_path(&crds, doc)?;
        // The CR endpoints answer shortly after Established (discovery lags a little).
        wait_until(format!("apply {path}"), Duration::from_secs(20), || {
            api.apply(&path, &serde_yaml::to_string(doc).ok()?).ok()
        })?;
        paths.insert(text(doc, &["kind"])?, path);
    }
    let operator_log = env.path("operator.log");
    let mut cmd = Command::new(operator_bin());
    cmd.arg("run")
        .arg("--nodes")
        .arg(&facts)
        .args(["--status-timeout-ms", "1000", "--resync-seconds", "2"])
        .env("KUBECONFIG", api.kubeconfig())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
    let mut operator = Process::spawn_command("dhcpair-operator", &operator_log, cmd)?;

    let get = |kind: &str| -> Option<Json> {
        let (code, obj) = api.request("GET", &paths[kind], None).ok()?;
        (code == 200).then_some(obj)
    };
    let mut last: (Option<Json>, Option<Json>) = (None, None);
    let done = wait_until(
        "the operator to write NORMAL and the lease into the CRs' status",
        Duration::from_secs(60),
        || {
            if operator.try_wait().is_some() {
                return Some(false);
            }
            let (p, q) = (get("FailoverPeer"), get("Pool"));
            let ok = p.as_ref().is_some_and(|p| {
                condition(p, "Ready") == Some("True")
                    && ["primary", "secondary"]
                        .iter()
                        .all(|r| p["status"][r]["state"].as_str().is_some_and(is_normal))
            }) && q.as_ref().is_some_and(|q| {
                let servers = q["status"]["servers"].as_array();
                servers.is_some_and(|s| {
                    s.len() == 2 && s.iter().all(|x| x["active"].as_u64() >= Some(1))
                })
            });
            last = (p, q);
            ok.then_some(true)
        },
    );
    let (peer_obj, pool_obj) = last.clone();
    let show = |o: &Option<Json>| {
        o.as_ref()
            .map(|o| serde_json::to_string_pretty(&o["status"]).unwrap_or_default())
            .unwrap_or_else(|| "(not read)".into())
    };
    match done {
        Ok(true) => {}
        Ok(false) => {
            return Err(anyhow!(
                "dhcpair-operator exited early; log:\n{}",
                tail(&operator_log, 40)
            ))
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "FailoverPeer status: {}\nPool status: {}\noperator log:\n{}",
                    show(&peer_obj),
                    show(&pool_obj),
                    tail(&operator_log, 40)
                )
            })
        }
    }
    let (Some(peer_obj), Some(pool_obj)) = (peer_obj, pool_obj) else {
        return Err(anyhow!("statuses not read"));
    };

    // The FailoverPeer: each role at its node and InternalIP, NORMAL with a NORMAL partner.
    let ps = &peer_obj["status"];
    for (role, n) in [("primary", &nodes[0]), ("secondary", &nodes[1])] {
        let r = &ps[role];
        ensure!(
            r["node"] == n.name.as_str()
                && r["address"] == n.ip.to_string().as_str()
                && r["state"].as_str().is_some_and(is_normal)
                && r["partnerState"].as_str().is_some_and(is_normal)
                && r["lastContact"].is_string(),
            "{role}: {r}"
        );
    }
    ensure!(
        condition(&peer_obj, "Ready") == Some("True")
            && condition(&peer_obj, "InvalidSpec") == Some("False")
            && ps["observedGeneration"] == peer_obj["metadata"]["generation"],
        "FailoverPeer conditions: {}",
        ps["conditions"]
    );
    // The Pool: per server, the counts that server reports; the pool-level counts are the
    // primary's view; the client's lease is active on both.
    let qs = &pool_obj["status"];
    ensure!(
        condition(&pool_obj, "Ready") == Some("True")
            && condition(&pool_obj, "InvalidSpec") == Some("False")
            && qs["observedGeneration"] == pool_obj["metadata"]["generation"],
        "Pool conditions: {}",
        qs["conditions"]
    );
    let servers = qs["servers"].as_array().cloned().unwrap_or_default();
    for (role, n) in [("primary", &nodes[0]), ("secondary", &nodes[1])] {
        let s = servers
            .iter()
            .find(|s| s["role"] == role)
            .with_context(|| format!("no {role} in the Pool's servers: {servers:?}"))?;
        let count = |k: &str| s[k].as_u64().unwrap_or(u64::MAX);
        ensure!(
            s["node"] == n.name.as_str()
                && count("total") == pool_size
                && count("active") >= 1
                && count("free") + count("backup") + count("active") <= pool_size,
            "{role} in the Pool status: {s}"
        );
    }
    let primary_row = servers
        .iter()
        .find(|s| s["role"] == "primary")
        .context("no primary row")?;
    for k in ["free", "backup", "active"] {
        ensure!(
            qs[k] == primary_row[k],
            "Pool {k} {} is not the primary's {}",
            qs[k],
            primary_row[k]
        );
    }
    // The CR tells what the servers tell: the counts in the Pool status are the ones the
    // servers answer now (pool counts move only with balancing, which is done by now; the
    // operator refreshes every 2 s, so a few tries cover one more pass).
    let mut mismatch = String::new();
    wait_until(
        "the Pool status to equal the servers' own /v1/status counts",
        Duration::from_secs(15),
        || {
            let q = get("Pool")?;
            mismatch.clear();
            for (role, n) in [("primary", &nodes[0]), ("secondary", &nodes[1])] {
                let own = status_of(n)
                    .ok()?
                    .pools
                    .into_iter()
                    .find(|p| p.name == pool_name)?;
                let row = q["status"]["servers"]
                    .as_array()?
                    .iter()
                    .find(|s| s["role"] == role)?
                    .clone();
                let cr = [&row["total"], &row["free"], &row["backup"], &row["active"]]
                    .map(|v| v.as_u64().unwrap_or(u64::MAX));
                let server = [own.total, own.free, own.backup, own.active];
                if cr != server {
                    mismatch += &format!("{role}: CR {cr:?} server {server:?}; ");
                }
            }
            mismatch.is_empty().then_some(())
        },
    )
    .with_context(|| format!("last difference: {mismatch}"))?;

    println!(
        "== FailoverPeer {peer_name} status:\n{}",
        serde_json::to_string_pretty(&get("FailoverPeer").context("get FailoverPeer")?["status"])?
    );
    println!(
        "== Pool {pool_name} status:\n{}",
        serde_json::to_string_pretty(&get("Pool").context("get Pool")?["status"])?
    );

    // The controller stops on SIGTERM; so do the pods.
    let (status, graceful) = operator.terminate(Duration::from_secs(10));
    ensure!(
        graceful && status.is_some_and(|s| s.success()),
        "dhcpair-operator on SIGTERM: {status:?} (graceful: {graceful})"
    );
    ensure!(
        !std::fs::read_to_string(&operator_log)
            .unwrap_or_default()
            .contains("panicked"),
        "the operator panicked:\n{}",
        tail(&operator_log, 40)
    );
    drop(dhclient);
    for pod in &mut pods {
        pod.stop(Duration::from_secs(10))?;
    }
    Ok(())
}

/// The failover state NORMAL, however it is spelled: the server uses ISC's lower-case names
/// (`normal`), the CRs' status documents upper case (`NORMAL`).
fn is_normal(state: &str) -> bool {
    state.eq_ignore_ascii_case("normal")
}

/// The one document of `kind`.
fn only<'a>(docs: &'a [Yaml], kind: &str) -> Result<&'a Yaml> {
    let found: Vec<&Yaml> = docs
        .iter()
        .filter(|d| d.get("kind").and_then(Yaml::as_str) == Some(kind))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        other => Err(anyhow!("expected one {kind}, found {}", other.len())),
    }
}

/// A string at a path of keys (a number indexes a sequence).
fn text(doc: &Yaml, path: &[&str]) -> Result<String> {
    let mut v = doc;
    for k in path {
        v = match k.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(*k),
        }
        .with_context(|| format!("no {} in the document", path.join(".")))?;
    }
    v.as_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not a string", path.join(".")))
}

/// The status of condition `type` of a CR.
fn condition<'a>(obj: &'a Json, type_: &str) -> Option<&'a str> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?["status"]
        .as_str()
}
