//! One [`Spec`] rendered three ways: dhcpair's YAML schema (through `dhcpair_config::raw`,
//! so the server's own parser checks it), Kea's `kea-dhcp4` JSON and ISC's `dhcpd.conf`.
//!
//! The oracles are put in their RFC-conformant modes where they have a switch for it, and
//! told to behave like dhcpair where the difference is a setting, not a behaviour:
//! - Kea: raw sockets (it must receive from 0.0.0.0), `echo-client-id` (RFC 6842, on by
//!   default), T1/T2 computed as ½ and ⅞ of the lease (`calculate-tee-times`), memfile
//!   leases in the scenario's directory, the BOOTP hook where the spec allows dynamic BOOTP
//!   (Kea answers BOOTP only with it).
//! - ISC: `echo-client-id true` (RFC 6842; off by default), `ping-check false` (no ICMP probe
//!   before offering, so every server answers at once), `abandon-lease-time` = the decline
//!   probation period.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use dhcpair_config::raw::RawConfig;
use serde_json::{json, Value as Json};

use crate::spec::{isc_standard, IscType, Opt, Reservation, Spec, SubnetSpec, Value};

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn mac_str(m: &[u8; 6]) -> String {
    hex(m)
}

fn cidr(s: &SubnetSpec) -> String {
    format!("{}/24", s.host(0))
}

// ------------------------------------------------------------------------------ dhcpair

fn dhcpair_options(opts: &[Opt]) -> Json {
    let mut m = serde_json::Map::new();
    let mut custom = Vec::new();
    for o in opts {
        let named = if o.named {
            match (o.code, &o.value) {
                (1, Value::Ip(ip)) => Some(("subnetMask", json!(ip.to_string()))),
                (3, Value::Ips(v)) => Some(("routers", json!(strs(v)))),
                (6, Value::Ips(v)) => Some(("domainNameServers", json!(strs(v)))),
                (15, Value::Text(t)) => Some(("domainName", json!(t))),
                (28, Value::Ip(ip)) => Some(("broadcastAddress", json!(ip.to_string()))),
                (42, Value::Ips(v)) => Some(("ntpServers", json!(strs(v)))),
                (119, Value::Domains(d)) => Some(("domainSearch", json!(d))),
                _ => None,
            }
        } else {
            None
        };
        if let Some((k, v)) = named {
            m.insert(k.to_string(), v);
            continue;
        }
        let v = match &o.value {
            Value::Ip(ip) => json!({"code": o.code, "ip": ip.to_string()}),
            Value::Ips(v) => json!({"code": o.code, "ips": strs(v)}),
            Value::Text(t) => json!({"code": o.code, "text": t}),
            Value::U8(x) => json!({"code": o.code, "u8": x}),
            Value::U16(x) => json!({"code": o.code, "u16": x}),
            Value::U32(x) => json!({"code": o.code, "u32": x}),
            Value::Bool(x) => json!({"code": o.code, "bool": x}),
            Value::Hex(_) | Value::Domains(_) => {
                json!({"code": o.code, "hex": hex(&o.value.bytes())})
            }
        };
        custom.push(v);
    }
    if !custom.is_empty() {
        m.insert("custom".into(), Json::Array(custom));
    }
    Json::Object(m)
}

fn strs(v: &[Ipv4Addr]) -> Vec<String> {
    v.iter().map(|i| i.to_string()).collect()
}

fn dhcpair_reservation(s: &SubnetSpec, r: &Reservation) -> Json {
    let mut m = serde_json::Map::new();
    if let Some(mac) = &r.mac {
        m.insert("hardwareAddress".into(), json!(mac_str(mac)));
    }
    if let Some(id) = &r.client_id {
        m.insert("clientId".into(), json!(hex(id)));
    }
    m.insert("ipAddress".into(), json!(s.host(r.host).to_string()));
    if let Some(h) = &r.hostname {
        m.insert("hostname".into(), json!(h));
    }
    if !r.options.is_empty() {
        m.insert("options".into(), dhcpair_options(&r.options));
    }
    Json::Object(m)
}

/// dhcpair's configuration for `spec` serving `iface` (dataDir and http are filled in by
/// the e2e launcher).
pub fn dhcpair_config(spec: &Spec, iface: &str) -> Result<RawConfig> {
    let pools: Vec<Json> = spec
        .subnets
        .iter()
        .map(|s| {
            let mut p = json!({
                "name": s.name(),
                "subnet": cidr(s),
                "ranges": s.ranges.iter().map(|(a, b)| json!({
                    "start": s.host(*a).to_string(), "end": s.host(*b).to_string()
                })).collect::<Vec<_>>(),
                "options": dhcpair_options(&s.options),
                "defaultLeaseTime": spec.lease.default,
                "minLeaseTime": spec.lease.min,
                "maxLeaseTime": spec.lease.max,
            });
            // dhcpair allows dynamic BOOTP unless denied (an `allow` list would admit only
            // the clients it names, as ISC's permit lists do); ISC gives BOOTP clients
            // addresses only from `dynamic-bootp` ranges, Kea only with its BOOTP hook.
            if !spec.dynamic_bootp {
                p["deny"] = json!(["dynamicBootpClients"]);
            }
            if !s.reservations.is_empty() {
                p["reservations"] = Json::Array(
                    s.reservations
                        .iter()
                        .map(|r| dhcpair_reservation(s, r))
                        .collect(),
                );
            }
            p
        })
        .collect();
    let cfg = json!({
        "server": {
            "interfaces": [iface],
            "authoritative": spec.authoritative,
            "declineProbationPeriod": spec.decline_probation,
        },
        "pools": pools,
    });
    serde_json::from_value(cfg.clone())
        .with_context(|| format!("dhcpair adapter wrote a config its schema refuses: {cfg}"))
}

// ------------------------------------------------------------------------------ Kea

fn kea_options(opts: &[Opt]) -> Vec<Json> {
    opts.iter()
        .map(|o| {
            json!({
                "code": o.code,
                "space": "dhcp4",
                "csv-format": false,
                "data": hex(&o.value.bytes()).replace(':', ""),
            })
        })
        .collect()
}

/// Where Debian puts Kea's hook libraries.
pub fn kea_bootp_hook() -> Option<String> {
    [
        "/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_bootp.so",
        "/usr/lib/aarch64-linux-gnu/kea/hooks/libdhcp_bootp.so",
        "/usr/lib/kea/hooks/libdhcp_bootp.so",
    ]
    .iter()
    .find(|p| Path::new(p).is_file())
    .map(|p| p.to_string())
}

/// `kea-dhcp4` JSON for `spec` on `iface`, leases in `lease_file`.
pub fn kea_config(spec: &Spec, iface: &str, lease_file: &Path) -> Json {
    let subnets: Vec<Json> = spec
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let reservations: Vec<Json> = s
                .reservations
                .iter()
                .map(|r| {
                    let mut m = serde_json::Map::new();
                    if let Some(mac) = &r.mac {
                        m.insert("hw-address".into(), json!(mac_str(mac)));
                    }
                    if let Some(id) = &r.client_id {
                        m.insert("client-id".into(), json!(hex(id)));
                    }
                    m.insert("ip-address".into(), json!(s.host(r.host).to_string()));
                    if let Some(h) = &r.hostname {
                        m.insert("hostname".into(), json!(h));
                    }
                    if !r.options.is_empty() {
                        m.insert("option-data".into(), json!(kea_options(&r.options)));
                    }
                    Json::Object(m)
                })
                .collect();
            json!({
                "id": i + 1,
                "subnet": cidr(s),
                "pools": s.ranges.iter().map(|(a, b)| json!({
                    "pool": format!("{} - {}", s.host(*a), s.host(*b))
                })).collect::<Vec<_>>(),
                "option-data": kea_options(&s.options),
                "reservations": reservations,
            })
        })
        .collect();
    // Kea answers BOOTP (dynamic and reserved alike) only with its BOOTP hook.
    let hooks: Vec<Json> = kea_bootp_hook()
        .filter(|_| spec.dynamic_bootp)
        .map(|l| vec![json!({ "library": l })])
        .unwrap_or_default();
    json!({
        "Dhcp4": {
            "interfaces-config": { "interfaces": [iface], "dhcp-socket-type": "raw" },
            "lease-database": {
                "type": "memfile", "persist": true,
                "name": lease_file.display().to_string(), "lfc-interval": 0
            },
            "authoritative": spec.authoritative,
            "valid-lifetime": spec.lease.default,
            "min-valid-lifetime": spec.lease.min,
            "max-valid-lifetime": spec.lease.max,
            "calculate-tee-times": true,
            "t1-percent": 0.5,
            "t2-percent": 0.875,
            "decline-probation-period": spec.decline_probation,
            "echo-client-id": true,
            "match-client-id": true,
            "host-reservation-identifiers": ["hw-address", "client-id"],
            "hooks-libraries": hooks,
            "subnet4": subnets,
            "loggers": [{
                "name": "kea-dhcp4",
                "output_options": [{ "output": "stdout" }],
                "severity": "INFO"
            }]
        }
    })
}

// ------------------------------------------------------------------------------ ISC

fn isc_value(t: IscType, b: &[u8]) -> String {
    let quads = |b: &[u8]| -> Vec<String> {
        b.chunks(4)
            .filter(|c| c.len() == 4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string())
            .collect()
    };
    let num = |b: &[u8]| -> u64 { b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x)) };
    match t {
        IscType::Ip | IscType::Ips => quads(b).join(", "),
        IscType::IpPairs => quads(b)
            .chunks(2)
            .map(|p| p.join(" "))
            .collect::<Vec<_>>()
            .join(", "),
        IscType::Text => format!(
            "\"{}\"",
            String::from_utf8_lossy(b)
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
        IscType::U8 | IscType::U16 | IscType::U32 => num(b).to_string(),
        IscType::I32 => (num(b) as u32 as i32).to_string(),
        IscType::Bool => if b.first().copied().unwrap_or(0) != 0 {
            "true"
        } else {
            "false"
        }
        .to_string(),
        IscType::Str => hex(b),
        IscType::Domains => crate::packet::decode_domain_list(b)
            .unwrap_or_default()
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The ISC type a site-specific code is declared with, from the value's form.
fn isc_declared_type(v: &Value) -> (&'static str, IscType) {
    match v {
        Value::Ip(_) => ("ip-address", IscType::Ip),
        Value::Ips(_) => ("array of ip-address", IscType::Ips),
        Value::Text(_) => ("text", IscType::Text),
        Value::U8(_) => ("unsigned integer 8", IscType::U8),
        Value::U16(_) => ("unsigned integer 16", IscType::U16),
        Value::U32(_) => ("unsigned integer 32", IscType::U32),
        Value::Bool(_) => ("boolean", IscType::Bool),
        Value::Hex(_) => ("string", IscType::Str),
        Value::Domains(_) => ("domain-list", IscType::Domains),
    }
}

fn isc_option_lines(opts: &[Opt], indent: &str, out: &mut String) {
    for o in opts {
        let (name, t) = match isc_standard(o.code) {
            Some((n, t)) => (n.to_string(), t),
            None => (format!("c{}", o.code), isc_declared_type(&o.value).1),
        };
        let _ = writeln!(
            out,
            "{indent}option {name} {};",
            isc_value(t, &o.value.bytes())
        );
    }
}

/// `dhcpd.conf` for `spec`.
pub fn isc_config(spec: &Spec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# dhcpair conformance: ISC dhcpd 4.4 as an oracle");
    let _ = writeln!(
        out,
        "{}authoritative;",
        if spec.authoritative { "" } else { "not " }
    );
    out.push_str("ddns-update-style none;\nping-check false;\necho-client-id true;\n");
    let _ = writeln!(
        out,
        "default-lease-time {};\nmin-lease-time {};\nmax-lease-time {};\nabandon-lease-time {};",
        spec.lease.default, spec.lease.min, spec.lease.max, spec.decline_probation
    );
    // Declarations of site-specific codes (one type per code).
    let mut declared: BTreeMap<u8, &'static str> = BTreeMap::new();
    for s in &spec.subnets {
        let all = s
            .options
            .iter()
            .chain(s.reservations.iter().flat_map(|r| r.options.iter()));
        for o in all {
            if isc_standard(o.code).is_none() {
                declared
                    .entry(o.code)
                    .or_insert(isc_declared_type(&o.value).0);
            }
        }
    }
    for (code, t) in &declared {
        let _ = writeln!(out, "option c{code} code {code} = {t};");
    }
    let mut host_n = 0;
    for s in &spec.subnets {
        let _ = writeln!(out, "subnet {} netmask 255.255.255.0 {{", s.host(0));
        for (a, b) in &s.ranges {
            let _ = writeln!(
                out,
                "  range {}{} {};",
                if spec.dynamic_bootp {
                    "dynamic-bootp "
                } else {
                    ""
                },
                s.host(*a),
                s.host(*b)
            );
        }
        isc_option_lines(&s.options, "  ", &mut out);
        out.push_str("}\n");
        for r in &s.reservations {
            let _ = writeln!(out, "host r{host_n} {{");
            host_n += 1;
            if let Some(mac) = &r.mac {
                let _ = writeln!(out, "  hardware ethernet {};", mac_str(mac));
            }
            if let Some(id) = &r.client_id {
                let _ = writeln!(out, "  option dhcp-client-identifier {};", hex(id));
            }
            let _ = writeln!(out, "  fixed-address {};", s.host(r.host));
            if let Some(h) = &r.hostname {
                let _ = writeln!(out, "  option host-name \"{h}\";");
            }
            isc_option_lines(&r.options, "  ", &mut out);
            out.push_str("}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::option_catalog;

    fn rich() -> Spec {
        let opts = option_catalog()
            .into_iter()
            .map(|c| Opt {
                code: c.code,
                value: c.value,
                named: c.named,
            })
            .collect();
        Spec::base().with_options(opts)
    }

    #[test]
    fn dhcpair_accepts_the_rendered_catalogue() {
        let raw = dhcpair_config(&rich(), "veth0").unwrap_or_else(|e| panic!("{e:#}"));
        let yaml = serde_yaml::to_string(&raw).unwrap_or_else(|e| panic!("{e}"));
        dhcpair_config::Config::from_yaml("rich.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn isc_declares_site_specific_codes_once() {
        let conf = isc_config(&rich());
        assert_eq!(conf.matches("option c224 code 224 = string;").count(), 1);
        assert!(conf.contains("option tftp-server-name \"tftp.example.org\";"));
        assert!(conf.contains("option time-offset 3600;"));
        assert!(conf.contains("option domain-search \"example.org\", \"lab.example.org\";"));
    }

    #[test]
    fn kea_gets_every_option_as_hex() {
        let k = kea_config(&rich(), "veth0", Path::new("/tmp/x.csv"));
        let opts = &k["Dhcp4"]["subnet4"][0]["option-data"];
        assert!(opts
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o["code"] == 224 && o["data"] == "010203")));
    }
}
