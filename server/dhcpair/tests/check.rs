//! `dhcpair check` as a user runs it: a valid config exits 0 with its summary on stdout; a
//! valid config that does not do what it looks like also exits 0, with one
//! `warning: FIELD: MESSAGE` line per warning on stderr; an invalid one exits non-zero.

// Test helpers may panic on fixtures they control (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Write `text` to a file of its own under cargo's temporary directory for integration tests.
fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dhcpair-check");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn check(name: &str, text: &str) -> (Output, String, String) {
    let path = config_file(name, text);
    let out = Command::new(env!("CARGO_BIN_EXE_dhcpair"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// A primary with `peer` appended to its entry and one failover pool with `pool` appended.
fn primary(peer: &str, pool: &str) -> String {
    format!(
        "server: {{interfaces: [eth1], dataDir: /tmp/x}}
peers:
  - {{name: pair, role: primary, address: 10.0.0.2, peerAddress: 10.0.0.3, mclt: 300{peer}}}
pools:
  - name: lan
    subnet: 10.0.0.0/24
    ranges: [{{start: 10.0.0.100, end: 10.0.0.199}}]
    failoverPeer: pair
{pool}"
    )
}

#[test]
fn a_config_that_does_what_it_says_passes_without_a_warning() {
    let (out, stdout, stderr) = check(
        "clean",
        &primary(", split: 256, loadBalanceMaxSeconds: 3", ""),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(": ok (1 pools, 100 addresses, 0 reservations, 1 peers)"),
        "{stdout}"
    );
    assert_eq!(stderr, "");
}

#[test]
fn hot_standby_without_load_balancing_and_dynamic_bootp_in_a_failover_pool_are_warned_with_exit_0()
{
    let (out, stdout, stderr) = check(
        "warned",
        &primary(", split: 256", "    allow: [dynamicBootpClients]\n"),
    );
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stdout.contains(": ok (1 pools"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(
            "warning: peers[0].loadBalanceMaxSeconds: load balancing is off \
             (loadBalanceMaxSeconds 0): both servers answer every client"
        ) && lines[0].contains("split 256 is not hot standby"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(
            "warning: pools[0].allow[0]: dynamic BOOTP is never served from a failover pool"
        ),
        "{}",
        lines[1]
    );
}

#[test]
fn an_invalid_config_still_fails_with_its_field() {
    let (out, _, stderr) = check("invalid", &primary("", ""));
    assert!(!out.status.success());
    assert!(
        stderr.contains("peers[0].split: the primary needs split"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning:"), "{stderr}");
}
