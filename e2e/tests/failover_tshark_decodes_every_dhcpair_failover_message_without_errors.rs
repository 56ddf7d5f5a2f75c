//! Wireshark's failover dissector (`dhcpfo`) as an independent check of dhcpair's encoder:
//! tshark captures TCP port 647 on dhcpair's link while dhcpair (primary) and ISC dhcpd
//! (secondary) start empty, synchronise, balance, serve clients on both sides and exchange
//! CONTACTs. Every frame dhcpair sent with TCP payload must decode as failover messages (or
//! be a segment of one tshark reassembled), none may be malformed or carry an expert warning,
//! and the expected message types must all be there.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Result};
use dhcpair_config::raw::Role;
use dhcpair_e2e::failover::{
    fo_frames, fo_frames_so_far, fo_problems, fo_type_name, load_both, FailoverCapture, MixedPair,
    PairNet, PairSettings,
};
use dhcpair_e2e::{load_bin, scenario, wait_until, Net24, TestEnv};

#[test]
fn tshark_decodes_every_dhcpair_failover_message_without_errors() {
    scenario(
        "tshark_decodes_every_dhcpair_failover_message_without_errors",
        body,
    );
}

fn body(env: &TestEnv) -> Result<()> {
    let pair = PairNet::new(Net24::new(10, 70, 11))?;
    let s = PairSettings {
        max_response_delay: 3,
        ..PairSettings::default()
    };
    let mut capture = FailoverCapture::start(env, &pair.primary.ns, &pair.primary.iface)?;
    let mixed = MixedPair::start(env, &pair, Role::Primary, &s)?;
    let ours = pair.primary.ip;
    let relay = pair.relay(&[50, 51])?;
    let [by_dhcpair, by_isc] = load_both(
        env,
        &relay.ns,
        load_bin!(),
        "load",
        [pair.net.host(50), pair.net.host(51)],
        [pair.primary.ip, pair.secondary.ip],
        0x7e,
        16,
    )?;
    ensure!(
        !by_dhcpair.is_empty() && !by_isc.is_empty(),
        "both sides must serve clients: dhcpair {by_dhcpair:?}, ISC {by_isc:?}"
    );
    // Every BNDUPD acknowledged both ways, then one CONTACT round (receive-timer / 3 = 1 s).
    wait_until(
        "dhcpair to have no unacked updates",
        Duration::from_secs(5),
        || {
            let r = mixed.dhcpair.relationship().ok()?;
            (r.unacked_updates == 0 && r.queued_updates == 0).then_some(())
        },
    )?;
    let contact_before = count_types(&capture, ours, 11);
    wait_until("a CONTACT from dhcpair", Duration::from_secs(5), || {
        (count_types(&capture, ours, 11) > contact_before).then_some(())
    })?;
    capture.stop()?;

    let frames = fo_frames(&capture.file)?;
    let from_us: Vec<_> = frames.iter().filter(|f| f.src == ours).collect();
    let undecoded: Vec<_> = from_us
        .iter()
        .filter(|f| f.types.is_empty() && f.reassembled_in.is_none())
        .collect();
    ensure!(
        undecoded.is_empty(),
        "frames from dhcpair that tshark does not decode as dhcpfo: {undecoded:?}"
    );
    let problems = fo_problems(&capture.file, ours)?;
    ensure!(
        problems.is_empty(),
        "tshark marks dhcpair frames malformed or with expert warnings:\n{}",
        problems.join("\n")
    );
    let mut counts = std::collections::BTreeMap::new();
    for t in from_us.iter().flat_map(|f| f.types.iter()) {
        *counts.entry(fo_type_name(*t)).or_insert(0u32) += 1;
    }
    println!(
        "{} frames from dhcpair decoded: {counts:?}; {} frames in all",
        from_us.len(),
        frames.len()
    );
    let seen: BTreeSet<&str> = counts.keys().copied().collect();
    for t in [
        "CONNECT",
        "STATE",
        "UPDREQALL",
        "BNDUPD",
        "BNDACK",
        "UPDDONE",
        "CONTACT",
    ] {
        ensure!(
            seen.contains(t),
            "no {t} from dhcpair in the capture: {counts:?}"
        );
    }
    // And ISC's side decodes too (a sanity check of the capture itself).
    let from_isc = frames.iter().filter(|f| f.src == pair.secondary.ip).count();
    ensure!(from_isc > 0, "no frames from ISC in the capture");
    Ok(())
}

/// Failover messages of `kind` from `src` captured so far (reads the file being written).
fn count_types(capture: &FailoverCapture, src: std::net::Ipv4Addr, kind: u8) -> usize {
    fo_frames_so_far(&capture.file)
        .iter()
        .filter(|f| f.src == src)
        .flat_map(|f| f.types.iter())
        .filter(|t| **t == kind)
        .count()
}
