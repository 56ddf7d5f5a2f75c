#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Two engines wired back to back through the real codec: the smallest failover world.

use dhcpair_config::Config;
use dhcpair_engine::{ConnId, Effect, Engine, ServerState, Time};
use dhcpair_wire::failover::{decode, Decoded};

fn conf(role: &str, me: &str, peer: &str) -> Config {
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
"#
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
