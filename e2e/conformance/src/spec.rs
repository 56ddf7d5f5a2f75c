//! One server configuration, described once and rendered for each of the three servers by
//! `adapters`: subnets with ranges, options (typed or hex, by code), lease times,
//! reservations, authoritative, decline probation, BOOTP.
//!
//! The link every server sits on is fixed (see [`Topology`]): the server's interface has
//! `192.0.2.1/24`; the client namespace's end has `192.0.2.2/24` (a relay agent speaks from
//! there); relayed clients live on `198.51.100.0/24` behind giaddr `198.51.100.1`.

use std::net::Ipv4Addr;

/// Addresses of the link, the same in every server's namespaces.
#[derive(Debug, Clone, Copy)]
pub struct Topology;

impl Topology {
    /// The directly attached subnet (192.0.2.0/24, TEST-NET-1).
    pub const LAN: [u8; 3] = [192, 0, 2];
    /// The relayed subnet (198.51.100.0/24, TEST-NET-2).
    pub const RELAYED: [u8; 3] = [198, 51, 100];
    /// A subnet no server knows (203.0.113.0/24, TEST-NET-3).
    pub const FOREIGN: [u8; 3] = [203, 0, 113];
    pub const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// The client namespace's own address: the relay agent's server-facing address.
    pub const RELAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    /// The relay agent's client-facing address (giaddr).
    pub const GIADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    pub fn lan(host: u8) -> Ipv4Addr {
        let [a, b, c] = Self::LAN;
        Ipv4Addr::new(a, b, c, host)
    }
    pub fn relayed(host: u8) -> Ipv4Addr {
        let [a, b, c] = Self::RELAYED;
        Ipv4Addr::new(a, b, c, host)
    }
    pub fn foreign(host: u8) -> Ipv4Addr {
        let [a, b, c] = Self::FOREIGN;
        Ipv4Addr::new(a, b, c, host)
    }
}

/// An option value, typed as the dhcpair config can write it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Ip(Ipv4Addr),
    Ips(Vec<Ipv4Addr>),
    Text(String),
    U8(u8),
    U16(u16),
    U32(u32),
    Bool(bool),
    Hex(Vec<u8>),
    /// RFC 3397 domain search list (dhcpair's named `domainSearch`).
    Domains(Vec<String>),
}

impl Value {
    /// The option payload on the wire (domain lists without compression).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Ip(ip) => ip.octets().to_vec(),
            Value::Ips(v) => v.iter().flat_map(|i| i.octets()).collect(),
            Value::Text(t) => t.as_bytes().to_vec(),
            Value::U8(v) => vec![*v],
            Value::U16(v) => v.to_be_bytes().to_vec(),
            Value::U32(v) => v.to_be_bytes().to_vec(),
            Value::Bool(b) => vec![u8::from(*b)],
            Value::Hex(h) => h.clone(),
            Value::Domains(names) => {
                let mut out = Vec::new();
                for n in names {
                    for label in n.split('.').filter(|l| !l.is_empty()) {
                        out.push(label.len() as u8);
                        out.extend_from_slice(label.as_bytes());
                    }
                    out.push(0);
                }
                out
            }
        }
    }

    /// The same bytes as a hex value.
    pub fn as_hex(&self) -> Value {
        Value::Hex(self.bytes())
    }

    pub fn form(&self) -> &'static str {
        match self {
            Value::Ip(_) => "ip",
            Value::Ips(_) => "ips",
            Value::Text(_) => "text",
            Value::U8(_) => "u8",
            Value::U16(_) => "u16",
            Value::U32(_) => "u32",
            Value::Bool(_) => "bool",
            Value::Hex(_) => "hex",
            Value::Domains(_) => "domains",
        }
    }
}

/// An option of a scope. `named` asks the dhcpair adapter for its named field (subnetMask,
/// routers, domainNameServers, domainName, broadcastAddress, ntpServers, domainSearch)
/// instead of `custom: [{code: ...}]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Opt {
    pub code: u8,
    pub value: Value,
    pub named: bool,
}

impl Opt {
    pub fn named(code: u8, value: Value) -> Opt {
        Opt {
            code,
            value,
            named: true,
        }
    }
    pub fn custom(code: u8, value: Value) -> Opt {
        Opt {
            code,
            value,
            named: false,
        }
    }
}

/// How ISC dhcpd 4.4 types a standard option (dhcp-options(5)); the ISC adapter writes the
/// scenario's bytes in that syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IscType {
    Ip,
    Ips,
    Text,
    U8,
    U16,
    U32,
    I32,
    Bool,
    /// Colon-separated hex bytes.
    Str,
    Domains,
    /// Pairs of addresses (`a b, c d`).
    IpPairs,
}

/// ISC dhcpd's name and type for the standard option codes the catalogue uses. Codes not
/// here are declared in dhcpd.conf (`option c224 code 224 = ...;`).
pub fn isc_standard(code: u8) -> Option<(&'static str, IscType)> {
    use IscType::*;
    Some(match code {
        1 => ("subnet-mask", Ip),
        2 => ("time-offset", I32),
        3 => ("routers", Ips),
        4 => ("time-servers", Ips),
        5 => ("ien116-name-servers", Ips),
        6 => ("domain-name-servers", Ips),
        7 => ("log-servers", Ips),
        8 => ("cookie-servers", Ips),
        9 => ("lpr-servers", Ips),
        10 => ("impress-servers", Ips),
        11 => ("resource-location-servers", Ips),
        12 => ("host-name", Text),
        13 => ("boot-size", U16),
        14 => ("merit-dump", Text),
        15 => ("domain-name", Text),
        16 => ("swap-server", Ip),
        17 => ("root-path", Text),
        18 => ("extensions-path", Text),
        19 => ("ip-forwarding", Bool),
        20 => ("non-local-source-routing", Bool),
        21 => ("policy-filter", IpPairs),
        22 => ("max-dgram-reassembly", U16),
        23 => ("default-ip-ttl", U8),
        24 => ("path-mtu-aging-timeout", U32),
        26 => ("interface-mtu", U16),
        27 => ("all-subnets-local", Bool),
        28 => ("broadcast-address", Ip),
        29 => ("perform-mask-discovery", Bool),
        30 => ("mask-supplier", Bool),
        31 => ("router-discovery", Bool),
        32 => ("router-solicitation-address", Ip),
        33 => ("static-routes", IpPairs),
        34 => ("trailer-encapsulation", Bool),
        35 => ("arp-cache-timeout", U32),
        36 => ("ieee802-3-encapsulation", Bool),
        37 => ("default-tcp-ttl", U8),
        38 => ("tcp-keepalive-interval", U32),
        39 => ("tcp-keepalive-garbage", Bool),
        40 => ("nis-domain", Text),
        41 => ("nis-servers", Ips),
        42 => ("ntp-servers", Ips),
        43 => ("vendor-encapsulated-options", Str),
        44 => ("netbios-name-servers", Ips),
        45 => ("netbios-dd-server", Ips),
        46 => ("netbios-node-type", U8),
        47 => ("netbios-scope", Text),
        48 => ("font-servers", Ips),
        49 => ("x-display-manager", Ips),
        64 => ("nisplus-domain", Text),
        65 => ("nisplus-servers", Ips),
        66 => ("tftp-server-name", Text),
        67 => ("bootfile-name", Text),
        68 => ("mobile-ip-home-agent", Ips),
        69 => ("smtp-server", Ips),
        70 => ("pop-server", Ips),
        71 => ("nntp-server", Ips),
        72 => ("www-server", Ips),
        73 => ("finger-server", Ips),
        74 => ("irc-server", Ips),
        75 => ("streettalk-server", Ips),
        76 => ("streettalk-directory-assistance-server", Ips),
        119 => ("domain-search", Domains),
        _ => return None,
    })
}

/// One option code the configuration can express, with a sample value.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub code: u8,
    pub value: Value,
    /// dhcpair writes it with its named field.
    pub named: bool,
}

fn ip(a: u8) -> Ipv4Addr {
    Topology::lan(a)
}

/// Every option code the PRL scenarios exercise: dhcpair's named fields, typed custom codes
/// (ip, ips, text, u8, u16, u32, bool) and hex custom codes, standard and site-specific.
pub fn option_catalog() -> Vec<CatalogEntry> {
    use Value::*;
    let t = |code: u8, value: Value| CatalogEntry {
        code,
        value,
        named: false,
    };
    let n = |code: u8, value: Value| CatalogEntry {
        code,
        value,
        named: true,
    };
    vec![
        n(1, Ip(Ipv4Addr::new(255, 255, 255, 0))),
        t(2, U32(3600)),
        n(3, Ips(vec![ip(1)])),
        t(4, Ips(vec![ip(4)])),
        t(5, Ips(vec![ip(5)])),
        n(6, Ips(vec![ip(53), ip(54)])),
        t(7, Ips(vec![ip(7)])),
        t(8, Ips(vec![ip(8)])),
        t(9, Ips(vec![ip(9)])),
        t(10, Ips(vec![ip(10)])),
        t(11, Ips(vec![ip(11)])),
        t(12, Text("configured-host-name".into())),
        t(13, U16(4096)),
        t(14, Text("/var/dump/core".into())),
        n(15, Text("example.org".into())),
        t(16, Ip(ip(16))),
        t(17, Text("/srv/root".into())),
        t(18, Text("/srv/ext".into())),
        t(19, Bool(false)),
        t(20, Bool(false)),
        t(21, Ips(vec![ip(21), Ipv4Addr::new(255, 255, 255, 0)])),
        t(22, U16(1500)),
        t(23, U8(64)),
        t(24, U32(600)),
        t(26, U16(1400)),
        t(27, Bool(true)),
        n(28, Ip(ip(255))),
        t(29, Bool(false)),
        t(30, Bool(false)),
        t(31, Bool(true)),
        t(32, Ip(ip(32))),
        t(33, Ips(vec![ip(33), ip(1)])),
        t(34, Bool(false)),
        t(35, U32(60)),
        t(36, Bool(false)),
        t(37, U8(64)),
        t(38, U32(7200)),
        t(39, Bool(false)),
        t(40, Text("nis.example.org".into())),
        t(41, Ips(vec![ip(41)])),
        n(42, Ips(vec![ip(123)])),
        t(43, Hex(vec![0x01, 0x04, 0xde, 0xad, 0xbe, 0xef])),
        t(44, Ips(vec![ip(44)])),
        t(45, Ips(vec![ip(45)])),
        t(46, U8(8)),
        t(47, Text("scope".into())),
        t(48, Ips(vec![ip(48)])),
        t(49, Ips(vec![ip(49)])),
        t(64, Text("nisplus.example.org".into())),
        t(65, Ips(vec![ip(65)])),
        t(66, Text("tftp.example.org".into())),
        t(67, Text("pxelinux.0".into())),
        t(68, Ips(vec![ip(68)])),
        t(69, Ips(vec![ip(69)])),
        t(70, Ips(vec![ip(70)])),
        t(71, Ips(vec![ip(71)])),
        t(72, Ips(vec![ip(72)])),
        t(73, Ips(vec![ip(73)])),
        t(74, Ips(vec![ip(74)])),
        t(75, Ips(vec![ip(75)])),
        t(76, Ips(vec![ip(76)])),
        n(
            119,
            Domains(vec!["example.org".into(), "lab.example.org".into()]),
        ),
        t(150, Ips(vec![ip(150), ip(151)])),
        t(224, Hex(vec![0x01, 0x02, 0x03])),
        t(225, Text("site-specific".into())),
        t(226, U8(7)),
        t(227, U16(513)),
        t(228, U32(70_000)),
        t(229, Bool(true)),
        t(230, Ip(ip(230))),
        t(252, Text("http://wpad.example.org/wpad.dat".into())),
    ]
}

/// Lease times in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseTimes {
    pub default: u32,
    pub min: u32,
    pub max: u32,
}

/// A reservation: by MAC or by option 61, to an address of the subnet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reservation {
    pub mac: Option<[u8; 6]>,
    pub client_id: Option<Vec<u8>>,
    pub host: u8,
    pub hostname: Option<String>,
    pub options: Vec<Opt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubnetSpec {
    pub net: [u8; 3],
    /// Dynamic ranges (first host, last host); empty = no dynamic addresses.
    pub ranges: Vec<(u8, u8)>,
    pub options: Vec<Opt>,
    pub reservations: Vec<Reservation>,
}

impl SubnetSpec {
    pub fn host(&self, h: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], h)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        ip.octets()[..3] == self.net
    }
    pub fn in_range(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip)
            && self
                .ranges
                .iter()
                .any(|(a, b)| (*a..=*b).contains(&ip.octets()[3]))
    }
    pub fn name(&self) -> &'static str {
        if self.net == Topology::LAN {
            "lan"
        } else if self.net == Topology::RELAYED {
            "relayed"
        } else {
            "other"
        }
    }
}

/// One server configuration for all three servers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    pub subnets: Vec<SubnetSpec>,
    pub lease: LeaseTimes,
    pub authoritative: bool,
    /// Seconds a declined address stays out of use.
    pub decline_probation: u32,
    /// Dynamic BOOTP from the ranges (ISC `dynamic-bootp`, dhcpair `dynamicBootpClients`;
    /// Kea needs its BOOTP hook, loaded for every spec).
    pub dynamic_bootp: bool,
}

impl Spec {
    /// The common configuration: both subnets with ranges .10-.200, subnet mask, routers, DNS
    /// and domain name; lease 600 s (min 300, max 1200); authoritative.
    pub fn base() -> Spec {
        let subnet = |net: [u8; 3]| SubnetSpec {
            net,
            ranges: vec![(10, 200)],
            options: base_options(net),
            reservations: Vec::new(),
        };
        Spec {
            subnets: vec![subnet(Topology::LAN), subnet(Topology::RELAYED)],
            lease: LeaseTimes {
                default: 600,
                min: 300,
                max: 1200,
            },
            authoritative: true,
            decline_probation: 86400,
            dynamic_bootp: false,
        }
    }

    pub fn lan(&self) -> &SubnetSpec {
        &self.subnets[0]
    }

    pub fn lan_mut(&mut self) -> &mut SubnetSpec {
        &mut self.subnets[0]
    }

    /// The LAN's dynamic range reduced to `n` addresses starting at .10.
    pub fn with_lan_range(mut self, n: u8) -> Spec {
        self.lan_mut().ranges = if n == 0 {
            Vec::new()
        } else {
            vec![(10, 10 + n - 1)]
        };
        self
    }

    pub fn with_options(mut self, opts: Vec<Opt>) -> Spec {
        for s in &mut self.subnets {
            for o in &opts {
                s.options.retain(|x| x.code != o.code);
                s.options.push(o.clone());
            }
        }
        self
    }

    /// A stable key: scenarios with equal keys can share running servers.
    pub fn key(&self) -> String {
        format!("{self:?}")
    }

    /// The subnet an address belongs to.
    pub fn subnet_of(&self, ip: Ipv4Addr) -> Option<&SubnetSpec> {
        self.subnets.iter().find(|s| s.contains(ip))
    }
}

pub fn base_options(net: [u8; 3]) -> Vec<Opt> {
    let h = |x| Ipv4Addr::new(net[0], net[1], net[2], x);
    vec![
        Opt::named(1, Value::Ip(Ipv4Addr::new(255, 255, 255, 0))),
        Opt::named(3, Value::Ips(vec![h(1)])),
        Opt::named(6, Value::Ips(vec![h(53)])),
        Opt::named(15, Value::Text("example.org".into())),
    ]
}
