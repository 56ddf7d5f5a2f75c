#![allow(clippy::unwrap_used, clippy::expect_used)]
//! CPU and wall time of one-lease commits (the group commit's worst case, at low rates):
//! `cargo test --release -p dhcpair-store --test commit_cost -- --ignored --nocapture`.

use std::time::Instant;

use dhcpair_store::battery::sample_lease;
use dhcpair_store::{LeaseStore, SqliteStore, Write};

fn cpu_secs() -> f64 {
    // utime + stime of this process, from /proc (no unsafe getrusage).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
#[ignore = "measurement; run explicitly in release"]
fn one_lease_commits_cost() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("leases.db")).unwrap();
    for batch in [1usize, 10, 100] {
        let n = 2000 / batch;
        let (c0, t0) = (cpu_secs(), Instant::now());
        for i in 0..n {
            let writes: Vec<Write> = (0..batch)
                .map(|j| Write::Lease(sample_lease((i * batch + j) as u32)))
                .collect();
            s.commit(&writes).unwrap();
        }
        let (cpu, wall) = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
        eprintln!(
            "batch {batch:>3}: {:.1} us CPU and {:.1} us wall per commit, {:.1} us CPU per lease",
            cpu * 1e6 / n as f64,
            wall * 1e6 / n as f64,
            cpu * 1e6 / (n * batch) as f64
        );
    }
}
