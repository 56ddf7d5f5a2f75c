//! The configuration exactly as written in YAML (and as the operator renders it).
//! Field names are camelCase; unknown keys are refused by serde.

use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<RawPeer>,
    /// Global option scope (outermost).
    #[serde(default, skip_serializing_if = "OptionValues::is_empty")]
    pub options: OptionValues,
    /// Subnet option scopes, for subnets that several pools share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<RawSubnet>,
    #[serde(default)]
    pub pools: Vec<RawPool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawServer {
    pub interfaces: Vec<String>,
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// Seconds between sweeps that reclaim expired leases (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_interval: Option<u32>,
    /// Seconds a declined address stays abandoned (default 86400, as Kea).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_probation_period: Option<u32>,
    /// Seconds an offered address is held for the client (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_hold_time: Option<u32>,
    /// NAK requests for addresses that are wrong for the client's network (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authoritative: Option<bool>,
    /// File holding the bearer token of the control API (`POST /v1/...`); the environment
    /// variable `DHCPAIR_CONTROL_TOKEN` works too. Without either, control is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_token_file: Option<String>,
}

fn default_data_dir() -> String {
    "/var/lib/dhcpair".to_string()
}

/// A failover relationship (the failover issue gives it behaviour).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPeer {
    pub name: String,
    pub role: Role,
    pub address: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub peer_address: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_delay: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unacked_updates: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balance_max_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mclt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hba: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_partner_down: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_misbalance: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ownership: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_balance: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_balance: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Primary,
    Secondary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSubnet {
    pub subnet: Ipv4Net,
    #[serde(default, skip_serializing_if = "OptionValues::is_empty")]
    pub options: OptionValues,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPool {
    pub name: String,
    pub subnet: Ipv4Net,
    #[serde(default)]
    pub ranges: Vec<RawRange>,
    #[serde(default, skip_serializing_if = "OptionValues::is_empty")]
    pub options: OptionValues,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lease_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lease_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Permit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Permit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<RawReservation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_peer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawReservation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_address: Option<String>,
    /// Option 61 as hex bytes, e.g. `01:52:54:00:12:34:56`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The fixed address; without one the entry is a host entry as in ISC: it makes the
    /// client known (`allow/deny knownClients`) and gives it its options and hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "OptionValues::is_empty")]
    pub options: OptionValues,
}

/// ISC's permit list entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Permit {
    KnownClients,
    UnknownClients,
    DynamicBootpClients,
}

/// DHCP options of one scope. Named options for the common ones, anything else by code.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_mask: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routers: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name_servers: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broadcast_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntp_servers: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_search: Option<Vec<String>>,
    /// Any other option, by code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<CustomOption>,
}

impl OptionValues {
    pub fn is_empty(&self) -> bool {
        *self == OptionValues::default()
    }

    /// `inner` overrides `self` option by option, by code: a named option and a custom
    /// option with the same code are the same option, so either one in the inner scope
    /// replaces both in the outer one.
    pub fn overlay(&self, inner: &OptionValues) -> OptionValues {
        let inner_codes = inner.codes();
        let mut out = self.clone();
        out.custom.retain(|o| !inner_codes.contains(&o.code));
        out.clear_named(&inner_codes);
        out.custom.extend(inner.custom.iter().cloned());
        if inner.subnet_mask.is_some() {
            out.subnet_mask = inner.subnet_mask;
        }
        if inner.routers.is_some() {
            out.routers = inner.routers.clone();
        }
        if inner.domain_name_servers.is_some() {
            out.domain_name_servers = inner.domain_name_servers.clone();
        }
        if inner.domain_name.is_some() {
            out.domain_name = inner.domain_name.clone();
        }
        if inner.broadcast_address.is_some() {
            out.broadcast_address = inner.broadcast_address;
        }
        if inner.ntp_servers.is_some() {
            out.ntp_servers = inner.ntp_servers.clone();
        }
        if inner.domain_search.is_some() {
            out.domain_search = inner.domain_search.clone();
        }
        out
    }

    /// The codes of the named options that are set.
    fn named_codes(&self) -> Vec<u8> {
        let mut codes = Vec::new();
        let mut add = |set: bool, code: u8| {
            if set {
                codes.push(code);
            }
        };
        add(self.subnet_mask.is_some(), code::SUBNET_MASK);
        add(self.routers.is_some(), code::ROUTERS);
        add(
            self.domain_name_servers.is_some(),
            code::DOMAIN_NAME_SERVERS,
        );
        add(self.domain_name.is_some(), code::DOMAIN_NAME);
        add(self.broadcast_address.is_some(), code::BROADCAST_ADDRESS);
        add(self.ntp_servers.is_some(), code::NTP_SERVERS);
        add(self.domain_search.is_some(), code::DOMAIN_SEARCH);
        codes
    }

    /// Every option code this scope sets, named or custom.
    pub fn codes(&self) -> Vec<u8> {
        let mut codes = self.named_codes();
        codes.extend(self.custom.iter().map(|c| c.code));
        codes
    }

    /// Does this scope set option `code` (named or custom)?
    pub fn has(&self, code: u8) -> bool {
        self.codes().contains(&code)
    }

    fn clear_named(&mut self, codes: &[u8]) {
        for c in codes {
            match *c {
                code::SUBNET_MASK => self.subnet_mask = None,
                code::ROUTERS => self.routers = None,
                code::DOMAIN_NAME_SERVERS => self.domain_name_servers = None,
                code::DOMAIN_NAME => self.domain_name = None,
                code::BROADCAST_ADDRESS => self.broadcast_address = None,
                code::NTP_SERVERS => self.ntp_servers = None,
                code::DOMAIN_SEARCH => self.domain_search = None,
                _ => {}
            }
        }
    }

    /// The options as (code, payload) in code order, as they go on the wire (a payload
    /// longer than 255 bytes is split by the encoder, RFC 3396). Custom options whose value
    /// does not encode are left out (validation refuses them before a config is used).
    pub fn encoded(&self) -> Vec<(u8, Vec<u8>)> {
        fn addrs(v: &[Ipv4Addr]) -> Vec<u8> {
            v.iter().flat_map(|a| a.octets()).collect()
        }
        let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
        if let Some(v) = self.subnet_mask {
            out.push((code::SUBNET_MASK, v.octets().to_vec()));
        }
        if let Some(v) = &self.routers {
            out.push((code::ROUTERS, addrs(v)));
        }
        if let Some(v) = &self.domain_name_servers {
            out.push((code::DOMAIN_NAME_SERVERS, addrs(v)));
        }
        if let Some(v) = &self.domain_name {
            out.push((code::DOMAIN_NAME, v.as_bytes().to_vec()));
        }
        if let Some(v) = self.broadcast_address {
            out.push((code::BROADCAST_ADDRESS, v.octets().to_vec()));
        }
        if let Some(v) = &self.ntp_servers {
            out.push((code::NTP_SERVERS, addrs(v)));
        }
        if let Some(v) = &self.domain_search {
            out.push((code::DOMAIN_SEARCH, domain_list(v)));
        }
        for c in &self.custom {
            if let Ok(b) = c.bytes() {
                out.retain(|(k, _)| *k != c.code);
                out.push((c.code, b));
            }
        }
        out.sort_by_key(|(k, _)| *k);
        out
    }
}

/// The codes of the named options (RFC 2132, RFC 3397).
pub mod code {
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTERS: u8 = 3;
    pub const DOMAIN_NAME_SERVERS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const BROADCAST_ADDRESS: u8 = 28;
    pub const NTP_SERVERS: u8 = 42;
    pub const DOMAIN_SEARCH: u8 = 119;
}

/// RFC 3397: a list of domain names in DNS wire format, uncompressed.
fn domain_list(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        for label in name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            out.push(label.len().min(63) as u8);
            out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
        }
        out.push(0);
    }
    out
}

/// The longest custom option value: RFC 3396 carries values above 255 bytes as several
/// options of the same code; a reply must still fit the client's maximum message size.
pub const MAX_OPTION_BYTES: usize = 1024;

/// An option by code with exactly one typed value (`ip`, `ips`, `text`, `u8`, `u16`, `u32`,
/// `bool`) or raw `hex` bytes (`"0a:0b"` or `"0a0b"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomOption {
    pub code: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips: Option<Vec<Ipv4Addr>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u8: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u16: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u32: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bool: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
}

impl CustomOption {
    /// The option's payload bytes, or why it has none.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        let mut values: Vec<Vec<u8>> = Vec::new();
        if let Some(ip) = self.ip {
            values.push(ip.octets().to_vec());
        }
        if let Some(ips) = &self.ips {
            values.push(ips.iter().flat_map(|i| i.octets()).collect());
        }
        if let Some(t) = &self.text {
            values.push(t.as_bytes().to_vec());
        }
        if let Some(v) = self.u8 {
            values.push(vec![v]);
        }
        if let Some(v) = self.u16 {
            values.push(v.to_be_bytes().to_vec());
        }
        if let Some(v) = self.u32 {
            values.push(v.to_be_bytes().to_vec());
        }
        if let Some(v) = self.bool {
            values.push(vec![u8::from(v)]);
        }
        if let Some(h) = &self.hex {
            values.push(parse_hex(h)?);
        }
        match values.len() {
            1 => {
                let v = values.remove(0);
                if v.len() > MAX_OPTION_BYTES {
                    Err(format!(
                        "value is {} bytes, at most {MAX_OPTION_BYTES} fit (RFC 3396 splits values above 255)",
                        v.len()
                    ))
                } else {
                    Ok(v)
                }
            }
            0 => Err("needs exactly one of ip, ips, text, u8, u16, u32, bool, hex".into()),
            _ => Err("has more than one value; give exactly one of ip, ips, text, u8, u16, u32, bool, hex".into()),
        }
    }
}

/// Parse `"01:02:0a"`, `"01-02-0a"` or `"01020a"` into bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return Err(format!("{s:?} is not an even number of hex digits"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            digits
                .get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| format!("{s:?} is not hex"))
        })
        .collect()
}
