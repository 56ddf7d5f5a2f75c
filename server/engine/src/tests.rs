#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::net::Ipv4Addr;

use dhcpair_config::Config;
use dhcpair_wire::v4::{DhcpOption, Flags, Message, MessageType, OptionCode};

use super::*;

const CONF: &str = r#"
server: {interfaces: [eth0], serverId: 10.0.0.2, offerHoldTime: 30}
options: {domainName: example.org}
pools:
  - name: lan
    subnet: 10.0.0.0/24
    ranges: [{start: 10.0.0.100, end: 10.0.0.102}]
    options: {routers: [10.0.0.1], domainNameServers: [10.0.0.53]}
    defaultLeaseTime: 600
    minLeaseTime: 60
    maxLeaseTime: 3600
    deny: [dynamicBootpClients]
    reservations:
      - {hardwareAddress: "52:54:00:00:00:aa", ipAddress: 10.0.0.10, hostname: fixed, options: {domainName: fixed.example.org}}
  - name: relayed
    subnet: 10.1.0.0/24
    ranges: [{start: 10.1.0.50, end: 10.1.0.59}]
  - name: known-only
    subnet: 10.2.0.0/24
    ranges: [{start: 10.2.0.50, end: 10.2.0.59}]
    deny: [unknownClients]
    reservations:
      - {hardwareAddress: "52:54:00:00:00:bb", ipAddress: 10.2.0.5}
  - name: shared-a
    subnet: 10.3.0.0/24
    sharedNetwork: office
    ranges: [{start: 10.3.0.10, end: 10.3.0.10}]
  - name: shared-b
    subnet: 10.4.0.0/24
    sharedNetwork: office
    ranges: [{start: 10.4.0.10, end: 10.4.0.11}]
  - name: bootp
    subnet: 10.5.0.0/24
    ranges: [{start: 10.5.0.10, end: 10.5.0.11}]
    allow: [dynamicBootpClients]
"#;

pub(crate) const LAN: [Ipv4Addr; 1] = [Ipv4Addr::new(10, 0, 0, 2)];
pub(crate) const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub(crate) const T0: Time = 1_700_000_000;

fn engine() -> Engine {
    Engine::new(Config::from_yaml("t", CONF).unwrap(), Vec::new(), &[], T0)
}

pub(crate) fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, 0, n]
}

pub(crate) fn packet(kind: Option<MessageType>, mac: [u8; 6]) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(7, z, z, z, z, &mac);
    if let Some(k) = kind {
        m.opts_mut().insert(DhcpOption::MessageType(k));
    }
    m
}

fn with(mut m: Message, o: DhcpOption) -> Message {
    m.opts_mut().insert(o);
    m
}

pub(crate) fn handle(e: &mut Engine, now: Time, m: &Message) -> Decision {
    e.handle_request(
        now,
        &Arrival {
            interface_addrs: &LAN,
        },
        m,
        None,
    )
}

fn offer(e: &mut Engine, now: Time, mac: [u8; 6]) -> Ipv4Addr {
    let d = handle(e, now, &packet(Some(MessageType::Discover), mac));
    assert_eq!(d.outcome, Outcome::Offer, "{d:?}");
    assert!(d.persist.is_none(), "offers are not persisted");
    d.reply.unwrap().msg.yiaddr()
}

fn select(e: &mut Engine, now: Time, mac: [u8; 6], ip: Ipv4Addr) -> Decision {
    let m = with(
        with(
            packet(Some(MessageType::Request), mac),
            DhcpOption::ServerIdentifier(SERVER),
        ),
        DhcpOption::RequestedIpAddress(ip),
    );
    handle(e, now, &m)
}

pub(crate) fn lease(e: &mut Engine, now: Time, mac: [u8; 6]) -> Ipv4Addr {
    let ip = offer(e, now, mac);
    let d = select(e, now, mac, ip);
    assert_eq!(d.outcome, Outcome::Ack, "{d:?}");
    ip
}

/// Option `c` of a reply as a client decodes it from the wire.
pub(crate) fn opt(m: &Message, c: OptionCode) -> Option<DhcpOption> {
    let shape = dhcpair_wire::ReplyShape {
        order: Vec::new(),
        max_message_size: 1500,
    };
    let bytes = dhcpair_wire::encode_reply(m, None, &shape).unwrap();
    let seen = <Message as dhcpair_wire::v4::Decodable>::from_bytes(&bytes).unwrap();
    seen.opts().get(c).cloned()
}

#[test]
fn discover_offers_a_free_address_with_the_configured_options() {
    let mut e = engine();
    let d = handle(&mut e, T0, &packet(Some(MessageType::Discover), mac(1)));
    let r = d.reply.unwrap();
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::new(10, 0, 0, 100));
    assert_eq!(r.dest, Destination::Broadcast);
    assert_eq!(
        opt(&r.msg, OptionCode::MessageType),
        Some(DhcpOption::MessageType(MessageType::Offer))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::ServerIdentifier),
        Some(DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::Router),
        Some(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 1)]))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::SubnetMask),
        Some(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::DomainName),
        Some(DhcpOption::DomainName("example.org".into()))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::AddressLeaseTime),
        Some(DhcpOption::AddressLeaseTime(600))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::Renewal),
        Some(DhcpOption::Renewal(300))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::Rebinding),
        Some(DhcpOption::Rebinding(525))
    );
}

#[test]
fn a_selecting_request_is_acked_and_the_lease_must_be_persisted() {
    let mut e = engine();
    let ip = offer(&mut e, T0, mac(1));
    let d = select(&mut e, T0 + 1, mac(1), ip);
    assert_eq!(d.outcome, Outcome::Ack);
    let l = d.persist.unwrap();
    assert_eq!(
        (l.ip, l.state, l.starts, l.ends),
        (ip, BindingState::Active, T0 + 1, T0 + 601)
    );
    assert_eq!(l.pool, "lan");
    assert_eq!(e.lease(ip), Some(&l));
}

#[test]
fn two_clients_discovering_at_once_get_different_offers() {
    let mut e = engine();
    let a = offer(&mut e, T0, mac(1));
    let b = offer(&mut e, T0, mac(2));
    assert_ne!(a, b);
    // A repeated DISCOVER gets the same offer back.
    assert_eq!(offer(&mut e, T0 + 1, mac(1)), a);
}

#[test]
fn a_returning_client_gets_its_previous_address_after_release_and_expiry() {
    let mut e = engine();
    let a = lease(&mut e, T0, mac(1));
    let _ = lease(&mut e, T0, mac(2));
    let rel = with(
        packet(Some(MessageType::Release), mac(1)),
        DhcpOption::ServerIdentifier(SERVER),
    );
    let mut rel = rel;
    rel.set_ciaddr(a);
    let d = handle(&mut e, T0 + 5, &rel);
    assert_eq!(d.outcome, Outcome::Released);
    assert_eq!(d.persist.unwrap().state, BindingState::Released);
    assert_eq!(offer(&mut e, T0 + 10, mac(1)), a);
}

#[test]
fn the_requested_address_is_offered_when_it_is_free() {
    let mut e = engine();
    let m = with(
        packet(Some(MessageType::Discover), mac(1)),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 102)),
    );
    assert_eq!(
        handle(&mut e, T0, &m).reply.unwrap().msg.yiaddr(),
        Ipv4Addr::new(10, 0, 0, 102)
    );
}

#[test]
fn init_reboot_for_another_network_is_nakked_by_broadcast() {
    let mut e = engine();
    let m = with(
        packet(Some(MessageType::Request), mac(1)),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(192, 168, 1, 5)),
    );
    let d = handle(&mut e, T0, &m);
    assert_eq!(d.outcome, Outcome::Nak);
    let r = d.reply.unwrap();
    assert_eq!(r.dest, Destination::Broadcast);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(d.persist.is_none());
}

#[test]
fn init_reboot_from_a_client_with_no_record_here_gets_silence() {
    // RFC 2131 §4.3.2: "If the DHCP server has no record of this client, then it MUST
    // remain silent", for a free address or one outside the pools; an address leased to
    // another client is known to be wrong for this one and NAKed (Kea and ISC agree).
    let mut e = engine();
    let a = lease(&mut e, T0, mac(1));
    for ip in [Ipv4Addr::new(10, 0, 0, 101), Ipv4Addr::new(10, 0, 0, 150)] {
        let m = with(
            packet(Some(MessageType::Request), mac(2)),
            DhcpOption::RequestedIpAddress(ip),
        );
        let d = handle(&mut e, T0 + 1, &m);
        assert_eq!(
            d.outcome,
            Outcome::Dropped(DropReason::UnknownClient),
            "{ip}"
        );
        assert!(d.persist.is_none());
    }
    // Relayed: the same.
    let mut m = with(
        packet(Some(MessageType::Request), mac(2)),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 150)),
    );
    m.set_giaddr(Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        handle(&mut e, T0 + 1, &m).outcome,
        Outcome::Dropped(DropReason::UnknownClient)
    );
    let m = with(
        packet(Some(MessageType::Request), mac(2)),
        DhcpOption::RequestedIpAddress(a),
    );
    assert_eq!(handle(&mut e, T0 + 1, &m).outcome, Outcome::Nak);
}

#[test]
fn init_reboot_from_a_known_client_is_acked_for_its_address_and_nakked_for_another() {
    let mut e = engine();
    let a = lease(&mut e, T0, mac(1));
    let ask = |ip| {
        with(
            packet(Some(MessageType::Request), mac(1)),
            DhcpOption::RequestedIpAddress(ip),
        )
    };
    let d = handle(&mut e, T0 + 1, &ask(a));
    assert_eq!(d.outcome, Outcome::Ack);
    assert_eq!(d.persist.unwrap().ip, a);
    let other = Ipv4Addr::new(10, 0, 0, 150);
    assert_eq!(handle(&mut e, T0 + 2, &ask(other)).outcome, Outcome::Nak);
}

#[test]
fn renewing_extends_the_lease_and_answers_by_unicast_to_ciaddr() {
    let mut e = engine();
    let a = lease(&mut e, T0, mac(1));
    let mut m = packet(Some(MessageType::Request), mac(1));
    m.set_ciaddr(a);
    let d = handle(&mut e, T0 + 300, &m);
    assert_eq!(d.outcome, Outcome::Ack);
    assert_eq!(d.reply.as_ref().unwrap().dest, Destination::Client(a));
    assert_eq!(d.reply.unwrap().msg.ciaddr(), a);
    let l = d.persist.unwrap();
    assert_eq!((l.starts, l.ends), (T0, T0 + 900));
}

#[test]
fn requested_lease_time_is_honoured_within_min_and_max() {
    let mut e = engine();
    let ip = offer(&mut e, T0, mac(1));
    let req = |secs| {
        with(
            with(
                with(
                    packet(Some(MessageType::Request), mac(1)),
                    DhcpOption::ServerIdentifier(SERVER),
                ),
                DhcpOption::RequestedIpAddress(ip),
            ),
            DhcpOption::AddressLeaseTime(secs),
        )
    };
    let ends = |d: Decision| d.persist.unwrap().ends - T0;
    assert_eq!(ends(handle(&mut e, T0, &req(120))), 120);
    assert_eq!(ends(handle(&mut e, T0, &req(5))), 60);
    assert_eq!(ends(handle(&mut e, T0, &req(999_999))), 3600);
}

#[test]
fn the_parameter_request_list_limits_the_options_sent() {
    let mut e = engine();
    let m = with(
        packet(Some(MessageType::Discover), mac(1)),
        DhcpOption::ParameterRequestList(vec![OptionCode::Router]),
    );
    let r = handle(&mut e, T0, &m).reply.unwrap().msg;
    assert!(opt(&r, OptionCode::Router).is_some());
    assert!(opt(&r, OptionCode::DomainNameServer).is_none());
    assert!(opt(&r, OptionCode::DomainName).is_none());
    assert!(
        opt(&r, OptionCode::AddressLeaseTime).is_some(),
        "lease time is always sent"
    );
}

#[test]
fn decline_abandons_the_address_until_probation_ends() {
    let mut e = engine();
    let a = lease(&mut e, T0, mac(1));
    let m = with(
        with(
            packet(Some(MessageType::Decline), mac(1)),
            DhcpOption::RequestedIpAddress(a),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    );
    let d = handle(&mut e, T0 + 1, &m);
    assert_eq!(d.outcome, Outcome::Declined);
    assert_eq!(d.persist.unwrap().state, BindingState::Abandoned);
    // Neither the decliner nor anyone else gets it while abandoned.
    for n in 1..=2 {
        let ip = lease(&mut e, T0 + 2, mac(n + 10));
        assert_ne!(ip, a);
    }
    let d = handle(&mut e, T0 + 2, &packet(Some(MessageType::Discover), mac(1)));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoFreeAddress));
    let m = with(
        with(
            packet(Some(MessageType::Request), mac(1)),
            DhcpOption::RequestedIpAddress(a),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    );
    assert_eq!(handle(&mut e, T0 + 3, &m).outcome, Outcome::Nak);
    assert_eq!(e.pool_stats(T0 + 3)[0].abandoned, 1);
    // After the probation period (86400 s by default) the sweep frees it.
    let rows = e.handle_reclaim(T0 + 1 + 86_400);
    assert!(rows
        .iter()
        .any(|l| l.ip == a && l.state == BindingState::Free));
}

#[test]
fn an_address_is_offered_again_the_moment_its_lease_or_its_probation_ends() {
    // A one-address pool, a 3 s lease, another client 4 s later, no reclaim sweep between:
    // the address is offered (Kea and ISC do; the sweep only writes the expiry down).
    let yaml = r#"
server: {interfaces: [eth0], dataDir: /tmp/x, serverId: 10.0.0.2}
pools:
  - name: one
    subnet: 10.0.0.0/24
    ranges: [{start: 10.0.0.100, end: 10.0.0.100}]
    defaultLeaseTime: 3
    minLeaseTime: 1
"#;
    let mut e = Engine::new(Config::from_yaml("t", yaml).unwrap(), vec![], &[], T0);
    let a = lease(&mut e, T0, mac(1));
    let d = handle(&mut e, T0 + 1, &packet(Some(MessageType::Discover), mac(2)));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoFreeAddress));
    let d = handle(&mut e, T0 + 4, &packet(Some(MessageType::Discover), mac(2)));
    assert_eq!(d.outcome, Outcome::Offer);
    assert_eq!(d.reply.unwrap().msg.yiaddr(), a);
    // The previous client, back first, still gets its address (affinity).
    let mut e = Engine::new(Config::from_yaml("t", yaml).unwrap(), vec![], &[], T0);
    let a = lease(&mut e, T0, mac(1));
    let d = handle(&mut e, T0 + 4, &packet(Some(MessageType::Discover), mac(1)));
    assert_eq!(d.reply.unwrap().msg.yiaddr(), a);
    // Declined: not before the probation ends, at once after it.
    let mut e = Engine::new(
        Config::from_yaml(
            "t",
            &yaml.replace(
                "serverId: 10.0.0.2",
                "serverId: 10.0.0.2, declineProbationPeriod: 5",
            ),
        )
        .unwrap(),
        vec![],
        &[],
        T0,
    );
    let a = lease(&mut e, T0, mac(1));
    let decline = with(
        with(
            packet(Some(MessageType::Decline), mac(1)),
            DhcpOption::RequestedIpAddress(a),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    );
    assert_eq!(handle(&mut e, T0 + 1, &decline).outcome, Outcome::Declined);
    let d = handle(&mut e, T0 + 5, &packet(Some(MessageType::Discover), mac(2)));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoFreeAddress));
    let d = handle(&mut e, T0 + 6, &packet(Some(MessageType::Discover), mac(2)));
    assert_eq!(d.outcome, Outcome::Offer);
    assert_eq!(d.reply.unwrap().msg.yiaddr(), a);
}

#[test]
fn inform_gets_options_without_an_address_or_lease_time() {
    let mut e = engine();
    let mut m = packet(Some(MessageType::Inform), mac(1));
    m.set_ciaddr(Ipv4Addr::new(10, 0, 0, 33));
    let d = handle(&mut e, T0, &m);
    assert_eq!(d.outcome, Outcome::InformAck);
    assert!(d.persist.is_none());
    let r = d.reply.unwrap();
    assert_eq!(r.dest, Destination::Client(Ipv4Addr::new(10, 0, 0, 33)));
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(opt(&r.msg, OptionCode::AddressLeaseTime).is_none());
    assert!(opt(&r.msg, OptionCode::Router).is_some());
}

#[test]
fn a_reserved_mac_gets_its_fixed_address_with_its_own_options() {
    let mut e = engine();
    let r = handle(
        &mut e,
        T0,
        &packet(Some(MessageType::Discover), [0x52, 0x54, 0, 0, 0, 0xaa]),
    )
    .reply
    .unwrap()
    .msg;
    assert_eq!(r.yiaddr(), Ipv4Addr::new(10, 0, 0, 10));
    assert_eq!(
        opt(&r, OptionCode::DomainName),
        Some(DhcpOption::DomainName("fixed.example.org".into()))
    );
    assert_eq!(
        opt(&r, OptionCode::Hostname),
        Some(DhcpOption::Hostname("fixed".into()))
    );
    // Nobody else may take it (a REQUEST in SELECTING names this server).
    let m = with(
        with(
            packet(Some(MessageType::Request), mac(1)),
            DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 10)),
        ),
        DhcpOption::ServerIdentifier(SERVER),
    );
    assert_eq!(handle(&mut e, T0, &m).outcome, Outcome::Nak);
}

fn relayed(kind: MessageType, mac: [u8; 6], giaddr: Ipv4Addr) -> Message {
    let mut m = packet(Some(kind), mac);
    m.set_giaddr(giaddr);
    m
}

#[test]
fn giaddr_selects_the_subnet_and_the_reply_goes_to_the_relay_with_option_82() {
    let mut e = engine();
    let g = Ipv4Addr::new(10, 1, 0, 1);
    let rai = vec![82, 6, 1, 4, b'p', b'o', b'r', b't'];
    let d = e.handle_request(
        T0,
        &Arrival {
            interface_addrs: &LAN,
        },
        &relayed(MessageType::Discover, mac(1), g),
        Some(rai.clone()),
    );
    let r = d.reply.unwrap();
    assert_eq!(r.dest, Destination::Relay(g));
    assert_eq!(r.msg.giaddr(), g);
    assert!(
        (50..=59).contains(&r.msg.yiaddr().octets()[3])
            && r.msg.yiaddr().octets()[..3] == [10, 1, 0]
    );
    assert_eq!(r.relay_agent_info, Some(rai));
}

#[test]
fn a_relay_with_no_configured_subnet_is_dropped() {
    let mut e = engine();
    let d = handle(
        &mut e,
        T0,
        &relayed(MessageType::Discover, mac(1), Ipv4Addr::new(172, 16, 0, 1)),
    );
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoSubnet));
}

#[test]
fn a_deny_unknown_clients_pool_serves_only_known_clients() {
    let mut e = engine();
    let g = Ipv4Addr::new(10, 2, 0, 1);
    let d = handle(&mut e, T0, &relayed(MessageType::Discover, mac(1), g));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NotPermitted));
    let d = handle(
        &mut e,
        T0,
        &relayed(MessageType::Discover, [0x52, 0x54, 0, 0, 0, 0xbb], g),
    );
    assert_eq!(d.reply.unwrap().msg.yiaddr(), Ipv4Addr::new(10, 2, 0, 5));
}

#[test]
fn a_shared_network_spills_into_its_second_subnet() {
    let mut e = engine();
    let g = Ipv4Addr::new(10, 4, 0, 1);
    let mut got = Vec::new();
    for n in 1..=3 {
        let ip = offer_relayed(&mut e, n, g);
        got.push(ip);
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            Ipv4Addr::new(10, 3, 0, 10),
            Ipv4Addr::new(10, 4, 0, 10),
            Ipv4Addr::new(10, 4, 0, 11)
        ]
    );
    let d = handle(&mut e, T0, &relayed(MessageType::Discover, mac(4), g));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoFreeAddress));
}

fn offer_relayed(e: &mut Engine, n: u8, g: Ipv4Addr) -> Ipv4Addr {
    handle(e, T0, &relayed(MessageType::Discover, mac(n), g))
        .reply
        .unwrap()
        .msg
        .yiaddr()
}

#[test]
fn an_exhausted_pool_drops_new_clients_but_offers_expire() {
    let mut e = engine();
    for n in 1..=3 {
        offer(&mut e, T0, mac(n));
    }
    let d = handle(&mut e, T0, &packet(Some(MessageType::Discover), mac(4)));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoFreeAddress));
    e.handle_reclaim(T0 + 31);
    assert_eq!(
        handle(
            &mut e,
            T0 + 31,
            &packet(Some(MessageType::Discover), mac(4))
        )
        .outcome,
        Outcome::Offer
    );
}

#[test]
fn expired_leases_are_reclaimed_and_reusable() {
    let mut e = engine();
    let ips: Vec<_> = (1..=3).map(|n| lease(&mut e, T0, mac(n))).collect();
    assert_eq!(e.pool_stats(T0)[0].active, 3);
    assert_eq!(e.pool_stats(T0)[0].free, 0);
    let rows = e.handle_reclaim(T0 + 601);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|l| l.state == BindingState::Expired));
    let s = &e.pool_stats(T0 + 601)[0];
    assert_eq!((s.active, s.expired, s.free), (0, 3, 3));
    let ip = lease(&mut e, T0 + 602, mac(9));
    assert!(ips.contains(&ip));
}

#[test]
fn selecting_another_server_frees_our_offer() {
    let mut e = engine();
    let ip = offer(&mut e, T0, mac(1));
    let m = with(
        with(
            packet(Some(MessageType::Request), mac(1)),
            DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 9)),
        ),
        DhcpOption::RequestedIpAddress(ip),
    );
    assert_eq!(
        handle(&mut e, T0, &m).outcome,
        Outcome::Dropped(DropReason::OtherServer)
    );
    assert_eq!(offer(&mut e, T0, mac(2)), ip);
}

#[test]
fn a_restarted_engine_gives_every_client_its_address_back() {
    let mut e = engine();
    let mut rows = Vec::new();
    let mut held = Vec::new();
    for n in 1..=3 {
        let ip = offer(&mut e, T0, mac(n));
        let d = select(&mut e, T0, mac(n), ip);
        rows.push(d.persist.unwrap());
        held.push((n, ip));
    }
    let mut e = Engine::new(Config::from_yaml("t", CONF).unwrap(), rows, &[], T0);
    for (n, ip) in held.into_iter().rev() {
        let m = with(
            packet(Some(MessageType::Request), mac(n)),
            DhcpOption::RequestedIpAddress(ip),
        );
        assert_eq!(handle(&mut e, T0 + 5, &m).outcome, Outcome::Ack);
        assert_eq!(offer(&mut e, T0 + 6, mac(n)), ip);
    }
}

#[test]
fn bootp_is_refused_where_denied_and_served_where_allowed() {
    let mut e = engine();
    assert_eq!(
        handle(&mut e, T0, &packet(None, mac(1))).outcome,
        Outcome::Dropped(DropReason::NotPermitted)
    );
    let d = handle(&mut e, T0, &relayed_bootp(mac(1)));
    assert_eq!(d.outcome, Outcome::BootpReply);
    assert_eq!(d.persist.unwrap().ends, FOREVER);
    assert!(d.reply.unwrap().msg.opts().msg_type().is_none());
}

fn relayed_bootp(mac: [u8; 6]) -> Message {
    let mut m = packet(None, mac);
    m.set_giaddr(Ipv4Addr::new(10, 5, 0, 1));
    m
}

#[test]
fn client_identifier_takes_precedence_over_the_hardware_address() {
    let mut e = engine();
    let id = DhcpOption::ClientIdentifier(vec![1, 2, 3]);
    let ip = {
        let d = handle(
            &mut e,
            T0,
            &with(packet(Some(MessageType::Discover), mac(1)), id.clone()),
        );
        d.reply.unwrap().msg.yiaddr()
    };
    // Same client id from another NIC: same offer.
    let d = handle(
        &mut e,
        T0,
        &with(packet(Some(MessageType::Discover), mac(2)), id),
    );
    assert_eq!(d.reply.unwrap().msg.yiaddr(), ip);
}

#[test]
fn a_relayed_nak_sets_the_broadcast_bit() {
    let mut e = engine();
    let m = with(
        relayed(MessageType::Request, mac(1), Ipv4Addr::new(10, 1, 0, 1)),
        DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 100)),
    );
    let r = handle(&mut e, T0, &m).reply.unwrap();
    assert_eq!(r.dest, Destination::Relay(Ipv4Addr::new(10, 1, 0, 1)));
    assert_eq!(r.msg.flags(), Flags::default().set_broadcast());
}

proptest::proptest! {
    /// Random clients doing random things never hold one address at the same time, and
    /// every ACKed address is inside the client's pool.
    #[test]
    fn no_address_is_ever_acked_to_two_clients_at_once(ops in proptest::collection::vec((0u8..6, 0u8..8, 0u64..400), 1..200)) {
        let mut e = engine();
        let mut now = T0;
        let mut holder: std::collections::HashMap<Ipv4Addr, (u8, Time)> = Default::default();
        for (op, client, dt) in ops {
            now += dt;
            let m = mac(client);
            let held = holder.iter().find(|(_, (c, end))| *c == client && *end > now).map(|(ip, _)| *ip);
            let d = match op {
                0 => handle(&mut e, now, &packet(Some(MessageType::Discover), m)),
                1 => match handle(&mut e, now, &packet(Some(MessageType::Discover), m)).reply {
                    Some(r) => select(&mut e, now, m, r.msg.yiaddr()),
                    None => continue,
                },
                2 => { let mut p = packet(Some(MessageType::Request), m); if let Some(ip) = held { p.set_ciaddr(ip); } handle(&mut e, now, &p) }
                3 => { let mut p = packet(Some(MessageType::Release), m); if let Some(ip) = held { p.set_ciaddr(ip); } handle(&mut e, now, &p) }
                4 => { e.handle_reclaim(now); continue }
                _ => handle(&mut e, now, &with(packet(Some(MessageType::Request), m), DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 0, 100 + client % 3)))),
            };
            match d.outcome {
                Outcome::Ack => {
                    let l = d.persist.unwrap();
                    if let Some((c, end)) = holder.get(&l.ip) {
                        proptest::prop_assert!(*c == client || *end <= now, "{} acked to {client} while {c} holds it until {end} (now {now})", l.ip);
                    }
                    proptest::prop_assert!((100..=102).contains(&l.ip.octets()[3]));
                    holder.retain(|_, (c, _)| *c != client);
                    holder.insert(l.ip, (client, l.ends));
                }
                Outcome::Released => { holder.retain(|_, (c, _)| *c != client); }
                _ => {}
            }
        }
    }
}

/// A pool with options by code, some that dhcproto knows by name (66, 150 for some
/// versions, 24, 2, ...) and some it does not (224).
const BY_CODE: &str = r#"
server: {interfaces: [eth0], serverId: 10.0.0.2}
pools:
  - name: lan
    subnet: 10.0.0.0/24
    ranges: [{start: 10.0.0.100, end: 10.0.0.110}]
    options:
      routers: [10.0.0.1]
      custom:
        - {code: 66, text: tftp.example.org}
        - {code: 67, text: pxelinux.0}
        - {code: 150, ips: [10.0.0.5, 10.0.0.6]}
        - {code: 224, hex: "01:02:03"}
        - {code: 24, u32: 600}
        - {code: 2, u32: 3600}
        - {code: 43, hex: "01:04:0a:00:00:05"}
"#;

fn by_code_engine() -> Engine {
    Engine::new(Config::from_yaml("t", BY_CODE).unwrap(), vec![], &[], T0)
}

/// The option codes of a reply as they go on the wire, and the payload of each.
fn wire_options(r: &Reply) -> Vec<(u8, Vec<u8>)> {
    let bytes = r.encode().unwrap();
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    let opts = &bytes[240..];
    let mut i = 0;
    while i < opts.len() && opts[i] != 255 {
        if opts[i] == 0 {
            i += 1;
            continue;
        }
        let (code, len) = (opts[i], opts[i + 1] as usize);
        out.push((code, opts[i + 2..i + 2 + len].to_vec()));
        i += 2 + len;
    }
    out
}

fn prl(codes: &[u8]) -> DhcpOption {
    DhcpOption::ParameterRequestList(codes.iter().map(|c| OptionCode::from(*c)).collect())
}

#[test]
fn options_configured_by_code_reach_offer_ack_and_inform_in_the_requested_order() {
    let mut e = by_code_engine();
    let want: Vec<(u8, Vec<u8>)> = vec![
        (150, vec![10, 0, 0, 5, 10, 0, 0, 6]),
        (66, b"tftp.example.org".to_vec()),
        (224, vec![1, 2, 3]),
        (67, b"pxelinux.0".to_vec()),
        (43, vec![1, 4, 10, 0, 0, 5]),
        (24, vec![0, 0, 2, 88]),
        (2, vec![0, 0, 14, 16]),
    ];
    let asked: Vec<u8> = want.iter().map(|(c, _)| *c).collect();
    let discover = with(packet(Some(MessageType::Discover), mac(1)), prl(&asked));
    let d = handle(&mut e, T0, &discover);
    let offer = d.reply.unwrap();
    let ip = offer.msg.yiaddr();
    let got = wire_options(&offer);
    // Type, server id, lease times, then exactly what was asked, in the client's order
    // (routers were not asked for).
    let codes: Vec<u8> = got.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[..5], [53, 54, 51, 58, 59]);
    assert_eq!(got[5..].to_vec(), want);

    let request = with(
        with(
            with(
                packet(Some(MessageType::Request), mac(1)),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(ip),
        ),
        prl(&asked),
    );
    let ack = handle(&mut e, T0, &request).reply.unwrap();
    assert_eq!(wire_options(&ack)[5..].to_vec(), want);

    let mut inform = with(packet(Some(MessageType::Inform), mac(2)), prl(&asked));
    inform.set_ciaddr(Ipv4Addr::new(10, 0, 0, 33));
    let d = handle(&mut e, T0, &inform);
    assert_eq!(d.outcome, Outcome::InformAck);
    let got = wire_options(&d.reply.unwrap());
    assert_eq!(
        got[..2].iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [53, 54]
    );
    assert_eq!(got[2..].to_vec(), want);
}

#[test]
fn every_code_the_config_can_express_is_delivered_when_asked_for() {
    // Codes the server manages itself are refused by validation; every other code 1..=254
    // configured by code comes back when the client asks for it, whatever dhcproto calls it.
    let managed = [50u8, 51, 52, 53, 54, 58, 59, 61, 82];
    let mut checked = 0;
    for code in 1u8..=254 {
        if managed.contains(&code) {
            continue;
        }
        let yaml = format!(
            "server: {{interfaces: [eth0], serverId: 10.0.0.2}}\npools:\n  - name: lan\n    subnet: 10.0.0.0/24\n    ranges: [{{start: 10.0.0.100, end: 10.0.0.110}}]\n    options: {{custom: [{{code: {code}, hex: \"0a:0b:0c:0d\"}}]}}\n"
        );
        let mut e = Engine::new(Config::from_yaml("t", &yaml).unwrap(), vec![], &[], T0);
        let d = handle(
            &mut e,
            T0,
            &with(packet(Some(MessageType::Discover), mac(1)), prl(&[code])),
        );
        let got = wire_options(&d.reply.unwrap());
        assert!(
            got.contains(&(code, vec![10, 11, 12, 13])),
            "code {code}: {got:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, 254 - 9);
}

#[test]
fn the_client_identifier_is_echoed_in_offer_ack_and_nak_direct_and_relayed() {
    let id = vec![1, 0x52, 0x54, 0, 0, 0, 0x42];
    for giaddr in [None, Some(Ipv4Addr::new(10, 1, 0, 1))] {
        let mut e = engine();
        let base = |kind| {
            let mut m = with(
                packet(Some(kind), mac(0x42)),
                DhcpOption::ClientIdentifier(id.clone()),
            );
            if let Some(g) = giaddr {
                m.set_giaddr(g);
            }
            m
        };
        let d = handle(&mut e, T0, &base(MessageType::Discover));
        assert_eq!(d.outcome, Outcome::Offer);
        let offer = d.reply.unwrap();
        assert!(wire_options(&offer).contains(&(61, id.clone())), "offer");
        let ip = offer.msg.yiaddr();
        let request = with(
            with(
                base(MessageType::Request),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(ip),
        );
        let d = handle(&mut e, T0, &request);
        assert_eq!(d.outcome, Outcome::Ack);
        assert!(
            wire_options(&d.reply.unwrap()).contains(&(61, id.clone())),
            "ack"
        );
        let wrong = with(
            with(
                base(MessageType::Request),
                DhcpOption::ServerIdentifier(SERVER),
            ),
            DhcpOption::RequestedIpAddress(Ipv4Addr::new(192, 168, 9, 9)),
        );
        let d = handle(&mut e, T0, &wrong);
        assert_eq!(d.outcome, Outcome::Nak);
        assert!(
            wire_options(&d.reply.unwrap()).contains(&(61, id.clone())),
            "nak"
        );
    }
    // Without option 61 in the request there is none in the reply.
    let mut e = engine();
    let d = handle(&mut e, T0, &packet(Some(MessageType::Discover), mac(1)));
    assert!(!wire_options(&d.reply.unwrap())
        .iter()
        .any(|(c, _)| *c == 61));
}

#[test]
fn inform_without_ciaddr_or_relay_gets_no_answer() {
    let mut e = engine();
    let d = handle(&mut e, T0, &packet(Some(MessageType::Inform), mac(1)));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::Malformed));
    assert!(d.reply.is_none());
    // Relayed, it goes to the relay.
    let mut m = packet(Some(MessageType::Inform), mac(1));
    m.set_giaddr(Ipv4Addr::new(10, 1, 0, 1));
    let d = handle(&mut e, T0, &m);
    assert_eq!(d.outcome, Outcome::InformAck);
    assert_eq!(
        d.reply.unwrap().dest,
        Destination::Relay(Ipv4Addr::new(10, 1, 0, 1))
    );
}

#[test]
fn relay_link_selection_picks_the_subnet_and_server_id_override_names_the_server() {
    let mut e = engine();
    // The relay's giaddr is on the lan (10.0.0.0/24); link selection (RFC 3527) says the
    // client is on 10.1.0.0/24; server id override (RFC 5107) says it knows us as 10.1.0.1.
    let rai = vec![82u8, 12, 5, 4, 10, 1, 0, 0, 11, 4, 10, 1, 0, 1];
    let relayed = |m: Message| {
        let mut m = m;
        m.set_giaddr(Ipv4Addr::new(10, 0, 0, 1));
        m
    };
    let send = |e: &mut Engine, m: &Message| {
        e.handle_request(
            T0,
            &Arrival {
                interface_addrs: &LAN,
            },
            m,
            Some(rai.clone()),
        )
    };
    let d = send(
        &mut e,
        &relayed(packet(Some(MessageType::Discover), mac(1))),
    );
    assert_eq!(d.outcome, Outcome::Offer);
    let offer = d.reply.unwrap();
    let ip = offer.msg.yiaddr();
    assert_eq!(ip, Ipv4Addr::new(10, 1, 0, 50));
    let override_id = Ipv4Addr::new(10, 1, 0, 1);
    assert!(wire_options(&offer).contains(&(54, override_id.octets().to_vec())));
    // Option 82 still goes back byte for byte.
    assert_eq!(offer.relay_agent_info.as_deref(), Some(&rai[..]));
    let request = relayed(with(
        with(
            packet(Some(MessageType::Request), mac(1)),
            DhcpOption::ServerIdentifier(override_id),
        ),
        DhcpOption::RequestedIpAddress(ip),
    ));
    let d = send(&mut e, &request);
    assert_eq!(
        d.outcome,
        Outcome::Ack,
        "a REQUEST naming the override is ours"
    );
    // Without the sub-options the same relay gets the lan and our own server id.
    let d = handle(
        &mut e,
        T0,
        &relayed(packet(Some(MessageType::Discover), mac(2))),
    );
    let r = d.reply.unwrap();
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::new(10, 0, 0, 100));
    assert!(wire_options(&r).contains(&(54, SERVER.octets().to_vec())));
}

#[test]
fn a_host_entry_without_an_address_makes_its_client_known_and_gives_its_options() {
    // ISC's `host` without `fixed-address`: the client is known for the permit list and
    // gets its own options and hostname with a dynamic address.
    let yaml = r#"
server: {interfaces: [eth0], serverId: 10.0.0.2}
pools:
  - name: known
    subnet: 10.0.0.0/24
    ranges: [{start: 10.0.0.100, end: 10.0.0.101}]
    allow: [knownClients]
    options: {domainName: pool.example.org}
    reservations:
      - {hardwareAddress: "52:54:00:00:00:01", hostname: lab1, options: {domainName: host.example.org}}
      - {hardwareAddress: "52:54:00:00:00:02"}
"#;
    let mut e = Engine::new(Config::from_yaml("t", yaml).unwrap(), vec![], &[], T0);
    let ip = lease(&mut e, T0, mac(1));
    assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 100));
    let d = handle(&mut e, T0, &packet(Some(MessageType::Discover), mac(1)));
    let r = d.reply.unwrap();
    assert_eq!(r.msg.yiaddr(), ip, "its dynamic address again");
    assert_eq!(
        opt(&r.msg, OptionCode::DomainName),
        Some(DhcpOption::DomainName("host.example.org".into()))
    );
    assert_eq!(
        opt(&r.msg, OptionCode::Hostname),
        Some(DhcpOption::Hostname("lab1".into()))
    );
    // A host entry with nothing but the client's address is enough to be known.
    let d = handle(&mut e, T0, &packet(Some(MessageType::Discover), mac(2)));
    assert_eq!(d.outcome, Outcome::Offer);
    assert_eq!(
        opt(&d.reply.unwrap().msg, OptionCode::DomainName),
        Some(DhcpOption::DomainName("pool.example.org".into()))
    );
    // Everyone else is unknown here.
    let d = handle(&mut e, T0, &packet(Some(MessageType::Discover), mac(3)));
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NotPermitted));
}

#[test]
fn inform_is_answered_to_ciaddr_with_ciaddr_copied_also_through_a_relay() {
    // RFC 2131 §4.3.5 and table 3 (found by the conformance harness: Kea and ISC agree).
    let mut e = engine();
    let ci = Ipv4Addr::new(10, 1, 0, 33);
    let mut m = packet(Some(MessageType::Inform), mac(1));
    m.set_ciaddr(ci);
    m.set_giaddr(Ipv4Addr::new(10, 1, 0, 1));
    let r = handle(&mut e, T0, &m).reply.unwrap();
    assert_eq!(r.dest, Destination::Client(ci));
    assert_eq!(r.msg.ciaddr(), ci);
    // Relayed without ciaddr: to the relay, with the broadcast bit for the client's link.
    let mut m = packet(Some(MessageType::Inform), mac(1));
    m.set_giaddr(Ipv4Addr::new(10, 1, 0, 1));
    let r = handle(&mut e, T0, &m).reply.unwrap();
    assert_eq!(r.dest, Destination::Relay(Ipv4Addr::new(10, 1, 0, 1)));
    assert!(r.msg.flags().broadcast());
}

#[test]
fn a_client_is_recognised_by_its_hardware_address_when_only_one_side_has_an_identifier() {
    // Leased without option 61, INIT-REBOOT with it: ACK (Kea and ISC agree).
    let mut e = engine();
    let a = lease(&mut e, T0, mac(1));
    let with_id = |m: Message| {
        with(
            m,
            DhcpOption::ClientIdentifier(vec![1, 0x52, 0x54, 0, 0, 0, 1]),
        )
    };
    let m = with_id(with(
        packet(Some(MessageType::Request), mac(1)),
        DhcpOption::RequestedIpAddress(a),
    ));
    assert_eq!(handle(&mut e, T0 + 1, &m).outcome, Outcome::Ack);
    // Now bound to the identifier: another identifier from the same MAC is another client,
    // with nothing to release.
    let mut rel = packet(Some(MessageType::Release), mac(1));
    rel.set_ciaddr(a);
    let rel = with(rel, DhcpOption::ServerIdentifier(SERVER));
    let other = with(
        rel.clone(),
        DhcpOption::ClientIdentifier(vec![1, 9, 9, 9, 9, 9, 9]),
    );
    let d = handle(&mut e, T0 + 2, &other);
    assert_eq!(d.outcome, Outcome::Dropped(DropReason::NoMatchingLease));
    // A RELEASE from the same MAC without option 61 releases it.
    let d = handle(&mut e, T0 + 3, &rel);
    assert_eq!(d.outcome, Outcome::Released);
}

#[test]
fn rebinding_from_off_the_network_gets_silence_and_through_a_relay_a_nak() {
    let mut e = engine();
    let mut m = packet(Some(MessageType::Request), mac(1));
    m.set_ciaddr(Ipv4Addr::new(192, 168, 7, 7));
    assert_eq!(
        handle(&mut e, T0, &m).outcome,
        Outcome::Dropped(DropReason::NoSubnet)
    );
    m.set_giaddr(Ipv4Addr::new(10, 1, 0, 1));
    assert_eq!(handle(&mut e, T0, &m).outcome, Outcome::Nak);
}
