#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A failover pair reloaded one server at a time (as the operator's ConfigMap update reaches
//! the two nodes at different moments): what one side grants from a range the other does
//! not know yet reaches the other once it has reloaded too.

mod common;

use common::{ip, mac, Pair};
use dhcpair_config::Config;
use dhcpair_engine::{BindingState, ClientKey};
use dhcpair_sim::Side;

const P: Side = Side::Primary;
const S: Side = Side::Secondary;

/// The simulator's config for `side` with the pool's range grown by `more` addresses.
fn grown(p: &Pair, side: Side, more: u32) -> Config {
    let mut sc = p.sc.clone();
    sc.pool_size += more;
    dhcpair_sim::config(&sc, side).unwrap()
}

#[test]
fn a_binding_from_a_range_the_partner_does_not_know_yet_reaches_it_after_its_reload() {
    // A first lease (MCLT) that outlasts the retry interval.
    let mut p = Pair::normal_with(|sc| sc.mclt = 300);
    let first_new = ip(p.sc.pool_size);
    let cfg = grown(&p, P, 4);
    p.call(P, |e, now| e.reconfigure(cfg, now))
        .unwrap()
        .unwrap();
    let a = mac(1);
    let (got, _) = p.obtain(P, a, Some(first_new)).unwrap();
    assert_eq!(
        got, first_new,
        "the primary should grant from its grown range"
    );
    p.sync();
    assert!(
        p.lease(S, first_new).is_none(),
        "the secondary took an address outside its pools"
    );
    let cfg = grown(&p, S, 4);
    p.call(S, |e, now| e.reconfigure(cfg, now))
        .unwrap()
        .unwrap();
    p.advance(70);
    let l = p
        .lease(S, first_new)
        .expect("the binding never reached the secondary");
    assert_eq!(
        (l.state, l.client),
        (
            BindingState::Active,
            Some(ClientKey::Hardware {
                htype: 1,
                chaddr: a.to_vec()
            })
        )
    );
}
