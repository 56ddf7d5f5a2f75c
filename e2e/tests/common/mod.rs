//! Checks shared by the scenarios (each test file is its own crate and uses a subset).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dhcpair_config::raw::RawConfig;
use dhcpair_e2e::{pool, server_config, wait_until, Event, Lan, Lease, Net24, PoolStatus, Server};

/// The range every single-link scenario serves: `.100` to `.199`.
pub const FIRST: u8 = 100;
pub const LAST: u8 = 199;

/// One pool `lan` on the link with routers `.1`, DNS `.53`, domain example.org.
pub fn lan_config(lan: &Lan, lease_time: u32) -> RawConfig {
    pool_config(lan.net, lan.server_if(), lease_time)
}

/// [`lan_config`] for a server on `net` serving interface `server_if`.
pub fn pool_config(net: Net24, server_if: &str, lease_time: u32) -> RawConfig {
    let mut config = server_config(&[server_if], net.host(1));
    let mut p = pool("lan", net, FIRST, LAST);
    p.options.routers = Some(vec![net.host(1)]);
    p.options.domain_name_servers = Some(vec![net.host(53)]);
    p.options.domain_name = Some("example.org".into());
    p.default_lease_time = Some(lease_time);
    p.max_lease_time = Some(lease_time * 6);
    config.pools.push(p);
    config
}

/// A BOUND event carries an address from the range, the pool's options and the lease time,
/// and the address is on the client's interface.
pub fn check_bound(lan: &Lan, ev: &Event, lease_time: u32) -> Result<Ipv4Addr> {
    let net = lan.net;
    let ip = ev
        .ip()
        .ok_or_else(|| anyhow!("{} without an address: {ev:?}", ev.reason()))?;
    ensure!(
        net.contains(ip) && (FIRST..=LAST).contains(&ip.octets()[3]),
        "{ip} is not in the range {}..{}",
        net.host(FIRST),
        net.host(LAST)
    );
    ensure!(
        ev.routers() == vec![net.host(1)],
        "routers {:?}",
        ev.routers()
    );
    ensure!(ev.dns() == vec![net.host(53)], "dns {:?}", ev.dns());
    ensure!(
        ev.domain() == Some("example.org"),
        "domain {:?}",
        ev.domain()
    );
    ensure!(
        ev.lease_time() == Some(lease_time),
        "lease time {:?}",
        ev.lease_time()
    );
    ensure!(
        ev.server_id() == Some(net.host(1)),
        "server id {:?}",
        ev.server_id()
    );
    let on_link = format!("{ip}/24");
    let addrs = lan.client.addrs(lan.client_if());
    ensure!(
        addrs.contains(&on_link),
        "{on_link} not on the client interface: {addrs:?}"
    );
    Ok(ip)
}

/// The server's row for `ip`: in `state`, for `mac`.
pub fn check_lease(server: &Server, ip: Ipv4Addr, mac: &str, state: &str) -> Result<Lease> {
    let lease = server
        .lease(ip)?
        .ok_or_else(|| anyhow!("server has no lease for {ip}: {:?}", server.leases()))?;
    ensure!(lease.state == state, "expected {state}: {lease:?}");
    ensure!(
        lease.hardware_address.as_deref() == Some(mac),
        "lease {lease:?} is not for the client {mac}"
    );
    Ok(lease)
}

/// Wait until the server's lease for `ip` is `released`, and `/v1/status` (republished every
/// second) counts it.
pub fn wait_released(server: &Server, ip: Ipv4Addr) -> Result<PoolStatus> {
    wait_until(
        format!("lease {ip} released"),
        Duration::from_secs(5),
        || {
            server
                .lease(ip)
                .ok()
                .flatten()
                .filter(|l| l.state == "released")
        },
    )?;
    wait_until(
        "/v1/status to count the release",
        Duration::from_secs(5),
        || {
            let status = server.status().ok()?;
            status
                .pool("lan")
                .filter(|p| p.active == 0 && p.released == 1)
                .cloned()
        },
    )
}
