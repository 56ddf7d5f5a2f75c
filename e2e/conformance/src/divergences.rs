//! The one table of intended divergences: where dhcpair differs from Kea and ISC on purpose,
//! with the reason. A scenario whose difference matches a row still runs and is shown in the
//! report, as "intended (ID)" instead of FAIL. `DIVERGENCES.md` is rendered from this file
//! (`cargo run -p dhcpair-conformance -- --render-divergences`); a unit test keeps them equal.
//!
//! Only behaviour that dhcpair documents and the RFCs allow belongs here. A difference that
//! is a bug stays a failure until it is fixed.

/// One intended divergence.
#[derive(Debug, Clone, Copy)]
pub struct Intended {
    pub id: &'static str,
    /// Scenario names it covers: `|`-separated globs with `*`.
    pub scenarios: &'static str,
    /// Compared field(s) it covers: `|`-separated globs with `*`.
    pub fields: &'static str,
    /// Only when dhcpair's value matches (globs), and the oracles' (agreeing) value does.
    pub when_dhcpair: &'static str,
    pub when_oracles: &'static str,
    /// What dhcpair does.
    pub dhcpair: &'static str,
    /// What the oracles do.
    pub oracles: &'static str,
    /// Why, with the RFC section that allows it.
    pub reason: &'static str,
}

pub const INTENDED: &[Intended] = &[
    Intended {
    id: "D1",
    scenarios: "*",
    fields: "dst|l2dst",
    when_dhcpair: "255.255.255.255:68|broadcast",
    when_oracles: "yiaddr:68|chaddr",
    dhcpair: "OFFER/ACK to a client without ciaddr, giaddr or broadcast bit: IP and Ethernet broadcast",
    oracles: "unicast to yiaddr at chaddr (both write the frame themselves)",
    reason: "RFC 2131 §4.1: \"If unicasting is not possible, the message MAY be sent as an IP \
             broadcast\". dhcpair sends through a UDP socket and does not inject ARP entries, \
             so it cannot unicast to an address the client does not have yet (documented in \
             engine/src/dhcp.rs lease_destination).",
    },
    Intended {
        id: "D2",
        scenarios: "*",
        fields: "hops",
        when_dhcpair: "0",
        when_oracles: "*",
        dhcpair: "hops 0 in every reply",
        oracles: "copy the request's hops into the reply (1 for a relayed request)",
        reason: "RFC 2131 §4.3.1, table 3: the server sets 'hops' to 0 in DHCPOFFER, DHCPACK \
                 and DHCPNAK; the relay agent counts hops on the way in only.",
    },
    Intended {
        id: "D3",
        scenarios: "selecting/offer-of-another-client",
        fields: "reply",
        when_dhcpair: "NAK",
        when_oracles: "ACK",
        dhcpair: "an address offered to another client within offerHoldTime (30 s) is NAKed \
                  to a client that requests it",
        oracles: "Kea 2.2 does not hold offers; ISC gives the offered address to whoever \
                  requests it first",
        reason: "RFC 2131 §4.3.1: the server may reserve an offered address (\"the protocol \
                 will work more efficiently if the server avoids allocating the assigned \
                 network address to another client\"); dhcpair does (server.offerHoldTime, \
                 README), so for anyone else the address is not available and §4.3.2 NAKs.",
    },
    Intended {
        id: "D4",
        scenarios: "prl/everything",
        fields: "opt *",
        when_dhcpair: "-",
        when_oracles: "*",
        dhcpair: "a client that asks for more than fits 576 bytes (and sends no option 57) gets \
                  T1 and T2 and the requested options that fit, the options field first, then \
                  `file` and `sname` (option overload); the lowest-ranked of the rest are left out",
        oracles: "Kea sends them all in a message above 576 bytes; ISC sends no T1/T2 at all and \
                  packs the overload fields tighter, so two more options fit",
        reason: "RFC 2131 §2: a client need not accept more than 576 bytes unless it says so with \
                 option 57 (RFC 2132 §9.10), so dhcpair does not exceed it; within it, T1/T2 \
                 (RFC 2131 §4.4.5) are kept, and the options dropped are those the client listed \
                 last (RFC 2132 §9.8 order, README).",
    },
];

/// What the comparison normalises before judging (not divergences: differences that carry
/// no meaning).
pub const NORMALISATIONS: &[(&str, &str)] = &[
    (
        "Addresses by role",
        "yiaddr, ciaddr, siaddr, giaddr, the destination and option 54 are compared as roles \
         (`requested`, `ciaddr`, `yiaddr@k` = the address this server gave at step k, \
         `lan pool` / `relayed pool` = some dynamic address of that range, `server`, `giaddr`, \
         `relay`): each server's allocator picks addresses in its own order (ISC from the top of \
         a range, Kea from the bottom). Reserved and configured addresses stay literal.",
    ),
    (
        "Same server address",
        "Every server runs on 192.0.2.1 in its own namespaces, so server identifiers are equal \
         without rewriting.",
    ),
    (
        "Option order",
        "Options are compared by code as a set; their order only in scenarios about order.",
    ),
    (
        "RFC 3396 and overload",
        "Split options are joined and option overload (52) is followed before comparing; \
         whether a server split is shown as its own field.",
    ),
    (
        "Domain search (119)",
        "Compared as the list of names: ISC compresses (RFC 1035 pointers), others may not.",
    ),
    (
        "Header echo",
        "xid, chaddr, htype and hlen are reported as echoed or not; secs is ignored.",
    ),
    (
        "ISC and T1/T2",
        "ISC dhcpd 4.4 sends options 58/59 only when configured as fixed values and cannot \
         derive them from the lease it grants: where ISC's reply has none, its T1/T2 are \
         taken as ½ and ⅞ of the lease time it granted (RFC 2131 §4.4.5 defaults; Kea is \
         configured to compute the same). ",
    ),
    (
        "Lease time within a second",
        "Options 51, 58 and 59 within 1 s of each other are equal: ½ and ⅞ of an odd lease \
         round differently (RFC 2131 §4.4.5 fixes no rounding), and ISC offers a bound \
         client the remaining time of its lease.",
    ),
    (
        "NAK message text",
        "Option 56 is compared as present or absent; its text is each server's own prose.",
    ),
    (
        "Unrequested basic options",
        "Options 1, 3, 6 and 15 that the client's PRL does not name are not compared: Kea \
         adds all four on its own, ISC adds 1; RFC 2132 §9.8 neither requires nor forbids it.",
    ),
    (
        "Size scenarios",
        "Scenarios about size compare the reply's size against 576 or option 57, overload \
         and splitting, not the options themselves (the PRL scenarios do that). Every reply \
         is also checked against the limit.",
    ),
    (
        "Lease times",
        "Every scenario fixes default/min/max lease time for all three servers (Kea computes \
         T1/T2 as ½ and ⅞ with calculate-tee-times), so options 51, 58 and 59 are compared \
         as values.",
    ),
];

/// `*` matches any run of characters.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

fn any_glob(patterns: &str, s: &str) -> bool {
    patterns.split('|').any(|p| glob(p.trim(), s))
}

/// The intended divergence covering `field` of `scenario` where dhcpair says `dhcpair` and
/// both oracles say `oracles`, if any.
pub fn lookup(scenario: &str, field: &str, dhcpair: &str, oracles: &str) -> Option<&'static str> {
    INTENDED
        .iter()
        .find(|d| {
            any_glob(d.scenarios, scenario)
                && any_glob(d.fields, field)
                && any_glob(d.when_dhcpair, dhcpair)
                && any_glob(d.when_oracles, oracles)
        })
        .map(|d| d.id)
}

/// DIVERGENCES.md.
pub fn render_markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# Intended divergences from Kea and ISC dhcpd\n\n\
         Rendered from `e2e/conformance/src/divergences.rs` by \
         `cargo run -p dhcpair-conformance -- --render-divergences`; edit that file, not this \
         one (a unit test checks they agree).\n\n\
         The conformance harness compares dhcpair's replies with Kea's and ISC dhcpd's on the \
         same packets. Where both oracles agree and dhcpair differs, the scenario fails, unless \
         a row below covers that scenario and field: then it still runs and is reported as \
         `intended (ID)`. A row belongs here only when dhcpair documents the behaviour and the \
         RFC allows it; a bug is not an intended divergence.\n\n",
    );
    out.push_str(
        "| id | scenarios | fields (dhcpair value / oracles' value) | dhcpair | Kea and ISC | why (RFC) |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    let cell = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    for d in INTENDED {
        out.push_str(&format!(
            "| {} | `{}` | `{}` (`{}` / `{}`) | {} | {} | {} |\n",
            d.id,
            cell(d.scenarios),
            cell(d.fields),
            cell(d.when_dhcpair),
            cell(d.when_oracles),
            cell(d.dhcpair),
            cell(d.oracles),
            cell(d.reason)
        ));
    }
    out.push_str("\n## What the comparison normalises\n\n");
    for (what, how) in NORMALISATIONS {
        out.push_str(&format!("- **{what}**: {}\n", cell(how)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "x"));
        assert!(glob("inform/*", "inform/ciaddr"));
        assert!(!glob("inform/*", "discover/plain"));
        assert!(glob("*relayed*", "opt82/relayed-nak"));
        assert!(glob("dst", "dst"));
        assert!(!glob("dst", "l2dst"));
    }

    #[test]
    fn divergences_md_is_rendered_from_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/DIVERGENCES.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            on_disk,
            render_markdown(),
            "DIVERGENCES.md is stale: cargo run -p dhcpair-conformance -- --render-divergences > e2e/conformance/DIVERGENCES.md"
        );
    }

    #[test]
    fn every_intended_row_has_a_reason_with_an_rfc() {
        for d in INTENDED {
            assert!(d.reason.contains("RFC"), "{} gives no RFC", d.id);
        }
    }
}
