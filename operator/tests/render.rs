//! Golden rendered manifests per sample CR set (examples/), the server's own parser over every
//! rendered config, and the InvalidSpec reasons of bad CRs.
//!
//! `UPDATE_GOLDEN=1 cargo test -p dhcpair-operator --test render` rewrites the golden files from
//! the renderer's own output, so they only catch changes: what the rendered objects must say
//! (roles, addresses, mclt/split, node pinning) is held to hand-written expectations in
//! `render_expectations.rs`.

// Test helpers may panic on fixtures they control (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use dhcpair_config::{Config, Role};
use dhcpair_operator::api::reason;
use dhcpair_operator::input::{nodes_from_yaml, objects_yaml, Resources};
use dhcpair_operator::render::{render, NodeFacts, Rendered, Settings, CONFIG_KEY};
use dhcpair_operator::rollout::TEMPLATE_HASH;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn nodes() -> Vec<NodeFacts> {
    let path = root().join("examples/nodes.facts.yaml");
    nodes_from_yaml("nodes", &std::fs::read_to_string(path).unwrap()).unwrap()
}

fn settings() -> Settings {
    Settings {
        default_image: "registry.example/dhcpair:test".to_string(),
        ..Settings::default()
    }
}

/// Resources from YAML, each given a fixed uid so owner references show in the goldens.
fn resources(text: &str) -> Resources {
    let mut r = Resources::default();
    r.add_yaml("test", text).unwrap();
    for p in &mut r.peers {
        let name = p.metadata.name.clone().unwrap();
        p.metadata.uid = Some(format!("uid-{name}"));
    }
    r
}

fn render_example(name: &str) -> Rendered {
    let text =
        std::fs::read_to_string(root().join("examples").join(format!("{name}.yaml"))).unwrap();
    let r = resources(&text);
    render(&r.peers, &r.pools, &nodes(), &settings())
}

fn check_golden(name: &str, actual: &str) {
    let path = root().join("operator/tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == actual,
        "{} differs from the rendering; diff it or rerun with UPDATE_GOLDEN=1:\n{actual}",
        path.display()
    );
}

fn configs(r: &Rendered) -> Vec<(String, Config)> {
    r.nodes
        .iter()
        .map(|n| {
            let text = &n.config_map.data.as_ref().unwrap()[CONFIG_KEY];
            let c = Config::from_yaml(&n.node, text)
                .unwrap_or_else(|e| panic!("rendered config of {} refused: {e}", n.node));
            (n.node.clone(), c)
        })
        .collect()
}

const EXAMPLES: [&str; 3] = ["one-pair", "known-unknown", "shared-secondary"];

#[test]
fn every_example_renders_to_its_golden_objects() {
    for name in EXAMPLES {
        let r = render_example(name);
        assert!(r.errors.is_empty(), "{name}: {:?}", r.errors);
        assert!(r.warnings.is_empty(), "{name}: {:?}", r.warnings);
        check_golden(&format!("{name}.yaml"), &objects_yaml(&r).unwrap());
    }
}

#[test]
fn every_rendered_config_parses_with_the_servers_own_parser() {
    for name in EXAMPLES {
        let r = render_example(name);
        assert!(!r.nodes.is_empty());
        for (node, c) in configs(&r) {
            assert!(!c.peers.is_empty(), "{name}/{node}: no relationship");
            for pool in &c.pools {
                let peer = pool.failover_peer.as_deref().unwrap();
                assert!(c.peer_index(peer).is_some(), "{name}/{node}: {peer}");
            }
        }
    }
}

#[test]
fn primary_carries_mclt_and_split_and_the_addresses_are_swapped() {
    let r = render_example("one-pair");
    let cs = configs(&r);
    let [(na, a), (nb, b)] = cs.as_slice() else {
        panic!("two nodes expected, got {}", cs.len())
    };
    assert_eq!((na.as_str(), nb.as_str()), ("node-a", "node-b"));
    let (p, s) = (&a.peers[0], &b.peers[0]);
    assert_eq!((p.role, s.role), (Role::Primary, Role::Secondary));
    assert_eq!(p.mclt, Some(1800));
    assert!(p.hba.is_some());
    assert_eq!((s.mclt, s.hba), (None, None));
    assert_eq!((p.address, p.peer_address), (s.peer_address, s.address));
    assert_eq!(p.address.to_string(), "10.0.0.11");
    assert_eq!(a.pools, b.pools);
}

#[test]
fn hot_standby_gives_the_primary_every_bucket() {
    let r = render_example("known-unknown");
    let primary = &r.nodes.iter().find(|n| n.node == "node-a").unwrap().config;
    assert_eq!(primary.peers[0].split, Some(256));
    let secondary = &r.nodes.iter().find(|n| n.node == "node-c").unwrap().config;
    assert_eq!(secondary.peers[0].split, None);
}

/// Split 256 alone is not hot standby: with loadBalanceMaxSeconds 0 (ISC's default) a server
/// ignores the split and the secondary answers every client from its backup addresses. So
/// `mode: hotStandby` without a loadBalanceMaxSeconds renders 3 on both members (the
/// secondary is the one that must defer to the hash; the primary gets the same value so the
/// two files agree), and the validated configs carry it with every bucket on the primary.
#[test]
fn hot_standby_renders_split_256_on_the_primary_and_load_balance_max_seconds_3_on_both() {
    let r = render_example("known-unknown");
    let raw = |node: &str| {
        &r.nodes
            .iter()
            .find(|n| n.node == node)
            .unwrap()
            .config
            .peers[0]
    };
    let (p, s) = (raw("node-a"), raw("node-c"));
    assert_eq!((p.role, s.role), (Role::Primary, Role::Secondary));
    assert_eq!((p.split, p.hba.as_deref()), (Some(256), None));
    assert_eq!(
        (p.load_balance_max_seconds, s.load_balance_max_seconds),
        (Some(3), Some(3))
    );
    for (node, c) in configs(&r) {
        let peer = &c.peers[0];
        assert_eq!(peer.load_balance_max_seconds, 3, "{node}");
        if peer.role == Role::Primary {
            assert_eq!(peer.hba, Some([0xff; 32]), "{node}: not every bucket");
        }
    }
}

/// An explicit loadBalanceMaxSeconds wins over the default, 0 included; without one both
/// modes render 3 (ISC's own default, 0, would turn load balancing off).
#[test]
fn an_explicit_load_balance_max_seconds_wins_and_both_modes_default_to_3() {
    let lbms = |extra: &str| {
        let text = format!(
            "{PEER}{extra}{}",
            pool("p", "10.1.0.0/24", "10.1.0.10", "10.1.0.20", "lan")
        );
        let r = resources(&text);
        let out = render(&r.peers, &r.pools, &nodes(), &settings());
        assert!(out.errors.is_empty(), "{extra}: {:?}", out.errors);
        out.nodes
            .iter()
            .map(|n| n.config.peers[0].load_balance_max_seconds)
            .collect::<Vec<_>>()
    };
    assert_eq!(lbms("  mode: hotStandby\n"), [Some(3), Some(3)]);
    assert_eq!(
        lbms("  mode: hotStandby\n  loadBalanceMaxSeconds: 5\n"),
        [Some(5), Some(5)]
    );
    assert_eq!(
        lbms("  mode: hotStandby\n  loadBalanceMaxSeconds: 0\n"),
        [Some(0), Some(0)]
    );
    assert_eq!(lbms("  mode: loadBalance\n"), [Some(3), Some(3)]);
    assert_eq!(lbms(""), [Some(3), Some(3)]);
}

#[test]
fn one_secondary_node_hosts_both_relationships_in_one_config() {
    let r = render_example("shared-secondary");
    assert_eq!(r.nodes.len(), 3);
    let c = &r.nodes.iter().find(|n| n.node == "node-c").unwrap().config;
    let roles: Vec<_> = c.peers.iter().map(|p| (p.name.as_str(), p.role)).collect();
    assert_eq!(
        roles,
        [("site-1", Role::Secondary), ("site-2", Role::Secondary)]
    );
    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.server.interfaces, ["eth1", "eth2"]);
    let sts = &r
        .nodes
        .iter()
        .find(|n| n.node == "node-c")
        .unwrap()
        .stateful_set;
    let owners = sts.metadata.owner_references.as_ref().unwrap();
    assert_eq!(owners.len(), 2);
}

#[test]
fn server_pods_are_pinned_non_root_with_two_capabilities() {
    let r = render_example("one-pair");
    let sts = &r.nodes[0].stateful_set;
    let spec = sts.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(
        caps.add.as_deref().unwrap(),
        ["NET_BIND_SERVICE".to_string(), "NET_RAW".to_string()]
    );
    assert_eq!(caps.drop.as_deref().unwrap(), ["ALL".to_string()]);
    let ready = c
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    assert!(c.lifecycle.as_ref().unwrap().pre_stop.is_some());
}

fn reasons_of(text: &str) -> Vec<(String, &'static str)> {
    let r = resources(text);
    let out = render(&r.peers, &r.pools, &nodes(), &settings());
    out.errors
        .iter()
        .map(|e| (e.name.clone(), e.error.reason()))
        .collect()
}

const PEER: &str = "
apiVersion: dhcpair.io/v1alpha1
kind: FailoverPeer
metadata: {name: lan, namespace: dhcp}
spec:
  primary: {nodeName: node-a}
  secondary: {nodeName: node-b}
  interfaces: [eth1]
";

fn pool(name: &str, subnet: &str, start: &str, end: &str, peer: &str) -> String {
    format!(
        "---
apiVersion: dhcpair.io/v1alpha1
kind: Pool
metadata: {{name: {name}, namespace: dhcp}}
spec:
  failoverPeerRef: {peer}
  subnet: {subnet}
  ranges: [{{start: {start}, end: {end}}}]
"
    )
}

#[test]
fn bad_pools_get_their_invalid_spec_reason_and_the_good_ones_still_render() {
    let text = [
        PEER.to_string(),
        pool("good", "10.1.0.0/24", "10.1.0.10", "10.1.0.20", "lan"),
        pool("backwards", "10.2.0.0/24", "10.2.0.20", "10.2.0.10", "lan"),
        pool("outside", "10.3.0.0/24", "10.3.0.10", "10.4.0.10", "lan"),
        pool("overlap", "10.1.0.0/24", "10.1.0.15", "10.1.0.30", "lan"),
        pool("orphan", "10.5.0.0/24", "10.5.0.10", "10.5.0.20", "nope"),
        pool("badnet", "10.6.0.1/24", "10.6.0.10", "10.6.0.20", "lan"),
    ]
    .concat();
    let mut got = reasons_of(&text);
    got.sort();
    assert_eq!(
        got,
        [
            ("backwards".to_string(), reason::RANGE_START_AFTER_END),
            ("badnet".to_string(), reason::INVALID_SUBNET),
            ("orphan".to_string(), reason::PEER_NOT_FOUND),
            ("outside".to_string(), reason::RANGE_OUTSIDE_SUBNET),
            ("overlap".to_string(), reason::POOL_OVERLAP),
        ]
    );
    let r = resources(&text);
    let out = render(&r.peers, &r.pools, &nodes(), &settings());
    assert_eq!(out.nodes.len(), 2);
    assert_eq!(out.nodes[0].config.pools.len(), 1);
}

#[test]
fn bad_failover_peers_get_their_reason_and_their_pools_peer_invalid() {
    let same = PEER
        .replace("node-b", "node-a")
        .replace("name: lan", "name: same");
    let missing = PEER
        .replace("node-b", "node-x")
        .replace("name: lan", "name: missing");
    let ambiguous = PEER
        .replace("nodeName: node-b", "nodeSelector: {}")
        .replace("name: lan", "name: ambiguous");
    let both = PEER.replace("name: lan", "name: both") + "  split: 10\n  hba: \"ff\"\n";
    let text = [
        same,
        missing,
        ambiguous,
        both,
        pool("p", "10.1.0.0/24", "10.1.0.10", "10.1.0.20", "same"),
    ]
    .join("---\n");
    let mut got = reasons_of(&text);
    got.sort();
    assert_eq!(
        got,
        [
            ("ambiguous".to_string(), reason::NODE_SELECTOR_AMBIGUOUS),
            ("both".to_string(), reason::SPLIT_AND_HBA),
            ("missing".to_string(), reason::NODE_NOT_FOUND),
            ("p".to_string(), reason::PEER_INVALID),
            ("same".to_string(), reason::SAME_NODE),
        ]
    );
}

#[test]
fn a_node_without_an_internal_ip_needs_an_explicit_address() {
    let r = resources(PEER);
    let mut ns = nodes();
    ns[1].internal_ip = None;
    let out = render(&r.peers, &r.pools, &ns, &settings());
    assert_eq!(out.errors[0].error.reason(), reason::NODE_ADDRESS_UNKNOWN);
    assert!(out.nodes.is_empty());
}

fn shared_secondary() -> Resources {
    resources(&std::fs::read_to_string(root().join("examples/shared-secondary.yaml")).unwrap())
}

fn by_node(r: &Resources) -> std::collections::BTreeMap<String, (String, String, String)> {
    let out = render(&r.peers, &r.pools, &nodes(), &settings());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    out.nodes
        .iter()
        .map(|n| {
            let sts = &n.stateful_set;
            let template = serde_json::to_string(&sts.spec.as_ref().unwrap().template).unwrap();
            let hash = sts.metadata.annotations.as_ref().unwrap()[TEMPLATE_HASH].clone();
            let config = n.config_map.data.as_ref().unwrap()[CONFIG_KEY].clone();
            (n.node.clone(), (template, hash, config))
        })
        .collect()
}

#[test]
fn a_relationship_or_pool_added_changed_or_removed_changes_only_config_maps() {
    let full = by_node(&shared_secondary());
    // site-2 (the relationship on its own port 847) removed from node-c.
    let mut fewer = shared_secondary();
    fewer
        .peers
        .retain(|p| p.metadata.name.as_deref() != Some("site-2"));
    fewer.pools.retain(|p| p.spec.failover_peer_ref != "site-2");
    let fewer = by_node(&fewer);
    // A pool's range changed.
    let mut changed = shared_secondary();
    changed.pools[0].spec.ranges[0].end = "203.0.113.100".parse().unwrap();
    let changed = by_node(&changed);
    for (name, other, config_changes) in [
        ("fewer", &fewer, &["node-c"][..]),
        ("changed", &changed, &["node-a", "node-c"][..]),
    ] {
        for (node, (template, hash, config)) in other {
            let (t, h, c) = &full[node];
            assert_eq!((template, hash), (t, h), "{name}: pod template of {node}");
            let changes = config_changes.contains(&node.as_str());
            assert_eq!(config != c, changes, "{name}: config of {node}");
        }
    }
    assert!(!fewer.contains_key("node-b"));
}

#[test]
fn an_image_change_changes_the_template_hash_of_the_nodes_whose_settings_it_sets() {
    let full = by_node(&shared_secondary());
    let mut r = shared_secondary();
    // site-1 sorts first on node-c, so its image is node-c's too.
    r.peers[0].spec.image = Some("registry.example/dhcpair:next".to_string());
    let next = by_node(&r);
    for (node, changes) in [("node-a", true), ("node-b", false), ("node-c", true)] {
        assert_eq!(next[node].1 != full[node].1, changes, "hash of {node}");
        assert_eq!(next[node].0 != full[node].0, changes, "template of {node}");
        assert_eq!(next[node].2, full[node].2, "config of {node}");
    }
}
