//! Scenarios are data: a server [`Spec`] and a table of [`Step`]s. A step is a packet whose
//! every field and option is written by the scenario; addresses the servers chose earlier are
//! referred to symbolically ([`A::Yi`]: "the yiaddr this server gave at step k"), so one
//! scenario means the same thing to three servers that allocate differently.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::packet::{mt, BROADCAST_FLAG};
use crate::spec::{Spec, Topology};

/// An address in a packet, resolved per server when the step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum A {
    Zero,
    Ip(Ipv4Addr),
    /// yiaddr of this server's first reply to step k (0-based). A step that refers to a
    /// step without a reply is not sent, and that is recorded.
    Yi(usize),
    /// The server's address (its server identifier).
    Server,
}

impl A {
    pub fn lan(host: u8) -> A {
        A::Ip(Topology::lan(host))
    }
}

/// An option value in a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptVal {
    Raw(Vec<u8>),
    Addr(A),
    /// Several instances of the option in a row (RFC 3396 split), each given.
    Split(Vec<Vec<u8>>),
}

/// How the packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// From 0.0.0.0:68 to 255.255.255.255:67, Ethernet broadcast, source MAC = chaddr.
    Broadcast,
    /// From ciaddr:68 to the server's address:67 (RENEWING, RELEASE, INFORM with ciaddr).
    Unicast,
    /// From ciaddr:68 to 255.255.255.255:67 (REBINDING, INFORM broadcast with ciaddr).
    BroadcastFromCiaddr,
    /// As a relay agent: from 192.0.2.2:67 to the server's address:67, giaddr 198.51.100.1
    /// unless the packet sets another, hops 1.
    Relay,
}

/// Byte-level damage for malformed-packet scenarios, applied after encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Keep only the first n bytes of the DHCP payload.
    Truncate(usize),
    /// Replace the magic cookie.
    Cookie([u8; 4]),
    /// Append bytes after the options (with `end: false, pad_to: 0` they are the last ones).
    Append(Vec<u8>),
}

/// Who sends: client `n` of the scenario (its MAC is derived from the scenario number, so
/// scenarios sharing a server never share a client), optionally with an option 61.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub n: u8,
    pub id: Id,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    None,
    /// Option 61 `ff cf <scenario> <k>`: an identity independent of the MAC.
    Own(u8),
    /// Option 61 = hardware type 1 + the MAC (what most clients send).
    Mac,
    /// Option 61 exactly these bytes (for reservations by client id).
    Raw(Vec<u8>),
}

/// Clients numbered at least this are the same in every scenario (for reservations).
pub const FIXED_CLIENTS: u8 = 0xf0;

pub fn c(n: u8) -> Client {
    Client { n, id: Id::None }
}

pub fn cid(n: u8, id: u8) -> Client {
    Client { n, id: Id::Own(id) }
}

impl Client {
    pub fn mac(&self, scenario: u16) -> [u8; 6] {
        if self.n >= FIXED_CLIENTS {
            [0x02, 0xcf, 0xff, 0xff, 0x00, self.n]
        } else {
            let s = scenario.to_be_bytes();
            [0x02, 0xcf, s[0], s[1], 0x00, self.n]
        }
    }

    pub fn id_bytes(&self, scenario: u16) -> Option<Vec<u8>> {
        let s = scenario.to_be_bytes();
        match &self.id {
            Id::None => None,
            Id::Own(k) => Some(vec![0xff, 0xcf, s[0], s[1], *k]),
            Id::Mac => {
                let mut v = vec![1];
                v.extend_from_slice(&self.mac(scenario));
                Some(v)
            }
            Id::Raw(b) => Some(b.clone()),
        }
    }
}

/// What the RFC says must happen, checked on dhcpair whatever the oracles do (and shown for
/// the oracles too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    NoReply(&'static str),
}

/// One packet of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkt {
    pub label: String,
    pub client: Client,
    pub via: Via,
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: A,
    pub yiaddr: A,
    pub siaddr: A,
    pub giaddr: A,
    /// Replace chaddr (the frame's source MAC stays the client's).
    pub chaddr: Option<Vec<u8>>,
    pub sname: Vec<u8>,
    pub file: Vec<u8>,
    /// Options in wire order. Option 61 of the client is added after 53 unless `no_id`.
    pub options: Vec<(u8, OptVal)>,
    pub no_id: bool,
    pub end: bool,
    pub pad_to: usize,
    pub mutate: Option<Mutation>,
    pub expect: Option<Expect>,
}

/// The parameter request list most clients send.
pub const PRL: &[u8] = &[1, 3, 6, 15, 51, 54, 58, 59];

impl Pkt {
    pub fn new(label: &str, client: Client, msg_type: Option<u8>) -> Pkt {
        let mut options = Vec::new();
        if let Some(t) = msg_type {
            options.push((53, OptVal::Raw(vec![t])));
        }
        Pkt {
            label: label.to_string(),
            client,
            via: Via::Broadcast,
            op: 1,
            htype: 1,
            hlen: 6,
            hops: 0,
            secs: 0,
            flags: 0,
            ciaddr: A::Zero,
            yiaddr: A::Zero,
            siaddr: A::Zero,
            giaddr: A::Zero,
            chaddr: None,
            sname: Vec::new(),
            file: Vec::new(),
            options,
            no_id: false,
            end: true,
            pad_to: 300,
            mutate: None,
            expect: None,
        }
    }

    /// Add (or replace) an option.
    pub fn opt(mut self, code: u8, v: OptVal) -> Pkt {
        if let Some(slot) = self.options.iter_mut().find(|(c, _)| *c == code) {
            slot.1 = v;
        } else {
            self.options.push((code, v));
        }
        self
    }

    pub fn raw(self, code: u8, bytes: &[u8]) -> Pkt {
        self.opt(code, OptVal::Raw(bytes.to_vec()))
    }

    /// Append an option even if one with that code exists (duplicates, RFC 3396 splits).
    pub fn push_raw(mut self, code: u8, bytes: &[u8]) -> Pkt {
        self.options.push((code, OptVal::Raw(bytes.to_vec())));
        self
    }

    pub fn without(mut self, code: u8) -> Pkt {
        self.options.retain(|(c, _)| *c != code);
        if code == 61 {
            self.no_id = true;
        }
        self
    }

    pub fn prl(self, codes: &[u8]) -> Pkt {
        self.raw(55, codes)
    }

    pub fn server_id(self, a: A) -> Pkt {
        self.opt(54, OptVal::Addr(a))
    }

    pub fn requested(self, a: A) -> Pkt {
        self.opt(50, OptVal::Addr(a))
    }

    pub fn lease_time(self, secs: u32) -> Pkt {
        self.raw(51, &secs.to_be_bytes())
    }

    pub fn bcast(mut self) -> Pkt {
        self.flags |= BROADCAST_FLAG;
        self
    }

    pub fn ciaddr(mut self, a: A) -> Pkt {
        self.ciaddr = a;
        self
    }

    /// Send as a relay agent (giaddr 198.51.100.1 unless set), hops 1.
    pub fn relayed(mut self) -> Pkt {
        self.via = Via::Relay;
        if self.giaddr == A::Zero {
            self.giaddr = A::Ip(Topology::GIADDR);
        }
        self.hops = 1;
        self
    }

    pub fn giaddr(mut self, a: A) -> Pkt {
        self.giaddr = a;
        self
    }

    pub fn via(mut self, v: Via) -> Pkt {
        self.via = v;
        self
    }

    pub fn expect_none(mut self, why: &'static str) -> Pkt {
        self.expect = Some(Expect::NoReply(why));
        self
    }

    pub fn mutate(mut self, m: Mutation) -> Pkt {
        self.mutate = Some(m);
        self
    }

    pub fn label(mut self, l: &str) -> Pkt {
        self.label = l.to_string();
        self
    }
}

// Builders for the usual client messages (RFC 2131 §4.4, table 5).

pub fn discover(cl: Client) -> Pkt {
    Pkt::new("DISCOVER", cl, Some(mt::DISCOVER)).prl(PRL)
}

/// REQUEST in SELECTING: server id, requested = what this server offered at step `k`.
pub fn select(cl: Client, k: usize) -> Pkt {
    Pkt::new("REQUEST(selecting)", cl, Some(mt::REQUEST))
        .server_id(A::Server)
        .requested(A::Yi(k))
        .prl(PRL)
}

/// REQUEST in INIT-REBOOT: requested address, no server id, ciaddr 0.
pub fn init_reboot(cl: Client, a: A) -> Pkt {
    Pkt::new("REQUEST(init-reboot)", cl, Some(mt::REQUEST))
        .requested(a)
        .prl(PRL)
}

/// REQUEST in RENEWING: unicast from ciaddr, no server id, no requested address.
pub fn renew(cl: Client, a: A) -> Pkt {
    Pkt::new("REQUEST(renewing)", cl, Some(mt::REQUEST))
        .ciaddr(a)
        .via(Via::Unicast)
        .prl(PRL)
}

/// REQUEST in REBINDING: broadcast with ciaddr, no server id, no requested address.
pub fn rebind(cl: Client, a: A) -> Pkt {
    Pkt::new("REQUEST(rebinding)", cl, Some(mt::REQUEST))
        .ciaddr(a)
        .via(Via::BroadcastFromCiaddr)
        .prl(PRL)
}

pub fn release(cl: Client, a: A) -> Pkt {
    Pkt::new("RELEASE", cl, Some(mt::RELEASE))
        .ciaddr(a)
        .via(Via::Unicast)
        .server_id(A::Server)
}

pub fn decline(cl: Client, a: A) -> Pkt {
    Pkt::new("DECLINE", cl, Some(mt::DECLINE))
        .requested(a)
        .server_id(A::Server)
}

/// INFORM from `a` (unicast to the server), or broadcast from 0.0.0.0 when `a` is Zero.
pub fn inform(cl: Client, a: A) -> Pkt {
    let via = if a == A::Zero {
        Via::Broadcast
    } else {
        Via::Unicast
    };
    Pkt::new("INFORM", cl, Some(mt::INFORM))
        .ciaddr(a)
        .via(via)
        .prl(PRL)
}

/// A BOOTP request (no option 53), RFC 1497 cookie, no options.
pub fn bootp(cl: Client) -> Pkt {
    Pkt::new("BOOTREQUEST", cl, None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Send(Box<Pkt>),
    /// Let time pass (lease expiry, probation end); bounded by the scenario.
    Wait(Duration),
}

/// What to compare beyond the default fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extra {
    /// The order of the requested options in the reply.
    pub order: bool,
    /// Whether the reply fits the request's option 57 and how it got there.
    pub size: bool,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub about: String,
    pub spec: Spec,
    /// Needs servers of its own with empty lease databases.
    pub fresh: bool,
    pub steps: Vec<Step>,
    pub extra: Extra,
}

impl Scenario {
    pub fn new(name: impl Into<String>, about: impl Into<String>) -> Scenario {
        Scenario {
            name: name.into(),
            about: about.into(),
            spec: Spec::base(),
            fresh: false,
            steps: Vec::new(),
            extra: Extra::default(),
        }
    }

    pub fn spec(mut self, s: Spec) -> Scenario {
        self.spec = s;
        self
    }

    pub fn fresh(mut self) -> Scenario {
        self.fresh = true;
        self
    }

    pub fn send(mut self, p: Pkt) -> Scenario {
        self.steps.push(Step::Send(Box::new(p)));
        self
    }

    pub fn wait(mut self, d: Duration) -> Scenario {
        self.steps.push(Step::Wait(d));
        self
    }

    pub fn extra(mut self, e: Extra) -> Scenario {
        self.extra = e;
        self
    }

    /// A lease for `cl` by DISCOVER + REQUEST(selecting): steps k, k+1; the address is
    /// `A::Yi(k)`.
    pub fn lease(self, cl: Client) -> Scenario {
        let k = self.steps.len();
        self.send(discover(cl.clone())).send(select(cl, k))
    }

    pub fn step_count(&self) -> usize {
        self.steps.len()
    }
}
