//! The primary dies, the operator puts the secondary in PARTNER-DOWN, and after MCLT the
//! secondary gives clients addresses from the primary's FREE leases. Then the primary comes
//! back with its database (saved state NORMAL). It must not serve, nor tell the partner it is
//! NORMAL: a server that learns in STARTUP that its partner is in PARTNER-DOWN goes to RECOVER
//! (draft-12 §5.7, reference §5.2 "NORMAL | PARTNER-DOWN ... if ISC was still in STARTUP,
//! RECOVER instead"), takes every binding from the partner (UPDREQALL), waits in RECOVER-WAIT
//! until MCLT has passed, and only then RECOVER-DONE → NORMAL. The secondary stays in
//! PARTNER-DOWN (serving) until the primary is RECOVER-DONE, then goes straight to NORMAL.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use dhcpair_e2e::failover::{
    dhcpair_active, find_move, load, my_moves, start_pair, unix_now, wait_active, wait_balanced,
    wait_normal, Move, PairNet, PairSettings,
};
use dhcpair_e2e::{load_bin, scenario, wait_until, Net24, TestEnv};

#[test]
fn a_primary_restarted_while_its_partner_is_in_partner_down_recovers_and_waits_mclt() {
    scenario(
        "a_primary_restarted_while_its_partner_is_in_partner_down_recovers_and_waits_mclt",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 12))?;
    let s = PairSettings {
        first: 100,
        last: 119,
        ..PairSettings::default()
    };
    let (mut primary, secondary) = start_pair(env, &pair, &s)?;
    wait_balanced(&primary, &secondary, 0, Duration::from_secs(10))?;
    let backup: BTreeSet<Ipv4Addr> = secondary.ips_in("backup")?.into_iter().collect();

    primary.server.kill9();
    secondary.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(s.max_response_delay) + 2),
    )?;
    secondary.partner_down()?;
    let down_at = secondary
        .wait_state("partner-down", Duration::from_secs(5))?
        .my_stos as f64;
    wait_until(
        "MCLT to pass since partner-down",
        Duration::from_secs(u64::from(s.mclt) + 5),
        || (unix_now() > down_at + f64::from(s.mclt) + 1.0).then_some(()),
    )?;
    // 13 clients for 10 BACKUP leases: some get the primary's FREE leases, which the returning
    // primary must learn before it may allocate anything again.
    let relay = pair.relay(&[50])?;
    let acks = load(
        env,
        &relay.ns,
        load_bin!(),
        "partner-down",
        relay.ip,
        secondary.ip,
        0x70,
        13,
        2,
    )?;
    let from_primary_free = acks.iter().filter(|a| !backup.contains(&a.ip)).count();
    ensure!(
        acks.len() == 13 && from_primary_free == 3,
        "13 clients in partner-down after MCLT: {acks:?} ({from_primary_free} from the primary's FREE leases)"
    );

    let restarted_at = unix_now();
    let restarted = Instant::now();
    primary.server.restart()?;
    let rel = primary.wait_state("recover-wait", Duration::from_secs(10))?;
    println!(
        "primary in recover-wait {:.1?} after the restart: {rel:?}",
        restarted.elapsed()
    );
    wait_active(
        "the recovering primary",
        &acks,
        Duration::from_secs(3),
        || dhcpair_active(&primary),
    )?;
    ensure!(
        secondary.relationship()?.my_state == "partner-down",
        "the secondary left partner-down while the primary recovers: {:?}",
        secondary.relationship()?
    );

    wait_normal(
        &primary,
        &secondary,
        Duration::from_secs(u64::from(s.mclt) + 10),
    )?;

    let log = primary.log();
    let second = log
        .find("start #2 of primary")
        .ok_or_else(|| anyhow!("no second start in the primary's log"))?;
    let moves = my_moves(&log[second..]);
    let names = names(&moves);
    ensure!(
        names.first().map(String::as_str) == Some("startup->recover"),
        "the returning primary must go from startup straight to recover: {names:?}"
    );
    let wait = find_move(&moves, "recover", "recover-wait")
        .ok_or_else(|| anyhow!("no recover -> recover-wait: {names:?}"))?;
    let done = find_move(&moves, "recover-wait", "recover-done")
        .ok_or_else(|| anyhow!("no recover-wait -> recover-done: {names:?}"))?;
    ensure!(
        names.iter().filter(|m| m.ends_with("->normal")).count() == 1
            && names.last().map(String::as_str) == Some("recover-done->normal"),
        "the primary must reach normal once, from recover-done: {names:?}"
    );
    let waited = done.at.zip(wait.at).map(|(d, w)| d - w).unwrap_or(-1.0);
    let mclt = f64::from(s.mclt);
    ensure!(
        waited >= mclt - 3.0 && waited <= mclt + 2.0,
        "{waited:.1} s in recover-wait, expected about MCLT = {mclt} s ({names:?})"
    );

    let secondary_after: Vec<Move> = my_moves(&secondary.log())
        .into_iter()
        .filter(|m| m.at.is_some_and(|t| t >= restarted_at))
        .collect();
    ensure!(
        names_of(&secondary_after) == ["partner-down->normal"],
        "the partner-down secondary must go straight to normal once the primary is \
         recover-done: {:?}",
        names_of(&secondary_after)
    );
    Ok(())
}

fn names(moves: &[Move]) -> Vec<String> {
    moves
        .iter()
        .map(|m| format!("{}->{}", m.from, m.to))
        .collect()
}

fn names_of(moves: &[Move]) -> Vec<String> {
    names(moves)
}
