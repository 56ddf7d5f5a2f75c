//! `RawConfig` -> `Config`: every check that must pass before the server serves.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::raw::{self, RawConfig, RawPool, Role};
use crate::{
    Config, ConfigError, LeaseTimes, Peer, PermitList, Pool, Range, Reservation, ReservationKey,
    ServerSettings,
};

const DEFAULT_LEASE_TIME: u32 = 43_200; // ISC's default-lease-time
const DEFAULT_MAX_LEASE_TIME: u32 = 86_400; // ISC's max-lease-time

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Validate a parsed file. `file` names it in errors.
pub fn validate(file: &str, raw: RawConfig) -> Result<Config, ConfigError> {
    let cx = Ctx { file };
    let server = validate_server(&cx, &raw.server)?;
    let peers = validate_peers(&cx, &raw.peers)?;
    validate_options(&cx, "options", &raw.options)?;

    let mut subnet_opts: HashMap<ipnet::Ipv4Net, raw::OptionValues> = HashMap::new();
    for (i, s) in raw.subnets.iter().enumerate() {
        let f = format!("subnets[{i}]");
        if s.subnet.trunc() != s.subnet {
            return Err(cx.err(
                format!("{f}.subnet"),
                format!(
                    "{} has host bits set; did you mean {}?",
                    s.subnet,
                    s.subnet.trunc()
                ),
            ));
        }
        validate_options(&cx, &format!("{f}.options"), &s.options)?;
        if subnet_opts.insert(s.subnet, s.options.clone()).is_some() {
            return Err(cx.err(f, format!("subnet {} is listed twice", s.subnet)));
        }
    }

    let mut pools = Vec::with_capacity(raw.pools.len());
    let mut names = HashSet::new();
    for (i, p) in raw.pools.iter().enumerate() {
        let f = format!("pools[{i}]");
        if !names.insert(p.name.clone()) {
            return Err(cx.err(
                format!("{f}.name"),
                format!("pool name {:?} is used twice", p.name),
            ));
        }
        if let Some(peer) = &p.failover_peer {
            if !raw.peers.iter().any(|r| &r.name == peer) {
                return Err(cx.err(
                    format!("{f}.failoverPeer"),
                    format!("no peer named {peer:?} in peers"),
                ));
            }
        }
        let global = raw
            .options
            .overlay(subnet_opts.get(&p.subnet).unwrap_or(&Default::default()));
        pools.push(validate_pool(&cx, &f, p, &global)?);
    }
    for (s, _) in subnet_opts.iter() {
        if !pools.iter().any(|p| p.subnet == *s) {
            return Err(cx.err(
                "subnets",
                format!("subnet {s} has options but no pool uses it"),
            ));
        }
    }
    cross_check_pools(&cx, &pools)?;
    Ok(Config {
        server,
        pools,
        peers,
    })
}

fn validate_server(cx: &Ctx, s: &raw::RawServer) -> Result<ServerSettings, ConfigError> {
    if s.interfaces.is_empty() {
        return Err(cx.err(
            "server.interfaces",
            "name at least one interface to serve on",
        ));
    }
    let mut seen = HashSet::new();
    for (i, name) in s.interfaces.iter().enumerate() {
        if name.is_empty()
            || name.len() > 15
            || name.contains('/')
            || name.contains(char::is_whitespace)
        {
            return Err(cx.err(
                format!("server.interfaces[{i}]"),
                format!("{name:?} is not an interface name"),
            ));
        }
        if !seen.insert(name) {
            return Err(cx.err(
                format!("server.interfaces[{i}]"),
                format!("{name:?} is listed twice"),
            ));
        }
    }
    if s.data_dir.is_empty() {
        return Err(cx.err("server.dataDir", "must not be empty"));
    }
    let port = s.port.unwrap_or(67);
    let client_port = s.client_port.unwrap_or(68);
    if port == 0 || client_port == 0 || port == client_port {
        return Err(cx.err(
            "server.port",
            format!("port {port} and clientPort {client_port} must be non-zero and differ"),
        ));
    }
    let reclaim_interval = s.reclaim_interval.unwrap_or(10);
    if reclaim_interval == 0 {
        return Err(cx.err("server.reclaimInterval", "must be at least 1 second"));
    }
    Ok(ServerSettings {
        interfaces: s.interfaces.clone(),
        data_dir: PathBuf::from(&s.data_dir),
        http: s.http,
        server_id: s.server_id,
        port,
        client_port,
        reclaim_interval,
        decline_probation_period: s.decline_probation_period.unwrap_or(86_400),
        offer_hold_time: s.offer_hold_time.unwrap_or(30),
        authoritative: s.authoritative.unwrap_or(true),
        control_token_file: s.control_token_file.as_ref().map(PathBuf::from),
    })
}

/// ISC's split: buckets 0..n-1 (bit b = byte b>>3, mask 1<<(b&7)) are the primary's.
fn split_hba(n: u16) -> [u8; 32] {
    let mut hba = [0u8; 32];
    for b in 0..usize::from(n.min(256)) {
        hba[b >> 3] |= 1 << (b & 7);
    }
    hba
}

fn validate_peers(cx: &Ctx, peers: &[raw::RawPeer]) -> Result<Vec<Peer>, ConfigError> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, p) in peers.iter().enumerate() {
        let f = format!("peers[{i}]");
        if p.name.is_empty() || !names.insert(&p.name) {
            return Err(cx.err(
                format!("{f}.name"),
                format!("peer name {:?} is empty or used twice", p.name),
            ));
        }
        if p.role == Role::Secondary {
            for (key, set) in [
                ("mclt", p.mclt.is_some()),
                ("split", p.split.is_some()),
                ("hba", p.hba.is_some()),
            ] {
                if set {
                    return Err(cx.err(format!("{f}.{key}"), format!("{key} is set by the primary only (as in ISC dhcpd); remove it from the secondary")));
                }
            }
        }
        if p.split.is_some() && p.hba.is_some() {
            return Err(cx.err(format!("{f}.split"), "give split or hba, not both"));
        }
        if let Some(s) = p.split {
            if s > 256 {
                return Err(cx.err(format!("{f}.split"), format!("{s} is above 256")));
            }
        }
        if let Some(h) = &p.hba {
            match raw::parse_hex(h) {
                Ok(b) if b.len() == 32 => {}
                Ok(b) => {
                    return Err(cx.err(
                        format!("{f}.hba"),
                        format!("is {} bytes, must be 32", b.len()),
                    ))
                }
                Err(e) => return Err(cx.err(format!("{f}.hba"), e)),
            }
        }
        if p.address == p.peer_address && p.port == p.peer_port {
            return Err(cx.err(
                format!("{f}.peerAddress"),
                "peer address and port equal our own",
            ));
        }
        let mut hba = None;
        if p.role == Role::Primary {
            if p.mclt.is_none() {
                return Err(cx.err(
                    format!("{f}.mclt"),
                    "the primary needs mclt (seconds), as in ISC dhcpd",
                ));
            }
            hba = match (p.split, &p.hba) {
                (Some(n), None) => Some(split_hba(n)),
                (None, Some(h)) => raw::parse_hex(h).ok().and_then(|b| b.try_into().ok()),
                _ => {
                    return Err(cx.err(
                        format!("{f}.split"),
                        "the primary needs split (0-256) or hba, as in ISC dhcpd",
                    ))
                }
            };
        }
        let max_response_delay = p.max_response_delay.unwrap_or(20);
        if max_response_delay < 3 {
            return Err(cx.err(
                format!("{f}.maxResponseDelay"),
                "must be at least 3 seconds (the partner sends CONTACT every third of it)",
            ));
        }
        let max_unacked_updates = p.max_unacked_updates.unwrap_or(100);
        if max_unacked_updates == 0 {
            return Err(cx.err(format!("{f}.maxUnackedUpdates"), "must be at least 1"));
        }
        let misbalance = p.max_lease_misbalance.unwrap_or(15);
        let ownership = p.max_lease_ownership.unwrap_or(10);
        for (key, v) in [
            ("maxLeaseMisbalance", misbalance),
            ("maxLeaseOwnership", ownership),
        ] {
            if v > 100 {
                return Err(cx.err(
                    format!("{f}.{key}"),
                    format!("{v} is a percentage above 100"),
                ));
            }
        }
        let min_balance = p.min_balance.unwrap_or(60);
        let max_balance = p.max_balance.unwrap_or(3600);
        if min_balance > max_balance {
            return Err(cx.err(
                format!("{f}.minBalance"),
                format!("{min_balance} is above maxBalance {max_balance}"),
            ));
        }
        out.push(Peer {
            name: p.name.clone(),
            role: p.role,
            address: p.address,
            port: p.port.unwrap_or(647),
            peer_address: p.peer_address,
            peer_port: p.peer_port.unwrap_or(647),
            max_response_delay,
            max_unacked_updates,
            load_balance_max_seconds: p.load_balance_max_seconds.unwrap_or(0),
            mclt: p.mclt,
            hba,
            auto_partner_down: p.auto_partner_down.unwrap_or(0),
            max_lease_misbalance: misbalance,
            max_lease_ownership: ownership,
            min_balance,
            max_balance,
        });
    }
    Ok(out)
}

fn validate_options(cx: &Ctx, f: &str, o: &raw::OptionValues) -> Result<(), ConfigError> {
    let mut codes = HashSet::new();
    for (i, c) in o.custom.iter().enumerate() {
        let cf = format!("{f}.custom[{i}]");
        if matches!(c.code, 0 | 255 | 50..=54 | 58 | 59 | 61 | 82) {
            return Err(cx.err(
                format!("{cf}.code"),
                format!(
                    "option {} is managed by the server and cannot be configured",
                    c.code
                ),
            ));
        }
        if !codes.insert(c.code) || o.codes().iter().filter(|k| **k == c.code).count() > 1 {
            return Err(cx.err(
                format!("{cf}.code"),
                format!("option {} is given twice in this scope", c.code),
            ));
        }
        c.bytes().map_err(|e| cx.err(&cf, e))?;
    }
    if let Some(list) = &o.domain_search {
        for (i, d) in list.iter().enumerate() {
            if d.is_empty() || d.split('.').any(|l| l.len() > 63) || d.len() > 253 {
                return Err(cx.err(
                    format!("{f}.domainSearch[{i}]"),
                    format!("{d:?} is not a domain name"),
                ));
            }
        }
    }
    if let Some(d) = &o.domain_name {
        if d.is_empty() || d.len() > 255 {
            return Err(cx.err(format!("{f}.domainName"), "must be 1 to 255 characters"));
        }
    }
    Ok(())
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let b = raw::parse_hex(s).ok()?;
    b.try_into().ok()
}

fn validate_pool(
    cx: &Ctx,
    f: &str,
    p: &RawPool,
    outer: &raw::OptionValues,
) -> Result<Pool, ConfigError> {
    if p.name.is_empty() {
        return Err(cx.err(format!("{f}.name"), "must not be empty"));
    }
    let net = p.subnet;
    if net.trunc() != net {
        return Err(cx.err(
            format!("{f}.subnet"),
            format!("{net} has host bits set; did you mean {}?", net.trunc()),
        ));
    }
    if net.prefix_len() > 30 {
        return Err(cx.err(
            format!("{f}.subnet"),
            format!("{net} is too small to serve (/30 at most)"),
        ));
    }
    let mut ranges = Vec::new();
    for (j, r) in p.ranges.iter().enumerate() {
        let rf = format!("{f}.ranges[{j}]");
        if r.start > r.end {
            return Err(cx.err(&rf, format!("start {} is after end {}", r.start, r.end)));
        }
        for (what, ip) in [("start", r.start), ("end", r.end)] {
            if !net.contains(&ip) {
                return Err(cx.err(
                    format!("{rf}.{what}"),
                    format!("{ip} is outside subnet {net}"),
                ));
            }
        }
        let range = Range {
            start: r.start,
            end: r.end,
        };
        for bad in [net.network(), net.broadcast()] {
            if range.contains(bad) {
                return Err(cx.err(
                    &rf,
                    format!("includes {bad}, the network or broadcast address of {net}"),
                ));
            }
        }
        ranges.push(range);
    }
    let default = p
        .default_lease_time
        .unwrap_or(DEFAULT_LEASE_TIME.min(p.max_lease_time.unwrap_or(u32::MAX)));
    let max = p
        .max_lease_time
        .unwrap_or(DEFAULT_MAX_LEASE_TIME.max(default));
    let min = p.min_lease_time.unwrap_or(0);
    if default == 0 {
        return Err(cx.err(format!("{f}.defaultLeaseTime"), "must be at least 1 second"));
    }
    if !(min <= default && default <= max) {
        return Err(cx.err(
            format!("{f}.defaultLeaseTime"),
            format!("needs minLeaseTime ({min}) <= defaultLeaseTime ({default}) <= maxLeaseTime ({max})"),
        ));
    }
    validate_options(cx, &format!("{f}.options"), &p.options)?;
    let mut reservations = Vec::new();
    for (j, r) in p.reservations.iter().enumerate() {
        let rf = format!("{f}.reservations[{j}]");
        let key = match (&r.hardware_address, &r.client_id) {
            (Some(hw), None) => {
                ReservationKey::HardwareAddress(parse_mac(hw).ok_or_else(|| {
                    cx.err(
                        format!("{rf}.hardwareAddress"),
                        format!("{hw:?} is not a MAC address like 52:54:00:12:34:56"),
                    )
                })?)
            }
            (None, Some(id)) => ReservationKey::ClientId(
                raw::parse_hex(id).map_err(|e| cx.err(format!("{rf}.clientId"), e))?,
            ),
            _ => return Err(cx.err(&rf, "give exactly one of hardwareAddress or clientId")),
        };
        if let Some(ip) = r.ip_address {
            if !net.contains(&ip) || ip == net.network() || ip == net.broadcast() {
                return Err(cx.err(
                    format!("{rf}.ipAddress"),
                    format!("{ip} is not a host address of subnet {net}"),
                ));
            }
        }
        validate_options(cx, &format!("{rf}.options"), &r.options)?;
        reservations.push(Reservation {
            key,
            ip: r.ip_address,
            hostname: r.hostname.clone(),
            options: r.options.clone(),
        });
    }
    let mut options = outer.overlay(&p.options);
    if !options.has(raw::code::SUBNET_MASK) {
        options.subnet_mask = Some(net.netmask());
    }
    Ok(Pool {
        name: p.name.clone(),
        subnet: net,
        ranges,
        options,
        lease_times: LeaseTimes { default, min, max },
        permits: PermitList {
            allow: p.allow.clone(),
            deny: p.deny.clone(),
        },
        reservations,
        shared_network: p.shared_network.clone().unwrap_or_else(|| net.to_string()),
        failover_peer: p.failover_peer.clone(),
    })
}

fn cross_check_pools(cx: &Ctx, pools: &[Pool]) -> Result<(), ConfigError> {
    // Ranges must not overlap anywhere.
    let mut all: Vec<(Range, usize, usize)> = Vec::new();
    for (i, p) in pools.iter().enumerate() {
        for (j, r) in p.ranges.iter().enumerate() {
            all.push((*r, i, j));
        }
    }
    all.sort_by_key(|(r, _, _)| r.start);
    for w in all.windows(2) {
        let (a, ai, aj) = w[0];
        let (b, bi, bj) = w[1];
        if b.start <= a.end {
            return Err(cx.err(
                format!("pools[{bi}].ranges[{bj}]"),
                format!(
                    "{}-{} overlaps pools[{ai}].ranges[{aj}] ({}-{})",
                    b.start, b.end, a.start, a.end
                ),
            ));
        }
    }
    // Subnets: equal ones share a link; overlapping different prefixes are an error.
    let mut link_of: HashMap<ipnet::Ipv4Net, (&str, usize)> = HashMap::new();
    for (i, p) in pools.iter().enumerate() {
        if let Some((link, _)) = link_of.get(&p.subnet) {
            if *link != p.shared_network {
                return Err(cx.err(
                    format!("pools[{i}].sharedNetwork"),
                    format!(
                        "subnet {} is on shared network {link:?} in another pool",
                        p.subnet
                    ),
                ));
            }
        } else {
            for (other, (_, oi)) in link_of.iter() {
                if other.contains(&p.subnet.network()) || p.subnet.contains(&other.network()) {
                    return Err(cx.err(
                        format!("pools[{i}].subnet"),
                        format!("{} overlaps subnet {other} of pools[{oi}]", p.subnet),
                    ));
                }
            }
            link_of.insert(p.subnet, (&p.shared_network, i));
        }
    }
    // One link, one failover relationship: the serving rules depend on it.
    let mut rel_of_link: HashMap<&str, (&Option<String>, usize)> = HashMap::new();
    for (i, p) in pools.iter().enumerate() {
        match rel_of_link.get(p.shared_network.as_str()) {
            Some((rel, j)) if *rel != &p.failover_peer => {
                return Err(cx.err(
                    format!("pools[{i}].failoverPeer"),
                    format!("pools on one network must share one failover peer; pools[{j}] on {:?} uses {:?}", p.shared_network, rel),
                ));
            }
            Some(_) => {}
            None => {
                rel_of_link.insert(&p.shared_network, (&p.failover_peer, i));
            }
        }
    }
    // Reservations: unique per client and per address.
    let mut by_key: HashMap<&ReservationKey, String> = HashMap::new();
    let mut by_ip: HashMap<Ipv4Addr, String> = HashMap::new();
    for (i, p) in pools.iter().enumerate() {
        for (j, r) in p.reservations.iter().enumerate() {
            let here = format!("pools[{i}].reservations[{j}]");
            if let Some(prev) = by_key.insert(&r.key, here.clone()) {
                return Err(cx.err(&here, format!("reserves the same client as {prev}")));
            }
            let Some(ip) = r.ip else { continue };
            if let Some(prev) = by_ip.insert(ip, here.clone()) {
                return Err(cx.err(&here, format!("reserves {ip} already reserved by {prev}")));
            }
        }
    }
    Ok(())
}
