//! A pool with `deny: [unknownClients]`: a client without a reservation gets no lease (it keeps
//! sending DISCOVERs for a bounded time), while a known (reserved) client on the same link is
//! served, which proves the server is up and answering.

mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use dhcpair_config::raw::RawReservation;
use dhcpair_config::Permit;
use dhcpair_e2e::{scenario, wait_until, Net24, Netns, Server, Switch, TestEnv, Udhcpc};

const KNOWN_MAC: &str = "52:54:00:aa:00:01";
const UNKNOWN_MAC: &str = "52:54:00:bb:00:02";
/// How long the unknown client must go unserved (udhcpc sends a DISCOVER every second).
const REFUSED_FOR: Duration = Duration::from_secs(5);

#[test]
fn a_deny_unknown_clients_pool_refuses_an_unknown_mac() {
    scenario("a_deny_unknown_clients_pool_refuses_an_unknown_mac", body);
}

fn body(env: &TestEnv) -> Result<()> {
    let net = Net24::new(10, 64, 1);
    let switch = Switch::new()?;
    let server_ns = Netns::new()?;
    let server_if = switch.attach(&server_ns)?;
    server_ns.addr(&server_if, &net.addr(1))?;
    let known_ns = Netns::new()?;
    let known_if = switch.attach(&known_ns)?;
    known_ns.set_mac(&known_if, KNOWN_MAC)?;
    let unknown_ns = Netns::new()?;
    let unknown_if = switch.attach(&unknown_ns)?;
    unknown_ns.set_mac(&unknown_if, UNKNOWN_MAC)?;

    let mut config = common::pool_config(net, &server_if, 600);
    let known_ip = net.host(20);
    let reservation: RawReservation = serde_yaml::from_str(&format!(
        "{{hardwareAddress: \"{KNOWN_MAC}\", ipAddress: {known_ip}}}"
    ))?;
    config.pools[0].reservations.push(reservation);
    config.pools[0].deny = vec![Permit::UnknownClients];
    let server = Server::start(env, &server_ns, "server", config)?;

    let started = Instant::now();
    let unknown = Udhcpc::start(env, &unknown_ns, &unknown_if)?;
    let known = Udhcpc::start(env, &known_ns, &known_if)?;
    let bound = known.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    ensure!(
        bound.ip() == Some(known_ip),
        "known client got {:?}",
        bound.ip()
    );

    // Poll for the whole window: the unknown client must never be bound.
    wait_until(
        "the refusal window to pass",
        REFUSED_FOR + Duration::from_secs(1),
        || {
            if let Some(e) = unknown.events.all().iter().find(|e| e.is_bound()) {
                return Some(Err(anyhow::anyhow!("unknown client was bound: {e:?}")));
            }
            (started.elapsed() >= REFUSED_FOR).then_some(Ok(()))
        },
    )??;
    let discovers = unknown.log().matches("broadcasting discover").count();
    ensure!(
        discovers >= 3,
        "the unknown client sent only {discovers} DISCOVERs:\n{}",
        unknown.log()
    );
    let leases = server.leases()?;
    ensure!(
        !leases
            .iter()
            .any(|l| l.hardware_address.as_deref() == Some(UNKNOWN_MAC) && l.state == "active"),
        "the server holds a lease for the unknown client: {leases:?}"
    );
    Ok(())
}
