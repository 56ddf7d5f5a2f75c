//! ISC dhcpd is the primary, dhcpair the secondary. A dhclient whose MAC hashes to the primary
//! gets its lease from ISC. ISC dies (SIGKILL); dhcpair moves to COMMUNICATIONS-INTERRUPTED
//! and, when the client's RENEW to ISC goes unanswered and it rebinds, dhcpair extends the
//! lease ISC gave (it knows it from ISC's BNDUPD) under its own server identifier.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use dhcpair_config::raw::Role;
use dhcpair_e2e::failover::{mac_for, MixedPair, PairNet, PairSettings};
use dhcpair_e2e::{scenario, wait_until, Dhclient, Net24, TestEnv};

#[test]
fn stopping_isc_lets_dhcpair_renew_its_clients() {
    scenario("stopping_isc_lets_dhcpair_renew_its_clients", body);
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 10))?;
    let s = PairSettings::default();
    let mut mixed = MixedPair::start(env, &pair, Role::Secondary, &s)?;
    let isc_ip = pair.primary.ip;
    let dhcpair_ip = pair.secondary.ip;

    let mac = mac_for(0x7d, true, s.split);
    let (client_ns, client_if) = pair.client(Some(&mac))?;
    let client = Dhclient::start(env, &client_ns, &client_if)?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = bound
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address"))?;
    ensure!(
        bound.server_id() == Some(isc_ip),
        "{mac} hashes to the primary (ISC) but was bound by {:?}",
        bound.server_id()
    );
    // ISC told dhcpair about the lease before the kill.
    wait_until(
        format!("dhcpair to hold ISC's lease {ip}"),
        Duration::from_secs(5),
        || {
            let l = mixed.dhcpair.server.lease(ip).ok()??;
            (l.state == "active" && l.hardware_address.as_deref() == Some(mac.as_str()))
                .then_some(())
        },
    )?;

    let after_bound = client.events.count();
    mixed.isc.kill9();
    let killed = Instant::now();
    mixed.dhcpair.wait_state(
        "communications-interrupted",
        Duration::from_secs(u64::from(s.max_response_delay) + 2),
    )?;
    println!(
        "dhcpair in communications-interrupted {:.1?} after ISC was killed",
        killed.elapsed()
    );

    let renewed = client.events.wait(
        after_bound,
        &["RENEW", "REBIND"],
        Duration::from_secs(u64::from(s.mclt) + 15),
    )?;
    println!(
        "client {mac} {ip}: {} from {:?} {:.1?} after the kill",
        renewed.reason(),
        renewed.server_id(),
        killed.elapsed()
    );
    ensure!(
        renewed.ip() == Some(ip) && renewed.server_id() == Some(dhcpair_ip),
        "the client was not renewed by dhcpair: {} of {:?} from {:?}",
        renewed.reason(),
        renewed.ip(),
        renewed.server_id()
    );
    let lease = mixed
        .dhcpair
        .server
        .lease(ip)?
        .ok_or_else(|| anyhow!("dhcpair has no lease for {ip}"))?;
    ensure!(
        lease.state == "active" && lease.hardware_address.as_deref() == Some(mac.as_str()),
        "dhcpair's lease after the renewal: {lease:?}"
    );
    Ok(())
}
