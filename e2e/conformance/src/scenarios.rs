//! The scenario catalogue. Each function returns a family of scenarios; loops generate one
//! scenario per option code, per malformation, per identity mix.
//!
//! Conventions: client `n` of a scenario has MAC `02:cf:<scenario>:00:n` (never shared between
//! scenarios, so scenarios on one running server do not see each other's clients); `A::Yi(k)`
//! is the address the server gave at step k (0-based). Scenarios that need an empty lease
//! database or a special configuration are `fresh` or carry their own spec.

use std::time::Duration;

use crate::packet::mt;
use crate::scenario::*;
use crate::spec::{option_catalog, Opt, Reservation, Spec, Topology, Value};

const MUST_SILENT_INIT_REBOOT: &str =
    "RFC 2131 §4.3.2 INIT-REBOOT: no record of this client, MUST remain silent";
const MALFORMED: &str = "malformed packet: dropped, never answered";
const NOT_A_REQUEST: &str =
    "RFC 951 §3 / RFC 2131 §2: op 2 (BOOTREPLY) goes server to client; servers answer BOOTREQUESTs";

pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    v.extend(family_discover());
    v.extend(selecting());
    v.extend(family_init_reboot());
    v.extend(renewing_rebinding());
    v.extend(identity());
    v.extend(release_decline());
    v.extend(family_inform());
    v.extend(prl());
    v.extend(relay_agent_info());
    v.extend(pools());
    v.extend(lease_times());
    v.extend(family_bootp());
    v.extend(reservations());
    v.extend(long_options());
    v.extend(malformed());
    v
}

fn s(name: &str, about: &str) -> Scenario {
    Scenario::new(name, about)
}

fn foreign(h: u8) -> A {
    A::Ip(Topology::foreign(h))
}

/// One address in the LAN range, two clients' worth of tests.
fn one_address() -> Spec {
    Spec::base().with_lan_range(1)
}

fn family_discover() -> Vec<Scenario> {
    vec![
        s("discover/plain", "DISCOVER from 0.0.0.0 → OFFER").send(discover(c(0))),
        s(
            "discover/broadcast-flag",
            "broadcast bit set → OFFER broadcast",
        )
        .send(discover(c(0)).bcast()),
        s(
            "discover/relayed",
            "DISCOVER via a relay → OFFER from the relayed subnet to giaddr:67",
        )
        .send(discover(c(0)).relayed()),
        s(
            "discover/relayed-broadcast-flag",
            "relayed with the broadcast bit",
        )
        .send(discover(c(0)).relayed().bcast()),
        s(
            "discover/unknown-relay-subnet",
            "giaddr in a subnet no server has → no reply",
        )
        .send(discover(c(0)).relayed().giaddr(foreign(1))),
        s(
            "discover/requested-free-address",
            "option 50 names a free address → offered",
        )
        .fresh()
        .send(discover(c(0)).requested(A::lan(150))),
        s(
            "discover/requested-outside-subnet",
            "option 50 off the network → ignored",
        )
        .send(discover(c(0)).requested(foreign(5))),
        s(
            "discover/requested-outside-range",
            "option 50 in the subnet, outside the range",
        )
        .send(discover(c(0)).requested(A::lan(250))),
        s(
            "discover/requested-taken",
            "option 50 names another client's lease",
        )
        .lease(c(0))
        .send(discover(c(1)).requested(A::Yi(0))),
        s(
            "discover/repeated",
            "the same client asks twice: the same address",
        )
        .send(discover(c(0)))
        .send(discover(c(0))),
        s(
            "discover/after-lease",
            "a bound client's DISCOVER offers its address",
        )
        .lease(c(0))
        .send(discover(c(0))),
        s(
            "discover/after-release",
            "a released client's DISCOVER gets its old address back",
        )
        .lease(c(0))
        .send(release(c(0), A::Yi(1)))
        .send(discover(c(0))),
        s("discover/secs-and-hops", "secs 30, hops 0 direct: ignored").send(Pkt {
            secs: 30,
            ..discover(c(0))
        }),
    ]
}

fn selecting() -> Vec<Scenario> {
    vec![
        s("selecting/ack", "DISCOVER, REQUEST(selecting) → ACK").lease(c(0)),
        s("selecting/ack-broadcast-flag", "broadcast bit on both")
            .send(discover(c(0)).bcast())
            .send(select(c(0), 0).bcast()),
        s(
            "selecting/relayed",
            "relayed DISCOVER and REQUEST → replies to giaddr:67",
        )
        .send(discover(c(0)).relayed())
        .send(select(c(0), 0).relayed()),
        s(
            "selecting/wrong-server-id",
            "REQUEST selecting another server → silence",
        )
        .send(discover(c(0)))
        .send(select(c(0), 0).server_id(A::lan(99))),
        s(
            "selecting/other-server-then-discover",
            "after choosing another server, DISCOVER again",
        )
        .send(discover(c(0)))
        .send(select(c(0), 0).server_id(A::lan(99)))
        .send(discover(c(0))),
        s(
            "selecting/no-requested-address",
            "REQUEST with server id but no option 50, ciaddr 0",
        )
        .send(discover(c(0)))
        .send(select(c(0), 0).without(50)),
        s(
            "selecting/offer-of-another-client",
            "REQUEST(selecting) an address offered to another client",
        )
        .send(discover(c(0)))
        .send(select(c(1), 0)),
        s(
            "selecting/requested-outside-subnet",
            "REQUEST(selecting) an address off the network",
        )
        .send(discover(c(0)))
        .send(select(c(0), 0).requested(foreign(5))),
        s(
            "selecting/requested-other-free-address",
            "REQUEST(selecting) a free address other than offered",
        )
        .fresh()
        .send(discover(c(0)))
        .send(select(c(0), 0).requested(A::lan(150))),
        s(
            "selecting/with-ciaddr",
            "REQUEST(selecting) with ciaddr set (RFC 2131: MUST be 0)",
        )
        .send(discover(c(0)))
        .send(select(c(0), 0).ciaddr(A::Yi(0))),
        s(
            "selecting/xid-changed",
            "REQUEST with another xid than the DISCOVER (always so here)",
        )
        .send(discover(c(0)))
        .send(select(c(0), 0).label("REQUEST(selecting, new xid)")),
    ]
}

fn family_init_reboot() -> Vec<Scenario> {
    let nonauth = Spec {
        authoritative: false,
        ..Spec::base()
    };
    vec![
        s(
            "init-reboot/own-lease",
            "INIT-REBOOT for the client's lease → ACK",
        )
        .lease(c(0))
        .send(init_reboot(c(0), A::Yi(1))),
        s(
            "init-reboot/wrong-subnet",
            "INIT-REBOOT for an address off the network → NAK",
        )
        .send(init_reboot(c(0), foreign(5))),
        s(
            "init-reboot/no-record",
            "INIT-REBOOT for a free address nobody had → silence",
        )
        .fresh()
        .send(init_reboot(c(0), A::lan(100)).expect_none(MUST_SILENT_INIT_REBOOT)),
        s(
            "init-reboot/no-record-relayed",
            "relayed INIT-REBOOT for a free relayed address",
        )
        .fresh()
        .send(
            init_reboot(c(0), A::Ip(Topology::relayed(100)))
                .relayed()
                .expect_none(MUST_SILENT_INIT_REBOOT),
        ),
        s(
            "init-reboot/taken-by-another",
            "INIT-REBOOT for another client's lease → NAK",
        )
        .lease(c(0))
        .send(init_reboot(c(1), A::Yi(1))),
        s(
            "init-reboot/outside-range",
            "INIT-REBOOT for a subnet address outside every range",
        )
        .send(init_reboot(c(0), A::lan(250))),
        s(
            "init-reboot/relayed-own-lease",
            "relayed lease, relayed INIT-REBOOT → ACK to giaddr",
        )
        .send(discover(c(0)).relayed())
        .send(select(c(0), 0).relayed())
        .send(init_reboot(c(0), A::Yi(1)).relayed()),
        s(
            "init-reboot/relayed-wrong-subnet",
            "relayed INIT-REBOOT for a LAN address → NAK to giaddr",
        )
        .send(init_reboot(c(0), A::lan(20)).relayed()),
        s(
            "init-reboot/after-release",
            "lease, RELEASE, INIT-REBOOT for the same address",
        )
        .lease(c(0))
        .send(release(c(0), A::Yi(1)))
        .send(init_reboot(c(0), A::Yi(1))),
        s(
            "init-reboot/with-ciaddr",
            "INIT-REBOOT with ciaddr set too (RFC 2131: MUST be 0)",
        )
        .lease(c(0))
        .send(init_reboot(c(0), A::Yi(1)).ciaddr(A::Yi(1))),
        s(
            "init-reboot/non-authoritative-wrong-subnet",
            "not authoritative: wrong network → silence",
        )
        .spec(nonauth.clone())
        .send(init_reboot(c(0), foreign(5))),
        s(
            "init-reboot/non-authoritative-taken",
            "not authoritative: another client's lease",
        )
        .spec(nonauth.clone())
        .lease(c(0))
        .send(init_reboot(c(1), A::Yi(1))),
        s(
            "init-reboot/non-authoritative-own-lease",
            "not authoritative: own lease → ACK",
        )
        .spec(nonauth)
        .lease(c(0))
        .send(init_reboot(c(0), A::Yi(1))),
    ]
}

fn renewing_rebinding() -> Vec<Scenario> {
    vec![
        s(
            "renewing/own-lease",
            "RENEWING unicast from ciaddr → ACK to ciaddr:68",
        )
        .lease(c(0))
        .send(renew(c(0), A::Yi(1))),
        s("renewing/broadcast-flag", "RENEWING with the broadcast bit")
            .lease(c(0))
            .send(renew(c(0), A::Yi(1)).bcast()),
        s("renewing/never-leased", "RENEWING an address nobody has")
            .fresh()
            .send(renew(c(0), A::lan(120))),
        s(
            "renewing/another-clients-lease",
            "RENEWING another client's address",
        )
        .lease(c(0))
        .send(renew(c(1), A::Yi(1))),
        s("renewing/longer-lease", "RENEWING asking for 1100 s")
            .lease(c(0))
            .send(renew(c(0), A::Yi(1)).lease_time(1100)),
        s(
            "renewing/with-server-id",
            "RENEWING carrying our server id (RFC 2131: MUST NOT)",
        )
        .lease(c(0))
        .send(renew(c(0), A::Yi(1)).server_id(A::Server)),
        s(
            "renewing/relayed",
            "a relayed client renewing through the relay",
        )
        .send(discover(c(0)).relayed())
        .send(select(c(0), 0).relayed())
        .send(renew(c(0), A::Yi(1)).relayed()),
        s(
            "rebinding/own-lease",
            "REBINDING broadcast with ciaddr → ACK",
        )
        .lease(c(0))
        .send(rebind(c(0), A::Yi(1))),
        s(
            "rebinding/another-clients-lease",
            "REBINDING another client's address",
        )
        .lease(c(0))
        .send(rebind(c(1), A::Yi(1))),
        s(
            "rebinding/wrong-subnet",
            "REBINDING with ciaddr off the network",
        )
        .send(rebind(c(0), foreign(5))),
        s("rebinding/never-leased", "REBINDING an address nobody has")
            .fresh()
            .send(rebind(c(0), A::lan(120))),
    ]
}

fn identity() -> Vec<Scenario> {
    vec![
        s(
            "identity/discover-same-id-other-chaddr",
            "option 61 decides: same id, new MAC → same address",
        )
        .lease(cid(0, 1))
        .send(discover(cid(1, 1))),
        s(
            "identity/request-same-id-other-chaddr",
            "INIT-REBOOT: same id, new MAC → ACK",
        )
        .lease(cid(0, 1))
        .send(init_reboot(cid(1, 1), A::Yi(1))),
        s(
            "identity/request-same-chaddr-other-id",
            "INIT-REBOOT: same MAC, another id → NAK",
        )
        .lease(cid(0, 1))
        .send(init_reboot(cid(0, 2), A::Yi(1))),
        s(
            "identity/request-same-chaddr-no-id",
            "lease with option 61, INIT-REBOOT without it",
        )
        .lease(cid(0, 1))
        .send(init_reboot(c(0), A::Yi(1))),
        s(
            "identity/request-no-id-then-id",
            "lease without option 61, INIT-REBOOT with one",
        )
        .lease(c(0))
        .send(init_reboot(cid(0, 1), A::Yi(1))),
        s(
            "identity/renew-same-id-other-chaddr",
            "RENEWING: same id, new MAC → ACK",
        )
        .lease(cid(0, 1))
        .send(renew(cid(1, 1), A::Yi(1))),
        s(
            "identity/renew-same-chaddr-other-id",
            "RENEWING: same MAC, another id",
        )
        .lease(cid(0, 1))
        .send(renew(cid(0, 2), A::Yi(1))),
        s(
            "identity/client-id-echo-offer-ack",
            "option 61 is echoed in OFFER and ACK (RFC 6842)",
        )
        .lease(Client { n: 0, id: Id::Mac }),
        s(
            "identity/client-id-echo-nak",
            "option 61 is echoed in a NAK (RFC 6842)",
        )
        .send(init_reboot(Client { n: 0, id: Id::Mac }, foreign(5))),
        s(
            "identity/empty-client-id",
            "option 61 of length 0: identity falls back to chaddr",
        )
        .send(discover(c(0)).raw(61, &[]))
        .send(select(c(0), 0).raw(61, &[])),
    ]
}

/// Whether RELEASE/DECLINE took effect, seen through a one-address pool: after the message,
/// a probe DISCOVER shows whether the address is free again.
fn release_decline() -> Vec<Scenario> {
    let one = one_address;
    let probe_other =
        |sc: Scenario| sc.send(discover(c(9)).label("DISCOVER(probe: another client)"));
    let probe_same = |sc: Scenario, cl: Client| {
        sc.send(discover(cl).label("DISCOVER(probe: the declining client)"))
    };
    let mut v = Vec::new();
    // RELEASE by identity mix.
    for (name, about, rel) in [
        ("release/by-owner", "the owner releases", cid(0, 1)),
        (
            "release/same-chaddr-other-id",
            "same MAC, another option 61",
            cid(0, 2),
        ),
        (
            "release/same-id-other-chaddr",
            "same option 61, another MAC",
            cid(1, 1),
        ),
        ("release/same-chaddr-no-id", "same MAC, no option 61", c(0)),
        ("release/other-client", "another client", c(2)),
    ] {
        v.push(probe_other(
            s(
                name,
                &format!("RELEASE by {about}; does another client get the address?"),
            )
            .spec(one())
            .fresh()
            .lease(cid(0, 1))
            .send(release(rel, A::Yi(1))),
        ));
    }
    v.push(probe_other(
        s(
            "release/without-server-id",
            "RELEASE without option 54 (RFC 2131: MUST have it)",
        )
        .spec(one())
        .fresh()
        .lease(c(0))
        .send(release(c(0), A::Yi(1)).without(54)),
    ));
    v.push(probe_other(
        s("release/wrong-server-id", "RELEASE naming another server")
            .spec(one())
            .fresh()
            .lease(c(0))
            .send(release(c(0), A::Yi(1)).server_id(A::lan(99))),
    ));
    v.push(probe_other(
        s("release/broadcast", "RELEASE broadcast instead of unicast")
            .spec(one())
            .fresh()
            .lease(c(0))
            .send(release(c(0), A::Yi(1)).via(Via::BroadcastFromCiaddr)),
    ));
    // DECLINE by identity mix: the probe is the lease owner's own DISCOVER.
    for (name, about, dec) in [
        ("decline/by-owner", "the owner declines", cid(0, 1)),
        (
            "decline/same-chaddr-other-id",
            "same MAC, another option 61",
            cid(0, 2),
        ),
        (
            "decline/same-id-other-chaddr",
            "same option 61, another MAC",
            cid(1, 1),
        ),
        ("decline/other-client", "another client", c(2)),
    ] {
        v.push(probe_same(
            s(
                name,
                &format!("DECLINE by {about}; is the address still offered?"),
            )
            .spec(one())
            .fresh()
            .lease(cid(0, 1))
            .send(decline(dec, A::Yi(1))),
            cid(0, 1),
        ));
    }
    v.push(probe_same(
        s(
            "decline/without-server-id",
            "DECLINE without option 54 (RFC 2131: MUST have it)",
        )
        .spec(one())
        .fresh()
        .lease(c(0))
        .send(decline(c(0), A::Yi(1)).without(54)),
        c(0),
    ));
    v.push(probe_same(
        s("decline/wrong-server-id", "DECLINE naming another server")
            .spec(one())
            .fresh()
            .lease(c(0))
            .send(decline(c(0), A::Yi(1)).server_id(A::lan(99))),
        c(0),
    ));
    v.push(
        s(
            "decline/other-client-then-discover",
            "after DECLINE another client finds the pool empty",
        )
        .spec(one())
        .fresh()
        .lease(c(0))
        .send(decline(c(0), A::Yi(1)))
        .send(discover(c(9))),
    );
    v
}

fn family_inform() -> Vec<Scenario> {
    vec![
        s(
            "inform/ciaddr-unicast",
            "INFORM from ciaddr → ACK to ciaddr:68, no lease time",
        )
        .lease(c(0))
        .send(inform(c(0), A::Yi(1))),
        s(
            "inform/ciaddr-not-leased",
            "INFORM from an address the server never leased",
        )
        .send(inform(c(0), A::lan(230))),
        s(
            "inform/no-ciaddr",
            "INFORM from 0.0.0.0 without ciaddr (RFC 2131 §4.3.5)",
        )
        .send(inform(c(0), A::Zero)),
        s(
            "inform/broadcast-from-ciaddr",
            "INFORM broadcast from a configured client",
        )
        .send(inform(c(0), A::lan(231)).via(Via::BroadcastFromCiaddr)),
        s("inform/relayed", "relayed INFORM with ciaddr")
            .send(inform(c(0), A::Ip(Topology::relayed(231))).relayed()),
        s("inform/relayed-no-ciaddr", "relayed INFORM without ciaddr")
            .send(inform(c(0), A::Zero).relayed()),
        s("inform/with-our-server-id", "INFORM carrying our server id")
            .send(inform(c(0), A::lan(232)).server_id(A::Server)),
        s(
            "inform/with-other-server-id",
            "INFORM carrying another server's id",
        )
        .send(inform(c(0), A::lan(233)).server_id(A::lan(99))),
        s(
            "inform/without-prl",
            "INFORM without a parameter request list",
        )
        .send(inform(c(0), A::lan(234)).without(55)),
        s(
            "inform/ciaddr-off-network",
            "INFORM from an address of no subnet",
        )
        .send(inform(c(0), foreign(5))),
        s(
            "inform/with-lease-time",
            "INFORM asking for a lease time (MUST NOT get one)",
        )
        .send(inform(c(0), A::lan(235)).lease_time(900)),
    ]
}

/// The rich spec: every catalogue option configured, typed (or named) as dhcpair allows.
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

/// The same options, every one written as `custom: [{code, hex}]` for dhcpair.
fn rich_hex() -> Spec {
    let opts = option_catalog()
        .into_iter()
        .map(|c| Opt::custom(c.code, c.value.as_hex()))
        .collect();
    Spec::base().with_options(opts)
}

const HEX_CODES: &[u8] = &[2, 3, 6, 15, 42, 43, 66, 67, 119, 150, 224, 225, 252];

fn prl() -> Vec<Scenario> {
    let mut v = Vec::new();
    for e in option_catalog() {
        let form = if e.named { "named" } else { e.value.form() };
        v.push(
            s(
                &format!("prl/opt-{}-{form}", e.code),
                &format!(
                    "option {} configured ({form}), requested alone: OFFER, ACK, INFORM-ACK",
                    e.code
                ),
            )
            .spec(rich())
            .send(discover(c(0)).prl(&[e.code]))
            .send(select(c(0), 0).prl(&[e.code]))
            .send(inform(c(0), A::Yi(1)).prl(&[e.code])),
        );
    }
    for &code in HEX_CODES {
        v.push(
            s(
                &format!("prl-hex/opt-{code}"),
                &format!("option {code} configured as custom hex, requested alone"),
            )
            .spec(rich_hex())
            .send(discover(c(0)).prl(&[code]))
            .send(select(c(0), 0).prl(&[code])),
        );
    }
    let all: Vec<u8> = option_catalog().iter().map(|e| e.code).collect();
    v.extend([
        s(
            "prl/absent",
            "no option 55: which configured options come back",
        )
        .send(discover(c(0)).without(55))
        .send(select(c(0), 0).without(55)),
        s("prl/empty", "option 55 of length 0")
            .spec(rich())
            .send(discover(c(0)).prl(&[])),
        s(
            "prl/not-configured-code",
            "requesting codes nobody configured",
        )
        .spec(rich())
        .send(discover(c(0)).prl(&[1, 199, 200])),
        s("prl/duplicate-codes", "a PRL naming a code twice")
            .spec(rich())
            .send(discover(c(0)).prl(&[3, 3, 6, 6])),
        s("prl/order", "PRL 6,15,3,1: order of the reply's options")
            .spec(rich())
            .extra(Extra {
                order: true,
                size: false,
            })
            .send(discover(c(0)).prl(&[6, 15, 3, 1])),
        s(
            "prl/router-before-mask",
            "PRL 3,1: the subnet mask must come first (RFC 2132 §3.3), asked six times \
             (an order that changes from message to message shows within six)",
        )
        .spec(rich())
        .extra(Extra {
            order: true,
            size: false,
        })
        .send(discover(c(0)).prl(&[3, 1]))
        .send(discover(c(1)).prl(&[3, 1]))
        .send(discover(c(2)).prl(&[3, 1]))
        .send(discover(c(3)).prl(&[3, 1]))
        .send(discover(c(4)).prl(&[3, 1]))
        .send(discover(c(5)).prl(&[3, 1])),
        s("prl/everything", "every configured code requested at once")
            .spec(rich())
            .send(discover(c(0)).prl(&all))
            .send(select(c(0), 0).prl(&all)),
        s(
            "prl/base-options-not-requested",
            "configured options absent from the PRL stay out",
        )
        .send(discover(c(0)).prl(&[51, 54])),
    ]);
    v
}

fn relay_agent_info() -> Vec<Scenario> {
    // circuit-id "eth0/1", remote-id 00:11:22:33:44:55
    let mut info = vec![1, 6];
    info.extend_from_slice(b"eth0/1");
    info.extend_from_slice(&[2, 6, 0, 0x11, 0x22, 0x33, 0x44, 0x55]);
    let with82 = |p: Pkt| p.raw(82, &info);
    vec![
        s(
            "opt82/discover-echo",
            "relayed DISCOVER with option 82 → echoed in the OFFER",
        )
        .send(with82(discover(c(0)).relayed())),
        s(
            "opt82/request-echo",
            "relayed REQUEST with option 82 → echoed in the ACK",
        )
        .send(with82(discover(c(0)).relayed()))
        .send(with82(select(c(0), 0).relayed())),
        s(
            "opt82/nak-echo",
            "relayed REQUEST that is NAKed → option 82 echoed in the NAK",
        )
        .send(with82(init_reboot(c(0), A::lan(20)).relayed())),
        s("opt82/inform-echo", "relayed INFORM with option 82").send(with82(
            inform(c(0), A::Ip(Topology::relayed(236))).relayed(),
        )),
        s(
            "opt82/absent",
            "relayed without option 82 → none in the reply",
        )
        .send(discover(c(0)).relayed()),
        s(
            "opt82/direct-with-82",
            "option 82 from a client with giaddr 0 (RFC 3046 §2.1)",
        )
        .send(with82(discover(c(0)))),
        s(
            "opt82/requested-in-prl",
            "a client asking for 82 in its PRL without sending it",
        )
        .send(discover(c(0)).prl(&[1, 3, 82])),
    ]
}

fn pools() -> Vec<Scenario> {
    let short = Spec {
        lease: crate::spec::LeaseTimes {
            default: 3,
            min: 1,
            max: 3,
        },
        ..one_address()
    };
    let probation = Spec {
        decline_probation: 3,
        ..one_address()
    };
    vec![
        s("pool/empty", "a subnet without a range: DISCOVER → silence")
            .spec(Spec::base().with_lan_range(0))
            .send(discover(c(0))),
        s(
            "pool/empty-inform",
            "a subnet without a range still answers INFORM",
        )
        .spec(Spec::base().with_lan_range(0))
        .send(inform(c(0), A::lan(50))),
        s(
            "pool/exhausted",
            "one address, taken: another client's DISCOVER → silence",
        )
        .spec(one_address())
        .fresh()
        .lease(c(0))
        .send(discover(c(1))),
        s(
            "pool/exhausted-requested",
            "one address, taken: another client's INIT-REBOOT for it",
        )
        .spec(one_address())
        .fresh()
        .lease(c(0))
        .send(init_reboot(c(1), A::Yi(1))),
        s(
            "pool/released-reoffered",
            "one address, released: another client gets it",
        )
        .spec(one_address())
        .fresh()
        .lease(c(0))
        .send(release(c(0), A::Yi(1)))
        .send(discover(c(1))),
        s(
            "pool/expired-reoffered",
            "one address, 3 s lease, another client 4 s later → OFFER",
        )
        .spec(short.clone())
        .fresh()
        .lease(c(0))
        .wait(Duration::from_secs(4))
        .send(discover(c(1))),
        s(
            "pool/expired-owner-returns",
            "3 s lease expired; its owner asks again",
        )
        .spec(short)
        .fresh()
        .lease(c(0))
        .wait(Duration::from_secs(4))
        .send(init_reboot(c(0), A::Yi(1))),
        s(
            "pool/decline-probation-ends",
            "one address declined, 3 s probation; 4 s later → OFFER",
        )
        .spec(probation.clone())
        .fresh()
        .lease(c(0))
        .send(decline(c(0), A::Yi(1)))
        .wait(Duration::from_secs(4))
        .send(discover(c(1))),
        s(
            "pool/decline-probation-running",
            "one address declined, probation running → silence",
        )
        .spec(probation)
        .fresh()
        .lease(c(0))
        .send(decline(c(0), A::Yi(1)))
        .send(discover(c(1))),
    ]
}

fn lease_times() -> Vec<Scenario> {
    let mut v = vec![s("lease/default", "no option 51 → default lease, T1 ½, T2 ⅞").lease(c(0))];
    for (name, secs) in [
        ("lease/requested-within", 900u32),
        ("lease/requested-below-min", 100),
        ("lease/requested-above-max", 5000),
        ("lease/requested-zero", 0),
        ("lease/requested-infinite", 0xffff_ffff),
    ] {
        v.push(
            s(name, &format!("option 51 = {secs} in DISCOVER and REQUEST"))
                .send(discover(c(0)).lease_time(secs))
                .send(select(c(0), 0).lease_time(secs)),
        );
    }
    v.push(
        s(
            "lease/requested-in-discover-only",
            "option 51 in the DISCOVER only",
        )
        .send(discover(c(0)).lease_time(900))
        .send(select(c(0), 0)),
    );
    v
}

fn family_bootp() -> Vec<Scenario> {
    let dynamic = Spec {
        dynamic_bootp: true,
        ..Spec::base()
    };
    let mut reserved = Spec::base();
    reserved.lan_mut().reservations.push(Reservation {
        mac: Some(c(0xf4).mac(0)),
        client_id: None,
        host: 244,
        hostname: None,
        options: Vec::new(),
    });
    vec![
        s(
            "bootp/dynamic",
            "BOOTREQUEST where dynamic BOOTP is allowed",
        )
        .spec(dynamic.clone())
        .send(bootp(c(0))),
        s(
            "bootp/dynamic-relayed",
            "relayed BOOTREQUEST, dynamic BOOTP allowed",
        )
        .spec(dynamic.clone())
        .send(bootp(c(0)).relayed()),
        s(
            "bootp/dynamic-with-cookie-options",
            "BOOTREQUEST with RFC 1497 options (no 53)",
        )
        .spec(dynamic)
        .send(bootp(c(0)).raw(55, &[1, 3])),
        s(
            "bootp/not-allowed",
            "BOOTREQUEST where only DHCP is allowed → silence",
        )
        .send(bootp(c(0))),
        s(
            "bootp/reserved",
            "BOOTREQUEST from a client with a reservation",
        )
        .spec(reserved)
        .send(bootp(c(0xf4))),
    ]
}

fn reservations() -> Vec<Scenario> {
    let mut spec = Spec::base();
    let mac = |n: u8| c(n).mac(0);
    spec.lan_mut().reservations = vec![
        Reservation {
            mac: Some(mac(0xf0)),
            client_id: None,
            host: 240,
            hostname: Some("printer".into()),
            options: Vec::new(),
        },
        Reservation {
            mac: None,
            client_id: Some(vec![1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
            host: 241,
            hostname: None,
            options: vec![Opt::named(3, Value::Ips(vec![Topology::lan(254)]))],
        },
        Reservation {
            mac: Some(mac(0xf2)),
            client_id: None,
            host: 242,
            hostname: None,
            options: Vec::new(),
        },
        Reservation {
            mac: Some(mac(0xf3)),
            client_id: None,
            host: 243,
            hostname: None,
            options: Vec::new(),
        },
    ];
    let by_id = Client {
        n: 0xf1,
        id: Id::Raw(vec![1, 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
    };
    vec![
        s("reservation/by-mac", "a reserved MAC gets its address")
            .spec(spec.clone())
            .lease(c(0xf0)),
        s(
            "reservation/hostname",
            "the reservation's hostname when option 12 is requested",
        )
        .spec(spec.clone())
        .send(discover(c(0xf0)).prl(&[1, 3, 12])),
        s(
            "reservation/by-client-id",
            "a reserved option 61 gets its address and its own routers",
        )
        .spec(spec.clone())
        .lease(by_id),
        s(
            "reservation/other-client-requests-it",
            "INIT-REBOOT for a reserved address by another client",
        )
        .spec(spec.clone())
        .send(init_reboot(c(0), A::lan(242))),
        s(
            "reservation/other-client-hints-it",
            "DISCOVER naming a reserved address by another client",
        )
        .spec(spec.clone())
        .send(discover(c(0)).requested(A::lan(243))),
        s(
            "reservation/owner-requests-other-address",
            "the reserved client asks for a pool address",
        )
        .spec(spec)
        .send(init_reboot(c(0xf3), A::lan(20))),
    ]
}

fn long_options() -> Vec<Scenario> {
    let all: Vec<u8> = option_catalog().iter().map(|e| e.code).collect();
    let long_id: Vec<u8> = std::iter::once(0xff)
        .chain((0..299).map(|i| i as u8))
        .collect();
    let size = Extra {
        order: false,
        size: true,
    };
    let max = |n: u16| n.to_be_bytes().to_vec();
    vec![
        s(
            "long/prl-split",
            "the PRL in two instances (RFC 3396): both halves count",
        )
        .spec(rich())
        .send(discover(c(0)).opt(55, OptVal::Split(vec![vec![1, 3], vec![42, 119]]))),
        s(
            "long/client-id-300-bytes",
            "option 61 of 300 bytes, split in two (RFC 3396)",
        )
        .send(discover(c(0)).without(61).opt(
            61,
            OptVal::Split(vec![long_id[..255].to_vec(), long_id[255..].to_vec()]),
        )),
        s("long/hostname-split", "option 12 split in two instances").send(discover(c(0)).opt(
            12,
            OptVal::Split(vec![b"host".to_vec(), b"-split".to_vec()]),
        )),
        s(
            "size/no-prl-everything",
            "no option 55 or 57, every option configured: 576 bytes at most",
        )
        .spec(rich())
        .extra(size)
        .send(discover(c(0)).without(55)),
        s(
            "size/no-57-everything",
            "every option requested, no option 57: 576 bytes at most",
        )
        .spec(rich())
        .extra(size)
        .send(discover(c(0)).prl(&all)),
        s(
            "size/max-576-everything",
            "option 57 = 576 and every option requested",
        )
        .spec(rich())
        .extra(size)
        .send(discover(c(0)).prl(&all).raw(57, &max(576))),
        s(
            "size/max-1500-everything",
            "option 57 = 1500 and every option requested",
        )
        .spec(rich())
        .extra(size)
        .send(discover(c(0)).prl(&all).raw(57, &max(1500))),
        s(
            "size/max-below-576",
            "option 57 = 300 (below the minimum 576)",
        )
        .spec(rich())
        .extra(size)
        .send(discover(c(0)).prl(&all).raw(57, &max(300))),
    ]
}

fn malformed() -> Vec<Scenario> {
    let base = || discover(c(0));
    let unterminated = |p: Pkt, tail: &[u8]| {
        let mut p = p.mutate(Mutation::Append(tail.to_vec()));
        p.end = false;
        p.pad_to = 0;
        p
    };
    let damaged: Vec<(&str, Pkt)> = vec![
        ("truncated-header", base().mutate(Mutation::Truncate(100))),
        (
            "truncated-before-cookie",
            base().mutate(Mutation::Truncate(236)),
        ),
        (
            "truncated-inside-option",
            base().mutate(Mutation::Truncate(242)),
        ),
        ("empty-payload", base().mutate(Mutation::Truncate(0))),
        (
            "bad-cookie",
            base().mutate(Mutation::Cookie([99, 130, 83, 100])),
        ),
        (
            "duplicate-message-type",
            base().push_raw(53, &[mt::REQUEST]),
        ),
        ("message-type-zero", base().raw(53, &[0])),
        ("message-type-99", base().raw(53, &[99])),
        ("message-type-empty", base().raw(53, &[])),
        ("message-type-offer", base().raw(53, &[mt::OFFER])),
        (
            "op-bootreply",
            Pkt { op: 2, ..base() }.expect_none(NOT_A_REQUEST),
        ),
        ("hlen-17", Pkt { hlen: 17, ..base() }),
        // The last option claims 200 bytes; the packet ends 10 bytes later, no END.
        (
            "option-overrun",
            unterminated(
                base(),
                &[
                    60, 200, b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x',
                ],
            ),
        ),
    ];
    let mut v: Vec<Scenario> = damaged
        .into_iter()
        .map(|(name, p)| {
            s(
                &format!("malformed/{name}"),
                "dropped without a reply; the server stays up",
            )
            .send(p.label(&format!("DISCOVER({name})")).expect_none(MALFORMED))
            .send(discover(c(1)).label("DISCOVER(still alive?)"))
        })
        .collect();
    v.push(
        s(
            "malformed/message-type-empty-bootp-allowed",
            "a zero-length option 53 where dynamic BOOTP is allowed: not a BOOTP request",
        )
        .spec(Spec {
            dynamic_bootp: true,
            ..Spec::base()
        })
        .send(
            base()
                .raw(53, &[])
                .label("DISCOVER(message-type-empty)")
                .expect_none(MALFORMED),
        )
        .send(discover(c(1)).label("DISCOVER(still alive?)")),
    );
    v.push(
        s(
            "malformed/no-end-option",
            "options without END and no padding (tolerated?)",
        )
        .send(unterminated(base(), &[])),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn at_least_120_scenarios_with_unique_names() {
        let all = all();
        assert!(all.len() >= 120, "only {} scenarios", all.len());
        let mut names = HashSet::new();
        for sc in &all {
            assert!(names.insert(sc.name.clone()), "{} twice", sc.name);
        }
    }

    #[test]
    fn every_scenario_sends_and_refers_only_backwards() {
        for sc in all() {
            let mut sent = false;
            for (i, step) in sc.steps.iter().enumerate() {
                let Step::Send(p) = step else { continue };
                sent = true;
                let mut refs = vec![&p.ciaddr, &p.yiaddr, &p.siaddr, &p.giaddr];
                for (_, v) in &p.options {
                    if let OptVal::Addr(a) = v {
                        refs.push(a);
                    }
                }
                for a in refs {
                    if let A::Yi(k) = a {
                        assert!(
                            *k < i,
                            "{} step {} refers to step {}",
                            sc.name,
                            i + 1,
                            k + 1
                        );
                    }
                }
            }
            assert!(sent, "{} sends nothing", sc.name);
            let waited: u64 = sc
                .steps
                .iter()
                .map(|s| match s {
                    Step::Wait(d) => d.as_secs(),
                    Step::Send(_) => 0,
                })
                .sum();
            assert!(waited <= 10, "{} waits {waited} s", sc.name);
        }
    }
}
