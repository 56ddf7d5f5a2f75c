//! Persist before reply, tested from outside: a relay-mode load client records every ACK it
//! receives (one unbuffered write each); the server is SIGKILLed mid-run and restarted while the
//! load keeps going. Afterwards every recorded ACK must be in `dhcpair leases --json` as an
//! active lease of that MAC with that IP, and no address may have been ACKed to two MACs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{ensure, Result};
use dhcpair_config::raw::{RawPool, RawRange};
use dhcpair_e2e::{
    load_bin, scenario, server_config, LoadClient, LoadOptions, Netns, Server, TestEnv, Veth,
};

const CLIENTS: u32 = 2000;
/// ACKs recorded before the kill.
const KILL_AFTER: usize = 300;

#[test]
fn kill_9_under_load_loses_no_acked_lease() {
    scenario("kill_9_under_load_loses_no_acked_lease", body);
}

fn body(env: &TestEnv) -> Result<()> {
    let server_ns = Netns::new()?;
    let load_ns = Netns::new()?;
    let link = Veth::new(&server_ns, &load_ns)?;
    let server_ip = Ipv4Addr::new(10, 66, 0, 1);
    let load_ip = Ipv4Addr::new(10, 66, 0, 2);
    server_ns.addr(&link.a, &format!("{server_ip}/16"))?;
    load_ns.addr(&link.b, &format!("{load_ip}/16"))?;

    // A /16 pool with 2048 addresses, more than there are clients.
    let mut config = server_config(&[&link.a], server_ip);
    let mut pool: RawPool = serde_yaml::from_str("{name: lan, subnet: 10.66.0.0/16}")?;
    pool.ranges = vec![RawRange {
        start: Ipv4Addr::new(10, 66, 1, 0),
        end: Ipv4Addr::new(10, 66, 8, 255),
    }];
    pool.default_lease_time = Some(3600);
    config.pools.push(pool);
    let mut server = Server::start(env, &server_ns, "server", config)?;

    let mut opts = LoadOptions::new(load_ip, server_ip, CLIENTS, env.path("load.acks"));
    opts.mac_tag = 0x66;
    opts.concurrency = 64;
    // At most 1000 new clients a second: the run lasts over 2 s however fast the server is,
    // so the kill lands mid-run.
    opts.rate = Some(1000);
    opts.timeout = Duration::from_millis(300);
    opts.retries = 10;
    opts.deadline = Duration::from_secs(40);
    let mut load = LoadClient::start(env, &load_ns, "load", load_bin!(), &opts)?;

    load.wait_acks(KILL_AFTER, Duration::from_secs(20))?;
    server.kill9();
    let at_kill = load.acks().len();
    ensure!(
        at_kill < CLIENTS as usize,
        "the load finished ({at_kill} ACKs) before the kill; the test proves nothing"
    );
    println!("killed the server with SIGKILL after {at_kill} recorded ACKs");
    server.restart()?;
    let report = load.wait(Duration::from_secs(50))?;
    let acks = load.acks();
    println!(
        "load after restart: {report:?}; {} ACKs recorded in all",
        acks.len()
    );
    ensure!(
        acks.len() > at_kill,
        "no ACK after the restart: the restarted server does not serve ({report:?})"
    );

    let leases = server.leases()?;
    let by_ip: BTreeMap<Ipv4Addr, &dhcpair_e2e::Lease> = leases.iter().map(|l| (l.ip, l)).collect();
    let mut acked_to: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    let mut lost = Vec::new();
    for ack in &acks {
        if let Some(other) = acked_to.insert(ack.ip, &ack.mac) {
            ensure!(
                other == ack.mac,
                "{} was ACKed to {other} and to {}",
                ack.ip,
                ack.mac
            );
        }
        match by_ip.get(&ack.ip) {
            Some(l)
                if l.state == "active"
                    && l.hardware_address.as_deref() == Some(ack.mac.as_str()) => {}
            other => lost.push(format!("{} {} -> {:?}", ack.mac, ack.ip, other)),
        }
    }
    ensure!(
        lost.is_empty(),
        "{} of {} ACKed leases are not active for their MAC after kill -9 and restart:\n{}",
        lost.len(),
        acks.len(),
        lost.join("\n")
    );
    let active = leases.iter().filter(|l| l.state == "active").count();
    ensure!(
        active >= acks.len(),
        "{active} active leases for {} ACKs",
        acks.len()
    );
    Ok(())
}
