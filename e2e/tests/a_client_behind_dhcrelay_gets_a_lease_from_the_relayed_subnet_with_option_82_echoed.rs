//! client ns -- relay ns (ISC dhcrelay -a) -- server ns. The server serves its own link and the
//! relayed one; the client must get an address of the relayed subnet (chosen by giaddr), and the
//! server's replies must carry the relay's option 82 back unchanged (RFC 3046 §2.2), as
//! tshark sees them on the relay's server-facing link.

use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dhcpair_e2e::relay::{hex, Packet};
use dhcpair_e2e::{
    pool, scenario, server_config, Dhclient, Dhcrelay, Net24, Netns, Server, TestEnv, Tshark, Veth,
};

#[test]
fn a_client_behind_dhcrelay_gets_a_lease_from_the_relayed_subnet_with_option_82_echoed() {
    scenario(
        "a_client_behind_dhcrelay_gets_a_lease_from_the_relayed_subnet_with_option_82_echoed",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let server_net = Net24::new(10, 62, 1);
    let client_net = Net24::new(10, 62, 2);
    let server_ns = Netns::new()?;
    let relay_ns = Netns::new()?;
    let client_ns = Netns::new()?;
    let up = Veth::new(&server_ns, &relay_ns)?;
    let down = Veth::new(&relay_ns, &client_ns)?;
    server_ns.addr(&up.a, &server_net.addr(1))?;
    relay_ns.addr(&up.b, &server_net.addr(2))?;
    relay_ns.addr(&down.a, &client_net.addr(1))?;
    relay_ns.forwarding()?;
    server_ns.route(&client_net.cidr(), server_net.host(2))?;

    let mut config = server_config(&[&up.a], server_net.host(1));
    let mut local = pool("local", server_net, 100, 199);
    local.options.routers = Some(vec![server_net.host(1)]);
    let mut relayed = pool("relayed", client_net, 100, 199);
    relayed.options.routers = Some(vec![client_net.host(1)]);
    relayed.options.domain_name_servers = Some(vec![server_net.host(53)]);
    relayed.default_lease_time = Some(600);
    config.pools.push(local);
    config.pools.push(relayed);
    let server = Server::start(env, &server_ns, "server", config)?;

    let capture = Tshark::start(env, &relay_ns, &up.b)?;
    let _relay = Dhcrelay::start(env, &relay_ns, &down.a, &up.b, server_net.host(1))?;
    let mac = client_ns.mac(&down.b)?;
    let client = Dhclient::start(env, &client_ns, &down.b)?;

    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = bound
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address"))?;
    ensure!(
        client_net.contains(ip) && (100..=199).contains(&ip.octets()[3]),
        "{ip} is not from the relayed range {}..{}",
        client_net.host(100),
        client_net.host(199)
    );
    ensure!(
        bound.routers() == vec![client_net.host(1)],
        "routers {:?}",
        bound.routers()
    );
    ensure!(
        bound.dns() == vec![server_net.host(53)],
        "dns {:?}",
        bound.dns()
    );
    let lease = server
        .lease(ip)?
        .ok_or_else(|| anyhow!("server has no lease for {ip}"))?;
    ensure!(
        lease.state == "active"
            && lease.pool.as_deref() == Some("relayed")
            && lease.hardware_address.as_deref() == Some(mac.as_str()),
        "server lease {lease:?} (client {mac})"
    );

    // dhcrelay -a puts the downstream interface name in sub-option 1 (circuit id).
    let circuit = hex(&down.a);
    let ack = capture.wait_for(
        "the server's ACK on the relay's uplink",
        Duration::from_secs(5),
        |p| p.msg_type == Some(Packet::ACK) && p.chaddr == mac,
    )?;
    let request = capture
        .packets()
        .into_iter()
        .find(|p| p.msg_type == Some(Packet::REQUEST) && p.chaddr == mac)
        .ok_or_else(|| anyhow!("no relayed REQUEST captured: {:?}", capture.packets()))?;
    ensure!(
        request.circuit_id.as_deref() == Some(circuit.as_str()),
        "the relay did not add option 82 as expected: {request:?}"
    );
    for reply in capture
        .packets()
        .into_iter()
        .filter(|p| matches!(p.msg_type, Some(Packet::OFFER) | Some(Packet::ACK)))
    {
        ensure!(
            reply.circuit_id == request.circuit_id && reply.remote_id == request.remote_id,
            "option 82 not echoed: request {request:?}, reply {reply:?}"
        );
        ensure!(
            reply.giaddr == Some(client_net.host(1)) && reply.dst == client_net.host(1).to_string(),
            "reply not sent to the relay (giaddr): {reply:?}"
        );
    }
    ensure!(ack.yiaddr == Some(ip), "ACK {ack:?} vs bound {ip}");
    Ok(())
}
