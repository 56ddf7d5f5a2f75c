//! Failover fixtures: a failover pair on one bridged /24 (two dhcpair servers, or dhcpair and
//! Debian's ISC dhcpd 4.4.3 as its partner), the failover view of `dhcpair status --json`, the
//! two servers' logs in ISC's words, ISC's lease file, and a tshark capture of the failover
//! TCP port.
//!
//! Layout of a [`PairNet`] on `net`: the primary's namespace has `net.host(1)`, the secondary's
//! `net.host(2)`; each serves DHCP on its link, speaks failover on its address (port 647, the
//! default on both sides) and answers HTTP on `<its address>:9167`. Client namespaces plug into
//! the same bridge: [`PairNet::client`] for a real DHCP client (no address), [`PairNet::relay`]
//! for the relay-mode load client (addresses of its own).
//!
//! Like the rest of the harness this module knows the server only as a binary, a config
//! (`dhcpair_config::raw`), a data directory, an HTTP endpoint and a log. It keeps its own copy
//! of the RFC 3074 hash so that the tests can predict which server a client belongs to without
//! trusting the server's code for it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use dhcpair_config::raw::{RawConfig, RawPeer, Role};
use serde::Deserialize;

use crate::load::{Ack, LoadClient, LoadOptions};
use crate::netns::{Netns, Switch};
use crate::process::{run, Process};
use crate::server::{pool, server_config, Lease, Server};
use crate::{dhcpair_bin, mac_string, wait_until, Net24, TestEnv};

/// The relationship name every scenario uses (ISC requires the same name on both sides).
pub const RELATIONSHIP: &str = "pair";

/// Port of every server's HTTP endpoint (on the server's own address).
pub const HTTP_PORT: u16 = 9167;

/// The relationship and pool settings both members of a pair are configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSettings {
    /// Seconds (configured on the primary only; the secondary learns it from CONNECT).
    pub mclt: u32,
    pub max_response_delay: u32,
    pub max_unacked_updates: u32,
    pub load_balance_max_seconds: u32,
    /// Buckets `0..split` are the primary's (configured on the primary only).
    pub split: u16,
    /// The pool's range: `net.host(first)..=net.host(last)`.
    pub first: u8,
    pub last: u8,
    pub lease_time: u32,
}

impl Default for PairSettings {
    fn default() -> PairSettings {
        PairSettings {
            mclt: 10,
            max_response_delay: 6,
            max_unacked_updates: 10,
            load_balance_max_seconds: 3,
            split: 128,
            first: 100,
            last: 139,
            lease_time: 30,
        }
    }
}

impl PairSettings {
    pub fn pool_size(&self) -> u64 {
        u64::from(self.last) - u64::from(self.first) + 1
    }

    /// Every address of the pool.
    pub fn range(&self, net: Net24) -> Vec<Ipv4Addr> {
        (self.first..=self.last).map(|n| net.host(n)).collect()
    }
}

/// One server's namespace, its interface on the bridge and its address.
#[derive(Debug)]
pub struct Node {
    pub ns: Netns,
    pub iface: String,
    pub ip: Ipv4Addr,
}

/// A bridge with a primary and a secondary namespace on `net`; clients are added on demand.
/// Field order is drop order: the servers' namespaces go before the switch.
#[derive(Debug)]
pub struct PairNet {
    pub net: Net24,
    pub primary: Node,
    pub secondary: Node,
    pub switch: Switch,
}

impl PairNet {
    pub fn new(net: Net24) -> Result<PairNet> {
        let switch = Switch::new()?;
        let node = |n: u8| -> Result<Node> {
            let ns = Netns::new()?;
            let iface = switch.attach(&ns)?;
            ns.addr(&iface, &net.addr(n))?;
            Ok(Node {
                ns,
                iface,
                ip: net.host(n),
            })
        };
        let primary = node(1)?;
        let secondary = node(2)?;
        Ok(PairNet {
            net,
            primary,
            secondary,
            switch,
        })
    }

    /// The node playing `role`.
    pub fn node(&self, role: Role) -> &Node {
        match role {
            Role::Primary => &self.primary,
            Role::Secondary => &self.secondary,
        }
    }

    /// A new client namespace on the bridge: its interface is up, without an address, with
    /// `mac` when given (set before any client starts on it).
    pub fn client(&self, mac: Option<&str>) -> Result<(Netns, String)> {
        let ns = Netns::new()?;
        let iface = self.switch.attach(&ns)?;
        if let Some(mac) = mac {
            ns.set_mac(&iface, mac)?;
        }
        Ok((ns, iface))
    }

    /// A namespace for relay-mode load clients with `net.host(n)` for each `n` in `hosts`.
    pub fn relay(&self, hosts: &[u8]) -> Result<Node> {
        let ns = Netns::new()?;
        let iface = self.switch.attach(&ns)?;
        for &n in hosts {
            ns.addr(&iface, &self.net.addr(n))?;
        }
        let ip = self
            .net
            .host(*hosts.first().context("relay needs an address")?);
        Ok(Node { ns, iface, ip })
    }
}

/// A dhcpair config for `role` in `pair`: one pool `lan` over the settings' range (routers
/// `.1`) bound to the relationship, HTTP on the node's address, control token in `token_file`.
pub fn dhcpair_config(pair: &PairNet, role: Role, s: &PairSettings, token: &Path) -> RawConfig {
    let me = pair.node(role);
    let peer = pair.node(match role {
        Role::Primary => Role::Secondary,
        Role::Secondary => Role::Primary,
    });
    dhcpair_member_config(pair.net, &me.iface, me.ip, peer.ip, role, s, token)
}

/// [`dhcpair_config`] from parts, for a dhcpair whose partner is not a [`PairNet`] node.
pub fn dhcpair_member_config(
    net: Net24,
    iface: &str,
    me: Ipv4Addr,
    peer_ip: Ipv4Addr,
    role: Role,
    s: &PairSettings,
    token: &Path,
) -> RawConfig {
    let mut config = server_config(&[iface], me);
    config.server.http = Some(SocketAddr::new(me.into(), HTTP_PORT));
    config.server.control_token_file = Some(token.display().to_string());
    let role_name = match role {
        Role::Primary => "primary",
        Role::Secondary => "secondary",
    };
    // Parsed from YAML, as the harness builds every config, so new fields take their defaults.
    let yaml = format!(
        "{{name: {RELATIONSHIP}, role: {role_name}, address: {me}, peerAddress: {peer_ip}}}"
    );
    let mut peer: RawPeer = match serde_yaml::from_str(&yaml) {
        Ok(p) => p,
        Err(e) => panic!("harness peer does not parse: {e}\n{yaml}"),
    };
    peer.max_response_delay = Some(s.max_response_delay);
    peer.max_unacked_updates = Some(s.max_unacked_updates);
    peer.load_balance_max_seconds = Some(s.load_balance_max_seconds);
    if role == Role::Primary {
        peer.mclt = Some(s.mclt);
        peer.split = Some(s.split);
    }
    config.peers.push(peer);
    let mut p = pool("lan", net, s.first, s.last);
    p.options.routers = Some(vec![net.host(1)]);
    p.default_lease_time = Some(s.lease_time);
    p.max_lease_time = Some(s.lease_time * 4);
    p.failover_peer = Some(RELATIONSHIP.to_string());
    config.pools.push(p);
    config
}

/// Write the control token file once per test directory and return its path.
pub fn control_token(env: &TestEnv) -> Result<PathBuf> {
    let path = env.path("control.token");
    if !path.exists() {
        std::fs::write(&path, format!("e2e-{}-token\n", std::process::id()))?;
    }
    Ok(path)
}

/// One row of `failover` in `/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelationshipView {
    pub name: String,
    pub role: String,
    pub my_state: String,
    pub partner_state: String,
    #[serde(default)]
    pub startup: bool,
    #[serde(default)]
    pub my_stos: u64,
    #[serde(default)]
    pub connected: bool,
    #[serde(default)]
    pub mclt: u32,
    #[serde(default)]
    pub unacked_updates: u64,
    #[serde(default)]
    pub queued_updates: u64,
    #[serde(default)]
    pub seconds_since_contact: Option<u64>,
    #[serde(default)]
    pub skew: i64,
}

/// One row of `pools` in `/v1/status`, with the failover counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PoolCounts {
    pub name: String,
    #[serde(default)]
    pub subnet: String,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub free: u64,
    #[serde(default)]
    pub backup: u64,
    #[serde(default)]
    pub active: u64,
    #[serde(default)]
    pub expired: u64,
    #[serde(default)]
    pub released: u64,
    #[serde(default)]
    pub abandoned: u64,
    #[serde(default)]
    pub reserved: u64,
}

/// `dhcpair status --json` (the body of `GET /v1/status`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FailoverStatus {
    pub pools: Vec<PoolCounts>,
    #[serde(default)]
    pub failover: Vec<RelationshipView>,
}

impl FailoverStatus {
    pub fn relationship(&self) -> Option<&RelationshipView> {
        self.failover.iter().find(|r| r.name == RELATIONSHIP)
    }

    pub fn lan(&self) -> Option<&PoolCounts> {
        self.pools.iter().find(|p| p.name == "lan")
    }
}

/// A running dhcpair member of a failover pair.
#[derive(Debug)]
pub struct Member {
    pub server: Server,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub http: SocketAddr,
    ns: String,
    token: PathBuf,
}

impl Member {
    /// Start dhcpair as `role` on `pair` (data dir `<role>-data`, log `<role>.log`).
    pub fn start(env: &TestEnv, pair: &PairNet, role: Role, s: &PairSettings) -> Result<Member> {
        let token = control_token(env)?;
        let config = dhcpair_config(pair, role, s, &token);
        Member::start_with(env, &pair.node(role).ns, role, config)
    }

    /// Start dhcpair with a config built by the caller (HTTP and token must be set in it).
    pub fn start_with(env: &TestEnv, ns: &Netns, role: Role, config: RawConfig) -> Result<Member> {
        let http = config
            .server
            .http
            .context("member config without server.http")?;
        let token = config
            .server
            .control_token_file
            .clone()
            .map(PathBuf::from)
            .context("member config without server.controlTokenFile")?;
        let ip = config
            .peers
            .first()
            .map(|p| p.address)
            .context("member config without peers")?;
        let name = match role {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        };
        let server = Server::start(env, ns, name, config)?;
        Ok(Member {
            server,
            role,
            ip,
            http,
            ns: ns.name().to_string(),
            token,
        })
    }

    pub fn name(&self) -> &'static str {
        match self.role {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }

    /// `dhcpair status --http ADDR --json`, run inside the member's namespace.
    pub fn status(&self) -> Result<FailoverStatus> {
        let out = run(Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(dhcpair_bin())
            .args(["status", "--json", "--http", &self.http.to_string()]))?;
        serde_json::from_str(out.trim()).with_context(|| format!("parse dhcpair status: {out}"))
    }

    /// The relationship row of the status.
    pub fn relationship(&self) -> Result<RelationshipView> {
        let s = self.status()?;
        s.relationship()
            .cloned()
            .ok_or_else(|| anyhow!("{}: no relationship {RELATIONSHIP} in {s:?}", self.name()))
    }

    /// The pool `lan` of the status.
    pub fn lan(&self) -> Result<PoolCounts> {
        let s = self.status()?;
        s.lan()
            .cloned()
            .ok_or_else(|| anyhow!("{}: no pool lan in {s:?}", self.name()))
    }

    /// Poll until the member's own state is `state` (out of STARTUP); the status then.
    pub fn wait_state(&self, state: &str, timeout: Duration) -> Result<RelationshipView> {
        let mut last = None;
        let r = wait_until(format!("{} to be in {state}", self.name()), timeout, || {
            let rel = self.relationship().ok()?;
            let done = rel.my_state == state && !rel.startup;
            last = Some(rel.clone());
            done.then_some(rel)
        });
        r.with_context(|| format!("last status of {}: {last:?}", self.name()))
    }

    /// `dhcpair partner-down pair --http ADDR --token-file F`, run inside the namespace.
    pub fn partner_down(&self) -> Result<String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(dhcpair_bin())
            .args([
                "partner-down",
                RELATIONSHIP,
                "--http",
                &self.http.to_string(),
            ])
            .arg("--token-file")
            .arg(&self.token))
    }

    /// `dhcpair leases --json` of the member's data directory.
    pub fn leases(&self) -> Result<Vec<Lease>> {
        self.server.leases()
    }

    /// The address of every lease in `state`.
    pub fn ips_in(&self, state: &str) -> Result<Vec<Ipv4Addr>> {
        Ok(self
            .leases()?
            .into_iter()
            .filter(|l| l.state == state)
            .map(|l| l.ip)
            .collect())
    }

    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Remove the lease database (the server must be stopped): the next start has no memory.
    pub fn wipe_database(&self) -> Result<()> {
        ensure!(
            self.server.pid().is_none(),
            "{} is still running; stop it before wiping its database",
            self.name()
        );
        wipe_dir(self.server.data_dir())
    }
}

/// Remove every file of a data directory (its server stopped): the next start has no memory.
pub fn wipe_dir(dir: &std::path::Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Start a dhcpair pair (primary first) and wait until both are NORMAL with each other.
pub fn start_pair(env: &TestEnv, pair: &PairNet, s: &PairSettings) -> Result<(Member, Member)> {
    let primary = Member::start(env, pair, Role::Primary, s)?;
    let secondary = Member::start(env, pair, Role::Secondary, s)?;
    wait_normal(&primary, &secondary, Duration::from_secs(20))?;
    Ok((primary, secondary))
}

/// Poll until both members report NORMAL for themselves and for the partner, connected.
pub fn wait_normal(a: &Member, b: &Member, timeout: Duration) -> Result<()> {
    let mut last = (None, None);
    let r = wait_until("both servers normal with each other", timeout, || {
        let ra = a.relationship().ok();
        let rb = b.relationship().ok();
        let ok = |r: &Option<RelationshipView>| {
            r.as_ref().is_some_and(|r| {
                r.my_state == "normal" && r.partner_state == "normal" && !r.startup && r.connected
            })
        };
        let done = ok(&ra) && ok(&rb);
        last = (ra, rb);
        done.then_some(())
    });
    r.with_context(|| {
        format!(
            "last status: {} {:?}; {} {:?}",
            a.name(),
            last.0,
            b.name(),
            last.1
        )
    })
}

/// Poll until the pool counts of both members agree (total, free, backup, active) and free
/// and backup are balanced within `slack`; returns the agreed counts.
pub fn wait_balanced(a: &Member, b: &Member, slack: u64, timeout: Duration) -> Result<PoolCounts> {
    let mut last = (None, None);
    let r = wait_until(
        "pool counts balanced and equal on both servers",
        timeout,
        || {
            let pa = a.lan().ok();
            let pb = b.lan().ok();
            let agreed = match (&pa, &pb) {
                (Some(x), Some(y))
                    if counts_agree(x, y)
                        && x.free.abs_diff(x.backup) <= slack
                        && x.free + x.backup > 0 =>
                {
                    Some(x.clone())
                }
                _ => None,
            };
            last = (pa, pb);
            agreed
        },
    );
    r.with_context(|| {
        format!(
            "last counts: {} {:?}; {} {:?}",
            a.name(),
            last.0,
            b.name(),
            last.1
        )
    })
}

/// Two pool rows count the same addresses in the same states.
pub fn counts_agree(a: &PoolCounts, b: &PoolCounts) -> bool {
    (
        a.total,
        a.free,
        a.backup,
        a.active,
        a.expired,
        a.released,
        a.abandoned,
    ) == (
        b.total,
        b.free,
        b.backup,
        b.active,
        b.expired,
        b.released,
        b.abandoned,
    )
}

/// Poll until every ACK is an active lease of its MAC in `leases()`; lists what is missing.
pub fn wait_active(
    what: &str,
    acks: &[Ack],
    timeout: Duration,
    mut leases: impl FnMut() -> Result<BTreeMap<Ipv4Addr, String>>,
) -> Result<()> {
    let mut missing = Vec::new();
    let r = wait_until(
        format!("every ACKed lease active in {what}"),
        timeout,
        || {
            let active = leases().ok()?;
            missing = acks
                .iter()
                .filter(|a| active.get(&a.ip) != Some(&a.mac))
                .map(|a| format!("{} {} (has {:?})", a.ip, a.mac, active.get(&a.ip)))
                .collect();
            missing.is_empty().then_some(())
        },
    );
    r.with_context(|| format!("not active in {what}: {}", missing.join(", ")))
}

/// Active leases of a dhcpair data directory: address → MAC.
pub fn dhcpair_active(member: &Member) -> Result<BTreeMap<Ipv4Addr, String>> {
    Ok(member
        .leases()?
        .into_iter()
        .filter(|l| l.state == "active")
        .filter_map(|l| Some((l.ip, l.hardware_address?)))
        .collect())
}

// ------------------------------------------------------------------------------ load clients

/// Run the relay-mode load client once: `count` clients `02:e2:<tag>:..` from `bind` to
/// `server`, each retried `retries` times at 300 ms (the retry count is the DHCP `secs` field,
/// so with `retries < load_balance_max_seconds` no server answers a client of its partner's
/// hash buckets). Returns the ACKs.
#[allow(clippy::too_many_arguments)]
pub fn load(
    env: &TestEnv,
    ns: &Netns,
    bin: &str,
    name: &str,
    bind: Ipv4Addr,
    server: Ipv4Addr,
    tag: u8,
    count: u32,
    retries: u32,
) -> Result<Vec<Ack>> {
    let mut client = start_load(env, ns, bin, name, bind, server, tag, count, retries)?;
    let report = client.wait(Duration::from_secs(30))?;
    let acks = client.acks();
    println!("{name}: {report:?}");
    Ok(acks)
}

/// Start a load run (see [`load`]) without waiting for it.
#[allow(clippy::too_many_arguments)]
pub fn start_load(
    env: &TestEnv,
    ns: &Netns,
    bin: &str,
    name: &str,
    bind: Ipv4Addr,
    server: Ipv4Addr,
    tag: u8,
    count: u32,
    retries: u32,
) -> Result<LoadClient> {
    let mut opts = LoadOptions::new(bind, server, count, env.path(&format!("{name}.acks")));
    opts.mac_tag = tag;
    opts.concurrency = 16;
    // An ACK leaves only after its lease is fsynced; on a loaded CI machine that can take
    // most of a second, and a reply that comes late is not a lost reply.
    opts.timeout = Duration::from_millis(1000);
    opts.retries = retries;
    opts.deadline = Duration::from_secs(20);
    LoadClient::start(env, ns, name, bin, &opts)
}

/// The same `count` clients sent at once to both servers of a pair, one load client per
/// server (from `binds[i]` to `servers[i]`), with `secs` kept below the load balancing
/// threshold: each server answers only the clients its hash buckets give it.
#[allow(clippy::too_many_arguments)]
pub fn load_both(
    env: &TestEnv,
    ns: &Netns,
    bin: &str,
    name: &str,
    binds: [Ipv4Addr; 2],
    servers: [Ipv4Addr; 2],
    tag: u8,
    count: u32,
) -> Result<[Vec<Ack>; 2]> {
    let mut a = start_load(
        env,
        ns,
        bin,
        &format!("{name}-to-{}", servers[0]),
        binds[0],
        servers[0],
        tag,
        count,
        2,
    )?;
    let mut b = start_load(
        env,
        ns,
        bin,
        &format!("{name}-to-{}", servers[1]),
        binds[1],
        servers[1],
        tag,
        count,
        2,
    )?;
    let ra = a.wait(Duration::from_secs(30))?;
    let rb = b.wait(Duration::from_secs(30))?;
    println!(
        "{name}: to {}: {ra:?}; to {}: {rb:?}",
        servers[0], servers[1]
    );
    Ok([a.acks(), b.acks()])
}

/// The MAC of load client `i` with `tag` (as [`LoadOptions::mac`]).
pub fn load_mac(tag: u8, i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0xe2, tag, b[1], b[2], b[3]]
}

// ------------------------------------------------------------------------------ RFC 3074

/// With ISC's `split N`, buckets `0..N` are the primary's: the bucket of a client without a
/// client id (its chaddr) from the test crate's own copy of RFC 3074's hash
/// ([`crate::rfc3074`]), never the server's.
pub fn primary_serves(mac: &[u8], split: u16) -> bool {
    crate::rfc3074::primary_serves(mac, split)
}

/// The first MAC `02:e2:<tag>:00:00:<n>` whose client belongs to the primary (`primary`) or
/// the secondary under `split`, as a string for `ip link set address`.
pub fn mac_for(tag: u8, primary: bool, split: u16) -> String {
    let mac = (1..=255u8)
        .map(|n| [0x02, 0xe2, tag, 0, 0, n])
        .find(|m| primary_serves(m, split) == primary)
        .unwrap_or([0x02, 0xe2, tag, 0, 0, 1]);
    mac_string(&mac)
}

// ------------------------------------------------------------------------------ logs

/// One `failover peer NAME: I move from X to Y` (or `peer moves from X to Y`) log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// UNIX seconds from dhcpair's RFC 3339 prefix; `None` in ISC's log (no timestamps).
    pub at: Option<f64>,
    pub from: String,
    pub to: String,
}

/// Every move of `who` (`"I move"` for our own, `"peer moves"` for the partner's) in a log.
pub fn moves(log: &str, who: &str) -> Vec<Move> {
    let needle = format!("failover peer {RELATIONSHIP}: {who} from ");
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

/// Our own moves (`I move from X to Y`).
pub fn my_moves(log: &str) -> Vec<Move> {
    moves(log, "I move")
}

/// The first move `from -> to` in `moves`.
pub fn find_move<'a>(moves: &'a [Move], from: &str, to: &str) -> Option<&'a Move> {
    moves.iter().find(|m| m.from == from && m.to == to)
}

/// `2026-11-22T10:31:35.493314Z` → UNIX seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let min: i64 = t.next()?.parse().ok()?;
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}

/// Seconds since the UNIX epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ------------------------------------------------------------------------------ ISC dhcpd

/// `dhcpd.conf` for ISC dhcpd 4.4.3 as `role` of the relationship, serving the same pool as
/// [`dhcpair_config`] (mclt and split only on the primary, as ISC requires).
pub fn isc_config(
    net: Net24,
    role: Role,
    me: Ipv4Addr,
    peer: Ipv4Addr,
    s: &PairSettings,
) -> String {
    let (role_line, primary_only) = match role {
        Role::Primary => (
            "primary;",
            format!("  mclt {};\n  split {};\n", s.mclt, s.split),
        ),
        Role::Secondary => ("secondary;", String::new()),
    };
    format!(
        "# dhcpair e2e: ISC dhcpd as the {role:?} of {RELATIONSHIP}\n\
         authoritative;\n\
         ddns-update-style none;\n\
         # no ICMP probe (1 s) before an OFFER: the load client retries faster than that\n\
         ping-check false;\n\
         default-lease-time {lt};\n\
         max-lease-time {max};\n\
         failover peer \"{RELATIONSHIP}\" {{\n\
         \x20 {role_line}\n\
         \x20 address {me};\n\
         \x20 port 647;\n\
         \x20 peer address {peer};\n\
         \x20 peer port 647;\n\
         \x20 max-response-delay {mrd};\n\
         \x20 max-unacked-updates {mu};\n\
         \x20 load balance max seconds {lbms};\n\
         {primary_only}\
         }}\n\
         subnet {subnet} netmask 255.255.255.0 {{\n\
         \x20 option routers {router};\n\
         \x20 pool {{\n\
         \x20   failover peer \"{RELATIONSHIP}\";\n\
         \x20   deny dynamic bootp clients;\n\
         \x20   range {start} {end};\n\
         \x20 }}\n\
         }}\n",
        lt = s.lease_time,
        max = s.lease_time * 4,
        mrd = s.max_response_delay,
        mu = s.max_unacked_updates,
        lbms = s.load_balance_max_seconds,
        subnet = net.host(0),
        router = net.host(1),
        start = net.host(s.first),
        end = net.host(s.last),
    )
}

/// One address of ISC's lease file (the last block for it wins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IscLease {
    pub state: String,
    pub mac: Option<String>,
}

/// Debian's ISC dhcpd in the foreground: `dhcpd -4 -f -d -cf CONF -lf LEASES -pf PID IFACE`.
#[derive(Debug)]
pub struct IscDhcpd {
    process: Process,
    pub conf: PathBuf,
    pub lease_file: PathBuf,
}

impl IscDhcpd {
    /// Write `conf`, create the lease file, start dhcpd on `iface` inside `ns` and wait until
    /// it says `Server starting service.`
    pub fn start(env: &TestEnv, ns: &Netns, iface: &str, conf: &str) -> Result<IscDhcpd> {
        let bin = env.require("dhcpd")?;
        let conf_path = env.path("isc-dhcpd.conf");
        let lease_file = env.path("isc-dhcpd.leases");
        let pid_file = env.path("isc-dhcpd.pid");
        std::fs::write(&conf_path, conf)?;
        std::fs::write(&lease_file, "")?;
        let mut cmd = ns.command(&[&bin.display().to_string(), "-4", "-f", "-d"]);
        cmd.arg("-cf")
            .arg(&conf_path)
            .arg("-lf")
            .arg(&lease_file)
            .arg("-pf")
            .arg(&pid_file)
            .arg(iface);
        let mut process = Process::spawn_command("isc-dhcpd", &env.path("isc-dhcpd.log"), cmd)?;
        let mut died = None;
        wait_until(
            "ISC dhcpd to start service",
            Duration::from_secs(15),
            || {
                if let Some(s) = process.try_wait() {
                    died = Some(s);
                    return Some(());
                }
                process
                    .log()
                    .contains("Server starting service.")
                    .then_some(())
            },
        )?;
        if let Some(s) = died {
            bail!("ISC dhcpd exited ({s}) at start:\n{}", process.log());
        }
        Ok(IscDhcpd {
            process,
            conf: conf_path,
            lease_file,
        })
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Poll until ISC's log contains `needle` (failing at once if dhcpd exited).
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let mut died = None;
        let process = &mut self.process;
        wait_until(format!("ISC dhcpd to log {needle:?}"), timeout, || {
            if let Some(s) = process.try_wait() {
                died = Some(s);
                return Some(());
            }
            process.log().contains(needle).then_some(())
        })?;
        match died {
            Some(s) => bail!("ISC dhcpd exited ({s}) before logging {needle:?}"),
            None => Ok(()),
        }
    }

    /// The lease file, one entry per address (the last block wins).
    pub fn leases(&self) -> BTreeMap<Ipv4Addr, IscLease> {
        parse_isc_leases(&std::fs::read_to_string(&self.lease_file).unwrap_or_default())
    }

    /// Active leases: address → MAC.
    pub fn active(&self) -> BTreeMap<Ipv4Addr, String> {
        self.leases()
            .into_iter()
            .filter(|(_, l)| l.state == "active")
            .filter_map(|(ip, l)| Some((ip, l.mac?)))
            .collect()
    }

    /// How many addresses of the lease file are in `state`.
    pub fn count(&self, state: &str) -> usize {
        self.leases().values().filter(|l| l.state == state).count()
    }

    /// SIGKILL (no goodbye to the partner: its TCP connection just closes).
    pub fn kill9(&mut self) {
        self.process.kill9();
    }
}

/// Parse `lease A.B.C.D { ... binding state S; ... hardware ethernet MAC; ... }` blocks.
pub fn parse_isc_leases(text: &str) -> BTreeMap<Ipv4Addr, IscLease> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(Ipv4Addr, IscLease)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("lease ") {
            cur = rest
                .trim_end_matches('{')
                .trim()
                .parse()
                .ok()
                .map(|ip| (ip, IscLease::default()));
        } else if line == "}" {
            if let Some((ip, l)) = cur.take() {
                out.insert(ip, l);
            }
        } else if let Some((_, l)) = cur.as_mut() {
            if let Some(s) = line.strip_prefix("binding state ") {
                l.state = s.trim_end_matches(';').trim().to_string();
            } else if let Some(m) = line.strip_prefix("hardware ethernet ") {
                l.mac = Some(m.trim_end_matches(';').trim().to_ascii_lowercase());
            }
        }
    }
    out
}

/// ISC dhcpd and dhcpair as the two members of a relationship on one [`PairNet`].
#[derive(Debug)]
pub struct MixedPair {
    pub dhcpair: Member,
    pub isc: IscDhcpd,
}

impl MixedPair {
    /// dhcpair takes `dhcpair_role` (on that node), ISC the other node. dhcpair starts first;
    /// both are then polled until NORMAL: dhcpair's status, and ISC's log `I move from X to
    /// normal`.
    pub fn start(
        env: &TestEnv,
        pair: &PairNet,
        dhcpair_role: Role,
        s: &PairSettings,
    ) -> Result<MixedPair> {
        let isc_role = match dhcpair_role {
            Role::Primary => Role::Secondary,
            Role::Secondary => Role::Primary,
        };
        let dhcpair = Member::start(env, pair, dhcpair_role, s)?;
        let isc_node = pair.node(isc_role);
        let conf = isc_config(
            pair.net,
            isc_role,
            isc_node.ip,
            pair.node(dhcpair_role).ip,
            s,
        );
        let mut isc = IscDhcpd::start(env, &isc_node.ns, &isc_node.iface, &conf)?;
        let started = Instant::now();
        wait_until(
            "ISC dhcpd to move to normal",
            Duration::from_secs(30),
            || {
                my_moves(&isc.log())
                    .iter()
                    .any(|m| m.to == "normal")
                    .then_some(())
            },
        )
        .with_context(|| format!("ISC log:\n{}", isc.log()))?;
        ensure!(isc.is_running(), "ISC dhcpd exited:\n{}", isc.log());
        let rel = dhcpair.wait_state("normal", Duration::from_secs(20))?;
        wait_until("dhcpair to see ISC normal", Duration::from_secs(20), || {
            let r = dhcpair.relationship().ok()?;
            (r.partner_state == "normal" && r.connected).then_some(())
        })?;
        println!(
            "dhcpair {dhcpair_role:?} and ISC {isc_role:?} normal after {:.1?}: {rel:?}",
            started.elapsed()
        );
        Ok(MixedPair { dhcpair, isc })
    }
}

/// The two "reach normal and share leases" interop scenarios, with dhcpair as `dhcpair_role`:
/// NORMAL on both sides; the pool balanced (ISC's lease file and dhcpair's status count the
/// same free and backup); 16 load clients sent to both servers split as the RFC 3074 hash says
/// (which checks the HBA polarity both ways); every lease either side ACKed is active for its
/// MAC on the other within `sync`; no failover protocol error in either log.
pub fn check_mixed_pair(
    env: &TestEnv,
    pair: &PairNet,
    dhcpair_role: Role,
    s: &PairSettings,
    load_bin: &str,
    sync: Duration,
) -> Result<()> {
    let mut mixed = MixedPair::start(env, pair, dhcpair_role, s)?;
    let (dhcpair, isc) = (&mixed.dhcpair, &mixed.isc);
    // Both started empty: ISC went through RECOVER, synchronised, and on to NORMAL.
    let isc_moves = my_moves(&isc.log());
    ensure!(
        find_move(&isc_moves, "recover-done", "normal").is_some(),
        "ISC did not log `I move from recover-done to normal`: {isc_moves:?}"
    );

    // Balanced, and counted the same on both sides.
    let size = s.pool_size();
    let mut last = None;
    wait_until(
        "the pool balanced on dhcpair and in ISC's lease file",
        sync,
        || {
            let lan = dhcpair.lan().ok()?;
            let (free, backup) = (isc.count("free") as u64, isc.count("backup") as u64);
            let done = lan.total == size
                && lan.free + lan.backup == size
                && lan.free.abs_diff(lan.backup) <= 2
                && (free, backup) == (lan.free, lan.backup);
            last = Some((lan, free, backup));
            done.then_some(())
        },
    )
    .with_context(|| format!("last (dhcpair status, ISC free, ISC backup): {last:?}"))?;
    println!("balanced: {last:?}");

    let relay = pair.relay(&[50, 51])?;
    let primary_ip = pair.primary.ip;
    let secondary_ip = pair.secondary.ip;
    let tag = 0x7b;
    let count = 16;
    let [by_primary, by_secondary] = load_both(
        env,
        &relay.ns,
        load_bin,
        "load",
        [pair.net.host(50), pair.net.host(51)],
        [primary_ip, secondary_ip],
        tag,
        count,
    )?;
    let expected_primary: Vec<String> = (0..count)
        .map(|i| load_mac(tag, i))
        .filter(|m| primary_serves(m, s.split))
        .map(|m| mac_string(&m))
        .collect();
    let mut got_primary: Vec<String> = by_primary.iter().map(|a| a.mac.clone()).collect();
    got_primary.sort();
    ensure!(
        !by_primary.is_empty() && !by_secondary.is_empty(),
        "both servers must ACK some of {count} clients: primary {by_primary:?}, secondary {by_secondary:?}"
    );
    ensure!(
        got_primary == expected_primary && by_primary.len() + by_secondary.len() == count as usize,
        "the primary ACKed {got_primary:?}, the hash gives it {expected_primary:?}; the secondary ACKed {by_secondary:?}"
    );
    let (by_dhcpair, by_isc) = match dhcpair_role {
        Role::Primary => (by_primary, by_secondary),
        Role::Secondary => (by_secondary, by_primary),
    };
    wait_active("ISC's lease file", &by_dhcpair, sync, || Ok(isc.active()))?;
    wait_active("dhcpair's database", &by_isc, sync, || {
        dhcpair_active(dhcpair)
    })?;
    wait_active("dhcpair's database", &by_dhcpair, sync, || {
        dhcpair_active(dhcpair)
    })?;
    wait_active("ISC's lease file", &by_isc, sync, || Ok(isc.active()))?;

    ensure!(
        mixed.isc.is_running(),
        "ISC dhcpd exited:\n{}",
        mixed.isc.log()
    );
    check_no_protocol_errors(&mixed.isc.log(), &mixed.dhcpair.log())
}

/// Neither log shows a failover protocol error, a refused message or an invalid state.
pub fn check_no_protocol_errors(isc_log: &str, dhcpair_log: &str) -> Result<()> {
    let bad = |l: &str| {
        l.contains("FAILOVER:")
            || l.contains("protocol error")
            || l.contains("Invalid state")
            || l.contains("Failover CONNECT")
            || l.contains("Failover DISCONNECT")
            || (l.contains("bind update on")
                && l.contains("rejected")
                && !l.contains("less critical"))
    };
    let isc_bad: Vec<&str> = isc_log.lines().filter(|l| bad(l)).collect();
    let ours_bad: Vec<&str> = dhcpair_log.lines().filter(|l| bad(l)).collect();
    ensure!(
        isc_bad.is_empty() && ours_bad.is_empty(),
        "failover errors:\nISC:\n{}\ndhcpair:\n{}",
        isc_bad.join("\n"),
        ours_bad.join("\n")
    );
    Ok(())
}

// ------------------------------------------------------------------------------ tshark

/// `tshark -i IFACE -f 'tcp port 647' -w FILE` inside a namespace.
#[derive(Debug)]
pub struct FailoverCapture {
    process: Process,
    pub file: PathBuf,
}

impl FailoverCapture {
    pub fn start(env: &TestEnv, ns: &Netns, iface: &str) -> Result<FailoverCapture> {
        env.require("tshark")?;
        let file = env.path("failover.pcapng");
        let mut cmd = ns.command(&["tshark", "-n", "-i", iface, "-f", "tcp port 647", "-w"]);
        cmd.arg(&file);
        let process = Process::spawn_command("tshark", &env.path("tshark.log"), cmd)?;
        wait_until("tshark capturing", Duration::from_secs(20), || {
            process.log().contains("Capturing on").then_some(())
        })?;
        Ok(FailoverCapture { process, file })
    }

    /// Stop by PID (SIGINT: tshark finishes the file) and wait for it.
    pub fn stop(&mut self) -> Result<()> {
        self.process.signal("INT")?;
        self.process.wait_exit(Duration::from_secs(10))?;
        Ok(())
    }
}

/// One captured frame carrying TCP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoFrame {
    pub number: u64,
    pub src: Ipv4Addr,
    /// `dhcpfo.type` of every failover message tshark decoded in the frame.
    pub types: Vec<u8>,
    /// Set when the frame's bytes belong to a PDU reassembled in a later frame.
    pub reassembled_in: Option<u64>,
}

/// Every frame with TCP payload in `file`, as tshark decodes it (two passes, so that PDUs
/// spanning segments are attributed), except TCP retransmissions: tshark does not dissect a
/// retransmitted segment again, and its first copy is in the list.
pub fn fo_frames(file: &Path) -> Result<Vec<FoFrame>> {
    parse_fo_frames(&run(&mut fo_frames_command(file))?)
}

/// [`fo_frames`] of a capture still being written: whatever tshark could read (it exits
/// non-zero on a file cut short in the middle of a packet).
pub fn fo_frames_so_far(file: &Path) -> Vec<FoFrame> {
    fo_frames_command(file)
        .output()
        .ok()
        .and_then(|o| parse_fo_frames(&String::from_utf8_lossy(&o.stdout)).ok())
        .unwrap_or_default()
}

fn fo_frames_command(file: &Path) -> Command {
    let filter =
        "tcp.len > 0 && !tcp.analysis.retransmission && !tcp.analysis.spurious_retransmission";
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-2", "-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=/t"])
        .args(["-e", "frame.number", "-e", "ip.src", "-e", "dhcpfo.type"])
        .args(["-e", "tcp.reassembled_in"]);
    cmd
}

fn parse_fo_frames(out: &str) -> Result<Vec<FoFrame>> {
    out.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            Ok(FoFrame {
                number: field(0)
                    .parse()
                    .with_context(|| format!("frame in {line:?}"))?,
                src: field(1)
                    .parse()
                    .with_context(|| format!("ip.src in {line:?}"))?,
                types: field(2)
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| t.parse::<u8>().with_context(|| format!("type in {line:?}")))
                    .collect::<Result<_>>()?,
                reassembled_in: field(3).parse().ok(),
            })
        })
        .collect()
}

/// Frames from `src` that tshark marks malformed or with an expert item of warning or worse:
/// `(frame, messages)` as tshark prints them.
pub fn fo_problems(file: &Path, src: Ipv4Addr) -> Result<Vec<String>> {
    let filter = format!("ip.src == {src} && (_ws.malformed || _ws.expert.severity >= warning)");
    let out = run(Command::new("tshark")
        .args(["-n", "-2", "-r"])
        .arg(file)
        .args(["-Y", &filter, "-T", "fields", "-E", "separator=/t"])
        .args(["-e", "frame.number", "-e", "_ws.expert.message"])
        .args(["-e", "_ws.expert.group", "-e", "_ws.expert.severity"]))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// draft-12 §6.1 message type names, for reports.
pub fn fo_type_name(t: u8) -> &'static str {
    match t {
        1 => "POOLREQ",
        2 => "POOLRESP",
        3 => "BNDUPD",
        4 => "BNDACK",
        5 => "CONNECT",
        6 => "CONNECTACK",
        7 => "UPDREQALL",
        8 => "UPDDONE",
        9 => "UPDREQ",
        10 => "STATE",
        11 => "CONTACT",
        12 => "DISCONNECT",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_parse_to_unix_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:01.5Z"), Some(951_868_801.5));
        assert_eq!(parse_rfc3339("2026-11-22T10:31:35Z"), Some(1_795_343_495.0));
    }

    #[test]
    fn move_lines_parse_from_dhcpair_and_isc_logs() {
        let log = "2026-11-22T10:31:35.499572Z  INFO dhcpair_engine::failover: failover peer pair: I move from recover to recover-done\n\
                   failover peer pair: peer moves from unknown-state to recover\n\
                   failover peer pair: I move from recover-done to normal\n";
        let mine = my_moves(log);
        assert_eq!(mine.len(), 2);
        assert_eq!(
            (mine[0].from.as_str(), mine[0].to.as_str()),
            ("recover", "recover-done")
        );
        assert!(mine[0].at.is_some());
        assert_eq!(mine[1].at, None);
        assert_eq!(moves(log, "peer moves")[0].to, "recover");
    }

    #[test]
    fn the_last_isc_lease_block_for_an_address_wins() {
        let text = "lease 10.0.0.5 {\n  binding state free;\n}\n\
                    lease 10.0.0.5 {\n  starts 4 2026/11/22 10:32:00;\n  binding state active;\n  next binding state free;\n  hardware ethernet 52:54:00:AA:BB:CC;\n}\n\
                    lease 10.0.0.6 {\n  binding state backup;\n}\n";
        let l = parse_isc_leases(text);
        assert_eq!(l[&"10.0.0.5".parse::<Ipv4Addr>().unwrap()].state, "active");
        assert_eq!(
            l[&"10.0.0.5".parse::<Ipv4Addr>().unwrap()].mac.as_deref(),
            Some("52:54:00:aa:bb:cc")
        );
        assert_eq!(l[&"10.0.0.6".parse::<Ipv4Addr>().unwrap()].state, "backup");
    }

    #[test]
    fn split_128_gives_both_servers_some_of_sixteen_load_clients() {
        let primary = (0..16)
            .filter(|i| primary_serves(&load_mac(0x70, *i), 128))
            .count();
        assert!(primary > 0 && primary < 16, "{primary} of 16");
        assert!(primary_serves(&[0x02, 0xe2, 7, 0, 0, 1], 256));
        assert!(!primary_serves(&[0x02, 0xe2, 7, 0, 0, 1], 0));
    }
}
