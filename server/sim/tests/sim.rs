#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The failover pair under the deterministic simulation: one test per fault kind, a random
//! sweep, and the long run for CI.
//!
//! Seeds: `DHCPAIR_SIM_SEEDS=n` (how many), `DHCPAIR_SIM_FIRST_SEED=n`, `DHCPAIR_SIM_SEED=n`
//! (replay one; a failure prints the exact command), `DHCPAIR_SIM_TRACE=n` (events shown).
//!
//! Long run (10,000 random seeds, about a minute on two cores in release):
//! `cargo test -p dhcpair-sim --release --test sim -- --ignored long_simulation`
//!
//! The engine bugs these sweeps found are pinned down one by one in `engine_bugs.rs`.

mod common;

use common::sweep;
use dhcpair_engine::ServerState;
use dhcpair_sim::{FaultKind, Scenario, Side, MAX_RELATIVE_SKEW};

#[test]
fn a_fault_free_pair_reaches_normal_and_serves_every_client() {
    for (sc, r) in sweep(
        "a_fault_free_pair_reaches_normal_and_serves_every_client",
        8,
        Scenario::fault_free,
    ) {
        assert!(
            r.settle_secs.is_some_and(|s| s <= 60),
            "seed {}: NORMAL only after {:?} s",
            sc.seed,
            r.settle_secs
        );
        assert_eq!(
            r.clients_bound_at_end, sc.clients,
            "seed {}: not every client holds an address: {r:?}",
            sc.seed
        );
        // Each server answers its hash buckets: split 0 gives every bucket to the secondary,
        // split 256 every bucket to the primary (hot standby).
        assert!(
            (sc.split == 0 || r.acks[0] > 0) && (sc.split == 256 || r.acks[1] > 0),
            "seed {}: a server with hash buckets (split {}) served nobody: {:?}",
            sc.seed,
            sc.split,
            r.acks
        );
    }
}

#[test]
fn clocks_skewed_up_to_the_connect_limit_never_give_one_address_to_two_clients() {
    let skewed = |seed| {
        let mut sc = Scenario::random(seed);
        sc.faults.clear();
        let p = if seed % 2 == 0 { 60 } else { -60 };
        sc.skew = [p, p - p.signum() * MAX_RELATIVE_SKEW];
        sc
    };
    for (sc, r) in sweep(
        "clocks_skewed_up_to_the_connect_limit_never_give_one_address_to_two_clients",
        16,
        skewed,
    ) {
        assert_eq!(sc.relative_skew(), MAX_RELATIVE_SKEW as u64);
        assert!(r.settle_secs.is_some(), "seed {}", sc.seed);
    }
}

#[test]
fn duplicate_connections_are_refused_and_the_pair_still_reaches_normal() {
    let dup = |seed| {
        let mut sc = Scenario::random(seed);
        sc.faults.clear();
        sc.duplicate_connections = true;
        sc
    };
    let runs = sweep(
        "duplicate_connections_are_refused_and_the_pair_still_reaches_normal",
        16,
        dup,
    );
    assert!(
        runs.iter().any(|(_, r)| r.duplicate_connections > 0),
        "no run opened two connections at once"
    );
}

fn only(kind: FaultKind) -> impl Fn(u64) -> Scenario + Sync {
    move |seed| Scenario::with_faults(seed, &[kind])
}

fn injected(runs: &[(Scenario, dhcpair_sim::Report)], kind: FaultKind) -> u32 {
    runs.iter()
        .map(|(_, r)| r.faults.get(&kind).copied().unwrap_or(0))
        .sum()
}

fn visited(runs: &[(Scenario, dhcpair_sim::Report)], state: ServerState) -> bool {
    runs.iter()
        .any(|(_, r)| r.states_seen.iter().any(|s| s.contains(&state)))
}

#[test]
fn an_abrupt_partition_never_gives_one_address_to_two_clients_and_heals_to_normal() {
    let runs = sweep(
        "an_abrupt_partition_never_gives_one_address_to_two_clients_and_heals_to_normal",
        32,
        only(FaultKind::AbruptPartition),
    );
    assert!(injected(&runs, FaultKind::AbruptPartition) > 0);
    assert!(visited(&runs, ServerState::CommunicationsInterrupted));
}

#[test]
fn a_silent_partition_is_noticed_by_timeouts_and_heals_to_normal_without_duplicates() {
    let runs = sweep(
        "a_silent_partition_is_noticed_by_timeouts_and_heals_to_normal_without_duplicates",
        32,
        only(FaultKind::SilentPartition),
    );
    assert!(injected(&runs, FaultKind::SilentPartition) > 0);
    assert!(visited(&runs, ServerState::CommunicationsInterrupted));
}

#[test]
fn a_crash_before_commit_loses_only_what_nobody_was_told() {
    let runs = sweep(
        "a_crash_before_commit_loses_only_what_nobody_was_told",
        32,
        only(FaultKind::CrashBeforeCommit),
    );
    assert!(injected(&runs, FaultKind::CrashBeforeCommit) > 0);
}

#[test]
fn a_crash_after_commit_keeps_every_acknowledged_lease() {
    let runs = sweep(
        "a_crash_after_commit_keeps_every_acknowledged_lease",
        32,
        only(FaultKind::CrashAfterCommit),
    );
    assert!(injected(&runs, FaultKind::CrashAfterCommit) > 0);
}

#[test]
fn a_server_that_lost_its_disk_comes_back_through_recover_without_duplicates() {
    let runs = sweep(
        "a_server_that_lost_its_disk_comes_back_through_recover_without_duplicates",
        32,
        only(FaultKind::LostDisk),
    );
    assert!(injected(&runs, FaultKind::LostDisk) > 0);
    assert!(visited(&runs, ServerState::Recover) && visited(&runs, ServerState::RecoverWait));
}

#[test]
fn partner_down_lets_the_survivor_serve_the_whole_pool_without_duplicates() {
    let runs = sweep(
        "partner_down_lets_the_survivor_serve_the_whole_pool_without_duplicates",
        32,
        only(FaultKind::PartnerDown),
    );
    assert!(
        runs.iter()
            .map(|(_, r)| r.partner_down_commands)
            .sum::<u32>()
            > 0
    );
    assert!(visited(&runs, ServerState::PartnerDown));
    let takeovers: u64 = runs
        .iter()
        .map(|(_, r)| r.takeover_acks[0] + r.takeover_acks[1])
        .sum();
    assert!(
        takeovers > 0,
        "no survivor ever served an address of its partner's pool"
    );
}

#[test]
fn random_seeds_hold_every_invariant() {
    let runs = sweep("random_seeds_hold_every_invariant", 64, Scenario::random);
    assert!(
        runs.iter().any(|(_, r)| !r.faults.is_empty()),
        "no fault was injected"
    );
}

/// The long run for CI: `cargo test -p dhcpair-sim --release --test sim -- --ignored long_simulation`
/// (10,000 seeds unless `DHCPAIR_SIM_SEEDS` says otherwise: about a minute on two cores).
#[test]
#[ignore = "long: run in release in CI"]
fn long_simulation() {
    let runs = sweep("long_simulation", 10_000, Scenario::random);
    for side in Side::BOTH {
        assert!(runs.iter().any(|(_, r)| r.acks[side as usize] > 0));
    }
}
