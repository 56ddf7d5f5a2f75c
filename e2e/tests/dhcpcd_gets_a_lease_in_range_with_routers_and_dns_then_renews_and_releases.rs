//! dhcpcd 9 against dhcpair on one link: a lease with the pool's options, a real RENEW at T1
//! and a RELEASE (`dhcpcd -k`) the server records.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use dhcpair_e2e::{scenario, Dhcpcd, Lan, Net24, Server, TestEnv};

#[test]
fn dhcpcd_gets_a_lease_in_range_with_routers_and_dns_then_renews_and_releases() {
    scenario(
        "dhcpcd_gets_a_lease_in_range_with_routers_and_dns_then_renews_and_releases",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let lan = Lan::new(Net24::new(10, 61, 3))?;
    let server = Server::start(env, &lan.server, "server", common::lan_config(&lan, 10))?;
    let mac = lan.client.mac(lan.client_if())?;

    let mut client = Dhcpcd::start(env, &lan.client, lan.client_if())?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = common::check_bound(&lan, &bound, 10)?;
    let first = common::check_lease(&server, ip, &mac, "active")?;

    let n = client.events.count();
    let renew = client.events.wait(n, &["RENEW"], Duration::from_secs(25))?;
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
        .wait(n, &["RELEASE", "STOP"], Duration::from_secs(5))?;
    client.process().wait_exit(Duration::from_secs(5))?;
    let pool = common::wait_released(&server, ip)?;
    ensure!(pool.total == 100, "status after release: {pool:?}");
    Ok(())
}
