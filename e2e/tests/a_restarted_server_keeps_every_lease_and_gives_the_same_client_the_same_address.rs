//! Leases survive a graceful restart: every row of the lease database is the same after it,
//! `/v1/status` counts the same, a real client that forgot its lease (fresh DISCOVER) gets its
//! old address back, and so does each of 40 relay-mode clients.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dhcpair_e2e::load::Ack;
use dhcpair_e2e::{
    load_bin, scenario, Dhclient, LoadClient, LoadOptions, Net24, Netns, Server, Switch, TestEnv,
};

const CLIENTS: u32 = 40;

#[test]
fn a_restarted_server_keeps_every_lease_and_gives_the_same_client_the_same_address() {
    scenario(
        "a_restarted_server_keeps_every_lease_and_gives_the_same_client_the_same_address",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let net = Net24::new(10, 65, 1);
    let switch = Switch::new()?;
    let server_ns = Netns::new()?;
    let server_if = switch.attach(&server_ns)?;
    server_ns.addr(&server_if, &net.addr(1))?;
    let client_ns = Netns::new()?;
    let client_if = switch.attach(&client_ns)?;
    let load_ns = Netns::new()?;
    let load_if = switch.attach(&load_ns)?;
    load_ns.addr(&load_if, &net.addr(2))?;

    let mut server = Server::start(
        env,
        &server_ns,
        "server",
        common::pool_config(net, &server_if, 3600),
    )?;

    let mut client = Dhclient::start(env, &client_ns, &client_if)?;
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let client_ip = bound
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address"))?;
    let first = load(env, &load_ns, net, "load-1")?;

    let before = server.leases()?;
    ensure!(
        before.iter().filter(|l| l.state == "active").count() == CLIENTS as usize + 1,
        "expected {} active leases before the restart: {before:?}",
        CLIENTS + 1
    );
    let status_before = wait_status(&server, CLIENTS as u64 + 1)?;

    server.restart()?;
    let after = server.leases()?;
    ensure!(
        after == before,
        "lease rows changed across the restart:\nbefore {before:?}\nafter  {after:?}"
    );
    let status_after = wait_status(&server, CLIENTS as u64 + 1)?;
    ensure!(
        status_after == status_before,
        "status {status_after:?} was {status_before:?}"
    );

    // The real client forgets its lease, so it DISCOVERs afresh rather than INIT-REBOOTs.
    client.kill();
    client.forget_lease();
    client_ns.ip(&["-4", "addr", "flush", "dev", &client_if])?;
    let n = client.events.count();
    client.restart()?;
    let again = client.events.wait(n, &["BOUND"], Duration::from_secs(20))?;
    ensure!(
        again.ip() == Some(client_ip),
        "after the restart the client got {:?}, had {client_ip}",
        again.ip()
    );

    let second = load(env, &load_ns, net, "load-2")?;
    ensure!(second == first, "relay-mode clients got different addresses after the restart:\nbefore {first:?}\nafter  {second:?}");
    Ok(())
}

/// Run the 40 relay-mode clients to completion; mac -> ip.
fn load(
    env: &TestEnv,
    ns: &Netns,
    net: Net24,
    name: &str,
) -> Result<BTreeMap<String, std::net::Ipv4Addr>> {
    let mut opts = LoadOptions::new(
        net.host(2),
        net.host(1),
        CLIENTS,
        env.path(&format!("{name}.acks")),
    );
    opts.mac_tag = 0x65;
    opts.deadline = Duration::from_secs(15);
    let mut run = LoadClient::start(env, ns, name, load_bin!(), &opts)?;
    let report = run.wait(Duration::from_secs(20))?;
    let acks = run.acks();
    ensure!(
        report.acked == CLIENTS && acks.len() == CLIENTS as usize,
        "{name}: {report:?}, {} ACKs recorded",
        acks.len()
    );
    Ok(acks.into_iter().map(|Ack { mac, ip }| (mac, ip)).collect())
}

fn wait_status(server: &Server, active: u64) -> Result<dhcpair_e2e::PoolStatus> {
    dhcpair_e2e::wait_until(
        format!("/v1/status to count {active} active"),
        Duration::from_secs(5),
        || {
            server
                .status()
                .ok()?
                .pool("lan")
                .filter(|p| p.active == active)
                .cloned()
        },
    )
}
