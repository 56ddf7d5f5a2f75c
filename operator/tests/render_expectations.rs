//! What `dhcpair-operator render` prints for each example, parsed as plain YAML and held to
//! expectations written out by hand from the example CRs and node facts: which node runs which
//! role of which relationship at which address and port, mclt and split (or hba) on the
//! primary only, each pair's addresses swapped between its two members, every pod pinned to
//! its node, and each node's StatefulSet mounting that node's ConfigMap.
//!
//! Independent of the golden files (`UPDATE_GOLDEN=1` rewrites those from the renderer's own
//! output) and of the operator's types: only the binary's output and `serde_yaml::Value`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `dhcpair-operator render --nodes examples/nodes.facts.yaml examples/<name>.yaml`, as YAML
/// documents.
fn rendered(example: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_dhcpair-operator"))
        .current_dir(root())
        .args([
            "render",
            "--nodes",
            "examples/nodes.facts.yaml",
            "--image",
            "registry.example/dhcpair:test",
        ])
        .arg(format!("examples/{example}.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "render {example}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// `v` at `path` (map keys, or sequence indexes written as numbers).
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => v.get(i),
        Err(_) => v.get(*k),
    })
}

fn text(v: &Value, path: &[&str]) -> Option<String> {
    at(v, path).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn texts(v: &Value, path: &[&str]) -> Vec<String> {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(|x| text(x, &[])).collect())
        .unwrap_or_default()
}

/// One node's objects: its ConfigMap's server config (parsed) and its StatefulSet.
struct NodeObjects {
    config: Value,
    stateful_set: Value,
}

/// The objects of every node, by node name (from the `dhcpair-<node>` object names), checking
/// that each node has exactly one ConfigMap and one StatefulSet, in namespace `dhcp`.
fn by_node(docs: &[Value]) -> BTreeMap<String, NodeObjects> {
    let mut config_maps = BTreeMap::new();
    let mut stateful_sets = BTreeMap::new();
    for d in docs {
        let kind = text(d, &["kind"]).unwrap();
        let name = text(d, &["metadata", "name"]).unwrap();
        assert_eq!(
            text(d, &["metadata", "namespace"]).as_deref(),
            Some("dhcp"),
            "{kind} {name}"
        );
        let node = name
            .strip_prefix("dhcpair-")
            .unwrap_or_else(|| panic!("{kind} {name}: not named dhcpair-<node>"))
            .to_string();
        let old = match kind.as_str() {
            "ConfigMap" => {
                let config = text(d, &["data", "config.yaml"]).expect("data.config.yaml");
                config_maps.insert(
                    node.clone(),
                    serde_yaml::from_str::<Value>(&config).unwrap(),
                )
            }
            "StatefulSet" => stateful_sets.insert(node.clone(), d.clone()),
            other => panic!("unexpected kind {other} ({name})"),
        };
        assert!(old.is_none(), "two {kind}s for node {node}");
    }
    assert_eq!(
        config_maps.keys().collect::<Vec<_>>(),
        stateful_sets.keys().collect::<Vec<_>>(),
        "every node has a ConfigMap and a StatefulSet"
    );
    config_maps
        .into_iter()
        .map(|(node, config)| {
            let stateful_set = stateful_sets.remove(&node).unwrap();
            (
                node,
                NodeObjects {
                    config,
                    stateful_set,
                },
            )
        })
        .collect()
}

/// What one member of a relationship must be told, written out by hand.
#[derive(Debug, PartialEq)]
struct Member {
    relationship: String,
    role: String,
    address: String,
    port: String,
    peer_address: String,
    peer_port: String,
    mclt: Option<String>,
    split: Option<String>,
    hba: Option<String>,
}

fn member(
    relationship: &str,
    role: &str,
    (address, port): (&str, u16),
    (peer_address, peer_port): (&str, u16),
    mclt: Option<u32>,
    split: Option<u16>,
    hba: Option<&str>,
) -> Member {
    Member {
        relationship: relationship.into(),
        role: role.into(),
        address: address.into(),
        port: port.to_string(),
        peer_address: peer_address.into(),
        peer_port: peer_port.to_string(),
        mclt: mclt.map(|m| m.to_string()),
        split: split.map(|s| s.to_string()),
        hba: hba.map(str::to_string),
    }
}

/// The members a node's config declares, in its order.
fn members(config: &Value) -> Vec<Member> {
    at(config, &["peers"])
        .and_then(Value::as_sequence)
        .expect("peers")
        .iter()
        .map(|p| Member {
            relationship: text(p, &["name"]).unwrap(),
            role: text(p, &["role"]).unwrap(),
            address: text(p, &["address"]).unwrap(),
            port: text(p, &["port"]).unwrap_or_else(|| "647".into()),
            peer_address: text(p, &["peerAddress"]).unwrap(),
            peer_port: text(p, &["peerPort"]).unwrap_or_else(|| "647".into()),
            mclt: text(p, &["mclt"]),
            split: text(p, &["split"]),
            hba: text(p, &["hba"]),
        })
        .collect()
}

/// (pool name, its failoverPeer) of a node's config.
fn pools(config: &Value) -> Vec<(String, String)> {
    at(config, &["pools"])
        .and_then(Value::as_sequence)
        .expect("pools")
        .iter()
        .map(|p| {
            (
                text(p, &["name"]).unwrap(),
                text(p, &["failoverPeer"]).unwrap(),
            )
        })
        .collect()
}

/// The pod template runs on `node` only: a required node affinity matching exactly that node's
/// name, the CR's node selector (if it chose the node by labels) and no other scheduling
/// constraint, one replica, host network, and the node's own ConfigMap mounted.
fn assert_pinned(node: &str, selector: &[(&str, &str)], sts: &Value) {
    let spec = at(sts, &["spec"]).unwrap();
    assert_eq!(text(spec, &["replicas"]).as_deref(), Some("1"), "{node}");
    let pod = at(spec, &["template", "spec"]).unwrap();
    assert_eq!(
        text(pod, &["hostNetwork"]).as_deref(),
        Some("true"),
        "{node}"
    );
    let terms = at(
        pod,
        &[
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        ],
    )
    .and_then(Value::as_sequence)
    .unwrap_or_else(|| panic!("{node}: no required node affinity"));
    assert_eq!(terms.len(), 1, "{node}: one node selector term");
    let fields = at(&terms[0], &["matchFields"])
        .and_then(Value::as_sequence)
        .unwrap();
    assert_eq!(fields.len(), 1, "{node}: one field requirement");
    assert_eq!(
        text(&fields[0], &["key"]).as_deref(),
        Some("metadata.name"),
        "{node}"
    );
    assert_eq!(
        text(&fields[0], &["operator"]).as_deref(),
        Some("In"),
        "{node}"
    );
    assert_eq!(texts(&fields[0], &["values"]), [node], "{node}");
    assert!(
        at(&terms[0], &["matchExpressions"]).is_none(),
        "{node}: no label expressions"
    );
    // nodeName would bypass the scheduler.
    assert!(at(pod, &["nodeName"]).is_none(), "{node}: nodeName set");
    let got: Vec<(String, String)> = at(pod, &["nodeSelector"])
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (text(k, &[]).unwrap(), text(v, &[]).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    let want: Vec<(String, String)> = selector
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want, "{node}: nodeSelector");
    let config_volumes: Vec<String> = at(pod, &["volumes"])
        .and_then(Value::as_sequence)
        .unwrap()
        .iter()
        .filter_map(|v| text(v, &["configMap", "name"]))
        .collect();
    assert_eq!(
        config_volumes,
        [format!("dhcpair-{node}")],
        "{node}: its own ConfigMap"
    );
}

/// For every relationship seen on two nodes: one primary and one secondary, each one's address
/// and port the other's peer address and port, and mclt/split/hba on the primary only.
fn assert_pairs_consistent(nodes: &BTreeMap<String, NodeObjects>) {
    let mut by_relationship: BTreeMap<String, Vec<(String, Member)>> = BTreeMap::new();
    for (node, o) in nodes {
        for m in members(&o.config) {
            by_relationship
                .entry(m.relationship.clone())
                .or_default()
                .push((node.clone(), m));
        }
    }
    for (name, ms) in by_relationship {
        let [(pn, p), (sn, s)] = <[_; 2]>::try_from(ms)
            .unwrap_or_else(|ms| panic!("{name}: {} members, two expected", ms.len()));
        let ((pn, p), (sn, s)) = if p.role == "primary" {
            ((pn, p), (sn, s))
        } else {
            ((sn, s), (pn, p))
        };
        assert_eq!(
            (p.role.as_str(), s.role.as_str()),
            ("primary", "secondary"),
            "{name}"
        );
        assert_ne!(pn, sn, "{name}: both members on {pn}");
        assert_eq!(
            (&p.address, &p.port),
            (&s.peer_address, &s.peer_port),
            "{name}"
        );
        assert_eq!(
            (&s.address, &s.port),
            (&p.peer_address, &p.peer_port),
            "{name}"
        );
        assert!(p.mclt.is_some(), "{name}: the primary has no mclt");
        assert!(
            p.split.is_some() != p.hba.is_some(),
            "{name}: the primary has split or hba: {p:?}"
        );
        assert_eq!(
            (&s.mclt, &s.split, &s.hba),
            (&None, &None, &None),
            "{name}: secondary {s:?}"
        );
    }
}

/// What one node must run, written out by hand.
struct Expected {
    node: &'static str,
    members: Vec<Member>,
    interfaces: &'static [&'static str],
    /// (pool, its failoverPeer)
    pools: &'static [(&'static str, &'static str)],
    /// The CR's nodeSelector when it chose the node by labels.
    node_selector: &'static [(&'static str, &'static str)],
}

/// The whole check of one example: the nodes rendered, each one's relationships and pools as
/// written by hand, every pod pinned, every pair consistent.
fn check(example: &str, want: &[Expected]) {
    let nodes = by_node(&rendered(example));
    assert_eq!(
        nodes.keys().map(String::as_str).collect::<Vec<_>>(),
        want.iter().map(|w| w.node).collect::<Vec<_>>(),
        "{example}: the nodes that run a server"
    );
    for w in want {
        let node = w.node;
        let o = &nodes[node];
        assert_eq!(
            members(&o.config),
            w.members,
            "{example}/{node}: relationships"
        );
        assert_eq!(
            texts(&o.config, &["server", "interfaces"]),
            w.interfaces,
            "{example}/{node}"
        );
        let pools_want: Vec<(String, String)> = w
            .pools
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(pools(&o.config), pools_want, "{example}/{node}: pools");
        assert_pinned(node, w.node_selector, &o.stateful_set);
    }
    assert_pairs_consistent(&nodes);
}

// Node facts (examples/nodes.facts.yaml): node-a 10.0.0.11 (role=primary), node-b 10.0.0.12,
// node-c 10.0.0.13 (role=secondary).

#[test]
fn one_pair_runs_the_primary_on_node_a_and_the_secondary_on_node_b() {
    // FailoverPeer lan: primary nodeName node-a, secondary nodeName node-b, loadBalance,
    // mclt 1800, split 128; addresses default to the nodes' InternalIPs, ports to 647.
    let a = ("10.0.0.11", 647);
    let b = ("10.0.0.12", 647);
    check(
        "one-pair",
        &[
            Expected {
                node: "node-a",
                members: vec![member("lan", "primary", a, b, Some(1800), Some(128), None)],
                interfaces: &["eth1"],
                pools: &[("lan-192-0-2", "lan")],
                node_selector: &[],
            },
            Expected {
                node: "node-b",
                members: vec![member("lan", "secondary", b, a, None, None, None)],
                interfaces: &["eth1"],
                pools: &[("lan-192-0-2", "lan")],
                node_selector: &[],
            },
        ],
    );
}

#[test]
fn known_unknown_picks_its_nodes_by_label_and_gives_the_hot_standby_primary_every_bucket() {
    // FailoverPeer office: primary nodeSelector dhcpair.io/role=primary (node-a), secondary
    // dhcpair.io/role=secondary (node-c), hotStandby (split 256), mclt 3600; two pools.
    let a = ("10.0.0.11", 647);
    let c = ("10.0.0.13", 647);
    let pools: &[(&str, &str)] = &[("office-known", "office"), ("office-unknown", "office")];
    check(
        "known-unknown",
        &[
            Expected {
                node: "node-a",
                members: vec![member(
                    "office",
                    "primary",
                    a,
                    c,
                    Some(3600),
                    Some(256),
                    None,
                )],
                interfaces: &["eth1"],
                pools,
                node_selector: &[("dhcpair.io/role", "primary")],
            },
            Expected {
                node: "node-c",
                members: vec![member("office", "secondary", c, a, None, None, None)],
                interfaces: &["eth1"],
                pools,
                node_selector: &[("dhcpair.io/role", "secondary")],
            },
        ],
    );
}

#[test]
fn shared_secondary_runs_both_secondaries_in_one_server_on_node_c() {
    // site-1: node-a primary, node-c secondary, mclt 1800, no split given (default 128), eth1.
    // site-2: node-b primary at 10.0.1.12 port 847, node-c secondary port 847, mclt 1800, an
    // hba instead of a split, eth2.
    let hba = "ffffffffffffffffffffffffffffffff00000000000000000000000000000000";
    let (a, c) = (("10.0.0.11", 647), ("10.0.0.13", 647));
    let (b2, c2) = (("10.0.1.12", 847), ("10.0.0.13", 847));
    check(
        "shared-secondary",
        &[
            Expected {
                node: "node-a",
                members: vec![member(
                    "site-1",
                    "primary",
                    a,
                    c,
                    Some(1800),
                    Some(128),
                    None,
                )],
                interfaces: &["eth1"],
                pools: &[("site-1-lan", "site-1")],
                node_selector: &[],
            },
            Expected {
                node: "node-b",
                members: vec![member(
                    "site-2",
                    "primary",
                    b2,
                    c2,
                    Some(1800),
                    None,
                    Some(hba),
                )],
                interfaces: &["eth2"],
                pools: &[("site-2-lan", "site-2")],
                node_selector: &[],
            },
            Expected {
                node: "node-c",
                members: vec![
                    member("site-1", "secondary", c, a, None, None, None),
                    member("site-2", "secondary", c2, b2, None, None, None),
                ],
                interfaces: &["eth1", "eth2"],
                pools: &[("site-1-lan", "site-1"), ("site-2-lan", "site-2")],
                node_selector: &[],
            },
        ],
    );
}
