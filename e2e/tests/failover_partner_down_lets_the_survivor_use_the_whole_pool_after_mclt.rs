//! PARTNER-DOWN (draft-12 §5.6): with the primary dead, the operator runs `dhcpair
//! partner-down` on the secondary. Until MCLT has passed since that moment the secondary may
//! only allocate its own BACKUP leases (the dead primary may have promised its FREE ones to
//! clients the secondary never heard of); 14 new clients for 10 BACKUP leases: 10 ACKs, all
//! BACKUP addresses. Once MCLT has passed, new clients get the primary's FREE leases.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use dhcpair_e2e::failover::{load, start_pair, unix_now, wait_balanced, PairNet, PairSettings};
use dhcpair_e2e::{load_bin, scenario, wait_until, Net24, TestEnv};

#[test]
fn partner_down_lets_the_survivor_use_the_whole_pool_after_mclt() {
    scenario(
        "partner_down_lets_the_survivor_use_the_whole_pool_after_mclt",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 4))?;
    let s = PairSettings {
        first: 100,
        last: 119,
        ..PairSettings::default()
    };
    let (mut primary, secondary) = start_pair(env, &pair, &s)?;
    let counts = wait_balanced(&primary, &secondary, 0, Duration::from_secs(10))?;
    let backup: BTreeSet<Ipv4Addr> = secondary.ips_in("backup")?.into_iter().collect();
    ensure!(
        backup.len() as u64 == counts.backup && counts.backup == 10,
        "expected 10 BACKUP leases on the secondary: {backup:?}, {counts:?}"
    );
    let primary_free: BTreeSet<Ipv4Addr> = s
        .range(pair.net)
        .into_iter()
        .filter(|ip| !backup.contains(ip))
        .collect();

    primary.server.kill9();
    secondary.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(s.max_response_delay) + 2),
    )?;
    // Without the bearer token the control API refuses.
    let url = format!("http://{}/v1/failover/pair/partner-down", secondary.http);
    let code = pair.secondary.ns.exec(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "5",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        &url,
    ])?;
    ensure!(code == "401", "partner-down without a token: HTTP {code}");
    ensure!(
        secondary.relationship()?.my_state == "communications-interrupted",
        "a refused partner-down changed the state"
    );
    let out = secondary.partner_down()?;
    let rel = secondary.wait_state("partner-down", Duration::from_secs(5))?;
    let down_at = rel.my_stos as f64;
    println!("partner-down: {} {rel:?}", out.trim());
    ensure!(
        (unix_now() - down_at).abs() < 5.0,
        "STOS of partner-down {down_at} is not now"
    );

    // Before MCLT: only BACKUP leases; 14 clients for 10 of them.
    let relay = pair.relay(&[50])?;
    let before = load(
        env,
        &relay.ns,
        load_bin!(),
        "before-mclt",
        relay.ip,
        secondary.ip,
        0x75,
        14,
        1,
    )?;
    let finished = unix_now();
    ensure!(
        finished < down_at + f64::from(s.mclt),
        "the first load ended {:.1} s after partner-down, past MCLT {}: the check proves nothing",
        finished - down_at,
        s.mclt
    );
    let got: BTreeSet<Ipv4Addr> = before.iter().map(|a| a.ip).collect();
    ensure!(
        got.is_subset(&backup),
        "before MCLT the secondary allocated non-BACKUP addresses: {:?}",
        got.difference(&backup).collect::<Vec<_>>()
    );
    ensure!(
        got.len() == backup.len(),
        "14 new clients got {} of the {} BACKUP leases: {before:?}",
        got.len(),
        backup.len()
    );

    // After MCLT: the primary's FREE leases are the survivor's to give.
    wait_until(
        "MCLT to pass since partner-down",
        Duration::from_secs(u64::from(s.mclt) + 5),
        || (unix_now() > down_at + f64::from(s.mclt) + 1.0).then_some(()),
    )?;
    let after = load(
        env,
        &relay.ns,
        load_bin!(),
        "after-mclt",
        relay.ip,
        secondary.ip,
        0x76,
        4,
        2,
    )?;
    ensure!(
        after.len() == 4,
        "after MCLT 4 new clients got {} ACKs: {after:?}",
        after.len()
    );
    for a in &after {
        ensure!(
            primary_free.contains(&a.ip),
            "after MCLT {} got {}, not one of the primary's FREE leases",
            a.mac,
            a.ip
        );
    }
    // The status counts it: 14 leased (the first 10 lasted MCLT, as every first lease in a
    // failover pool, so they may have expired by now), 6 FREE left, no BACKUP.
    let mut last = None;
    wait_until(
        "the secondary's status to count 14 leased, 6 free, 0 backup",
        Duration::from_secs(5),
        || {
            let lan = secondary.lan().ok()?;
            let done = lan.active + lan.expired == 14 && lan.free == 6 && lan.backup == 0;
            last = Some(lan);
            done.then_some(())
        },
    )
    .with_context(|| format!("last status: {last:?}"))?;
    Ok(())
}
