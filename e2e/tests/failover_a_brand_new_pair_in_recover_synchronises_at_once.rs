//! Two servers that have never run start in RECOVER (no saved state). As in ISC, when both
//! are in RECOVER neither has anything to wait for: each asks the other for everything, and on
//! UPDDONE moves straight to RECOVER-DONE (not RECOVER-WAIT), then NORMAL, long before MCLT
//! (300 s here) could have passed.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dhcpair_config::raw::Role;
use dhcpair_e2e::failover::{find_move, my_moves, wait_normal, Member, PairNet, PairSettings};
use dhcpair_e2e::{scenario, Net24, TestEnv};

#[test]
fn a_brand_new_pair_in_recover_synchronises_at_once() {
    scenario("a_brand_new_pair_in_recover_synchronises_at_once", body);
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 7))?;
    let s = PairSettings {
        mclt: 300,
        ..PairSettings::default()
    };
    let started = Instant::now();
    let primary = Member::start(env, &pair, Role::Primary, &s)?;
    let secondary = Member::start(env, &pair, Role::Secondary, &s)?;
    wait_normal(&primary, &secondary, Duration::from_secs(30))?;
    let took = started.elapsed();
    println!(
        "a new pair with MCLT {} s was normal after {took:.1?}",
        s.mclt
    );
    ensure!(
        took < Duration::from_secs(20),
        "a new pair took {took:.1?} to reach normal (MCLT {} s)",
        s.mclt
    );
    for m in [&primary, &secondary] {
        let moves = my_moves(&m.log());
        let names: Vec<String> = moves
            .iter()
            .map(|x| format!("{}->{}", x.from, x.to))
            .collect();
        ensure!(
            find_move(&moves, "recover", "recover-done").is_some()
                && find_move(&moves, "recover-done", "normal").is_some()
                && !moves.iter().any(|x| x.to == "recover-wait"),
            "{}: expected recover -> recover-done -> normal without recover-wait: {names:?}",
            m.name()
        );
        let rel = m.relationship()?;
        ensure!(
            rel.mclt == s.mclt,
            "{}: mclt {} in {rel:?}",
            m.name(),
            rel.mclt
        );
    }
    Ok(())
}
