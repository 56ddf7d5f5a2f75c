//! Failover ports as sites configure them: ISC's examples use 847 on one side and 647 on the
//! other (`port` is where a server listens, `peer port` where it connects to its partner), and
//! some sites use 520 on both. With a dhcpair partner and with ISC dhcpd 4.4.3 as the partner
//! (its config's `port` / `peer port`): each server listens on its own port and nowhere else,
//! the pair reaches NORMAL over a connection between those ports, and leases granted by either
//! server are active on the other.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use dhcpair_config::raw::Role;
use dhcpair_e2e::failover::{
    control_token, dhcpair_active, dhcpair_config, load_both, my_moves, wait_active, wait_balanced,
    wait_normal, IscDhcpd, Member, PairNet, PairSettings,
};
use dhcpair_e2e::layouts::isc_config_ports;
use dhcpair_e2e::{load_bin, scenario, wait_until, Net24, Netns, TestEnv};

#[test]
fn a_dhcpair_pair_on_ports_847_and_647_reaches_normal_and_replicates_leases() {
    scenario(
        "a_dhcpair_pair_on_ports_847_and_647_reaches_normal_and_replicates_leases",
        |env| dhcpair_pair(env, Net24::new(10, 72, 41), [847, 647]),
    );
}

#[test]
fn a_dhcpair_pair_on_port_520_reaches_normal_and_replicates_leases() {
    scenario(
        "a_dhcpair_pair_on_port_520_reaches_normal_and_replicates_leases",
        |env| dhcpair_pair(env, Net24::new(10, 72, 42), [520, 520]),
    );
}

#[test]
fn dhcpair_primary_on_847_and_isc_secondary_on_647_reach_normal_and_replicate_leases() {
    scenario(
        "dhcpair_primary_on_847_and_isc_secondary_on_647_reach_normal_and_replicate_leases",
        |env| with_isc(env, Net24::new(10, 72, 43), Role::Primary, [847, 647]),
    );
}

#[test]
fn isc_primary_and_dhcpair_secondary_on_port_520_reach_normal_and_replicate_leases() {
    scenario(
        "isc_primary_and_dhcpair_secondary_on_port_520_reach_normal_and_replicate_leases",
        |env| with_isc(env, Net24::new(10, 72, 44), Role::Secondary, [520, 520]),
    );
}

/// The other role.
fn other(role: Role) -> Role {
    match role {
        Role::Primary => Role::Secondary,
        Role::Secondary => Role::Primary,
    }
}

/// `ports[0]` is where the primary listens, `ports[1]` the secondary.
fn port_of(role: Role, ports: [u16; 2]) -> u16 {
    match role {
        Role::Primary => ports[0],
        Role::Secondary => ports[1],
    }
}

/// A dhcpair member of `pair` listening on its port of `ports`, connecting to the partner's.
fn start_member(
    env: &TestEnv,
    pair: &PairNet,
    role: Role,
    s: &PairSettings,
    ports: [u16; 2],
) -> Result<Member> {
    let mut config = dhcpair_config(pair, role, s, &control_token(env)?);
    config.peers[0].port = Some(port_of(role, ports));
    config.peers[0].peer_port = Some(port_of(other(role), ports));
    Member::start_with(env, &pair.node(role).ns, role, config)
}

/// TCP ports the namespace listens on at `ip` or at any address (`ss -tlnH`).
fn listening(ns: &Netns, ip: Ipv4Addr) -> Result<Vec<u16>> {
    let out = ns.exec(&["ss", "-tlnH"])?;
    let ip = ip.to_string();
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|local| local.rsplit_once(':'))
        .filter(|(addr, _)| *addr == ip || *addr == "0.0.0.0" || *addr == "*")
        .filter_map(|(_, port)| port.parse().ok())
        .collect())
}

/// Established TCP connections in the namespace as (local, peer) `addr:port` strings.
fn established(ns: &Netns) -> Result<Vec<(String, String)>> {
    let out = ns.exec(&["ss", "-tnH", "state", "established"])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // Recv-Q Send-Q Local Peer (the state column is left out with a state filter).
            (w.len() >= 4).then(|| (w[2].to_string(), w[3].to_string()))
        })
        .collect())
}

/// Each server listens on its own failover port and no other (no 647 unless configured),
/// and the failover connection joins one server's address to the other's listening port.
fn check_ports(pair: &PairNet, ports: [u16; 2]) -> Result<()> {
    for role in [Role::Primary, Role::Secondary] {
        let node = pair.node(role);
        let mut got = listening(&node.ns, node.ip)?;
        got.retain(|p| *p != 67 && *p != dhcpair_e2e::failover::HTTP_PORT);
        ensure!(
            got == vec![port_of(role, ports)],
            "the {role:?} listens on {got:?} at {}, expected only {}",
            node.ip,
            port_of(role, ports)
        );
    }
    let conns = established(&pair.primary.ns)?;
    let (p, s) = (pair.primary.ip, pair.secondary.ip);
    let to_secondary = format!("{s}:{}", ports[1]);
    let to_primary = format!("{p}:{}", ports[0]);
    let failover: Vec<&(String, String)> = conns
        .iter()
        .filter(|(local, peer)| *peer == to_secondary || *local == to_primary)
        .filter(|(local, peer)| {
            local.starts_with(&format!("{p}:")) && peer.starts_with(&format!("{s}:"))
        })
        .collect();
    println!("primary's failover connection(s): {failover:?}");
    ensure!(
        !failover.is_empty(),
        "no connection from the primary to {to_secondary} or to {to_primary} from the secondary: {conns:?}"
    );
    Ok(())
}

fn settings() -> PairSettings {
    PairSettings {
        mclt: 30,
        ..PairSettings::default()
    }
}

fn dhcpair_pair(env: &TestEnv, net: Net24, ports: [u16; 2]) -> Result<()> {
    let pair = PairNet::new(net)?;
    let s = settings();
    let primary = start_member(env, &pair, Role::Primary, &s, ports)?;
    let secondary = start_member(env, &pair, Role::Secondary, &s, ports)?;
    wait_normal(&primary, &secondary, Duration::from_secs(20))?;
    check_ports(&pair, ports)?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;
    let relay = pair.relay(&[50, 51])?;
    let [a, b] = load_both(
        env,
        &relay.ns,
        load_bin!(),
        "clients",
        [pair.net.host(50), pair.net.host(51)],
        [primary.ip, secondary.ip],
        0x64,
        8,
    )?;
    ensure!(
        !a.is_empty() && !b.is_empty() && a.len() + b.len() == 8,
        "8 clients split between both servers: primary {a:?}, secondary {b:?}"
    );
    let sync = Duration::from_secs(10);
    wait_active("the secondary", &a, sync, || dhcpair_active(&secondary))?;
    wait_active("the primary", &b, sync, || dhcpair_active(&primary))?;
    println!(
        "{} leases of the primary on the secondary, {} of the secondary on the primary",
        a.len(),
        b.len()
    );
    Ok(())
}

fn with_isc(env: &TestEnv, net: Net24, dhcpair_role: Role, ports: [u16; 2]) -> Result<()> {
    let pair = PairNet::new(net)?;
    let s = settings();
    let isc_role = other(dhcpair_role);
    let dhcpair = start_member(env, &pair, dhcpair_role, &s, ports)?;
    let isc_node = pair.node(isc_role);
    let conf = isc_config_ports(
        pair.net,
        isc_role,
        isc_node.ip,
        pair.node(dhcpair_role).ip,
        &s,
        port_of(isc_role, ports),
        port_of(dhcpair_role, ports),
    )?;
    let started = Instant::now();
    let mut isc = IscDhcpd::start(env, &isc_node.ns, &isc_node.iface, &conf)?;
    wait_until(
        "ISC dhcpd to move to normal",
        Duration::from_secs(30),
        || {
            my_moves(&isc.log())
                .iter()
                .any(|m| m.to == "normal")
                .then_some(())
        },
    )
    .with_context(|| format!("ISC log:\n{}", isc.log()))?;
    dhcpair.wait_state("normal", Duration::from_secs(20))?;
    wait_until("dhcpair to see ISC normal", Duration::from_secs(20), || {
        let r = dhcpair.relationship().ok()?;
        (r.partner_state == "normal" && r.connected).then_some(())
    })?;
    println!(
        "dhcpair {dhcpair_role:?} and ISC {isc_role:?} normal after {:.1?}",
        started.elapsed()
    );
    check_ports(&pair, ports)?;

    // ISC balances its pool a little later; clients of both halves are served once it has.
    wait_until(
        "the pool balanced on dhcpair",
        Duration::from_secs(20),
        || {
            let lan = dhcpair.lan().ok()?;
            (lan.free > 0 && lan.backup > 0 && lan.free.abs_diff(lan.backup) <= 2).then_some(())
        },
    )?;
    let relay = pair.relay(&[50, 51])?;
    let [a, b] = load_both(
        env,
        &relay.ns,
        load_bin!(),
        "clients",
        [pair.net.host(50), pair.net.host(51)],
        [pair.primary.ip, pair.secondary.ip],
        0x65,
        8,
    )?;
    ensure!(
        !a.is_empty() && !b.is_empty() && a.len() + b.len() == 8,
        "8 clients split between both servers: primary {a:?}, secondary {b:?}"
    );
    let (by_dhcpair, by_isc) = match dhcpair_role {
        Role::Primary => (a, b),
        Role::Secondary => (b, a),
    };
    let sync = Duration::from_secs(10);
    wait_active("ISC's lease file", &by_dhcpair, sync, || Ok(isc.active()))?;
    wait_active("dhcpair's database", &by_isc, sync, || {
        dhcpair_active(&dhcpair)
    })?;
    ensure!(isc.is_running(), "ISC dhcpd exited:\n{}", isc.log());
    println!(
        "{} leases of dhcpair in ISC's file, {} of ISC in dhcpair's database",
        by_dhcpair.len(),
        by_isc.len()
    );
    Ok(())
}
