//! The dhcpair server configuration: one YAML schema, parsed into raw serde types
//! ([`raw`]) and then validated into [`Config`], the only type the rest of the server sees.
//!
//! This crate is pure: no sockets, no clock, no tokio. The operator renders exactly the raw
//! types in [`raw`], and the server parses them with [`Config::from_yaml`], so the two can
//! never drift. Start reading at [`Config::from_yaml`] and [`validate`].
//!
//! Keys are camelCase and unknown keys are errors. Every error names the file, the position
//! or field path, and what is wrong. A valid config that does not do what it looks like gets
//! [`warnings`] (printed by `dhcpair check`), never an error.

pub mod raw;
mod validate;
mod warnings;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub use ipnet::Ipv4Net;
pub use raw::{OptionValues, Permit};
pub use validate::validate;
pub use warnings::{warnings, Warning};

/// A configuration that could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
}

/// Lease times in seconds, already bounded so that `min <= default <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub default: u32,
    pub min: u32,
    pub max: u32,
}

/// A client's identity in a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReservationKey {
    /// Ethernet hardware address (htype 1).
    HardwareAddress([u8; 6]),
    /// Option 61 bytes, as the client sends them.
    ClientId(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub key: ReservationKey,
    /// None: a host entry (the client is known and has its options, but no fixed address).
    pub ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub options: OptionValues,
}

/// A range of addresses, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl Range {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.start)..=u32::from(self.end)).map(Ipv4Addr::from)
    }
}

/// Who may take an address from a pool (ISC's `allow`/`deny` permit lists).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PermitList {
    pub allow: Vec<Permit>,
    pub deny: Vec<Permit>,
}

/// The facts about a client that permit lists look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFacts {
    /// The client has a reservation (a "host declaration" in ISC terms).
    pub known: bool,
    /// A BOOTP client (no DHCP message type) asking for a dynamic address.
    pub bootp: bool,
}

impl PermitList {
    fn matches(p: Permit, c: ClientFacts) -> bool {
        match p {
            Permit::KnownClients => c.known,
            Permit::UnknownClients => !c.known,
            Permit::DynamicBootpClients => c.bootp,
        }
    }

    /// ISC semantics: a client matching any `deny` is refused; if there is an `allow` list,
    /// the client must match one of its entries. BOOTP clients need an explicit allow.
    pub fn permits(&self, c: ClientFacts) -> bool {
        if self.deny.iter().any(|p| Self::matches(*p, c)) {
            return false;
        }
        if !self.allow.is_empty() {
            return self.allow.iter().any(|p| Self::matches(*p, c));
        }
        true
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub subnet: Ipv4Net,
    pub ranges: Vec<Range>,
    /// Options in scope order: global, subnet, pool (innermost last).
    pub options: OptionValues,
    pub lease_times: LeaseTimes,
    pub permits: PermitList,
    pub reservations: Vec<Reservation>,
    /// The link this pool's subnet is on; pools with the same value share a network.
    pub shared_network: String,
    pub failover_peer: Option<String>,
}

impl Pool {
    pub fn in_range(&self, ip: Ipv4Addr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }
    pub fn size(&self) -> u64 {
        self.ranges.iter().map(Range::len).sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub interfaces: Vec<String>,
    pub data_dir: PathBuf,
    pub http: Option<SocketAddr>,
    pub server_id: Option<Ipv4Addr>,
    pub port: u16,
    pub client_port: u16,
    pub reclaim_interval: u32,
    pub decline_probation_period: u32,
    pub offer_hold_time: u32,
    pub authoritative: bool,
    pub control_token_file: Option<PathBuf>,
}

pub use raw::Role;

/// A failover relationship (draft-ietf-dhc-failover-12), with ISC dhcpd's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub role: Role,
    pub address: Ipv4Addr,
    pub port: u16,
    pub peer_address: Ipv4Addr,
    pub peer_port: u16,
    /// Seconds without a message before the link is declared down (advertised as receive-timer).
    pub max_response_delay: u32,
    /// BNDUPDs the partner may have outstanding towards us (advertised as max-unacked-bndupd).
    pub max_unacked_updates: u32,
    /// 0 disables load balancing, as in ISC dhcpd 4.4.
    pub load_balance_max_seconds: u32,
    /// Primary only (the secondary learns it from CONNECT).
    pub mclt: Option<u32>,
    /// Primary only: the hash bucket assignment, bit set = the primary serves the bucket.
    pub hba: Option<[u8; 32]>,
    /// Seconds in COMMUNICATIONS-INTERRUPTED before PARTNER-DOWN; 0 = never.
    pub auto_partner_down: u32,
    pub max_lease_misbalance: u32,
    pub max_lease_ownership: u32,
    pub min_balance: u32,
    pub max_balance: u32,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerSettings,
    pub pools: Vec<Pool>,
    pub peers: Vec<Peer>,
}

impl Config {
    /// Index of the relationship a pool belongs to.
    pub fn peer_index(&self, name: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.name == name)
    }
}

impl Config {
    /// Parse and validate YAML text; `file` names the source in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        validate(file, raw)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_yaml(&file, &text)
    }
}

#[cfg(test)]
mod tests;
