//! Interop with Debian's ISC dhcpd 4.4.3 as the secondary: both start empty, reach NORMAL (ISC
//! logs `failover peer pair: I move from recover-done to normal`), the dhcpair primary gives
//! half of the pool to ISC (ISC's lease file counts free ≈ backup, as dhcpair's status does),
//! and clients served by either side, split by the RFC 3074 hash, are active on the other.

use std::time::Duration;

use anyhow::Result;
use dhcpair_config::raw::Role;
use dhcpair_e2e::failover::{check_mixed_pair, PairNet, PairSettings};
use dhcpair_e2e::{load_bin, scenario, Net24, TestEnv};

#[test]
fn dhcpair_primary_and_isc_secondary_reach_normal_and_share_leases() {
    scenario(
        "dhcpair_primary_and_isc_secondary_reach_normal_and_share_leases",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 8))?;
    check_mixed_pair(
        env,
        &pair,
        Role::Primary,
        &PairSettings::default(),
        load_bin!(),
        Duration::from_secs(10),
    )
}
