//! RFC 3074 load balancing in NORMAL: 16 relay-mode clients send the same DISCOVERs to both
//! servers of a dhcpair pair (`secs` below `loadBalanceMaxSeconds`), so each server answers
//! only the clients whose hash bucket is its own (split 128: buckets 0..127 are the
//! primary's). Both servers ACK some; every client is ACKed by exactly the server its bucket
//! names; and every ACKed lease is active, for its MAC, in both servers' databases.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use dhcpair_e2e::failover::{
    dhcpair_active, load_both, load_mac, primary_serves, start_pair, wait_active, wait_balanced,
    PairNet, PairSettings,
};
use dhcpair_e2e::{load_bin, mac_string, scenario, Net24, TestEnv};

const CLIENTS: u32 = 16;
const TAG: u8 = 0x72;

#[test]
fn clients_split_between_both_servers_by_the_hash() {
    scenario("clients_split_between_both_servers_by_the_hash", body);
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 2))?;
    let s = PairSettings::default();
    let (primary, secondary) = start_pair(env, &pair, &s)?;
    wait_balanced(&primary, &secondary, 2, Duration::from_secs(10))?;

    let relay = pair.relay(&[50, 51])?;
    let [by_primary, by_secondary] = load_both(
        env,
        &relay.ns,
        load_bin!(),
        "load",
        [pair.net.host(50), pair.net.host(51)],
        [primary.ip, secondary.ip],
        TAG,
        CLIENTS,
    )?;
    ensure!(
        !by_primary.is_empty() && !by_secondary.is_empty(),
        "both servers must ACK some clients: primary {by_primary:?}, secondary {by_secondary:?}"
    );

    let mut expected_primary = BTreeSet::new();
    let mut expected_secondary = BTreeSet::new();
    for i in 0..CLIENTS {
        let mac = load_mac(TAG, i);
        if primary_serves(&mac, s.split) {
            expected_primary.insert(mac_string(&mac));
        } else {
            expected_secondary.insert(mac_string(&mac));
        }
    }
    let got_primary: BTreeSet<String> = by_primary.iter().map(|a| a.mac.clone()).collect();
    let got_secondary: BTreeSet<String> = by_secondary.iter().map(|a| a.mac.clone()).collect();
    ensure!(
        got_primary == expected_primary && got_secondary == expected_secondary,
        "the split does not follow the RFC 3074 hash:\n primary ACKed   {got_primary:?}\n hash says       {expected_primary:?}\n secondary ACKed {got_secondary:?}\n hash says       {expected_secondary:?}"
    );

    let all: Vec<_> = by_primary.iter().chain(&by_secondary).cloned().collect();
    let ips: BTreeSet<_> = all.iter().map(|a| a.ip).collect();
    ensure!(
        ips.len() == all.len(),
        "an address was ACKed twice: {all:?}"
    );
    for m in [&primary, &secondary] {
        wait_active(m.name(), &all, Duration::from_secs(5), || dhcpair_active(m))?;
    }
    // Each server allocated from its own free state: the primary's ACKs were FREE leases on
    // the primary, the secondary's were BACKUP; the counts agree on both sides afterwards.
    let counts = wait_balanced(&primary, &secondary, 4, Duration::from_secs(5))?;
    ensure!(
        counts.active == u64::from(CLIENTS),
        "{} active after {CLIENTS} ACKs: {counts:?}",
        counts.active
    );
    Ok(())
}
