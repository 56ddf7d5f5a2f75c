//! `autoPartnerDown` (ISC's `auto-partner-down`): a server that has been in
//! COMMUNICATIONS-INTERRUPTED for that many seconds moves to PARTNER-DOWN by itself, with no
//! operator. Then, as after a manual partner-down (draft-12 §5.6), it may hand out its
//! partner's free addresses only once MCLT has passed since it entered PARTNER-DOWN; until then
//! only its own.
//!
//! The primary is killed; both moments are read from the survivor's (the secondary's) own log
//! lines `I move from normal to communications-interrupted` and `I move from
//! communications-interrupted to partner-down` against the kill time; 14 new clients before
//! MCLT get exactly the secondary's 10 BACKUP addresses; then one new client a second until
//! one is served: the first address of the primary's share (FREE on the primary's side) is
//! allocated after MCLT, and not much later.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dhcpair_config::raw::Role;
use dhcpair_e2e::failover::{
    control_token, dhcpair_config, find_move, load, my_moves, unix_now, wait_balanced, wait_normal,
    Member, PairNet, PairSettings,
};
use dhcpair_e2e::layouts::move_names;
use dhcpair_e2e::{load_bin, scenario, wait_until, Net24, TestEnv};

/// Seconds in COMMUNICATIONS-INTERRUPTED before the survivor declares its partner down.
const AUTO_PARTNER_DOWN: u32 = 5;

#[test]
fn auto_partner_down_moves_the_survivor_to_partner_down_and_after_mclt_to_the_partners_addresses() {
    scenario(
        "auto_partner_down_moves_the_survivor_to_partner_down_and_after_mclt_to_the_partners_addresses",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 72, 4))?;
    let s = PairSettings {
        mclt: 10,
        first: 100,
        last: 119,
        ..PairSettings::default()
    };
    let token = control_token(env)?;
    let start = |role: Role| -> Result<Member> {
        let mut config = dhcpair_config(&pair, role, &s, &token);
        config.peers[0].auto_partner_down = Some(AUTO_PARTNER_DOWN);
        Member::start_with(env, &pair.node(role).ns, role, config)
    };
    let mut primary = start(Role::Primary)?;
    let secondary = start(Role::Secondary)?;
    wait_normal(&primary, &secondary, Duration::from_secs(20))?;
    let counts = wait_balanced(&primary, &secondary, 0, Duration::from_secs(10))?;
    let backup: BTreeSet<Ipv4Addr> = secondary.ips_in("backup")?.into_iter().collect();
    ensure!(
        backup.len() == 10 && counts.backup == 10,
        "expected the secondary to hold 10 BACKUP addresses: {backup:?}, {counts:?}"
    );
    let primary_share: BTreeSet<Ipv4Addr> = s
        .range(pair.net)
        .into_iter()
        .filter(|ip| !backup.contains(ip))
        .collect();

    let killed_at = unix_now();
    primary.server.kill9();
    let rel = secondary.wait_state(
        "partner-down",
        Duration::from_secs(u64::from(s.max_response_delay + AUTO_PARTNER_DOWN) + 5),
    )?;
    let moves = my_moves(&secondary.log());
    let names = move_names(&moves);
    let ci_at = find_move(&moves, "normal", "communications-interrupted")
        .and_then(|m| m.at)
        .ok_or_else(|| {
            anyhow!("no `I move from normal to communications-interrupted`: {names:?}")
        })?;
    let down_at = find_move(&moves, "communications-interrupted", "partner-down")
        .and_then(|m| m.at)
        .ok_or_else(|| {
            anyhow!("no `I move from communications-interrupted to partner-down`: {names:?}")
        })?;
    let (in_ci, since_kill) = (down_at - ci_at, down_at - killed_at);
    println!(
        "secondary: communications-interrupted {:.1} s after the kill, partner-down {in_ci:.1} s \
         later ({since_kill:.1} s after the kill; autoPartnerDown {AUTO_PARTNER_DOWN} s); {rel:?}",
        ci_at - killed_at
    );
    // The server keeps failover time in whole seconds: up to 1 s early against the log's
    // sub-second timestamps.
    let apd = f64::from(AUTO_PARTNER_DOWN);
    ensure!(
        in_ci >= apd - 1.05 && in_ci <= apd + 2.0,
        "{in_ci:.1} s in communications-interrupted before partner-down, expected {apd} s"
    );
    ensure!(
        since_kill >= apd - 1.05 && since_kill <= apd + f64::from(s.max_response_delay) + 2.0,
        "partner-down {since_kill:.1} s after the kill"
    );
    ensure!(
        (rel.my_stos as f64 - down_at).abs() <= 1.5,
        "STOS of partner-down {} is not the log's {down_at:.1}",
        rel.my_stos
    );
    let mclt_over = down_at + f64::from(s.mclt);

    // Before MCLT: the secondary's own BACKUP addresses, and nothing else.
    let relay = pair.relay(&[50])?;
    let before = load(
        env,
        &relay.ns,
        load_bin!(),
        "before-mclt",
        relay.ip,
        secondary.ip,
        0x63,
        14,
        1,
    )?;
    let finished = unix_now();
    ensure!(
        finished < mclt_over,
        "the first load ended {:.1} s after partner-down, past MCLT: the check proves nothing",
        finished - down_at
    );
    let got: BTreeSet<Ipv4Addr> = before.iter().map(|a| a.ip).collect();
    ensure!(
        got == backup,
        "before MCLT 14 new clients got {got:?}, expected exactly the BACKUP addresses {backup:?}"
    );

    // Then one new client about every second until one is served: from the primary's share,
    // after MCLT. A refused probe shows the share was not usable yet when it ended.
    let mut attempt = 0u8;
    let mut refused_until = None;
    let (first, probe_started) = wait_until(
        "a new client served from the primary's share",
        Duration::from_secs(u64::from(s.mclt) + 15),
        || {
            attempt += 1;
            let started = unix_now();
            let acks = load(
                env,
                &relay.ns,
                load_bin!(),
                &format!("probe-{attempt}"),
                relay.ip,
                secondary.ip,
                0x80 + attempt,
                1,
                1,
            )
            .ok()?;
            match acks.first() {
                Some(a) => Some((a.clone(), started)),
                None => {
                    refused_until = Some(unix_now());
                    std::thread::sleep(Duration::from_millis(300));
                    None
                }
            }
        },
    )?;
    let refused_until =
        refused_until.ok_or_else(|| anyhow!("the first probe was served: MCLT was not waited"))?;
    println!(
        "new clients refused until partner-down + {:.1} s; {} got {} in a probe started at \
         partner-down + {:.1} s (MCLT {} s, {attempt} probes)",
        refused_until - down_at,
        first.mac,
        first.ip,
        probe_started - down_at,
        s.mclt
    );
    ensure!(
        primary_share.contains(&first.ip),
        "{} is not one of the primary's addresses {primary_share:?}",
        first.ip
    );
    // The lease row, on the server's own clock: it starts once MCLT has passed since the
    // STOS of partner-down (whole seconds).
    let lease = secondary
        .server
        .lease(first.ip)?
        .ok_or_else(|| anyhow!("the secondary has no lease for {}", first.ip))?;
    let starts = lease.starts.unwrap_or(0);
    ensure!(
        lease.state == "active" && starts >= (rel.my_stos + u64::from(s.mclt)) as i64,
        "lease {lease:?} starts {} s after the STOS of partner-down {}, before MCLT {}",
        starts - rel.my_stos as i64,
        rel.my_stos,
        s.mclt
    );
    // The probes cover the moment: refused until shortly before MCLT, served soon after.
    ensure!(
        refused_until >= mclt_over - 2.5,
        "the last refused probe ended at partner-down + {:.1} s: the probes do not show the \
         share unusable until MCLT",
        refused_until - down_at
    );
    ensure!(
        probe_started <= mclt_over + 3.0,
        "the primary's share became usable only at partner-down + {:.1} s (MCLT {})",
        probe_started - down_at,
        s.mclt
    );
    Ok(())
}
