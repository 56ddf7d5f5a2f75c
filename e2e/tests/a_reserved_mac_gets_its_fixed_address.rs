//! A client whose MAC has a reservation gets the reserved address (outside the dynamic range),
//! with the pool's options; a client without one on the same link gets a dynamic address.

mod common;

use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dhcpair_config::raw::RawReservation;
use dhcpair_e2e::{scenario, Net24, Netns, Server, Switch, TestEnv, Udhcpc};

const RESERVED_MAC: &str = "52:54:00:12:34:56";

#[test]
fn a_reserved_mac_gets_its_fixed_address() {
    scenario("a_reserved_mac_gets_its_fixed_address", body);
}

fn body(env: &TestEnv) -> Result<()> {
    let net = Net24::new(10, 63, 1);
    let switch = Switch::new()?;
    let server_ns = Netns::new()?;
    let server_if = switch.attach(&server_ns)?;
    server_ns.addr(&server_if, &net.addr(1))?;
    let reserved_ns = Netns::new()?;
    let reserved_if = switch.attach(&reserved_ns)?;
    reserved_ns.set_mac(&reserved_if, RESERVED_MAC)?;
    let other_ns = Netns::new()?;
    let other_if = switch.attach(&other_ns)?;

    let mut config = common::pool_config(net, &server_if, 600);
    let fixed = net.host(10);
    let reservation: RawReservation = serde_yaml::from_str(&format!(
        "{{hardwareAddress: \"{RESERVED_MAC}\", ipAddress: {fixed}}}"
    ))?;
    config.pools[0].reservations.push(reservation);
    let server = Server::start(env, &server_ns, "server", config)?;

    let reserved = Udhcpc::start(env, &reserved_ns, &reserved_if)?;
    let other = Udhcpc::start(env, &other_ns, &other_if)?;
    let bound = reserved
        .events
        .wait(0, &["BOUND"], Duration::from_secs(20))?;
    ensure!(
        bound.ip() == Some(fixed),
        "reserved client got {:?}, not {fixed}",
        bound.ip()
    );
    ensure!(
        bound.routers() == vec![net.host(1)],
        "routers {:?}",
        bound.routers()
    );
    ensure!(bound.dns() == vec![net.host(53)], "dns {:?}", bound.dns());
    let addrs = reserved_ns.addrs(&reserved_if);
    ensure!(
        addrs.contains(&format!("{fixed}/24")),
        "client interface has {addrs:?}"
    );

    let dynamic = other.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = dynamic
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address"))?;
    ensure!(
        (common::FIRST..=common::LAST).contains(&ip.octets()[3]),
        "the unreserved client got {ip}, outside the dynamic range"
    );
    // If the server keeps a row for the reserved address, it names the reserved client.
    if let Some(l) = server.lease(fixed)? {
        ensure!(
            l.hardware_address.as_deref() == Some(RESERVED_MAC) && l.state == "active",
            "row for the reserved address: {l:?}"
        );
    }
    Ok(())
}
