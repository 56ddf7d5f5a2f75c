//! The secondary dies (SIGKILL) while the pair serves; the primary notices, moves to
//! COMMUNICATIONS-INTERRUPTED and goes on serving new clients alone. Then the secondary comes
//! back:
//! - with its lease database: it resumes its saved state, never goes through RECOVER, both
//!   return to NORMAL, and the leases the primary granted while it was away reach it;
//! - without it (an empty data directory): it has forgotten the relationship, so it starts in
//!   RECOVER, the primary (seeing an amnesic partner) moves to PARTNER-DOWN, the secondary
//!   takes every binding (UPDREQALL), waits MCLT in RECOVER-WAIT, moves to RECOVER-DONE and
//!   both return to NORMAL; the leases the primary granted meanwhile are in its new database.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use dhcpair_e2e::failover::{
    dhcpair_active, find_move, load, load_both, my_moves, start_pair, wait_active, wait_balanced,
    wait_normal, Member, PairNet, PairSettings,
};
use dhcpair_e2e::layouts::{log_since_start, move_names};
use dhcpair_e2e::load::Ack;
use dhcpair_e2e::{load_bin, scenario, Net24, TestEnv};

#[test]
fn the_secondary_fails_and_returns_with_its_database_to_normal() {
    scenario(
        "the_secondary_fails_and_returns_with_its_database_to_normal",
        |env| body(env, Net24::new(10, 72, 2), true),
    );
}

#[test]
fn the_secondary_fails_and_returns_without_its_database_through_recover_and_mclt() {
    scenario(
        "the_secondary_fails_and_returns_without_its_database_through_recover_and_mclt",
        |env| body(env, Net24::new(10, 72, 3), false),
    );
}

fn body(env: &TestEnv, net: Net24, keep_database: bool) -> Result<()> {
    let pair = PairNet::new(net)?;
    // Load clients never renew and a first lease lasts MCLT: 15 s keeps the leases granted
    // during the outage active until the restarted secondary has them, and the wait in
    // RECOVER-WAIT measurable.
    let s = PairSettings {
        mclt: 15,
        ..PairSettings::default()
    };
    let (primary, mut secondary) = start_pair(env, &pair, &s)?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;
    let relay = pair.relay(&[50, 51])?;
    let [a, b] = load_both(
        env,
        &relay.ns,
        load_bin!(),
        "before",
        [pair.net.host(50), pair.net.host(51)],
        [primary.ip, secondary.ip],
        0x61,
        6,
    )?;
    let before: Vec<Ack> = a.iter().chain(&b).cloned().collect();
    ensure!(before.len() == 6, "6 clients, ACKs: {before:?}");

    secondary.server.kill9();
    let killed = Instant::now();
    primary.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(s.max_response_delay) + 2),
    )?;
    println!(
        "primary in communications-interrupted {:.1?} after the kill",
        killed.elapsed()
    );
    let during = load(
        env,
        &relay.ns,
        load_bin!(),
        "during",
        relay.ip,
        primary.ip,
        0x62,
        3,
        2,
    )?;
    ensure!(
        during.len() == 3,
        "3 clients during the outage, ACKs: {during:?}"
    );
    wait_active("the primary", &during, Duration::from_secs(5), || {
        dhcpair_active(&primary)
    })?;

    if !keep_database {
        secondary.wipe_database()?;
    }
    let restarted = Instant::now();
    secondary.server.restart()?;
    if keep_database {
        wait_normal(&primary, &secondary, Duration::from_secs(30))?;
        println!("both normal {:.1?} after the restart", restarted.elapsed());
        wait_active(
            "the restarted secondary",
            &during,
            Duration::from_secs(10),
            || dhcpair_active(&secondary),
        )?;
        // Leases of before the kill are still there (their MCLT-long first leases run 15 s).
        wait_active(
            "the restarted secondary",
            &before,
            Duration::from_secs(5),
            || dhcpair_active(&secondary),
        )?;
    } else {
        let rel = secondary.wait_state("recover-wait", Duration::from_secs(15))?;
        println!(
            "secondary in recover-wait {:.1?} after the restart: {rel:?}",
            restarted.elapsed()
        );
        // Everything the primary granted while the secondary was away, before it waits.
        wait_active(
            "the restarted secondary",
            &during,
            Duration::from_secs(5),
            || dhcpair_active(&secondary),
        )?;
        let prel = primary.relationship()?;
        ensure!(
            prel.my_state == "partner-down",
            "the primary is not in partner-down while the secondary recovers: {prel:?}"
        );
        wait_normal(
            &primary,
            &secondary,
            Duration::from_secs(u64::from(s.mclt) + 15),
        )?;
        println!("both normal {:.1?} after the restart", restarted.elapsed());
    }
    check_moves(&primary, &secondary, &s, keep_database)?;
    let counts = wait_balanced(&primary, &secondary, 4, Duration::from_secs(10))?;
    println!("after the return: {counts:?}");
    Ok(())
}

fn check_moves(
    primary: &Member,
    secondary: &Member,
    s: &PairSettings,
    keep_database: bool,
) -> Result<()> {
    let log = secondary.log();
    let after = log_since_start(&log, "secondary", 2)
        .ok_or_else(|| anyhow!("no second start in the secondary's log"))?;
    let moves = my_moves(after);
    let names = move_names(&moves);
    println!("secondary's moves after the restart: {names:?}");
    let pmoves = my_moves(&primary.log());
    let pnames = move_names(&pmoves);
    println!("primary's moves: {pnames:?}");
    ensure!(
        names.last().is_some_and(|m| m.ends_with("->normal")),
        "the secondary did not end in normal: {names:?}"
    );
    if keep_database {
        ensure!(
            !moves.iter().any(|m| m.to.starts_with("recover")),
            "the secondary went through recover although it kept its database: {names:?}"
        );
        ensure!(
            find_move(&pmoves, "communications-interrupted", "normal").is_some()
                && !pmoves.iter().any(|m| m.to == "partner-down"),
            "the primary did not go communications-interrupted -> normal: {pnames:?}"
        );
    } else {
        let recover = moves
            .iter()
            .position(|m| m.to == "recover")
            .ok_or_else(|| anyhow!("the secondary never moved to recover: {names:?}"))?;
        let tail = names[recover..].join(" ");
        ensure!(
            tail.contains(
                "->recover recover->recover-wait recover-wait->recover-done recover-done->normal"
            ),
            "the secondary did not go recover -> recover-wait -> recover-done -> normal: {names:?}"
        );
        let wait = find_move(&moves, "recover", "recover-wait").and_then(|m| m.at);
        let done = find_move(&moves, "recover-wait", "recover-done").and_then(|m| m.at);
        let waited = done.zip(wait).map(|(d, w)| d - w).unwrap_or(-1.0);
        let mclt = f64::from(s.mclt);
        println!("{waited:.1} s in recover-wait (MCLT {mclt} s)");
        // RECOVER-WAIT lasts MCLT (leases the secondary gave before it lost its database
        // may still be out there).
        ensure!(
            waited >= mclt - 3.0 && waited <= mclt + 2.0,
            "{waited:.1} s in recover-wait, expected about MCLT = {mclt} s"
        );
        ensure!(
            find_move(&pmoves, "communications-interrupted", "partner-down").is_some()
                && find_move(&pmoves, "partner-down", "normal").is_some(),
            "the primary did not go communications-interrupted -> partner-down -> normal: {pnames:?}"
        );
    }
    Ok(())
}
