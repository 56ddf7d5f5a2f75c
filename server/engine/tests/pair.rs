#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Two engines wired back to back through the real codec: the smallest failover world.

use dhcpair_config::Config;
use dhcpair_engine::{ConnId, Effect, Engine, ServerState, Time};
use dhcpair_wire::failover::{decode, Decoded};

fn conf(role: &str, me: &str, peer: &str) -> Config {
    conf_with(role, me, peer, "")
}

fn conf_with(role: &str, me: &str, peer: &str, pool_extra: &str) -> Config {
    let extra = if role == "primary" {
        ", mclt: 60, split: 128, loadBalanceMaxSeconds: 3"
    } else {
        ", loadBalanceMaxSeconds: 3"
    };
    let text = format!(
        r#"
server: {{interfaces: [eth0]}}
peers: [{{name: pair, role: {role}, address: {me}, peerAddress: {peer}{extra}}}]
pools:
  - name: lan
    subnet: 10.0.0.0/24
    failoverPeer: pair
    ranges: [{{start: 10.0.0.100, end: 10.0.0.119}}]
    defaultLeaseTime: 600
{pool_extra}"#
    );
    Config::from_yaml("t", &text).unwrap()
}

/// Deliver every Send effect to the other engine (through encode/decode) until quiet.
fn run(a: &mut Engine, b: &mut Engine, now: Time) -> usize {
    let mut delivered = 0;
    loop {
        let ea = a.poll_effects();
        let eb = b.poll_effects();
        if ea.is_empty() && eb.is_empty() {
            return delivered;
        }
        for (effects, to) in [(ea, &mut *b), (eb, &mut *a)] {
            for e in effects {
                if let Effect::Send { msg, .. } = e {
                    let bytes = msg.encode().unwrap();
                    let Decoded::Message(m) = decode(&bytes).unwrap() else {
                        panic!("ignored")
                    };
                    to.handle_peer_message(now, 0, ConnId(1), m);
                    delivered += 1;
                }
            }
        }
    }
}

#[test]
fn a_brand_new_pair_synchronises_and_balances_the_pool() {
    let now = 1_800_000_000;
    let mut p = Engine::new(conf("primary", "10.0.0.1", "10.0.0.2"), vec![], &[], now);
    let mut s = Engine::new(conf("secondary", "10.0.0.2", "10.0.0.1"), vec![], &[], now);
    p.handle_peer_connected(now, 0, ConnId(1));
    s.handle_peer_connected(now, 0, ConnId(1));
    let n = run(&mut p, &mut s, now);
    assert!(n > 0);
    let (rp, rs) = (&p.relationships()[0], &s.relationships()[0]);
    assert_eq!(
        (rp.my_state, rs.my_state),
        (ServerState::Normal, ServerState::Normal),
        "{rp:#?}\n{rs:#?}"
    );
    let (sp, ss) = (&p.pool_stats(now)[0], &s.pool_stats(now)[0]);
    assert_eq!((sp.free, sp.backup), (10, 10));
    assert_eq!((ss.free, ss.backup), (10, 10));
}

#[test]
fn dynamic_bootp_is_never_served_from_a_failover_pool_but_reservations_are() {
    use dhcpair_engine::{Arrival, DropReason, Outcome};
    use dhcpair_wire::v4::Message;
    use std::net::Ipv4Addr;
    let extra = r#"    allow: [dynamicBootpClients]
    reservations:
      - {hardwareAddress: "52:54:00:00:00:aa", ipAddress: 10.0.0.50}
"#;
    let now = 1_800_000_000;
    let mut p = Engine::new(
        conf_with("primary", "10.0.0.1", "10.0.0.2", extra),
        vec![],
        &[],
        now,
    );
    let mut s = Engine::new(
        conf_with("secondary", "10.0.0.2", "10.0.0.1", extra),
        vec![],
        &[],
        now,
    );
    p.handle_peer_connected(now, 0, ConnId(1));
    s.handle_peer_connected(now, 0, ConnId(1));
    run(&mut p, &mut s, now);
    assert_eq!(p.relationships()[0].my_state, ServerState::Normal);
    let bootp = |last: u8| {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(9, z, z, z, z, &[0x52, 0x54, 0, 0, 0, last]);
        // Past loadBalanceMaxSeconds: whichever server the hash names, both may answer.
        m.set_secs(10);
        m
    };
    let addrs = [Ipv4Addr::new(10, 0, 0, 1)];
    let arrival = Arrival {
        interface_addrs: &addrs,
    };
    for e in [&mut p, &mut s] {
        let d = e.handle_request(now + 1, &arrival, &bootp(1), None);
        assert_eq!(d.outcome, Outcome::Dropped(DropReason::NotPermitted));
        assert!(d.persist.is_none() && d.reply.is_none());
    }
    let d = p.handle_request(now + 1, &arrival, &bootp(0xaa), None);
    assert_eq!(d.outcome, Outcome::BootpReply);
    assert_eq!(d.reply.unwrap().msg.yiaddr(), Ipv4Addr::new(10, 0, 0, 50));
}
