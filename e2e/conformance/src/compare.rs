//! From captured replies to comparable fields, and from three servers' fields to verdicts.
//!
//! Normalisations (also listed in DIVERGENCES.md, "What the comparison normalises"):
//! - Addresses are compared by role, not by value, where the servers' allocators may
//!   legitimately choose differently: `requested`, `ciaddr`, `yiaddr@k` (the address this
//!   server gave at step k), `lan pool` / `relayed pool` (a dynamic address of that range),
//!   `server`, `giaddr`, `relay`. Fixed addresses (reservations, configured values) stay
//!   literal.
//! - Options are compared as a set by code (order only where the scenario is about order),
//!   split options (RFC 3396) joined, option overload followed; option 119 is compared as
//!   the list of names (compression differs).
//! - xid, chaddr, htype and hlen are reported as echoed or not, secs is ignored.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::divergences;
use crate::lane::StepResult;
use crate::packet::{decode_domain_list, type_name, Reply, Request, BROADCAST_FLAG};
use crate::scenario::{Expect, Extra, Pkt, Step};
use crate::spec::{Spec, Topology};

/// A field's place in the table: header fields first, then options by code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldKey {
    pub rank: u16,
    pub name: String,
}

fn key(rank: u16, name: &str) -> FieldKey {
    FieldKey {
        rank,
        name: name.to_string(),
    }
}

pub type Fields = BTreeMap<FieldKey, String>;

/// Names of option codes for the table.
pub fn option_name(code: u8) -> String {
    let n = match code {
        1 => "subnet-mask",
        2 => "time-offset",
        3 => "routers",
        6 => "dns",
        12 => "host-name",
        15 => "domain-name",
        28 => "broadcast",
        42 => "ntp",
        43 => "vendor-encapsulated",
        50 => "requested-address",
        51 => "lease-time",
        52 => "overload",
        53 => "message-type",
        54 => "server-id",
        55 => "prl",
        56 => "message",
        57 => "max-message-size",
        58 => "T1",
        59 => "T2",
        60 => "vendor-class",
        61 => "client-id",
        66 => "tftp-server-name",
        67 => "bootfile-name",
        81 => "client-fqdn",
        82 => "relay-agent-info",
        119 => "domain-search",
        150 => "tftp-server-address",
        252 => "wpad",
        _ => return format!("opt {code}"),
    };
    format!("opt {code} {n}")
}

/// The addresses a step knows by role.
#[derive(Debug)]
pub struct Names<'a> {
    pub req: &'a Request,
    /// yiaddr of this lane's first reply to each earlier step.
    pub history: &'a [Option<Ipv4Addr>],
    pub spec: &'a Spec,
    /// The MAC of the client namespace's end of this lane's veth (the relay's MAC).
    pub link_mac: [u8; 6],
}

impl Names<'_> {
    fn requested(&self) -> Option<Ipv4Addr> {
        self.req
            .option(50)
            .filter(|v| v.len() == 4)
            .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
    }

    /// The role of an address. `own_yiaddr` names the reply's own yiaddr (for destinations).
    pub fn name(&self, ip: Ipv4Addr, own_yiaddr: Option<Ipv4Addr>) -> String {
        if ip.is_unspecified() {
            return "0.0.0.0".into();
        }
        if ip.is_broadcast() {
            return "255.255.255.255".into();
        }
        if ip == Topology::SERVER {
            return "server".into();
        }
        if ip == Topology::RELAY {
            return "relay".into();
        }
        if ip == Topology::GIADDR && !self.req.giaddr.is_unspecified() {
            return "giaddr".into();
        }
        if own_yiaddr == Some(ip) {
            return "yiaddr".into();
        }
        if !self.req.ciaddr.is_unspecified() && ip == self.req.ciaddr {
            return "ciaddr".into();
        }
        if self.requested() == Some(ip) {
            return "requested".into();
        }
        if let Some(k) = self.history.iter().position(|h| *h == Some(ip)) {
            return format!("yiaddr@{}", k + 1);
        }
        for s in &self.spec.subnets {
            if s.reservations.iter().any(|r| s.host(r.host) == ip) {
                return ip.to_string();
            }
            if s.in_range(ip) {
                return format!("{} pool", s.name());
            }
        }
        ip.to_string()
    }
}

fn quads(v: &[u8]) -> Option<String> {
    (!v.is_empty() && v.len() % 4 == 0).then(|| {
        v.chunks(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string())
            .collect::<Vec<_>>()
            .join(",")
    })
}

fn hex(v: &[u8]) -> String {
    if v.is_empty() {
        return "(empty)".into();
    }
    let h: Vec<String> = v.iter().map(|b| format!("{b:02x}")).collect();
    if h.len() > 24 {
        format!("{}..({} bytes)", h[..24].join(":"), v.len())
    } else {
        h.join(":")
    }
}

fn num(v: &[u8], n: usize) -> Option<String> {
    (v.len() == n).then(|| {
        v.iter()
            .fold(0u64, |a, x| (a << 8) | u64::from(*x))
            .to_string()
    })
}

/// An option's value as text, typed by code where the type is known.
pub fn format_option(code: u8, v: &[u8], names: &Names) -> String {
    let typed = match code {
        54 => (v.len() == 4).then(|| names.name(Ipv4Addr::new(v[0], v[1], v[2], v[3]), None)),
        1
        | 3..=11
        | 16
        | 21
        | 28
        | 32
        | 33
        | 41
        | 42
        | 44
        | 45
        | 48
        | 49
        | 65
        | 68..=76
        | 150
        | 230 => quads(v),
        // The text of a NAK's message is each server's own prose: compared as present.
        56 => Some("(text)".to_string()),
        12 | 14 | 15 | 17 | 18 | 40 | 47 | 60 | 64 | 66 | 67 | 225 | 252 => {
            Some(format!("\"{}\"", String::from_utf8_lossy(v)))
        }
        2 => (v.len() == 4).then(|| i32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()),
        24 | 35 | 38 | 51 | 58 | 59 | 228 => num(v, 4),
        13 | 22 | 26 | 57 | 227 => num(v, 2),
        19 | 20 | 23 | 27 | 29 | 30 | 31 | 34 | 36 | 37 | 39 | 46 | 52 | 226 | 229 => num(v, 1),
        53 => v.first().map(|t| type_name(*t)),
        119 => decode_domain_list(v).map(|d| d.join(",")),
        _ => None,
    };
    typed.unwrap_or_else(|| hex(v))
}

/// The outcome of one step on one lane, as the "reply" field shows it.
pub fn reply_kind(r: &StepResult) -> String {
    match r {
        StepResult::Waited => "(waited)".into(),
        StepResult::Unresolved(why) => why.clone(),
        StepResult::Sent { replies, .. } => match replies.len() {
            0 => "no reply".into(),
            1 => replies[0].kind(),
            n => format!("{} x{n}", replies[0].kind()),
        },
    }
}

/// Every comparable field of a step's first reply.
pub fn fields(req: &Request, reply: &Reply, names: &Names, extra: Extra) -> Fields {
    let mut f = Fields::new();
    let y = Some(reply.yiaddr);
    f.insert(key(1, "yiaddr"), names.name(reply.yiaddr, None));
    f.insert(key(2, "ciaddr"), names.name(reply.ciaddr, None));
    f.insert(key(3, "siaddr"), names.name(reply.siaddr, None));
    f.insert(key(4, "giaddr"), names.name(reply.giaddr, None));
    let flags = if reply.flags == BROADCAST_FLAG {
        "broadcast".to_string()
    } else if reply.flags == 0 {
        "0".to_string()
    } else {
        format!("{:#06x}", reply.flags)
    };
    f.insert(key(5, "flags"), flags);
    f.insert(
        key(6, "dst"),
        format!("{}:{}", names.name(reply.dst_ip, y), reply.dst_port),
    );
    let chaddr6 = &req.chaddr[..6];
    let l2 = if reply.dst_mac == [0xff; 6] {
        "broadcast".to_string()
    } else if reply.dst_mac == chaddr6 {
        "chaddr".to_string()
    } else if reply.dst_mac == names.link_mac {
        "relay".to_string()
    } else {
        dhcpair_e2e::mac_string(&reply.dst_mac)
    };
    f.insert(key(7, "l2dst"), l2);
    let mut echo = Vec::new();
    if reply.xid != req.xid {
        echo.push("xid changed".to_string());
    }
    if reply.chaddr != req.chaddr {
        echo.push("chaddr changed".to_string());
    }
    if (reply.htype, reply.hlen) != (req.htype, req.hlen) {
        echo.push(format!("htype/hlen {}/{}", reply.htype, reply.hlen));
    }
    f.insert(
        key(8, "header"),
        if echo.is_empty() {
            "echoed".into()
        } else {
            echo.join(", ")
        },
    );
    f.insert(key(9, "hops"), reply.hops.to_string());
    let text = |b: &[u8]| {
        if b.is_empty() {
            "-".to_string()
        } else {
            format!("\"{}\"", String::from_utf8_lossy(b))
        }
    };
    f.insert(key(10, "sname"), text(&reply.sname));
    f.insert(key(11, "file"), text(&reply.file));
    if !reply.cookie {
        f.insert(key(12, "cookie"), "none".into());
    }
    // The whole PRL, split instances joined (RFC 3396).
    let prl_all: Vec<u8> = req
        .options
        .iter()
        .filter(|(c, _)| *c == 55)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let prl = req.option(55).map(|_| prl_all.as_slice());
    for (code, v) in &reply.options {
        if *code == 53 {
            continue;
        }
        // Size scenarios judge the size, not the options (the PRL scenarios do that).
        if extra.size && *code != 52 {
            continue;
        }
        // Basic options an oracle adds on its own when the PRL does not name them (Kea:
        // 1, 3, 6, 15; ISC: 1): neither required nor forbidden (RFC 2132 §9.8).
        if BASIC.contains(code) && prl.is_some_and(|l| !l.contains(code)) {
            continue;
        }
        f.insert(
            key(100 + u16::from(*code), &option_name(*code)),
            format_option(*code, v, names),
        );
    }
    if !reply.split.is_empty() {
        f.insert(
            key(400, "split options (RFC 3396)"),
            reply
                .split
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if extra.order {
        let prl = req.option(55).unwrap_or(&[]).to_vec();
        let order: Vec<String> = reply
            .order
            .iter()
            .filter(|c| prl.contains(c))
            .map(|c| c.to_string())
            .collect();
        f.insert(key(401, "order of requested options"), order.join(","));
    }
    // RFC 2131 §2: a client must accept 576-byte messages; larger only if it says so with
    // option 57 (RFC 2132 §9.10, which counts the IP and UDP headers too).
    let limit = req
        .option(57)
        .filter(|v| v.len() == 2)
        .map(|v| usize::from(u16::from_be_bytes([v[0], v[1]])))
        .unwrap_or(576)
        .max(576);
    f.insert(
        key(402, "size within 576 / option 57"),
        if reply.len + 28 <= limit {
            "yes".to_string()
        } else {
            format!("no ({} > {limit})", reply.len + 28)
        },
    );
    f
}

/// Options some servers add unrequested (see `fields`).
pub const BASIC: [u8; 4] = [1, 3, 6, 15];

/// How a difference is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both oracles agree and dhcpair differs: a dhcpair bug until shown otherwise.
    Fail,
    /// dhcpair breaks an RFC requirement the scenario states (whatever the oracles do).
    FailRfc(&'static str),
    /// The oracles disagree with each other: shown, not judged.
    Split,
    /// dhcpair differs on purpose: the id of the DIVERGENCES.md row.
    Intended(&'static str),
    /// An oracle breaks a requirement the scenario states (shown, not judged).
    OracleDeviates(&'static str),
}

impl Verdict {
    pub fn is_failure(&self) -> bool {
        matches!(self, Verdict::Fail | Verdict::FailRfc(_))
    }

    pub fn text(&self) -> String {
        match self {
            Verdict::Fail => "FAIL".into(),
            Verdict::FailRfc(why) => format!("FAIL ({why})"),
            Verdict::Split => "oracles split".into(),
            Verdict::Intended(id) => format!("intended ({id})"),
            Verdict::OracleDeviates(why) => format!("oracle deviates ({why})"),
        }
    }
}

/// One line of the divergence table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    /// "3 REQUEST(init-reboot)"
    pub step: String,
    pub field: String,
    /// dhcpair, kea, isc
    pub values: [String; 3],
    pub verdict: Verdict,
}

/// Lease time, T1 and T2 within one second of each other are equal: ½ and ⅞ of an odd lease
/// round differently (RFC 2131 §4.4.5 fixes no rounding), and ISC offers a bound client the
/// remaining time of its lease, a second less a second later.
fn normalise(field: &str, v: &[String; 3]) -> [String; 3] {
    let mut v = v.clone();
    if field == option_name(51) || field == option_name(58) || field == option_name(59) {
        if let Ok(anchor) = v[1].parse::<i64>() {
            for x in v.iter_mut() {
                if x.parse::<i64>().is_ok_and(|n| (n - anchor).abs() <= 1) {
                    *x = anchor.to_string();
                }
            }
        }
    }
    v
}

/// ISC dhcpd 4.4 sends T1/T2 only when configured as fixed values: where its reply has none,
/// its T1/T2 are the RFC 2131 §4.4.5 defaults of the lease it granted (½ and ⅞).
fn derive_isc_tee(isc: &mut Fields) {
    let lease = isc
        .get(&key(151, &option_name(51)))
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(l) = lease {
        isc.entry(key(158, &option_name(58)))
            .or_insert_with(|| (l / 2).to_string());
        isc.entry(key(159, &option_name(59)))
            .or_insert_with(|| (l * 7 / 8).to_string());
    }
}

fn judge(scenario: &str, field: &str, v: &[String; 3]) -> Option<Verdict> {
    let n = normalise(field, v);
    let [d, k, i] = &n;
    if d == k && k == i {
        return None;
    }
    if k != i {
        return Some(Verdict::Split);
    }
    Some(match divergences::lookup(scenario, field, d, k) {
        Some(id) => Verdict::Intended(id),
        None => Verdict::Fail,
    })
}

/// Compare one scenario's results on the three lanes (dhcpair, kea, isc).
pub fn compare(
    scenario: &str,
    steps: &[Step],
    results: &[Vec<StepResult>; 3],
    spec: &Spec,
    extra: Extra,
    link_macs: [[u8; 6]; 3],
) -> Vec<Row> {
    let mut rows = Vec::new();
    let histories: Vec<Vec<Option<Ipv4Addr>>> = results
        .iter()
        .map(|r| r.iter().map(StepResult::first_yiaddr).collect())
        .collect();
    for (i, step) in steps.iter().enumerate() {
        let Step::Send(pkt) = step else { continue };
        let label = format!("{} {}", i + 1, pkt.label);
        let res: Vec<&StepResult> = results
            .iter()
            .map(|r| r.get(i).unwrap_or(&StepResult::Waited))
            .collect();
        let expectation = expectation_rows(scenario, &label, pkt, &res);
        // dhcpair meets a requirement the scenario states that both oracles break: the
        // oracles deviate, dhcpair does not fail.
        let dhcpair_meets = expectation
            .iter()
            .any(|r| matches!(r.verdict, Verdict::OracleDeviates(_)));
        rows.extend(expectation);
        let kinds = [reply_kind(res[0]), reply_kind(res[1]), reply_kind(res[2])];
        if let Some(mut v) = judge(scenario, "reply", &kinds) {
            if dhcpair_meets && v == Verdict::Fail {
                v = Verdict::OracleDeviates("see the expectation row");
            }
            rows.push(Row {
                scenario: scenario.into(),
                step: label,
                field: "reply".into(),
                values: kinds,
                verdict: v,
            });
            continue;
        }
        // Same kind of reply everywhere: compare every field of the first reply.
        let mut per_lane: Vec<Fields> = Vec::new();
        for (lane, r) in res.iter().enumerate() {
            let StepResult::Sent { req, replies } = r else {
                break;
            };
            let Some(first) = replies.first() else { break };
            let names = Names {
                req,
                history: &histories[lane][..i],
                spec,
                link_mac: link_macs[lane],
            };
            per_lane.push(fields(req, first, &names, extra));
        }
        if per_lane.len() != 3 {
            continue;
        }
        if !extra.size {
            derive_isc_tee(&mut per_lane[2]);
        }
        let mut all: Vec<&FieldKey> = per_lane.iter().flat_map(|f| f.keys()).collect();
        all.sort();
        all.dedup();
        for k in all {
            let get = |f: &Fields| f.get(k).cloned().unwrap_or_else(|| "-".into());
            let v = [get(&per_lane[0]), get(&per_lane[1]), get(&per_lane[2])];
            if let Some(verdict) = judge(scenario, &k.name, &v) {
                rows.push(Row {
                    scenario: scenario.into(),
                    step: label.clone(),
                    field: k.name.clone(),
                    values: v,
                    verdict,
                });
            }
        }
    }
    rows
}

fn expectation_rows(scenario: &str, label: &str, pkt: &Pkt, res: &[&StepResult]) -> Vec<Row> {
    let Some(Expect::NoReply(why)) = &pkt.expect else {
        return Vec::new();
    };
    let answered =
        |r: &StepResult| matches!(r, StepResult::Sent { replies, .. } if !replies.is_empty());
    let values = [reply_kind(res[0]), reply_kind(res[1]), reply_kind(res[2])];
    if answered(res[0]) {
        vec![Row {
            scenario: scenario.into(),
            step: label.into(),
            field: "expected: no reply".into(),
            values,
            verdict: Verdict::FailRfc(why),
        }]
    } else if answered(res[1]) || answered(res[2]) {
        vec![Row {
            scenario: scenario.into(),
            step: label.into(),
            field: "expected: no reply".into(),
            values,
            verdict: Verdict::OracleDeviates(why),
        }]
    } else {
        Vec::new()
    }
}
