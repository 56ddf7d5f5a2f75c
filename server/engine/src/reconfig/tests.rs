#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::net::Ipv4Addr;

use dhcpair_config::Config;
use dhcpair_wire::v4::{DhcpOption, Message, MessageType, OptionCode};

use crate::tests::{handle, lease, mac, SERVER, T0};
use crate::{ConnId, Decision, DropReason, Engine, Outcome, ReconfigError, Time};

/// `lan` with `.100-.<last>`, DNS `dns`, plus a relayed pool and a known-clients-only pool
/// (a pool in the middle, so that removing one shifts the indexes of the others).
fn conf(last: u8, dns: u8, extra: &str) -> Config {
    Config::from_yaml("t", &conf_yaml(last, dns, extra)).unwrap()
}

fn conf_yaml(last: u8, dns: u8, extra: &str) -> String {
    format!(
        r#"
server: {{interfaces: [eth0], serverId: 10.0.0.2}}
pools:
  - name: lan
    subnet: 10.0.0.0/24
    ranges: [{{start: 10.0.0.100, end: 10.0.0.{last}}}]
    options: {{routers: [10.0.0.1], domainNameServers: [10.0.0.{dns}]}}
    defaultLeaseTime: 600
{extra}
  - name: relayed
    subnet: 10.1.0.0/24
    ranges: [{{start: 10.1.0.50, end: 10.1.0.59}}]
  - name: known-only
    subnet: 10.2.0.0/24
    ranges: [{{start: 10.2.0.50, end: 10.2.0.59}}]
    deny: [unknownClients]
    reservations:
      - {{hardwareAddress: "52:54:00:00:00:bb", ipAddress: 10.2.0.5}}
"#
    )
}

fn engine(c: Config) -> Engine {
    Engine::new(c, Vec::new(), &[], T0)
}

/// A DHCP message of `kind` from `mac` (the engine tests' `packet`, always with a type).
fn packet(kind: MessageType, mac: [u8; 6]) -> Message {
    crate::tests::packet(Some(kind), mac)
}

fn discover(e: &mut Engine, now: Time, mac: [u8; 6]) -> Decision {
    handle(e, now, &packet(MessageType::Discover, mac))
}

fn renew(e: &mut Engine, now: Time, mac: [u8; 6], ip: Ipv4Addr) -> Decision {
    let mut m = packet(MessageType::Request, mac);
    m.set_ciaddr(ip);
    handle(e, now, &m)
}

fn relayed(kind: MessageType, mac: [u8; 6], giaddr: Ipv4Addr) -> Message {
    let mut m = packet(kind, mac);
    m.set_giaddr(giaddr);
    m
}

fn rows(e: &Engine) -> Vec<crate::Lease> {
    let mut v: Vec<_> = e.leases().cloned().collect();
    v.sort_by_key(|l| l.ip);
    v
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

#[test]
fn a_grown_range_is_offered_at_once_and_every_lease_is_kept_as_it_was() {
    let mut e = engine(conf(102, 53, ""));
    let held: Vec<Ipv4Addr> = (1..=3).map(|n| lease(&mut e, T0, mac(n))).collect();
    assert_eq!(held, vec![ip(100), ip(101), ip(102)]);
    let d = discover(&mut e, T0 + 1, mac(4));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoFreeAddress));
    let before = rows(&e);

    let r = e.reconfigure(conf(104, 53, ""), T0 + 2).unwrap();
    assert_eq!(r.pools_resized, vec!["lan".to_string()]);
    assert!(r.pools_changed.is_empty(), "{r:?}");
    assert!(r.pools_added.is_empty() && r.pools_removed.is_empty());
    assert_eq!((r.leases_kept, r.active_outside_pools), (3, 0));
    assert_eq!(rows(&e), before, "a reload changes no lease row");

    let d = discover(&mut e, T0 + 3, mac(4));
    assert_eq!(d.outcome, Outcome::Offer);
    assert_eq!(d.reply.unwrap().msg.yiaddr(), ip(103));
    // The existing clients renew their own addresses.
    for (n, a) in (1..=3).zip(held) {
        assert_eq!(renew(&mut e, T0 + 4, mac(n), a).outcome, Outcome::Ack);
    }
    let lan = &e.pool_stats(T0 + 4)[0];
    assert_eq!((lan.total, lan.active, lan.free), (5, 3, 2));
}

#[test]
fn a_shrunk_range_keeps_the_bindings_outside_it_until_they_are_released_but_renews_none() {
    let mut e = engine(conf(102, 53, ""));
    for n in 1..=3 {
        lease(&mut e, T0, mac(n));
    }
    let r = e.reconfigure(conf(100, 53, ""), T0 + 1).unwrap();
    assert_eq!((r.leases_kept, r.active_outside_pools), (3, 2));
    // The rows are still there, still active.
    for a in [ip(101), ip(102)] {
        let l = e.lease(a).unwrap();
        assert_eq!(l.state, crate::BindingState::Active, "{l:?}");
    }
    // Not renewed (the address is in no pool), not offered to anyone.
    assert_eq!(renew(&mut e, T0 + 2, mac(3), ip(102)).outcome, Outcome::Nak);
    assert_eq!(
        discover(&mut e, T0 + 2, mac(9)).outcome,
        Outcome::Dropped(DropReason::NoFreeAddress)
    );
    assert_eq!(renew(&mut e, T0 + 2, mac(1), ip(100)).outcome, Outcome::Ack);
    // The client can still release it; the sweep expires the other at its end.
    let mut rel = packet(MessageType::Release, mac(3));
    rel.set_ciaddr(ip(102));
    assert_eq!(handle(&mut e, T0 + 3, &rel).outcome, Outcome::Released);
    let swept = e.handle_reclaim(T0 + 10_000);
    assert!(swept.iter().any(|l| l.ip == ip(101)), "{swept:?}");
    assert_eq!(e.pool_stats(T0 + 3)[0].total, 1);
}

#[test]
fn a_removed_pool_stops_serving_and_the_pools_after_it_keep_their_reservations_and_permits() {
    let mut e = engine(conf(102, 53, ""));
    let g1 = Ipv4Addr::new(10, 1, 0, 1);
    let g2 = Ipv4Addr::new(10, 2, 0, 1);
    assert_eq!(
        handle(&mut e, T0, &relayed(MessageType::Discover, mac(5), g1)).outcome,
        Outcome::Offer
    );
    let mut without = conf(102, 53, "");
    without.pools.retain(|p| p.name != "relayed");
    let r = e.reconfigure(without, T0 + 1).unwrap();
    assert_eq!(r.pools_removed, vec!["relayed".to_string()]);
    assert_eq!(r.offers_dropped, 1, "the offer of a removed address goes");
    assert_eq!(
        handle(&mut e, T0 + 2, &relayed(MessageType::Discover, mac(5), g1)).outcome,
        Outcome::Dropped(DropReason::NoSubnet)
    );
    // known-only moved from index 2 to 1: its reservation and deny list still hold.
    let d = handle(
        &mut e,
        T0 + 2,
        &relayed(MessageType::Discover, mac(0xbb), g2),
    );
    assert_eq!(d.reply.unwrap().msg.yiaddr(), Ipv4Addr::new(10, 2, 0, 5));
    assert_eq!(
        handle(&mut e, T0 + 2, &relayed(MessageType::Discover, mac(6), g2)).outcome,
        Outcome::Dropped(DropReason::NotPermitted)
    );
    let names: Vec<_> = e.pool_stats(T0).into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["lan", "known-only"]);
}

#[test]
fn an_added_pool_and_an_added_reservation_serve_the_next_packet() {
    let mut e = engine(conf(102, 53, ""));
    let holder = lease(&mut e, T0, mac(1));
    // A reservation for mac 9 on a free address, and one for mac 8 on mac 1's address.
    let extra = r#"    reservations:
      - {hardwareAddress: "52:54:00:00:00:09", ipAddress: 10.0.0.20, hostname: printer}
      - {hardwareAddress: "52:54:00:00:00:08", ipAddress: 10.0.0.100}"#;
    let c = conf_yaml(102, 53, extra)
        + "  - {name: more, subnet: 10.9.0.0/24, ranges: [{start: 10.9.0.10, end: 10.9.0.10}]}\n";
    let c = Config::from_yaml("t", &c).unwrap();
    let r = e.reconfigure(c, T0 + 1).unwrap();
    assert_eq!(r.pools_added, vec!["more".to_string()]);
    assert_eq!(r.pools_changed, vec!["lan".to_string()]);
    assert_eq!(r.active_reserved_for_another, 1);
    assert_eq!((r.pools, r.reservations), (4, 3));

    let d = discover(&mut e, T0 + 2, mac(9));
    let m = d.reply.unwrap().msg;
    assert_eq!(m.yiaddr(), ip(20));
    assert_eq!(
        crate::tests::opt(&m, OptionCode::Hostname),
        Some(DhcpOption::Hostname("printer".into()))
    );
    let d = handle(
        &mut e,
        T0 + 2,
        &relayed(MessageType::Discover, mac(7), Ipv4Addr::new(10, 9, 0, 1)),
    );
    assert_eq!(d.reply.unwrap().msg.yiaddr(), Ipv4Addr::new(10, 9, 0, 10));
    // The holder of an address now reserved for another client is moved at its renewal, as
    // it would be after a restart; its row is untouched until then.
    assert_eq!(
        e.lease(holder).unwrap().client,
        Some(crate::ClientKey::Hardware {
            htype: 1,
            chaddr: mac(1).to_vec()
        })
    );
    assert_eq!(renew(&mut e, T0 + 3, mac(1), holder).outcome, Outcome::Nak);
    // Until the holder's binding is gone the reserved client gets nothing: never both.
    assert_eq!(
        discover(&mut e, T0 + 3, mac(8)).outcome,
        Outcome::Dropped(DropReason::ReservedInUse)
    );
    let mut m = packet(MessageType::Request, mac(8));
    m.opts_mut().insert(DhcpOption::RequestedIpAddress(holder));
    assert_eq!(handle(&mut e, T0 + 3, &m).outcome, Outcome::Nak);
    let mut rel = packet(MessageType::Release, mac(1));
    rel.set_ciaddr(holder);
    assert_eq!(handle(&mut e, T0 + 4, &rel).outcome, Outcome::Released);
    assert_eq!(lease(&mut e, T0 + 5, mac(8)), holder);
}

#[test]
fn changed_options_and_lease_times_are_in_the_next_ack_of_a_renewing_client() {
    let mut e = engine(conf(102, 53, ""));
    let a = lease(&mut e, T0, mac(1));
    let mut c = conf(102, 54, "");
    c.pools[0].lease_times.default = 900;
    c.pools[0].lease_times.max = 900;
    e.reconfigure(c, T0 + 1).unwrap();
    let d = renew(&mut e, T0 + 300, mac(1), a);
    assert_eq!(d.outcome, Outcome::Ack);
    let m = d.reply.unwrap().msg;
    assert_eq!(
        crate::tests::opt(&m, OptionCode::DomainNameServer),
        Some(DhcpOption::DomainNameServer(vec![ip(54)]))
    );
    assert_eq!(
        crate::tests::opt(&m, OptionCode::AddressLeaseTime),
        Some(DhcpOption::AddressLeaseTime(900))
    );
    let l = e.lease(a).unwrap();
    assert_eq!(
        (l.starts, l.ends),
        (T0, T0 + 300 + 900),
        "same binding, extended"
    );
}

#[test]
fn an_outstanding_offer_is_not_given_to_another_client_across_a_reload() {
    let mut e = engine(conf(102, 53, ""));
    let d = discover(&mut e, T0, mac(1));
    assert_eq!(d.reply.unwrap().msg.yiaddr(), ip(100));
    let r = e.reconfigure(conf(102, 54, ""), T0 + 1).unwrap();
    assert_eq!(r.offers_dropped, 0);
    let d = discover(&mut e, T0 + 1, mac(2));
    assert_eq!(d.reply.unwrap().msg.yiaddr(), ip(101));
}

#[test]
fn a_reload_that_needs_a_restart_changes_nothing() {
    let mut e = engine(conf(102, 53, ""));
    let a = lease(&mut e, T0, mac(1));
    let mut c = conf(104, 54, "");
    c.server.interfaces = vec!["eth1".into()];
    c.server.port = 1067;
    let err = e.reconfigure(c, T0 + 1).unwrap_err();
    let ReconfigError::NeedsRestart(why) = &err;
    assert_eq!(why.len(), 2, "{why:?}");
    assert!(err
        .to_string()
        .starts_with("needs a restart: server.interfaces changed"));
    assert_eq!(
        e.config(),
        &conf(102, 53, ""),
        "the old config keeps serving"
    );
    let d = renew(&mut e, T0 + 2, mac(1), a);
    assert_eq!(
        crate::tests::opt(&d.reply.unwrap().msg, OptionCode::DomainNameServer),
        Some(DhcpOption::DomainNameServer(vec![ip(53)]))
    );
    assert_eq!(e.pool_stats(T0)[0].total, 3);
}

const FAILOVER: &str = r#"
server: {interfaces: [eth0], serverId: 10.0.0.2}
peers:
  - {name: pair, role: primary, address: 10.0.0.2, peerAddress: 10.0.0.3, mclt: 300, split: 128}
pools:
  - name: lan
    subnet: 10.0.0.0/24
    ranges: [{start: 10.0.0.100, end: 10.0.0.109}]
    failoverPeer: pair
"#;

#[test]
fn a_pool_added_to_a_relationship_leaves_the_relationship_and_its_connection_untouched() {
    let mut e = engine(Config::from_yaml("t", FAILOVER).unwrap());
    e.handle_peer_connected(T0, 0, ConnId(1));
    e.handle_tick(T0 + 1);
    let _ = e.poll_effects();
    let before = e.relationships();

    let grown = FAILOVER.to_string()
        + "  - {name: lan2, subnet: 10.0.1.0/24, ranges: [{start: 10.0.1.10, end: 10.0.1.19}], failoverPeer: pair}\n";
    let r = e
        .reconfigure(Config::from_yaml("t", &grown).unwrap(), T0 + 2)
        .unwrap();
    assert_eq!(r.pools_added, vec!["lan2".to_string()]);
    assert_eq!(
        e.relationships(),
        before,
        "state, link and counters unchanged"
    );
    assert!(
        e.poll_effects().is_empty(),
        "a reload sends and persists nothing"
    );
    let stats = e.pool_stats(T0 + 2);
    assert_eq!((stats[1].name.as_str(), stats[1].total), ("lan2", 10));
    // The relationship now covers the new pool; its addresses are FREE (the primary's).
    assert_eq!(e.dhcp.rels[0].pools, vec![0, 1]);
    assert_eq!(e.dhcp.pool_rel, vec![Some(0), Some(0)]);
    assert_eq!(stats[1].free, 10);

    // Moving a pool out of the relationship, or changing peers, needs a restart.
    let moved = grown.replace("failoverPeer: pair}", "}");
    let err = e
        .reconfigure(Config::from_yaml("t", &moved).unwrap(), T0 + 3)
        .unwrap_err();
    assert!(err.to_string().contains("failoverPeer changed"), "{err}");
    let other = grown.replace("mclt: 300", "mclt: 600");
    let err = e
        .reconfigure(Config::from_yaml("t", &other).unwrap(), T0 + 3)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("peers: relationship \"pair\" changed"),
        "{err}"
    );
    assert_eq!(e.config().pools.len(), 2);
}

proptest::proptest! {
    /// Random clients doing random things while the configuration is reloaded between
    /// random range sizes, with and without a reservation of .101 for client 1, never hold
    /// one address at the same time, and every ACK is in the running config's ranges or the
    /// client's reservation.
    #[test]
    fn reloads_between_packets_never_give_one_address_to_two_clients(
        ops in proptest::collection::vec((0u8..7, 0u8..6, 0u64..400), 1..200)
    ) {
        let reserve = r#"    reservations: [{hardwareAddress: "52:54:00:00:00:01", ipAddress: 10.0.0.101}]"#;
        let configs = [
            conf(102, 53, ""),
            conf(100, 53, ""),
            conf(104, 54, reserve),
            conf(101, 53, reserve),
            conf(100, 53, reserve),
        ];
        let mut e = engine(configs[0].clone());
        let mut running = 0usize;
        let mut now = T0;
        let mut holder: std::collections::HashMap<Ipv4Addr, (u8, Time)> = Default::default();
        for (op, client, dt) in ops {
            now += dt;
            let m = mac(client);
            let held = holder.iter().find(|(_, (c, end))| *c == client && *end > now).map(|(ip, _)| *ip);
            let d = match op {
                0 => discover(&mut e, now, m),
                1 => match discover(&mut e, now, m).reply {
                    Some(r) => {
                        let mut q = packet(MessageType::Request, m);
                        q.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
                        q.opts_mut().insert(DhcpOption::RequestedIpAddress(r.msg.yiaddr()));
                        handle(&mut e, now, &q)
                    }
                    None => continue,
                },
                2 => match held {
                    Some(ip) => renew(&mut e, now, m, ip),
                    None => continue,
                },
                3 => {
                    let mut p = packet(MessageType::Release, m);
                    if let Some(ip) = held { p.set_ciaddr(ip); }
                    handle(&mut e, now, &p)
                }
                4 => { e.handle_reclaim(now); continue }
                5 => {
                    running = (running + usize::from(client) + 1) % configs.len();
                    let before: Vec<_> = rows(&e);
                    e.reconfigure(configs[running].clone(), now).unwrap();
                    proptest::prop_assert_eq!(rows(&e), before);
                    continue;
                }
                _ => {
                    let mut q = packet(MessageType::Request, m);
                    q.opts_mut().insert(DhcpOption::RequestedIpAddress(ip(100 + client % 5)));
                    handle(&mut e, now, &q)
                }
            };
            match d.outcome {
                Outcome::Ack => {
                    let l = d.persist.unwrap();
                    if let Some((c, end)) = holder.get(&l.ip) {
                        proptest::prop_assert!(*c == client || *end <= now, "{} acked to {client} while {c} holds it until {end} (now {now})", l.ip);
                    }
                    let cfg = &configs[running].pools[0];
                    let reserved = cfg.reservations.iter().any(|r| r.ip == Some(l.ip) && client == 1);
                    proptest::prop_assert!(cfg.in_range(l.ip) || reserved, "{} outside config {running}", l.ip);
                    holder.retain(|_, (c, _)| *c != client);
                    holder.insert(l.ip, (client, l.ends));
                }
                Outcome::Released => { holder.retain(|_, (c, _)| *c != client); }
                _ => {}
            }
        }
    }
}
