//! The usual way a failover pair is reached across routers: one relay (ISC dhcrelay) given
//! both servers' addresses, so every client broadcast reaches both. In NORMAL each server
//! answers only the clients whose RFC 3074 hash buckets are its own (ISC `split 128`: buckets
//! 0..127 the primary's), so each client is answered exactly once, by the right server.
//!
//! client LAN 10.72.51.0/24 (six real dhclients with chosen MACs, three of each server's
//! buckets) -- relay (.1 there, .254 on the servers' LAN) -- servers' LAN 10.72.50.0/24 (primary
//! .1, secondary .2). The split is predicted with the RFC 3074 hash of the test crate
//! (`rfc3074::bucket`), not the server's. tshark on the relay's server-facing link
//! sees, per client, one OFFER per relayed DISCOVER and one ACK per relayed REQUEST, all from
//! its owner, and nothing from the other server; each dhclient is BOUND with the owner's
//! server id; afterwards both databases hold the same active leases and count the pool alike.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use dhcpair_config::raw::Role;
use dhcpair_e2e::failover::{
    control_token, counts_agree, dhcpair_active, dhcpair_member_config, wait_balanced, wait_normal,
    Member, PairNet, PairSettings,
};
use dhcpair_e2e::layouts::{macs_owned_by, parse_mac, RelayToAll};
use dhcpair_e2e::relay::Packet;
use dhcpair_e2e::rfc3074;
use dhcpair_e2e::{scenario, wait_until, Dhclient, Net24, Netns, Switch, TestEnv, Tshark};

#[test]
fn a_relay_forwarding_to_both_servers_gets_each_client_answered_once_by_its_hash_owner() {
    scenario(
        "a_relay_forwarding_to_both_servers_gets_each_client_answered_once_by_its_hash_owner",
        body,
    );
}

const CLIENTS_PER_SERVER: usize = 3;

fn body(env: &TestEnv) -> Result<()> {
    let servers_net = Net24::new(10, 72, 50);
    let clients_net = Net24::new(10, 72, 51);
    let pair = PairNet::new(servers_net)?;
    let s = PairSettings {
        // Renewals (T1 = MCLT / 2) come after the checks.
        mclt: 30,
        lease_time: 60,
        // dhclient's `secs` grows with its retries: keep every server to its own buckets.
        load_balance_max_seconds: 30,
        ..PairSettings::default()
    };

    // The relay: .254 on the servers' LAN, .1 (giaddr) on the clients' LAN.
    let relay = pair.relay(&[254])?;
    let clients_switch = Switch::new()?;
    let relay_down = clients_switch.attach(&relay.ns)?;
    relay.ns.addr(&relay_down, &clients_net.addr(1))?;
    relay.ns.forwarding()?;
    let giaddr = clients_net.host(1);

    // Each server serves the relayed subnet (chosen by giaddr) and routes to it via the relay.
    let token = control_token(env)?;
    let mut members = Vec::new();
    for role in [Role::Primary, Role::Secondary] {
        let (me, peer) = (pair.node(role), pair.node(other(role)));
        me.ns.route(&clients_net.cidr(), relay.ip)?;
        let config =
            dhcpair_member_config(clients_net, &me.iface, me.ip, peer.ip, role, &s, &token);
        members.push(Member::start_with(env, &me.ns, role, config)?);
    }
    let (primary, secondary) = (&members[0], &members[1]);
    wait_normal(primary, secondary, Duration::from_secs(20))?;
    wait_balanced(primary, secondary, 2, Duration::from_secs(10))?;

    let capture = Tshark::start(env, &relay.ns, &relay.iface)?;
    let _dhcrelay = RelayToAll::start(
        env,
        &relay.ns,
        &relay_down,
        &relay.iface,
        &[primary.ip, secondary.ip],
    )?;

    // Three clients of each server's buckets, by the test crate's hash.
    let mut owner_of: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for (server, mine) in [(primary, true), (secondary, false)] {
        for mac in macs_owned_by(0x67, mine, s.split, CLIENTS_PER_SERVER) {
            let bucket = rfc3074::bucket(&parse_mac(&mac)?);
            println!("{mac}: RFC 3074 bucket {bucket} -> {}", server.name());
            owner_of.insert(mac, server.ip);
        }
    }
    let mut clients: Vec<(String, Netns, Dhclient)> = Vec::new();
    for mac in owner_of.keys() {
        let ns = Netns::new()?;
        let iface = clients_switch.attach(&ns)?;
        ns.set_mac(&iface, mac)?;
        let client = Dhclient::start(env, &ns, &iface)?;
        clients.push((mac.clone(), ns, client));
    }
    let mut bound: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for (mac, _ns, client) in &clients {
        let ev = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
        let ip = ev
            .ip()
            .ok_or_else(|| anyhow!("{mac}: BOUND without an address"))?;
        let owner = owner_of[mac];
        println!("{mac}: BOUND {ip} from {:?}", ev.server_id());
        ensure!(
            ev.server_id() == Some(owner),
            "{mac} belongs to {owner} by the RFC 3074 hash but was bound by {:?}",
            ev.server_id()
        );
        ensure!(
            clients_net.contains(ip),
            "{mac} got {ip}, not an address of the relayed subnet"
        );
        ensure!(
            bound.insert(ip, mac.clone()).is_none(),
            "{ip} was given to two clients"
        );
    }

    // What crossed the relay's server-facing link, per client.
    let mut problems = Vec::new();
    let mut last = Vec::new();
    wait_until(
        "the capture to hold every client's OFFER and ACK",
        Duration::from_secs(10),
        || {
            last = capture.packets();
            owner_of
                .iter()
                .all(|(mac, owner)| {
                    let from_owner = |t: u8| {
                        last.iter()
                            .filter(|p| p.chaddr == *mac && p.src == owner.to_string())
                            .filter(|p| p.msg_type == Some(t))
                            .count()
                    };
                    from_owner(Packet::OFFER) >= 1 && from_owner(Packet::ACK) >= 1
                })
                .then_some(())
        },
    )
    .with_context(|| format!("captured: {last:#?}"))?;
    let packets = capture.packets();
    for (mac, owner) in &owner_of {
        let other = if *owner == primary.ip {
            secondary.ip
        } else {
            primary.ip
        };
        let of = |src: Ipv4Addr, dst: Ipv4Addr, t: u8| {
            packets
                .iter()
                .filter(|p| p.chaddr == *mac && p.msg_type == Some(t))
                .filter(|p| p.src == src.to_string() && p.dst == dst.to_string())
                .count()
        };
        let discovers = of(relay.ip, *owner, Packet::DISCOVER);
        let requests = of(relay.ip, *owner, Packet::REQUEST);
        let offers = of(*owner, giaddr, Packet::OFFER);
        let acks = of(*owner, giaddr, Packet::ACK);
        let from_other: Vec<&Packet> = packets
            .iter()
            .filter(|p| p.chaddr == *mac && p.src == other.to_string())
            .collect();
        println!(
            "{mac}: relayed to {owner}: {discovers} DISCOVER, {requests} REQUEST; \
             answered {offers} OFFER, {acks} ACK; from {other}: {}",
            from_other.len()
        );
        // Each relayed DISCOVER reached the other server too (the relay sends to both).
        let to_other = of(relay.ip, other, Packet::DISCOVER);
        if to_other != discovers {
            problems.push(format!(
                "{mac}: {discovers} DISCOVERs relayed to {owner}, {to_other} to {other}"
            ));
        }
        if offers != discovers || acks != requests || acks != 1 {
            problems.push(format!(
                "{mac}: {offers} OFFERs for {discovers} DISCOVERs and {acks} ACKs for {requests} REQUESTs from its owner {owner}"
            ));
        }
        if !from_other.is_empty() {
            problems.push(format!(
                "{mac}: {other} answered a client of {owner}'s buckets: {from_other:?}"
            ));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));

    // Both databases agree: the same active leases (each client's on both) and the same counts.
    let mut last = (BTreeMap::new(), BTreeMap::new());
    wait_until(
        "both databases to hold every client's lease",
        Duration::from_secs(10),
        || {
            let a = dhcpair_active(primary).ok()?;
            let b = dhcpair_active(secondary).ok()?;
            let done = a == b && bound.iter().all(|(ip, mac)| a.get(ip) == Some(mac));
            last = (a, b);
            done.then_some(())
        },
    )
    .with_context(|| {
        format!(
            "bound {bound:?}; primary active {:?}; secondary active {:?}",
            last.0, last.1
        )
    })?;
    let mut counts = (None, None);
    wait_until(
        "both servers to count the pool alike",
        Duration::from_secs(10),
        || {
            let (a, b) = (primary.lan().ok()?, secondary.lan().ok()?);
            let done = counts_agree(&a, &b) && a.active == bound.len() as u64;
            counts = (Some(a), Some(b));
            done.then_some(())
        },
    )
    .with_context(|| format!("last counts: {counts:?}"))?;
    println!("both databases agree: {:?}", counts.0);
    Ok(())
}

fn other(role: Role) -> Role {
    match role {
        Role::Primary => Role::Secondary,
        Role::Secondary => Role::Primary,
    }
}
