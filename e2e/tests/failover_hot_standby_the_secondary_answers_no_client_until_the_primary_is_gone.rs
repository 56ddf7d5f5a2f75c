//! Hot standby as VitalQIP and Microsoft sites run it: while the primary is up the secondary
//! answers no client; when the primary is gone the secondary serves.
//!
//! The pair's configs come from the operator's renderer (`dhcpair-operator render`) for a
//! FailoverPeer with `mode: hotStandby` and no loadBalanceMaxSeconds: the primary must get
//! split 256 and both members loadBalanceMaxSeconds 3 (without it load balancing is off and
//! the secondary answers every DISCOVER from its backup addresses). Only what ties a config to
//! the test's namespaces is changed: the data directory, the HTTP address (the node's address
//! instead of 0.0.0.0) and a control token; the nodes' links are named `eth1` as the CR says.
//!
//! 1. NORMAL: a real dhclient and 16 relay-mode load clients, the load clients sending the same
//!    DISCOVERs to both servers with `secs` below 3, are all answered by the primary. The
//!    secondary ACKs none, and its own counters (`dhcpair_packets_total`) show no OFFER and no
//!    ACK, only DISCOVERs dropped as load balanced; every lease is in both databases.
//! 2. The primary is killed (SIGKILL). The secondary moves to COMMUNICATIONS-INTERRUPTED and
//!    then serves: the 16 load clients, asking again, get their own addresses back from it; the
//!    dhclient renews its lease with it (by broadcast); new clients get addresses from the
//!    secondary's BACKUP share.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use dhcpair_config::raw::{RawConfig, Role};
use dhcpair_e2e::failover::{
    control_token, dhcpair_active, load, load_both, mac_for, wait_active, wait_balanced,
    wait_normal, Member, PairNet, HTTP_PORT, RELATIONSHIP,
};
use dhcpair_e2e::load::Ack;
use dhcpair_e2e::operator::{rename_link, render};
use dhcpair_e2e::{load_bin, scenario, wait_until, Dhclient, Net24, TestEnv};

const NET: Net24 = Net24::new(10, 70, 13);
/// The pool's range, `NET.host(FIRST)..=NET.host(LAST)`.
const FIRST: u8 = 100;
const LAST: u8 = 139;
const MCLT: u32 = 10;
const MAX_RESPONSE_DELAY: u32 = 6;
const CLIENTS: u32 = 16;
const TAG: u8 = 0x7d;
const NEW_CLIENTS: u32 = 4;
const NEW_TAG: u8 = 0x7e;
/// The interface name the FailoverPeer gives.
const IFACE: &str = "eth1";

#[test]
fn hot_standby_the_secondary_answers_no_client_until_the_primary_is_gone() {
    scenario(
        "hot_standby_the_secondary_answers_no_client_until_the_primary_is_gone",
        body,
    );
}

/// The CRs: a hot-standby FailoverPeer (nothing about load balancing given) and its pool.
fn crs() -> String {
    format!(
        "apiVersion: dhcpair.io/v1alpha1
kind: FailoverPeer
metadata: {{name: {RELATIONSHIP}, namespace: e2e}}
spec:
  primary: {{nodeName: node-primary}}
  secondary: {{nodeName: node-secondary}}
  mode: hotStandby
  mclt: {MCLT}
  maxResponseDelay: {MAX_RESPONSE_DELAY}
  maxUnackedUpdates: 10
  interfaces: [{IFACE}]
---
apiVersion: dhcpair.io/v1alpha1
kind: Pool
metadata: {{name: lan, namespace: e2e}}
spec:
  failoverPeerRef: {RELATIONSHIP}
  subnet: {cidr}
  ranges: [{{start: {first}, end: {last}}}]
  options: {{routers: [{router}]}}
  defaultLeaseTime: 30
  maxLeaseTime: 120
",
        cidr = NET.cidr(),
        first = NET.host(FIRST),
        last = NET.host(LAST),
        router = NET.host(1),
    )
}

/// Render the CRs for the pair's two nodes (InternalIPs = the pair's addresses) and check the
/// hot-standby settings; returns (primary config, secondary config) as rendered.
fn rendered_configs(env: &TestEnv, pair: &PairNet) -> Result<(RawConfig, RawConfig)> {
    let crs_path = env.path("crs.yaml");
    std::fs::write(&crs_path, crs())?;
    let facts = env.path("nodes.facts.yaml");
    std::fs::write(
        &facts,
        format!(
            "- {{name: node-primary, internalIP: {}}}\n- {{name: node-secondary, internalIP: {}}}\n",
            pair.primary.ip, pair.secondary.ip
        ),
    )?;
    let nodes = render(env, &facts, &[&crs_path])?;
    let config = |node: &str| -> Result<RawConfig> {
        let text = nodes
            .get(node)
            .and_then(|n| n.config_file("config.yaml"))
            .with_context(|| format!("no config.yaml rendered for {node}"))?;
        println!("== rendered for {node}:\n{text}");
        serde_yaml::from_str(text).with_context(|| format!("parse the config of {node}"))
    };
    let (p, s) = (config("node-primary")?, config("node-secondary")?);
    let (pp, sp) = (
        p.peers.first().context("primary: no peer")?,
        s.peers.first().context("secondary: no peer")?,
    );
    ensure!(
        (pp.role, sp.role) == (Role::Primary, Role::Secondary),
        "roles {:?} and {:?}",
        pp.role,
        sp.role
    );
    ensure!(
        pp.split == Some(256) && pp.hba.is_none() && sp.split.is_none(),
        "hot standby must render split 256 on the primary only: primary {:?}/{:?}, secondary {:?}",
        pp.split,
        pp.hba,
        sp.split
    );
    ensure!(
        pp.load_balance_max_seconds == Some(3) && sp.load_balance_max_seconds == Some(3),
        "hot standby must render loadBalanceMaxSeconds 3 on both: primary {:?}, secondary {:?}",
        pp.load_balance_max_seconds,
        sp.load_balance_max_seconds
    );
    Ok((p, s))
}

/// A rendered config tied to the test: HTTP on the node's address, the test's control token.
fn for_test(mut config: RawConfig, ip: Ipv4Addr, env: &TestEnv) -> Result<RawConfig> {
    config.server.http = Some(SocketAddr::new(ip.into(), HTTP_PORT));
    config.server.control_token_file = Some(control_token(env)?.display().to_string());
    Ok(config)
}

/// DHCP replies a server counted in `/metrics`: OFFERs and ACKs over every message type, and
/// DISCOVERs it left to its partner by the load-balancing hash.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Answered {
    offers: f64,
    acks: f64,
    load_balanced: f64,
}

fn answered(m: &Member) -> Result<Answered> {
    let text = m.server.metrics()?;
    let sum = |outcome: &str| -> f64 {
        let label = format!("outcome=\"{outcome}\"");
        text.lines()
            .filter(|l| l.starts_with("dhcpair_packets_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    };
    Ok(Answered {
        offers: sum("offer"),
        acks: sum("ack"),
        load_balanced: sum("load_balanced"),
    })
}

fn by_mac(acks: &[Ack]) -> BTreeMap<String, Ipv4Addr> {
    acks.iter().map(|a| (a.mac.clone(), a.ip)).collect()
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(NET)?;
    for node in [&pair.primary, &pair.secondary] {
        rename_link(&node.ns, &node.iface, IFACE)?;
    }
    let (p_config, s_config) = rendered_configs(env, &pair)?;
    let primary_config = for_test(p_config, pair.primary.ip, env)?;
    let secondary_config = for_test(s_config, pair.secondary.ip, env)?;
    let mut primary = Member::start_with(env, &pair.primary.ns, Role::Primary, primary_config)?;
    let secondary = Member::start_with(env, &pair.secondary.ns, Role::Secondary, secondary_config)?;
    wait_normal(&primary, &secondary, Duration::from_secs(20))?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;
    let backup_before = secondary.ips_in("backup")?;
    ensure!(
        !backup_before.is_empty(),
        "the secondary holds no BACKUP lease"
    );

    // 1. NORMAL. A real client: only the primary may bind it.
    let mac = mac_for(0x7c, true, 256);
    let (client_ns, client_if) = pair.client(Some(&mac))?;
    let client = Dhclient::start(env, &client_ns, &client_if)?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = bound
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address"))?;
    ensure!(
        bound.server_id() == Some(primary.ip),
        "dhclient {mac} was bound by {:?}, not the primary {}",
        bound.server_id(),
        primary.ip
    );

    // 16 load clients, the same DISCOVERs to both servers (secs 0..2, below 3).
    let relay = pair.relay(&[50, 51])?;
    let [by_primary, by_secondary] = load_both(
        env,
        &relay.ns,
        load_bin!(),
        "normal",
        [pair.net.host(50), pair.net.host(51)],
        [primary.ip, secondary.ip],
        TAG,
        CLIENTS,
    )?;
    ensure!(
        by_secondary.is_empty(),
        "the secondary ACKed {} clients in NORMAL: {by_secondary:?}",
        by_secondary.len()
    );
    ensure!(
        by_primary.len() == CLIENTS as usize,
        "the primary ACKed {} of {CLIENTS} clients: {by_primary:?}",
        by_primary.len()
    );
    for m in [&primary, &secondary] {
        wait_active(m.name(), &by_primary, Duration::from_secs(5), || {
            dhcpair_active(m)
        })?;
    }
    let (p_before, s_before) = (answered(&primary)?, answered(&secondary)?);
    println!("before the kill: primary answered {p_before:?}; secondary answered {s_before:?}");
    ensure!(
        s_before.offers == 0.0 && s_before.acks == 0.0,
        "the secondary answered clients in NORMAL: {s_before:?}"
    );
    ensure!(
        s_before.load_balanced >= f64::from(CLIENTS),
        "the secondary did not count the load clients' DISCOVERs as load balanced: {s_before:?}"
    );
    ensure!(
        p_before.acks >= f64::from(CLIENTS + 1) && p_before.load_balanced == 0.0,
        "the primary's counters: {p_before:?}"
    );

    // 2. The primary dies.
    let after_kill = client.events.count();
    primary.server.kill9();
    let killed = Instant::now();
    let rel = secondary.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(MAX_RESPONSE_DELAY) + 2),
    )?;
    println!(
        "secondary in communications-interrupted {:.1?} after the kill: {rel:?}",
        killed.elapsed()
    );

    // The load clients ask again (DISCOVER, REQUEST), now of the secondary only, while the
    // primary's leases (MCLT long) still run: each keeps its address.
    let again = load(
        env,
        &relay.ns,
        load_bin!(),
        "after-kill-same-clients",
        pair.net.host(51),
        secondary.ip,
        TAG,
        CLIENTS,
        2,
    )?;
    ensure!(
        by_mac(&again) == by_mac(&by_primary),
        "after the kill the secondary gave the primary's clients {:?}; the primary had given {:?}",
        by_mac(&again),
        by_mac(&by_primary)
    );

    // The dhclient's lease (MCLT long) renews: its unicast RENEW to the dead primary goes
    // unanswered; the broadcast it sends once T2 has passed reaches the secondary (dhclient
    // reports the ACK as RENEW or REBIND).
    let renewed = wait_until(
        "dhclient renewed by the secondary",
        Duration::from_secs(u64::from(MCLT) + 15),
        || {
            client.events.all().into_iter().skip(after_kill).find(|e| {
                matches!(e.reason().as_str(), "RENEW" | "REBIND")
                    && e.server_id() == Some(secondary.ip)
            })
        },
    )
    .with_context(|| format!("dhclient events: {:?}", client.events.reasons()))?;
    ensure!(
        renewed.ip() == Some(ip),
        "dhclient {} {:?} from the secondary, it had {ip}",
        renewed.reason(),
        renewed.ip()
    );
    println!(
        "dhclient {mac} {ip}: {} from the secondary",
        renewed.reason()
    );

    // New clients: addresses from the secondary's BACKUP share.
    let fresh = load(
        env,
        &relay.ns,
        load_bin!(),
        "after-kill-new-clients",
        pair.net.host(51),
        secondary.ip,
        NEW_TAG,
        NEW_CLIENTS,
        2,
    )?;
    ensure!(
        fresh.len() == NEW_CLIENTS as usize,
        "{} of {NEW_CLIENTS} new clients served by the secondary: {fresh:?}",
        fresh.len()
    );
    for a in &fresh {
        ensure!(
            backup_before.contains(&a.ip),
            "new client {} got {}, not one of the secondary's BACKUP addresses {backup_before:?}",
            a.mac,
            a.ip
        );
    }
    let s_after = answered(&secondary)?;
    println!(
        "after the kill: the secondary answered {} load clients again, the dhclient, and {} new \
         clients; its counters {s_after:?}",
        again.len(),
        fresh.len()
    );
    ensure!(
        s_after.acks >= f64::from(CLIENTS + NEW_CLIENTS + 1),
        "the secondary's counters after the kill: {s_after:?}"
    );
    Ok(())
}
