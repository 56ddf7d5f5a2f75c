//! Helpers for the failover layouts the ISC guides describe (issue 16): a server that hosts
//! several relationships (one secondary backing several primaries), relationship-named states,
//! moves and partner-down, a relay that forwards to both servers of a pair, ISC configs with
//! other failover ports, and the RFC 3074 hash kept here, in the test crate, so that a split
//! is predicted without the server's own code.
//!
//! [`crate::failover::Member`] knows one relationship (`pair`) and names its server after its
//! role; a [`Site`] is a server with a name of its own that may host any number of them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use dhcpair_config::raw::{RawConfig, Role};

use crate::failover::{
    control_token, isc_config, parse_rfc3339, wipe_dir, FailoverStatus, Move, PairSettings,
    PoolCounts, RelationshipView, HTTP_PORT,
};
use crate::netns::Netns;
use crate::process::{run, Process};
use crate::server::{Lease, Server};
use crate::{dhcpair_bin, wait_until, Net24, TestEnv};

/// A running dhcpair server named by the test (its log is `<name>.log`, its data `<name>-data`)
/// that may host several failover relationships.
#[derive(Debug)]
pub struct Site {
    pub name: String,
    pub server: Server,
    pub http: SocketAddr,
    ns: String,
    token: PathBuf,
}

impl Site {
    /// Start `config` in `ns` as `name`, with HTTP on `http_ip:9167` and the test's control
    /// token (both overriding what the config says, as a pod's would be set for the test).
    pub fn start(
        env: &TestEnv,
        ns: &Netns,
        name: &str,
        http_ip: Ipv4Addr,
        mut config: RawConfig,
    ) -> Result<Site> {
        let token = control_token(env)?;
        let http = SocketAddr::new(http_ip.into(), HTTP_PORT);
        config.server.http = Some(http);
        config.server.control_token_file = Some(token.display().to_string());
        let server = Server::start(env, ns, name, config)?;
        Ok(Site {
            name: name.to_string(),
            server,
            http,
            ns: ns.name().to_string(),
            token,
        })
    }

    /// `dhcpair status --http ADDR --json`, run inside the server's namespace.
    pub fn status(&self) -> Result<FailoverStatus> {
        let out = run(Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(dhcpair_bin())
            .args(["status", "--json", "--http", &self.http.to_string()]))?;
        serde_json::from_str(out.trim()).with_context(|| format!("parse dhcpair status: {out}"))
    }

    /// The row of relationship `rel`.
    pub fn rel(&self, rel: &str) -> Result<RelationshipView> {
        let s = self.status()?;
        s.failover
            .iter()
            .find(|r| r.name == rel)
            .cloned()
            .ok_or_else(|| anyhow!("{}: no relationship {rel} in {s:?}", self.name))
    }

    /// The counts of pool `pool`.
    pub fn pool(&self, pool: &str) -> Result<PoolCounts> {
        let s = self.status()?;
        s.pools
            .iter()
            .find(|p| p.name == pool)
            .cloned()
            .ok_or_else(|| anyhow!("{}: no pool {pool} in {s:?}", self.name))
    }

    /// Poll until our own state in `rel` is `state` (out of STARTUP).
    pub fn wait_state(
        &self,
        rel: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<RelationshipView> {
        let mut last = None;
        let r = wait_until(
            format!("{} to be in {state} in {rel}", self.name),
            timeout,
            || {
                let r = self.rel(rel).ok()?;
                let done = r.my_state == state && !r.startup;
                last = Some(r.clone());
                done.then_some(r)
            },
        );
        r.with_context(|| format!("last {rel} status of {}: {last:?}", self.name))
    }

    /// Poll until `rel` is NORMAL on our side and the partner's, connected.
    pub fn wait_normal(&self, rel: &str, timeout: Duration) -> Result<RelationshipView> {
        let mut last = None;
        let r = wait_until(
            format!("{} and its partner normal in {rel}", self.name),
            timeout,
            || {
                let r = self.rel(rel).ok()?;
                let done = r.my_state == "normal"
                    && r.partner_state == "normal"
                    && r.connected
                    && !r.startup;
                last = Some(r.clone());
                done.then_some(r)
            },
        );
        r.with_context(|| format!("last {rel} status of {}: {last:?}", self.name))
    }

    /// `dhcpair partner-down REL --http ADDR --token-file F`, run inside the namespace.
    pub fn partner_down(&self, rel: &str) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(dhcpair_bin())
            .args(["partner-down", rel, "--http", &self.http.to_string()])
            .arg("--token-file")
            .arg(&self.token))
    }

    pub fn leases(&self) -> Result<Vec<Lease>> {
        self.server.leases()
    }

    /// Active leases: address → MAC.
    pub fn active(&self) -> Result<BTreeMap<Ipv4Addr, String>> {
        Ok(self
            .leases()?
            .into_iter()
            .filter(|l| l.state == "active")
            .filter_map(|l| Some((l.ip, l.hardware_address?)))
            .collect())
    }

    /// Addresses whose lease row is in `state`, of pool `pool`.
    pub fn ips_in(&self, pool: &str, state: &str) -> Result<Vec<Ipv4Addr>> {
        Ok(self
            .leases()?
            .into_iter()
            .filter(|l| l.state == state && l.pool.as_deref() == Some(pool))
            .map(|l| l.ip)
            .collect())
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Remove the lease database (the server must be stopped).
    pub fn wipe_database(&self) -> Result<()> {
        ensure!(
            self.server.pid().is_none(),
            "{} is still running; stop it before wiping its database",
            self.name
        );
        wipe_dir(self.server.data_dir())
    }
}

// ------------------------------------------------------------------------------ logs

/// Every move of relationship `rel` by `who` (`"I move"` or `"peer moves"`) in a log.
pub fn rel_moves(log: &str, rel: &str, who: &str) -> Vec<Move> {
    let needle = format!("failover peer {rel}: {who} from ");
    log.lines()
        .filter_map(|line| {
            let (head, rest) = line.split_at(line.find(&needle)?);
            let (from, to) = rest[needle.len()..].split_once(" to ")?;
            Some(Move {
                at: head.split_whitespace().next().and_then(parse_rfc3339),
                from: from.trim().to_string(),
                to: to.split_whitespace().next().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The part of a server log from its `n`th start on (`===== e2e: start #n of NAME =====`).
pub fn log_since_start<'a>(log: &'a str, name: &str, n: u32) -> Option<&'a str> {
    let marker = format!("e2e: start #{n} of {name} ");
    log.find(&marker).map(|i| &log[i..])
}

/// `from->to` for each move, for messages.
pub fn move_names(moves: &[Move]) -> Vec<String> {
    moves
        .iter()
        .map(|m| format!("{}->{}", m.from, m.to))
        .collect()
}

// ------------------------------------------------------------------------------ RFC 3074

/// With ISC's `split N` (N a multiple of 8), buckets `0..N` are the primary's (the test
/// crate's own RFC 3074 hash, `crate::rfc3074`, not the server's).
pub fn primary_owns(key: &[u8], split: u16) -> bool {
    crate::rfc3074::primary_serves(key, split)
}

/// The first `count` MACs `02:<tag>:<role>:00:00:<n>` whose client the primary (`primary`) or
/// the secondary owns under `split`, as strings for `ip link set address`.
pub fn macs_owned_by(tag: u8, primary: bool, split: u16, count: usize) -> Vec<String> {
    (1..=255u8)
        .map(|n| [0x02, tag, u8::from(primary), 0, 0, n])
        .filter(|m| primary_owns(m, split) == primary)
        .take(count)
        .map(|m| crate::mac_string(&m))
        .collect()
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(mac: &str) -> Result<Vec<u8>> {
    mac.split(':')
        .map(|x| u8::from_str_radix(x, 16).with_context(|| format!("MAC {mac}")))
        .collect()
}

// ------------------------------------------------------------------------------ relay, ISC

/// `dhcrelay -4 -d -a -id DOWN -iu UP SERVER...`: relays each client broadcast heard on `down`
/// to every server (as sites point one relay at both members of a pair).
#[derive(Debug)]
pub struct RelayToAll {
    process: Process,
}

impl RelayToAll {
    pub fn start(
        env: &TestEnv,
        ns: &Netns,
        down: &str,
        up: &str,
        servers: &[Ipv4Addr],
    ) -> Result<RelayToAll> {
        env.require("dhcrelay")?;
        let pid = env.path("dhcrelay-all.pid").display().to_string();
        let mut argv: Vec<String> = [
            "dhcrelay", "-4", "-d", "-a", "-pf", &pid, "-id", down, "-iu", up,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(servers.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let process = Process::spawn(ns, "dhcrelay", &env.path("dhcrelay-all.log"), &argv)?;
        let needle = format!("Listening on LPF/{down}/");
        wait_until("dhcrelay listening", Duration::from_secs(10), || {
            process.log().contains(&needle).then_some(())
        })
        .with_context(|| format!("dhcrelay log:\n{}", process.log()))?;
        Ok(RelayToAll { process })
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// [`isc_config`] with ISC's `port` (where this server listens) and `peer port` (where it
/// connects to its partner) instead of 647 on both.
#[allow(clippy::too_many_arguments)]
pub fn isc_config_ports(
    net: Net24,
    role: Role,
    me: Ipv4Addr,
    peer: Ipv4Addr,
    s: &PairSettings,
    port: u16,
    peer_port: u16,
) -> Result<String> {
    let conf = isc_config(net, role, me, peer, s);
    let (a, b) = ("\n  port 647;\n", "\n  peer port 647;\n");
    ensure!(
        conf.contains(a) && conf.contains(b),
        "isc_config no longer writes `port 647;` and `peer port 647;`:\n{conf}"
    );
    Ok(conf
        .replace(a, &format!("\n  port {port};\n"))
        .replace(b, &format!("\n  peer port {peer_port};\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_macs_fall_on_the_asked_side() {
        let p = macs_owned_by(0x51, true, 128, 4);
        let s = macs_owned_by(0x51, false, 128, 4);
        assert_eq!((p.len(), s.len()), (4, 4));
        for m in &p {
            assert!(primary_owns(&parse_mac(m).unwrap(), 128));
        }
        for m in &s {
            assert!(!primary_owns(&parse_mac(m).unwrap(), 128));
        }
    }

    #[test]
    fn moves_are_read_per_relationship() {
        let log = "2026-01-01T00:00:01Z  INFO x: failover peer a: I move from normal to communications-interrupted\n\
                   2026-01-01T00:00:02Z  INFO x: failover peer b: I move from startup to normal\n\
                   2026-01-01T00:00:03Z  INFO x: failover peer a: peer moves from normal to recover\n";
        let a = rel_moves(log, "a", "I move");
        assert_eq!(move_names(&a), ["normal->communications-interrupted"]);
        assert_eq!(a[0].at, parse_rfc3339("2026-01-01T00:00:01Z"));
        assert_eq!(
            move_names(&rel_moves(log, "b", "I move")),
            ["startup->normal"]
        );
        assert_eq!(
            move_names(&rel_moves(log, "a", "peer moves")),
            ["normal->recover"]
        );
    }

    #[test]
    fn isc_ports_replace_both_lines() {
        let s = PairSettings::default();
        let net = Net24::new(10, 0, 0);
        let conf =
            isc_config_ports(net, Role::Secondary, net.host(2), net.host(1), &s, 847, 647).unwrap();
        assert!(conf.contains("\n  port 847;\n") && conf.contains("\n  peer port 647;\n"));
    }
}
