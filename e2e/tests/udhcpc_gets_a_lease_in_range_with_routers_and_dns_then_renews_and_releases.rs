//! busybox udhcpc against dhcpair on one link: a lease with the pool's options, a unicast
//! RENEW (SIGUSR1; udhcpc itself would wait at least 61 s) and a RELEASE (SIGUSR2).

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use dhcpair_e2e::{scenario, Lan, Net24, Server, TestEnv, Udhcpc};

#[test]
fn udhcpc_gets_a_lease_in_range_with_routers_and_dns_then_renews_and_releases() {
    scenario(
        "udhcpc_gets_a_lease_in_range_with_routers_and_dns_then_renews_and_releases",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let lan = Lan::new(Net24::new(10, 61, 2))?;
    let server = Server::start(env, &lan.server, "server", common::lan_config(&lan, 10))?;
    let mac = lan.client.mac(lan.client_if())?;

    let client = Udhcpc::start(env, &lan.client, lan.client_if())?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = common::check_bound(&lan, &bound, 10)?;
    let first = common::check_lease(&server, ip, &mac, "active")?;

    // Let a second pass so the renewed lease ends later than the first.
    dhcpair_e2e::wait_until("a second to pass", Duration::from_secs(3), || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64;
        (now > first.starts.unwrap_or(0) + 1).then_some(())
    })?;
    let n = client.events.count();
    client.renew()?;
    let renew = client.events.wait(n, &["RENEW"], Duration::from_secs(15))?;
    ensure!(renew.ip() == Some(ip), "renewed {:?}, had {ip}", renew.ip());
    let renewed = common::check_lease(&server, ip, &mac, "active")?;
    ensure!(
        renewed.ends > first.ends,
        "the renew did not extend the lease: {renewed:?}, was {first:?}"
    );

    let n = client.events.count();
    client.release()?;
    client
        .events
        .wait(n, &["DECONFIG"], Duration::from_secs(5))?;
    ensure!(
        client.log().contains("sending release"),
        "udhcpc did not send a release:\n{}",
        client.log()
    );
    let pool = common::wait_released(&server, ip)?;
    ensure!(pool.total == 100, "status after release: {pool:?}");
    Ok(())
}
