//! The primary dies (SIGKILL). The secondary notices (TCP closed, at the latest after
//! maxResponseDelay) and moves to COMMUNICATIONS-INTERRUPTED, where it serves every client:
//! a dhclient whose MAC hashes to the primary, and so got its lease from the primary, renews
//! it with the secondary when it rebinds (draft-12 §5.4 lets either server extend a lease up
//! to MCLT past what the partner knows); a new client gets an address from the secondary's
//! own BACKUP leases.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use dhcpair_e2e::failover::{load, mac_for, start_pair, wait_balanced, PairNet, PairSettings};
use dhcpair_e2e::{load_bin, scenario, Dhclient, Net24, TestEnv};

#[test]
fn killing_the_primary_leaves_the_secondary_serving_renewals_and_new_clients_from_its_backup_pool()
{
    scenario(
        "killing_the_primary_leaves_the_secondary_serving_renewals_and_new_clients_from_its_backup_pool",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 3))?;
    let s = PairSettings::default();
    let (mut primary, secondary) = start_pair(env, &pair, &s)?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;

    // A client of the primary's hash buckets: in NORMAL only the primary answers it.
    let mac = mac_for(0x73, true, s.split);
    let (client_ns, client_if) = pair.client(Some(&mac))?;
    let client = Dhclient::start(env, &client_ns, &client_if)?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = bound
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address"))?;
    ensure!(
        bound.server_id() == Some(primary.ip),
        "{mac} hashes to the primary but was bound by {:?}",
        bound.server_id()
    );
    let backup_before = secondary.ips_in("backup")?;
    ensure!(
        !backup_before.is_empty(),
        "the secondary holds no BACKUP lease"
    );

    let after_bound = client.events.count();
    primary.server.kill9();
    let killed = Instant::now();
    let rel = secondary.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(s.max_response_delay) + 2),
    )?;
    println!(
        "secondary in communications-interrupted {:.1?} after the kill: {rel:?}",
        killed.elapsed()
    );
    ensure!(
        !rel.connected,
        "the secondary still reports a link: {rel:?}"
    );

    // The first lease of a failover pair lasts MCLT at most, so the client renews within
    // seconds: RENEW to the dead primary goes unanswered, REBIND (broadcast) reaches the
    // secondary.
    let renewed = client.events.wait(
        after_bound,
        &["RENEW", "REBIND"],
        Duration::from_secs(u64::from(s.mclt) + 15),
    )?;
    println!(
        "client {} {ip} after the kill: {} from {:?}",
        mac,
        renewed.reason(),
        renewed.server_id()
    );
    ensure!(
        renewed.ip() == Some(ip) && renewed.server_id() == Some(secondary.ip),
        "the client was not renewed by the secondary: {} of {:?} from {:?}",
        renewed.reason(),
        renewed.ip(),
        renewed.server_id()
    );
    let lease = secondary
        .server
        .lease(ip)?
        .ok_or_else(|| anyhow!("the secondary has no lease for {ip}"))?;
    ensure!(
        lease.state == "active" && lease.hardware_address.as_deref() == Some(mac.as_str()),
        "the secondary's lease after the renewal: {lease:?}"
    );

    // A new client (any hash bucket: no load balancing outside NORMAL) gets a BACKUP address.
    let relay = pair.relay(&[50])?;
    let acks = load(
        env,
        &relay.ns,
        load_bin!(),
        "new-clients",
        relay.ip,
        secondary.ip,
        0x74,
        2,
        2,
    )?;
    ensure!(acks.len() == 2, "new clients not served in CI: {acks:?}");
    for a in &acks {
        ensure!(
            backup_before.contains(&a.ip),
            "new client {} got {}, which was not one of the secondary's BACKUP leases {backup_before:?}",
            a.mac,
            a.ip
        );
    }
    Ok(())
}
