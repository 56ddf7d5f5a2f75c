//! Two fresh dhcpair servers on one link (primary .1, secondary .2, split 128) find each other,
//! synchronise and reach NORMAL on both sides; the primary then gives half of its free leases
//! to the secondary (draft-12 §5.5, reference §6), and both servers count the pool the same.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dhcpair_e2e::failover::{start_pair, wait_balanced, PairNet, PairSettings};
use dhcpair_e2e::{scenario, wait_until, Net24, TestEnv};

#[test]
fn a_dhcpair_pair_reaches_normal_and_balances_the_pool() {
    scenario("a_dhcpair_pair_reaches_normal_and_balances_the_pool", body);
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 1))?;
    let s = PairSettings {
        first: 100,
        last: 199,
        ..PairSettings::default()
    };
    let (primary, secondary) = start_pair(env, &pair, &s)?;

    // ISC's balance gives (free - backup) / 2 leases; max-lease-misbalance 15 % of 100 is 15,
    // but a fresh pool balances exactly: 50 / 50.
    let counts = wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;
    ensure!(
        counts.total == s.pool_size() && counts.free + counts.backup == s.pool_size(),
        "pool counts {counts:?}, expected {} addresses all free or backup",
        s.pool_size()
    );

    for m in [&primary, &secondary] {
        // Every balancing BNDUPD acknowledged (the status is republished every second).
        let mut last = None;
        wait_until(
            format!("{}: connected, MCLT {}, nothing unacked", m.name(), s.mclt),
            Duration::from_secs(5),
            || {
                let rel = m.relationship().ok()?;
                let done = rel.role == m.name()
                    && rel.connected
                    && rel.mclt == s.mclt
                    && rel.unacked_updates == 0
                    && rel.queued_updates == 0;
                last = Some(rel);
                done.then_some(())
            },
        )
        .with_context(|| format!("last status: {last:?}"))?;
        // The lease databases agree with the status: every address is free or backup.
        let leases = m.leases()?;
        let backup = leases.iter().filter(|l| l.state == "backup").count() as u64;
        ensure!(
            backup == counts.backup,
            "{}: {backup} backup rows in the database, status says {}",
            m.name(),
            counts.backup
        );
    }
    // Both logs tell the story in ISC's words.
    for m in [&primary, &secondary] {
        let log = m.log();
        ensure!(
            log.contains("failover peer pair: I move from recover-done to normal")
                && log.contains("failover peer pair: peer moves from recover-done to normal"),
            "{}: no recover-done -> normal in its log",
            m.name()
        );
    }
    ensure!(
        primary
            .log()
            .lines()
            .any(|l| l.contains("balanced pool lan") && l.contains("free 50  backup 50")),
        "the primary did not log `balanced pool lan ... free 50  backup 50`"
    );
    Ok(())
}
