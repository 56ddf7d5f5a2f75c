//! A graceful stop and restart of the primary with its lease database: SIGTERM makes it send
//! STATE PAUSED, so the secondary moves to COMMUNICATIONS-INTERRUPTED at once (no need to wait
//! for maxResponseDelay) and keeps serving, from its BACKUP leases, clients the primary never
//! saw. The primary comes back with the same data directory, both return to NORMAL, every
//! lease ACKed before the stop is still active on both, and the primary learns the leases the
//! secondary gave while it was away.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dhcpair_e2e::failover::{
    dhcpair_active, load, load_both, start_pair, wait_active, wait_balanced, wait_normal, PairNet,
    PairSettings,
};
use dhcpair_e2e::{load_bin, scenario, Net24, TestEnv};

#[test]
fn a_restarted_primary_with_its_database_returns_to_normal() {
    scenario(
        "a_restarted_primary_with_its_database_returns_to_normal",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 5))?;
    // A first lease lasts MCLT and load clients never renew: 30 s keeps every lease active
    // until the end.
    let s = PairSettings {
        mclt: 30,
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
        0x77,
        8,
    )?;
    let before: Vec<_> = a.iter().chain(&b).cloned().collect();
    ensure!(
        before.len() == 8,
        "8 clients, {} ACKs: {before:?}",
        before.len()
    );
    wait_active("the primary", &before, Duration::from_secs(5), || {
        dhcpair_active(&primary)
    })?;

    let stopped = Instant::now();
    primary.server.stop()?;
    secondary.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(s.max_response_delay)),
    )?;
    let noticed = stopped.elapsed();
    ensure!(
        secondary
            .log()
            .contains("failover peer pair: peer moves from normal to paused"),
        "the secondary did not log the primary's PAUSED"
    );
    println!("secondary in communications-interrupted {noticed:.1?} after SIGTERM");

    // While the primary is away, the secondary serves new clients.
    let during = load(
        env,
        &relay.ns,
        load_bin!(),
        "during",
        relay.ip,
        secondary.ip,
        0x78,
        3,
        2,
    )?;
    ensure!(
        during.len() == 3,
        "3 clients during the outage, ACKs: {during:?}"
    );

    let restarted = Instant::now();
    primary.server.restart()?;
    wait_normal(&primary, &secondary, Duration::from_secs(30))?;
    println!("both normal {:.1?} after the restart", restarted.elapsed());
    ensure!(
        !primary
            .log()
            .lines()
            .skip_while(|l| !l.contains("start #2 of primary"))
            .any(|l| l.contains("I move from") && l.contains("to recover")),
        "the restarted primary went through recover although it kept its database"
    );

    let all: Vec<_> = before.iter().chain(&during).cloned().collect();
    wait_active(
        "the restarted primary",
        &all,
        Duration::from_secs(5),
        || dhcpair_active(&primary),
    )?;
    wait_active("the secondary", &all, Duration::from_secs(5), || {
        dhcpair_active(&secondary)
    })?;
    let counts = wait_balanced(&primary, &secondary, 4, Duration::from_secs(5))?;
    ensure!(
        counts.active == all.len() as u64,
        "{} active on both for {} ACKs: {counts:?}",
        counts.active,
        all.len()
    );
    Ok(())
}
