//! A primary that comes back with an empty data directory has forgotten everything, including
//! that it was ever in a relationship, so it starts in RECOVER (reference §5.2). The secondary,
//! which served clients while the primary was dead, sees an amnesic peer and moves to
//! PARTNER-DOWN; the primary asks for every binding (UPDREQALL), stores the secondary's active
//! leases, then waits in RECOVER-WAIT until MCLT has passed since it started (leases it may
//! have given before the crash could still be out there), moves to RECOVER-DONE, and both
//! return to NORMAL.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use dhcpair_e2e::failover::{
    dhcpair_active, find_move, load, load_both, my_moves, start_pair, wait_active, wait_balanced,
    wait_normal, PairNet, PairSettings,
};
use dhcpair_e2e::{load_bin, scenario, Net24, TestEnv};

#[test]
fn a_primary_restarted_without_its_database_recovers_waits_mclt_and_returns_to_normal() {
    scenario(
        "a_primary_restarted_without_its_database_recovers_waits_mclt_and_returns_to_normal",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 6))?;
    // The load clients never renew, and a first lease lasts MCLT: 12 s keeps them active until
    // the restarted primary has them, and the wait in RECOVER-WAIT measurable.
    let s = PairSettings {
        mclt: 12,
        ..PairSettings::default()
    };
    let (mut primary, secondary) = start_pair(env, &pair, &s)?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;
    let relay = pair.relay(&[50, 51])?;
    let [a, b] = load_both(
        env,
        &relay.ns,
        load_bin!(),
        "before",
        [pair.net.host(50), pair.net.host(51)],
        [primary.ip, secondary.ip],
        0x79,
        6,
    )?;

    primary.server.kill9();
    secondary.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(s.max_response_delay) + 2),
    )?;
    let during = load(
        env,
        &relay.ns,
        load_bin!(),
        "during",
        relay.ip,
        secondary.ip,
        0x7a,
        3,
        2,
    )?;
    ensure!(
        during.len() == 3,
        "3 clients during the outage, ACKs: {during:?}"
    );
    let secondary_active = dhcpair_active(&secondary)?;
    let all: Vec<_> = a.iter().chain(&b).chain(&during).cloned().collect();
    ensure!(
        all.iter()
            .all(|x| secondary_active.get(&x.ip) == Some(&x.mac)),
        "the secondary does not hold every ACKed lease: {all:?} vs {secondary_active:?}"
    );

    primary.wipe_database()?;
    let restarted = Instant::now();
    primary.server.restart()?;
    let rel = primary.wait_state("recover-wait", Duration::from_secs(10))?;
    println!(
        "primary in recover-wait {:.1?} after the restart: {rel:?}",
        restarted.elapsed()
    );
    // Everything the secondary knows is in the primary's new database before it waits.
    wait_active(
        "the restarted primary",
        &all,
        Duration::from_secs(5),
        || dhcpair_active(&primary),
    )?;
    ensure!(
        secondary.relationship()?.my_state == "partner-down",
        "the secondary is not in partner-down while the primary recovers: {:?}",
        secondary.relationship()?
    );

    wait_normal(
        &primary,
        &secondary,
        Duration::from_secs(u64::from(s.mclt) + 10),
    )?;
    println!("both normal {:.1?} after the restart", restarted.elapsed());

    let log = primary.log();
    let second_start = log
        .find("start #2 of primary")
        .ok_or_else(|| anyhow!("no second start in the primary's log"))?;
    let moves = my_moves(&log[second_start..]);
    let names: Vec<String> = moves
        .iter()
        .map(|m| format!("{}->{}", m.from, m.to))
        .collect();
    let wait = find_move(&moves, "recover", "recover-wait")
        .ok_or_else(|| anyhow!("no `I move from recover to recover-wait`: {names:?}"))?;
    let done = find_move(&moves, "recover-wait", "recover-done")
        .ok_or_else(|| anyhow!("no `I move from recover-wait to recover-done`: {names:?}"))?;
    find_move(&moves, "recover-done", "normal")
        .ok_or_else(|| anyhow!("no `I move from recover-done to normal`: {names:?}"))?;
    let waited = done.at.zip(wait.at).map(|(d, w)| d - w).unwrap_or(-1.0);
    println!("primary moves after the restart: {names:?}; {waited:.1} s in recover-wait");
    let mclt = f64::from(s.mclt);
    ensure!(
        waited >= mclt - 3.0 && waited <= mclt + 2.0,
        "{waited:.1} s in recover-wait, expected about MCLT = {mclt} s"
    );
    let secondary_moves: Vec<String> = my_moves(&secondary.log())
        .iter()
        .map(|m| format!("{}->{}", m.from, m.to))
        .collect();
    ensure!(
        secondary_moves
            .iter()
            .any(|m| m == "communications-interrupted->partner-down")
            && secondary_moves.iter().any(|m| m == "partner-down->normal"),
        "the secondary did not go CI -> partner-down -> normal: {secondary_moves:?}"
    );
    Ok(())
}
