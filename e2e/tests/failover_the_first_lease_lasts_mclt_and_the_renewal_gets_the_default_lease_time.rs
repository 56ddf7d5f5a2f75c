//! The MCLT rule as a real client sees it (draft-12 §5.2.2, ISC `ack_lease`): a server may
//! give a new client no more than MCLT, because its partner has not heard of the lease yet;
//! the BNDUPD it sends tells the partner a potential expiration well past the default lease
//! time, so once the partner has acknowledged it the renewal may run the full default lease
//! time. Asserted on option 51 as ISC dhclient receives it (`new_dhcp_lease_time` in its hook's
//! environment), for a client of each server's hash buckets.

use std::time::Duration;

use anyhow::{anyhow, ensure, Result};
use dhcpair_e2e::failover::{start_pair, wait_balanced, Member, PairNet, PairSettings};
use dhcpair_e2e::layouts::macs_owned_by;
use dhcpair_e2e::{scenario, Dhclient, Net24, TestEnv};

#[test]
fn the_first_lease_lasts_mclt_and_the_renewal_gets_the_default_lease_time() {
    scenario(
        "the_first_lease_lasts_mclt_and_the_renewal_gets_the_default_lease_time",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 72, 6))?;
    let s = PairSettings {
        mclt: 10,
        lease_time: 40,
        // dhclient's `secs` grows with its retries: keep every server to its own buckets.
        load_balance_max_seconds: 30,
        ..PairSettings::default()
    };
    let (primary, secondary) = start_pair(env, &pair, &s)?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;

    let mut clients = Vec::new();
    for (server, owned_by_primary) in [(&primary, true), (&secondary, false)] {
        let mac = macs_owned_by(0x66, owned_by_primary, s.split, 1)
            .pop()
            .ok_or_else(|| anyhow!("no MAC for the {}", server.name()))?;
        let (ns, iface) = pair.client(Some(&mac))?;
        let client = Dhclient::start(env, &ns, &iface)?;
        clients.push((server, mac, ns, client));
    }
    for (server, mac, _ns, client) in &clients {
        check_client(server, mac, client, &s)?;
    }
    Ok(())
}

fn check_client(server: &Member, mac: &str, client: &Dhclient, s: &PairSettings) -> Result<()> {
    let bound = client.events.wait(0, &["BOUND"], Duration::from_secs(20))?;
    let ip = bound
        .ip()
        .ok_or_else(|| anyhow!("BOUND without an address: {bound:?}"))?;
    println!(
        "{mac}: BOUND {ip} from {:?}, option 51 = {:?}",
        bound.server_id(),
        bound.lease_time()
    );
    ensure!(
        bound.server_id() == Some(server.ip),
        "{mac} belongs to the {} ({}) by the hash, but was bound by {:?}",
        server.name(),
        server.ip,
        bound.server_id()
    );
    ensure!(
        bound.lease_time() == Some(s.mclt),
        "the first lease of {mac} lasts {:?} s, expected MCLT = {} s (the default is {} s)",
        bound.lease_time(),
        s.mclt,
        s.lease_time
    );
    // T1 is half of the lease: the RENEW comes about MCLT/2 after BOUND.
    let since = client
        .events
        .all()
        .iter()
        .position(|e| e.reason() == "BOUND")
        .map_or(0, |i| i + 1);
    let renewed = client.events.wait(
        since,
        &["RENEW", "REBIND"],
        Duration::from_secs(u64::from(s.mclt) + 10),
    )?;
    println!(
        "{mac}: {} {:?} from {:?}, option 51 = {:?}",
        renewed.reason(),
        renewed.ip(),
        renewed.server_id(),
        renewed.lease_time()
    );
    ensure!(
        renewed.reason() == "RENEW"
            && renewed.ip() == Some(ip)
            && renewed.server_id() == Some(server.ip),
        "{mac} did not renew {ip} with the {}: {} of {:?} from {:?}",
        server.name(),
        renewed.reason(),
        renewed.ip(),
        renewed.server_id()
    );
    ensure!(
        renewed.lease_time() == Some(s.lease_time),
        "the renewal of {mac} lasts {:?} s, expected the default lease time {} s",
        renewed.lease_time(),
        s.lease_time
    );
    Ok(())
}
