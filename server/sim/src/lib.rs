//! Deterministic simulation of a dhcpair failover pair: the executable statement of what
//! failover must guarantee.
//!
//! One seeded run builds a world of two real [`dhcpair_engine::Engine`]s (primary and
//! secondary) with a simulated disk and group-commit buffer each, a failover network of
//! ordered TCP-like connections (messages go through the real codec), 20–60 DHCP clients
//! exchanging real packets with both servers over one 30–60 address pool, and a virtual
//! clock (each server sees it with its own skew). A fault schedule drawn from the seed then
//! partitions the link, crashes servers before or after a commit, loses a disk, and has an
//! operator declare PARTNER-DOWN; then everything heals and the pair must settle. The
//! invariants of `check.rs` — no address for two clients, the MCLT rule, what
//! is committed is what is in memory, and liveness — are checked after every step. A
//! failure names the seed and prints the last events.
//!
//! Nothing here reads a clock, spawns a thread or draws OS randomness, so a seed replays
//! (as long as the engine is deterministic too; see `tests/engine_bugs.rs`, bug 0). It
//! depends on the engine, config and wire crates only, and on nothing async.
//!
//! Start reading at [`World::run`] (the event loop, in `world.rs`), then `check.rs` (the
//! invariants) and `client.rs` (RFC 2131 clients). Long runs:
//! `cargo test -p dhcpair-sim --release -- --ignored long_simulation`.

mod check;
mod client;
mod rng;
mod scenario;
mod world;

pub use rng::Rng;
pub use scenario::{FaultKind, Scenario, MAX_RELATIVE_SKEW};
pub use world::{config, Failure, Report, Side, World, POOL_START, T0};

/// Run one scenario to its end.
pub fn run(sc: Scenario) -> Result<Report, Failure> {
    World::new(sc)?.run()
}

/// Run `count` random scenarios from seed `first` on; the first failure stops the sweep.
pub fn sweep(
    first: u64,
    count: u64,
    scenario: impl Fn(u64) -> Scenario,
) -> Result<Vec<Report>, Failure> {
    (first..first.saturating_add(count))
        .map(|seed| run(scenario(seed)))
        .collect()
}
