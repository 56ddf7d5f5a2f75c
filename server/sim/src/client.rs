//! A DHCP client as RFC 2131 §4.4 describes it, on the world's clock (milliseconds).
//!
//! It takes the first OFFER, confirms it with a SELECTING REQUEST, renews at T1 with the
//! server that ACKed, rebinds at T2 by broadcast, sometimes releases, sometimes sleeps and
//! comes back in INIT-REBOOT. It believes it holds an address from the ACK until the time the
//! REQUEST was first sent plus the lease time (RFC 2131 §4.4.1), which never ends later than
//! the server's own record of the lease.

use std::net::Ipv4Addr;

use dhcpair_wire::v4::{DhcpOption, Message, MessageType, OptionCode};

use crate::rng::Rng;

/// Where a client packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum To {
    Broadcast,
    /// Unicast to the server with this identifier.
    Server(Ipv4Addr),
}

/// An address the client holds: from the ACK until `ends_ms` (world milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Binding {
    pub ip: Ipv4Addr,
    pub server: Ipv4Addr,
    pub acked_ms: u64,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub ends_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Offline (at start, after a release, or asleep holding a binding).
    Asleep,
    Selecting {
        tries: u32,
    },
    Requesting {
        ip: Ipv4Addr,
        server: Ipv4Addr,
        tries: u32,
    },
    Bound,
    Renewing,
    Rebinding,
    Rebooting {
        ip: Ipv4Addr,
        tries: u32,
    },
}

/// What happened to the client's binding, for the world's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Acked,
    /// A NAK while the client still held the address for `remaining_ms`.
    Nak {
        remaining_ms: u64,
    },
    /// The binding ran out while the client was trying to renew it.
    Expired,
}

/// The client's reaction: packets to send, the next timer (None keeps the current one).
#[derive(Debug, Default)]
pub(crate) struct Step {
    pub sends: Vec<(To, Message)>,
    pub timer_ms: Option<u64>,
    pub event: Option<Event>,
}

#[derive(Debug)]
pub(crate) struct Client {
    pub mac: [u8; 6],
    pub client_id: Option<Vec<u8>>,
    /// Sends `secs` above loadBalanceMaxSeconds, so both servers answer it in NORMAL.
    pub slow: bool,
    pub phase: Phase,
    pub binding: Option<Binding>,
    last_ip: Option<Ipv4Addr>,
    released: bool,
    xid: u32,
    /// When the first packet of the current transaction left (the lease starts there).
    xid_sent_ms: u64,
    /// When the current acquisition began (for `secs`).
    started_ms: u64,
    /// Generation of the live timer; older timer events are ignored.
    pub timer_gen: u64,
}

/// Seconds to world milliseconds.
fn secs(s: u64) -> u64 {
    s * 1000
}

impl Client {
    pub fn new(idx: usize, rng: &mut Rng) -> Client {
        let mac = [0x52, 0x54, 0x00, 0x5a, (idx >> 8) as u8, idx as u8];
        let client_id = rng.chance(1, 2).then(|| {
            let mut id = vec![1];
            id.extend_from_slice(&mac);
            id
        });
        Client {
            mac,
            client_id,
            slow: rng.chance(1, 5),
            phase: Phase::Asleep,
            binding: None,
            last_ip: None,
            released: false,
            xid: (idx as u32) << 20,
            xid_sent_ms: 0,
            started_ms: 0,
            timer_gen: 0,
        }
    }

    /// Does the client hold `binding` at `now_ms`?
    pub fn holds(&self, now_ms: u64) -> Option<Binding> {
        self.binding.filter(|b| b.ends_ms > now_ms)
    }

    fn new_xid(&mut self, now_ms: u64) {
        self.xid = self.xid.wrapping_add(1);
        self.xid_sent_ms = now_ms;
    }

    fn packet(&self, now_ms: u64, kind: MessageType, ciaddr: Ipv4Addr) -> Message {
        let z = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(self.xid, ciaddr, z, z, z, &self.mac);
        let elapsed =
            (now_ms.saturating_sub(self.started_ms) / 1000) + if self.slow { 10 } else { 0 };
        m.set_secs(u16::try_from(elapsed).unwrap_or(u16::MAX));
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        if let Some(id) = &self.client_id {
            m.opts_mut()
                .insert(DhcpOption::ClientIdentifier(id.clone()));
        }
        m
    }

    fn discover(&mut self, now_ms: u64, tries: u32, rng: &mut Rng) -> Step {
        if tries == 0 {
            self.new_xid(now_ms);
            self.started_ms = now_ms;
        }
        let mut m = self.packet(now_ms, MessageType::Discover, Ipv4Addr::UNSPECIFIED);
        if let Some(ip) = self.last_ip.filter(|_| rng.chance(1, 2)) {
            m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        }
        self.phase = Phase::Selecting { tries: tries + 1 };
        let backoff = secs(2u64 << tries.min(4)) + rng.range(0, 1000);
        Step {
            sends: vec![(To::Broadcast, m)],
            timer_ms: Some(now_ms + backoff),
            event: None,
        }
    }

    fn request_selecting(
        &mut self,
        now_ms: u64,
        ip: Ipv4Addr,
        server: Ipv4Addr,
        tries: u32,
        rng: &mut Rng,
    ) -> Step {
        if tries == 0 {
            self.xid_sent_ms = now_ms; // same xid as the DISCOVER; the lease starts here
        }
        let mut m = self.packet(now_ms, MessageType::Request, Ipv4Addr::UNSPECIFIED);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(server));
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        self.phase = Phase::Requesting {
            ip,
            server,
            tries: tries + 1,
        };
        Step {
            sends: vec![(To::Broadcast, m)],
            timer_ms: Some(now_ms + secs(2) + rng.range(0, 2000)),
            event: None,
        }
    }

    fn reboot(&mut self, now_ms: u64, ip: Ipv4Addr, tries: u32) -> Step {
        if tries == 0 {
            self.new_xid(now_ms);
            self.started_ms = now_ms;
        }
        let mut m = self.packet(now_ms, MessageType::Request, Ipv4Addr::UNSPECIFIED);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
        self.phase = Phase::Rebooting {
            ip,
            tries: tries + 1,
        };
        Step {
            sends: vec![(To::Broadcast, m)],
            timer_ms: Some(now_ms + secs(2u64 << tries)),
            event: None,
        }
    }

    fn renew(&mut self, now_ms: u64, b: Binding, rebinding: bool, first: bool) -> Step {
        if first {
            self.new_xid(now_ms);
            self.started_ms = now_ms;
        }
        let m = self.packet(now_ms, MessageType::Request, b.ip);
        let (to, until, min_gap) = if rebinding {
            (To::Broadcast, b.ends_ms, secs(5))
        } else {
            (To::Server(b.server), b.t2_ms, secs(10))
        };
        self.phase = if rebinding {
            Phase::Rebinding
        } else {
            Phase::Renewing
        };
        // RFC 2131 §4.4.5: retransmit after half the remaining time, with a floor.
        let next = (now_ms + (until.saturating_sub(now_ms) / 2).max(min_gap)).min(until);
        Step {
            sends: vec![(to, m)],
            timer_ms: Some(next.max(now_ms + 1)),
            event: None,
        }
    }

    /// Sleep until `wake_ms` (keeping any binding: it still holds it until it ends).
    fn sleep(&mut self, wake_ms: u64) -> Step {
        self.phase = Phase::Asleep;
        Step {
            timer_ms: Some(wake_ms),
            ..Step::default()
        }
    }

    /// A start right now: the world staggers the first wake-ups.
    pub fn on_timer(&mut self, now_ms: u64, rng: &mut Rng, calm: bool) -> Step {
        match self.phase {
            Phase::Asleep => {
                if self.binding.is_some_and(|b| b.ends_ms <= now_ms) {
                    self.binding = None;
                }
                match self.last_ip {
                    Some(ip) if !self.released => self.reboot(now_ms, ip, 0),
                    _ => self.discover(now_ms, 0, rng),
                }
            }
            Phase::Selecting { tries } if tries >= 7 => {
                // Nobody answers (exhausted pool, or no server serving): try again later.
                let wake = now_ms + secs(rng.range(30, 300));
                self.sleep(wake)
            }
            Phase::Selecting { tries } => self.discover(now_ms, tries, rng),
            Phase::Requesting { ip, server, tries } if tries < 4 => {
                self.request_selecting(now_ms, ip, server, tries, rng)
            }
            Phase::Requesting { .. } => self.discover(now_ms, 0, rng),
            Phase::Rebooting { ip, tries } if tries < 3 => self.reboot(now_ms, ip, tries),
            Phase::Rebooting { .. } => match self.holds(now_ms) {
                // RFC 2131 §3.2: no answer; keep using the unexpired lease.
                Some(b) => self.bound_timer(now_ms, b, rng, calm),
                None => {
                    self.binding = None;
                    self.discover(now_ms, 0, rng)
                }
            },
            Phase::Bound | Phase::Renewing | Phase::Rebinding => match self.binding {
                None => self.discover(now_ms, 0, rng),
                Some(b) if now_ms >= b.ends_ms => {
                    let renewing = self.phase != Phase::Bound;
                    self.binding = None;
                    let mut step = self.discover(now_ms, 0, rng);
                    step.event = renewing.then_some(Event::Expired);
                    step
                }
                Some(b) => self.bound_timer(now_ms, b, rng, calm),
            },
        }
    }

    fn bound_timer(&mut self, now_ms: u64, b: Binding, rng: &mut Rng, calm: bool) -> Step {
        if now_ms >= b.t2_ms {
            let first = self.phase != Phase::Rebinding;
            return self.renew(now_ms, b, true, first);
        }
        if now_ms >= b.t1_ms {
            if self.phase == Phase::Bound && !calm {
                if rng.chance(1, 12) {
                    // RELEASE (RFC 2131 §4.4.6) and go away for a while.
                    let mut m = self.packet(now_ms, MessageType::Release, b.ip);
                    m.opts_mut().insert(DhcpOption::ServerIdentifier(b.server));
                    self.binding = None;
                    self.released = true;
                    let mut step = self.sleep(now_ms + secs(rng.range(30, 900)));
                    step.sends.push((To::Server(b.server), m));
                    return step;
                }
                if rng.chance(1, 12) {
                    // Switched off: no renewals; back later in INIT-REBOOT.
                    return self.sleep(now_ms + secs(rng.range(60, 1800)));
                }
            }
            let first = self.phase != Phase::Renewing;
            return self.renew(now_ms, b, false, first);
        }
        self.phase = Phase::Bound;
        Step {
            timer_ms: Some(b.t1_ms),
            ..Step::default()
        }
    }

    /// A reply from a server (already decoded).
    pub fn on_reply(&mut self, now_ms: u64, m: &Message, rng: &mut Rng) -> Step {
        if m.xid() != self.xid || m.chaddr() != self.mac {
            return Step::default();
        }
        let kind = m.opts().msg_type();
        let server = match m.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            _ => return Step::default(),
        };
        match (kind, self.phase) {
            (Some(MessageType::Offer), Phase::Selecting { .. }) => {
                self.request_selecting(now_ms, m.yiaddr(), server, 0, rng)
            }
            (
                Some(MessageType::Ack),
                Phase::Requesting { ip, .. } | Phase::Rebooting { ip, .. },
            ) if m.yiaddr() == ip => self.bind(now_ms, m, server),
            (Some(MessageType::Ack), Phase::Renewing | Phase::Rebinding)
                if self.binding.is_some_and(|b| b.ip == m.yiaddr()) =>
            {
                self.bind(now_ms, m, server)
            }
            (
                Some(MessageType::Nak),
                Phase::Requesting { .. }
                | Phase::Rebooting { .. }
                | Phase::Renewing
                | Phase::Rebinding,
            ) => {
                let remaining_ms = self.holds(now_ms).map_or(0, |b| b.ends_ms - now_ms);
                self.binding = None;
                self.last_ip = None;
                let mut step = self.discover(now_ms, 0, rng);
                step.timer_ms = Some(now_ms + secs(1));
                step.sends.clear();
                step.event = Some(Event::Nak { remaining_ms });
                step
            }
            _ => Step::default(),
        }
    }

    fn bind(&mut self, now_ms: u64, m: &Message, server: Ipv4Addr) -> Step {
        let lease = match m.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(s)) => u64::from(*s),
            _ => return Step::default(),
        };
        let t1 = match m.opts().get(OptionCode::Renewal) {
            Some(DhcpOption::Renewal(s)) => u64::from(*s),
            _ => lease / 2,
        };
        let t2 = match m.opts().get(OptionCode::Rebinding) {
            Some(DhcpOption::Rebinding(s)) => u64::from(*s),
            _ => lease * 7 / 8,
        };
        let start = self.xid_sent_ms;
        let b = Binding {
            ip: m.yiaddr(),
            server,
            acked_ms: now_ms,
            t1_ms: start + secs(t1),
            t2_ms: start + secs(t2),
            ends_ms: start + secs(lease),
        };
        self.binding = Some(b);
        self.last_ip = Some(b.ip);
        self.released = false;
        self.phase = Phase::Bound;
        // New transaction next time; a late duplicate ACK for this xid is ignored.
        self.xid = self.xid.wrapping_add(1);
        Step {
            sends: Vec::new(),
            timer_ms: Some(b.t1_ms.max(now_ms + 1)),
            event: Some(Event::Acked),
        }
    }
}
