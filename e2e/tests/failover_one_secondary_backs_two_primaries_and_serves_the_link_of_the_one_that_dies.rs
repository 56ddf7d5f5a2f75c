//! One secondary backing several primaries (the VitalQIP-style layout; in ISC dhcpd a server
//! with several `failover peer` blocks): three servers, two links. The configs are rendered
//! from CRs by `dhcpair-operator render`, as the operator would: two FailoverPeers share the
//! secondary node, a Pool per link, and the renderer groups the roles by node into one config
//! per node (node-c hosts `site-a` and `site-b`, both as secondary, and serves both links).
//!
//! Topology: the node network 10.73.0.0/24 (`eth0`: node-a .11, node-b .12, node-c .13; the
//! failover links and HTTP), link A 10.73.1.0/24 (`eth1` of node-a and node-c, with clients
//! A1..A3) and link B 10.73.2.0/24 (`eth2` of node-b and node-c, with clients B1, B2). Every
//! client is a real dhclient with a chosen MAC (the split is predicted with the test crate's
//! RFC 3074 hash; ISC `split 128`).
//!
//! 1. Both relationships reach NORMAL on the shared secondary; every client is bound by the
//!    owner of its hash bucket on its own link.
//! 2. node-a dies (SIGKILL): node-c moves `site-a` to COMMUNICATIONS-INTERRUPTED and serves
//!    link A: A1 (bound by node-a) keeps its address through node-c (its unicast RENEWs to
//!    node-a go unanswered; at T2 its broadcast REQUEST reaches node-c, whose ACK dhclient
//!    reports as RENEW or REBIND), a new client A3 gets one of node-c's
//!    BACKUP addresses of link A. Link B goes on as before.
//! 3. node-a returns with its database while node-c is still in COMMUNICATIONS-INTERRUPTED:
//!    no RECOVER, both resynchronise to NORMAL and node-a learns A3's lease. (A return with
//!    the database after a partner-down goes through RECOVER; another scenario covers that.)
//! 4. node-a dies again; `dhcpair partner-down site-a` on node-c moves only `site-a` to
//!    PARTNER-DOWN.
//! 5. node-a returns without its database: RECOVER, every binding of link A from node-c,
//!    RECOVER-WAIT for MCLT, RECOVER-DONE, NORMAL.
//!
//! Throughout, `site-b` never leaves NORMAL: checked in the status of node-b and node-c at each
//! step, and at the end in both logs (no move of either side after the first NORMAL), and B's
//! clients renew with their own servers only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use dhcpair_config::raw::RawConfig;
use dhcpair_e2e::failover::{counts_agree, find_move, PoolCounts};
use dhcpair_e2e::layouts::{log_since_start, macs_owned_by, move_names, rel_moves, Site};
use dhcpair_e2e::operator::{operator_bin, rename_link, render};
use dhcpair_e2e::{scenario, wait_until, Dhclient, Event, Net24, Netns, Switch, TestEnv};

#[test]
fn one_secondary_backs_two_primaries_and_serves_the_link_of_the_one_that_dies() {
    scenario(
        "one_secondary_backs_two_primaries_and_serves_the_link_of_the_one_that_dies",
        body,
    );
}

const NODES: Net24 = Net24::new(10, 73, 0);
const LINK_A: Net24 = Net24::new(10, 73, 1);
const LINK_B: Net24 = Net24::new(10, 73, 2);
const MCLT: u32 = 12;
/// The pools' default lease time: a renewal's T2 (7/8 of it) comes soon after a kill.
const LEASE: u32 = 16;
const SPLIT: u16 = 128;
const REL_A: &str = "site-a";
const REL_B: &str = "site-b";
const POOL_A: &str = "site-a-lan";
const POOL_B: &str = "site-b-lan";

/// The CRs the test applies (as `kubectl apply -f` would get them).
fn crs() -> String {
    let peer = |name: &str, primary: &str, iface: &str| {
        format!(
            "apiVersion: dhcpair.io/v1alpha1\nkind: FailoverPeer\nmetadata:\n  name: {name}\n  namespace: dhcp\n\
             spec:\n  primary:\n    nodeName: {primary}\n  secondary:\n    nodeName: node-c\n  mclt: {MCLT}\n\
             \x20 maxResponseDelay: 6\n  maxUnackedUpdates: 10\n  loadBalanceMaxSeconds: 30\n  interfaces: [{iface}]\n"
        )
    };
    let pool = |name: &str, rel: &str, net: Net24| {
        format!(
            "apiVersion: dhcpair.io/v1alpha1\nkind: Pool\nmetadata:\n  name: {name}\n  namespace: dhcp\n\
             spec:\n  failoverPeerRef: {rel}\n  subnet: {subnet}\n  ranges:\n    - start: {start}\n      end: {end}\n\
             \x20 options:\n    routers: [{router}]\n  defaultLeaseTime: {LEASE}\n  maxLeaseTime: {max}\n",
            subnet = net.cidr(),
            start = net.host(100),
            end = net.host(139),
            router = net.host(1),
            max = LEASE * 4,
        )
    };
    [
        peer(REL_A, "node-a", "eth1"),
        peer(REL_B, "node-b", "eth2"),
        pool(POOL_A, REL_A, LINK_A),
        pool(POOL_B, REL_B, LINK_B),
    ]
    .join("---\n")
}

/// One node: its namespace and InternalIP.
struct Node {
    name: &'static str,
    ns: Netns,
    ip: Ipv4Addr,
}

/// A dhclient on a link with a chosen MAC.
struct Client {
    label: &'static str,
    mac: String,
    _ns: Netns,
    dhclient: Dhclient,
}

impl Client {
    fn bound(&self, since: usize, timeout: Duration) -> Result<Event> {
        self.dhclient
            .events
            .wait(since, &["BOUND"], timeout)
            .with_context(|| format!("{} {}", self.label, self.mac))
    }
}

fn body(env: &TestEnv) -> Result<()> {
    env.require("dhclient")?;
    ensure!(
        operator_bin().is_file(),
        "dhcpair-operator not found at {} (cargo build -p dhcpair-operator)",
        operator_bin().display()
    );
    // The networks.
    let node_switch = Switch::new()?;
    let link_a = Switch::new()?;
    let link_b = Switch::new()?;
    let mut nodes = Vec::new();
    for (name, host) in [("node-a", 11u8), ("node-b", 12), ("node-c", 13)] {
        let ns = Netns::new()?;
        let eth0 = node_switch.attach(&ns)?;
        rename_link(&ns, &eth0, "eth0")?;
        ns.addr("eth0", &NODES.addr(host))?;
        if name != "node-b" {
            let eth1 = link_a.attach(&ns)?;
            rename_link(&ns, &eth1, "eth1")?;
            ns.addr("eth1", &LINK_A.addr(host))?;
        }
        if name != "node-a" {
            let eth2 = link_b.attach(&ns)?;
            rename_link(&ns, &eth2, "eth2")?;
            ns.addr("eth2", &LINK_B.addr(host))?;
        }
        nodes.push(Node {
            name,
            ns,
            ip: NODES.host(host),
        });
    }

    // Render as the operator would, and check the grouping by node.
    let facts = env.path("nodes.facts.yaml");
    let facts_text: String = nodes
        .iter()
        .map(|n| format!("- {{name: {}, internalIP: {}}}\n", n.name, n.ip))
        .collect();
    std::fs::write(&facts, facts_text)?;
    let crs_path = env.path("crs.yaml");
    std::fs::write(&crs_path, crs())?;
    let rendered = render(env, &facts, &[&crs_path])?;
    let mut configs: BTreeMap<&str, RawConfig> = BTreeMap::new();
    for n in &nodes {
        let r = rendered
            .get(n.name)
            .ok_or_else(|| anyhow!("nothing rendered for {}", n.name))?;
        let text = r
            .config_file("config.yaml")
            .ok_or_else(|| anyhow!("{}: no config.yaml", n.name))?;
        println!("== {} config.yaml:\n{text}", n.name);
        let config: RawConfig = serde_yaml::from_str(text)
            .with_context(|| format!("{}: rendered config.yaml", n.name))?;
        configs.insert(n.name, config);
    }
    let shared = &configs["node-c"];
    let roles: Vec<(String, String)> = shared
        .peers
        .iter()
        .map(|p| (p.name.clone(), format!("{:?}", p.role)))
        .collect();
    ensure!(
        roles
            == [
                (REL_A.to_string(), "Secondary".to_string()),
                (REL_B.to_string(), "Secondary".to_string())
            ]
            && shared.server.interfaces == ["eth1", "eth2"]
            && shared.pools.len() == 2,
        "node-c's config does not host both relationships as secondary and both pools: {roles:?}, {:?}",
        shared.server.interfaces
    );

    // Start the three servers: the shared secondary first.
    let mut sites: BTreeMap<&str, Site> = BTreeMap::new();
    for name in ["node-c", "node-a", "node-b"] {
        let n = nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| anyhow!("no {name}"))?;
        let site = Site::start(env, &n.ns, name, n.ip, configs[name].clone())?;
        sites.insert(name, site);
    }
    let started = Instant::now();
    let normal_timeout = Duration::from_secs(30);
    sites["node-c"].wait_normal(REL_A, normal_timeout)?;
    sites["node-c"].wait_normal(REL_B, normal_timeout)?;
    sites["node-a"].wait_normal(REL_A, normal_timeout)?;
    sites["node-b"].wait_normal(REL_B, normal_timeout)?;
    println!(
        "both relationships NORMAL on the shared secondary after {:.1?}",
        started.elapsed()
    );
    wait_pool_agree(&sites["node-a"], &sites["node-c"], POOL_A)?;
    wait_pool_agree(&sites["node-b"], &sites["node-c"], POOL_B)?;

    // 1. Clients on both links, each bound by the owner of its bucket.
    let start_client = |label: &'static str, switch: &Switch, mac: String| -> Result<Client> {
        let ns = Netns::new()?;
        let iface = switch.attach(&ns)?;
        ns.set_mac(&iface, &mac)?;
        let dhclient = Dhclient::start(env, &ns, &iface)?;
        Ok(Client {
            label,
            mac,
            _ns: ns,
            dhclient,
        })
    };
    let a_primary = macs_owned_by(0x68, true, SPLIT, 2);
    let a_secondary = macs_owned_by(0x68, false, SPLIT, 1);
    let b_primary = macs_owned_by(0x69, true, SPLIT, 1);
    let b_secondary = macs_owned_by(0x69, false, SPLIT, 1);
    let a1 = start_client("A1", &link_a, a_primary[0].clone())?;
    let a2 = start_client("A2", &link_a, a_secondary[0].clone())?;
    let b1 = start_client("B1", &link_b, b_primary[0].clone())?;
    let b2 = start_client("B2", &link_b, b_secondary[0].clone())?;
    let bind_timeout = Duration::from_secs(20);
    let mut ip_of = BTreeMap::new();
    for (c, server_id) in [
        (&a1, LINK_A.host(11)),
        (&a2, LINK_A.host(13)),
        (&b1, LINK_B.host(12)),
        (&b2, LINK_B.host(13)),
    ] {
        let ev = c.bound(0, bind_timeout)?;
        let ip = ev
            .ip()
            .ok_or_else(|| anyhow!("{} BOUND without an address", c.label))?;
        println!(
            "{} {}: BOUND {ip} from {:?} ({} s)",
            c.label,
            c.mac,
            ev.server_id(),
            ev.lease_time().unwrap_or(0)
        );
        ensure!(
            ev.server_id() == Some(server_id),
            "{} {} should be bound by {server_id} (its hash bucket's owner on its link), was by {:?}",
            c.label,
            c.mac,
            ev.server_id()
        );
        ip_of.insert(c.label, ip);
    }
    b_normal(&sites, "clients bound")?;

    // 2. node-a dies; node-c serves link A.
    let backup_a: BTreeSet<Ipv4Addr> = sites["node-c"]
        .ips_in(POOL_A, "backup")?
        .into_iter()
        .collect();
    ensure!(
        !backup_a.is_empty(),
        "node-c holds no BACKUP address of {POOL_A}"
    );
    let a1_since = a1.dhclient.events.count();
    let killed = Instant::now();
    sites
        .get_mut("node-a")
        .ok_or_else(|| anyhow!("node-a"))?
        .server
        .kill9();
    sites["node-c"].wait_state(REL_A, "communications-interrupted", Duration::from_secs(10))?;
    println!(
        "node-c: {REL_A} communications-interrupted {:.1?} after the kill",
        killed.elapsed()
    );
    b_normal(&sites, "node-a killed")?;
    let a3 = start_client("A3", &link_a, a_primary[1].clone())?;
    let ev = a3.bound(0, bind_timeout)?;
    let a3_ip = ev
        .ip()
        .ok_or_else(|| anyhow!("A3 BOUND without an address"))?;
    println!(
        "A3 {} (a client of node-a's buckets): BOUND {a3_ip} from {:?}",
        a3.mac,
        ev.server_id()
    );
    ensure!(
        ev.server_id() == Some(LINK_A.host(13)) && backup_a.contains(&a3_ip),
        "A3 should get one of node-c's BACKUP addresses {backup_a:?} from node-c, got {a3_ip} from {:?}",
        ev.server_id()
    );
    ip_of.insert("A3", a3_ip);
    let ev = a1.dhclient.events.wait(
        a1_since,
        &["RENEW", "REBIND"],
        Duration::from_secs(u64::from(LEASE) + 10),
    )?;
    println!(
        "A1: {} {:?} from {:?} {:.1?} after the kill",
        ev.reason(),
        ev.ip(),
        ev.server_id(),
        killed.elapsed()
    );
    ensure!(
        ev.ip() == Some(ip_of["A1"]) && ev.server_id() == Some(LINK_A.host(13)),
        "A1 should keep {} through node-c, got {} of {:?} from {:?}",
        ip_of["A1"],
        ev.reason(),
        ev.ip(),
        ev.server_id()
    );
    b_normal(&sites, "link A served by node-c")?;

    // 3. node-a returns with its database, while node-c is in COMMUNICATIONS-INTERRUPTED.
    let restarted = Instant::now();
    sites
        .get_mut("node-a")
        .ok_or_else(|| anyhow!("node-a"))?
        .server
        .restart()?;
    sites["node-a"].wait_normal(REL_A, Duration::from_secs(30))?;
    sites["node-c"].wait_normal(REL_A, Duration::from_secs(10))?;
    println!(
        "{REL_A} NORMAL again {:.1?} after node-a's restart with its database",
        restarted.elapsed()
    );
    let log_a = sites["node-a"].log();
    let second = log_since_start(&log_a, "node-a", 2).unwrap_or("");
    let second_moves = move_names(&rel_moves(second, REL_A, "I move"));
    ensure!(
        !second_moves.iter().any(|m| m.contains("->recover")),
        "node-a went through recover although it kept its database: {second_moves:?}"
    );
    wait_until(
        "node-a to hold A3's lease, given by node-c while node-a was down",
        Duration::from_secs(10),
        || {
            let active = sites["node-a"].active().ok()?;
            (active.get(&a3_ip) == Some(&a3.mac)).then_some(())
        },
    )?;
    wait_pool_agree(&sites["node-a"], &sites["node-c"], POOL_A)?;
    b_normal(&sites, "node-a back with its database")?;

    // 4. node-a dies again; partner-down for site-a only.
    sites
        .get_mut("node-a")
        .ok_or_else(|| anyhow!("node-a"))?
        .server
        .kill9();
    sites["node-c"].wait_state(REL_A, "communications-interrupted", Duration::from_secs(10))?;
    let out = sites["node-c"].partner_down(REL_A)?;
    let down = sites["node-c"].wait_state(REL_A, "partner-down", Duration::from_secs(5))?;
    println!("node-c: {} -> {down:?}", out.trim());
    b_normal(&sites, "partner-down for site-a")?;

    // 5. node-a returns without its database.
    let node_a = sites.get_mut("node-a").ok_or_else(|| anyhow!("node-a"))?;
    node_a.wipe_database()?;
    let restarted = Instant::now();
    node_a.server.restart()?;
    let rel = sites["node-a"].wait_state(REL_A, "recover-wait", Duration::from_secs(15))?;
    println!(
        "node-a in recover-wait {:.1?} after its restart without a database: {rel:?}",
        restarted.elapsed()
    );
    let clients_a = [(&a1, "A1"), (&a2, "A2"), (&a3, "A3")];
    let mut missing = Vec::new();
    wait_until(
        "node-a's new database to hold every lease of link A",
        Duration::from_secs(5),
        || {
            let active = sites["node-a"].active().ok()?;
            missing = clients_a
                .iter()
                .filter(|(c, label)| active.get(&ip_of[label]) != Some(&c.mac))
                .map(|(c, label)| format!("{label} {} {}", c.mac, ip_of[label]))
                .collect();
            missing.is_empty().then_some(())
        },
    )
    .with_context(|| format!("missing: {missing:?}"))?;
    sites["node-a"].wait_normal(REL_A, Duration::from_secs(u64::from(MCLT) + 15))?;
    sites["node-c"].wait_normal(REL_A, Duration::from_secs(10))?;
    println!(
        "{REL_A} NORMAL again {:.1?} after node-a's restart without a database",
        restarted.elapsed()
    );
    let log_a = sites["node-a"].log();
    let third = log_since_start(&log_a, "node-a", 3).unwrap_or("");
    let moves = rel_moves(third, REL_A, "I move");
    let names = move_names(&moves);
    println!("node-a's moves after the restart without a database: {names:?}");
    let tail = names.join(" ");
    ensure!(
        tail.contains(
            "->recover recover->recover-wait recover-wait->recover-done recover-done->normal"
        ),
        "node-a did not go recover -> recover-wait -> recover-done -> normal: {names:?}"
    );
    let waited = find_move(&moves, "recover-wait", "recover-done")
        .and_then(|m| m.at)
        .zip(find_move(&moves, "recover", "recover-wait").and_then(|m| m.at))
        .map(|(d, w)| d - w)
        .unwrap_or(-1.0);
    ensure!(
        waited >= f64::from(MCLT) - 3.0 && waited <= f64::from(MCLT) + 2.0,
        "{waited:.1} s in recover-wait, expected about MCLT = {MCLT} s"
    );
    b_normal(&sites, "node-a back without its database")?;
    wait_pool_agree(&sites["node-a"], &sites["node-c"], POOL_A)?;
    wait_pool_agree(&sites["node-b"], &sites["node-c"], POOL_B)?;

    // site-a on node-c, from its log.
    let c_log = sites["node-c"].log();
    let c_a = move_names(&rel_moves(&c_log, REL_A, "I move"));
    println!("node-c's moves in {REL_A}: {c_a:?}");
    ensure!(
        c_a.iter()
            .filter(|m| *m == "normal->communications-interrupted")
            .count()
            == 2
            && c_a
                .iter()
                .any(|m| m == "communications-interrupted->normal")
            && c_a
                .iter()
                .any(|m| m == "communications-interrupted->partner-down")
            && c_a.last().map(String::as_str) == Some("partner-down->normal"),
        "node-c's moves in {REL_A}: {c_a:?}"
    );
    // site-b: no move of either side after its first NORMAL, in both logs.
    for (name, log) in [("node-b", sites["node-b"].log()), ("node-c", c_log)] {
        for who in ["I move", "peer moves"] {
            let moves = move_names(&rel_moves(&log, REL_B, who));
            let after: Vec<&String> = moves
                .iter()
                .skip_while(|m| !m.ends_with("->normal"))
                .skip(1)
                .collect();
            println!("{name} {REL_B} `{who}`: {moves:?}");
            ensure!(
                moves.iter().any(|m| m.ends_with("->normal")) && after.is_empty(),
                "{name}: {REL_B} `{who}` moved after NORMAL: {moves:?}"
            );
        }
    }
    // B's clients renewed only with their own servers and never lost their lease.
    for (c, server_id) in [(&b1, LINK_B.host(12)), (&b2, LINK_B.host(13))] {
        let events = c.dhclient.events.all();
        let reasons: Vec<String> = events.iter().map(Event::reason).collect();
        let renewals = events.iter().filter(|e| e.reason() == "RENEW").count();
        println!("{} events: {reasons:?}", c.label);
        ensure!(
            renewals >= 2
                && events.iter().all(|e| {
                    matches!(e.reason().as_str(), "PREINIT" | "BOUND" | "RENEW")
                        && (e.reason() == "PREINIT"
                            || (e.server_id() == Some(server_id) && e.ip() == Some(ip_of[c.label])))
                }),
            "{} should only have renewed {} with {server_id}: {reasons:?}",
            c.label,
            ip_of[c.label]
        );
    }
    Ok(())
}

/// `site-b` is NORMAL on both its servers, connected.
fn b_normal(sites: &BTreeMap<&str, Site>, step: &str) -> Result<()> {
    for name in ["node-b", "node-c"] {
        let r = sites[name].rel(REL_B)?;
        ensure!(
            r.my_state == "normal" && r.partner_state == "normal" && r.connected,
            "{step}: {REL_B} left NORMAL on {name}: {r:?}"
        );
    }
    Ok(())
}

/// Poll until both servers count pool `pool` alike (and some addresses are free and backup).
fn wait_pool_agree(a: &Site, b: &Site, pool: &str) -> Result<PoolCounts> {
    let mut last = (None, None);
    wait_until(
        format!("{} and {} to count {pool} alike", a.name, b.name),
        Duration::from_secs(15),
        || {
            let (x, y) = (a.pool(pool).ok(), b.pool(pool).ok());
            let done = match (&x, &y) {
                (Some(x), Some(y)) if counts_agree(x, y) && x.free > 0 && x.backup > 0 => {
                    Some(x.clone())
                }
                _ => None,
            };
            last = (x, y);
            done
        },
    )
    .with_context(|| format!("last counts: {last:?}"))
}
