//! Shared by the simulation tests: seed sweeps driven by environment variables, and a small
//! scripted pair (two engines, messages delivered one by one, writes durable at once) for
//! tests that pin one engine behaviour down.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use dhcpair_engine::{
    Arrival, ConnId, Decision, Effect, Engine, Lease, Outcome, Persist, RelationshipRecord,
    ServerState, Time,
};
use dhcpair_sim::{Failure, Report, Scenario, Side, World, POOL_START, T0};
use dhcpair_wire::failover::{self as fo, Decoded, MessageType};
use dhcpair_wire::v4::{DhcpOption, Message, MessageType as DhcpType};

// ---------------------------------------------------------------------------- seed sweeps

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// `DHCPAIR_SIM_SEED=n` replays one seed; `DHCPAIR_SIM_SEEDS=n` sets how many seeds a sweep
/// runs (from `DHCPAIR_SIM_FIRST_SEED`, default 0); `DHCPAIR_SIM_TRACE=n` prints the last n
/// events of a failure instead of 30.
pub fn seeds(default_count: u64) -> Vec<u64> {
    if let Some(seed) = env_u64("DHCPAIR_SIM_SEED") {
        return vec![seed];
    }
    let first = env_u64("DHCPAIR_SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("DHCPAIR_SIM_SEEDS").unwrap_or(default_count);
    (first..first.saturating_add(count)).collect()
}

/// One seed's outcome: the scenario and its report, or the failure.
type SeedOutcome = (u64, Result<(Scenario, Report), Failure>);

pub fn run_one(sc: Scenario) -> Result<Report, Failure> {
    let keep = env_u64("DHCPAIR_SIM_TRACE").unwrap_or(30) as usize;
    World::new(sc)?.keep_last(keep).run()
}

/// Run `scenario(seed)` for every seed (on all cores; each world is single-threaded and
/// deterministic) and panic with the first failure, its events and the replay command.
pub fn sweep(
    test: &str,
    default_count: u64,
    scenario: impl Fn(u64) -> Scenario + Sync,
) -> Vec<(Scenario, Report)> {
    let seeds = seeds(default_count);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds.len().max(1));
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let mut results: Vec<SeedOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let scenario = &scenario;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|seed| {
                            let sc = scenario(*seed);
                            (*seed, run_one(sc.clone()).map(|r| (sc, r)))
                        })
                        .collect::<Vec<SeedOutcome>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a sweep thread panicked"))
            .collect()
    });
    results.sort_by_key(|(seed, _)| *seed);
    let mut ok = Vec::new();
    for (seed, r) in results {
        match r {
            Ok(x) => ok.push(x),
            Err(f) => panic!(
                "{f}replay: DHCPAIR_SIM_SEED={seed} DHCPAIR_SIM_TRACE=200 cargo test -p dhcpair-sim --test sim {test} -- --include-ignored"
            ),
        }
    }
    ok
}

// ---------------------------------------------------------------------------- scripted pair

/// A small fixed world for directed tests: the pair's configs from `Scenario::fault_free`,
/// writes durable as soon as the engine asks, messages delivered in order on demand.
pub struct Pair {
    pub sc: Scenario,
    pub now: Time,
    pub engines: [Option<Engine>; 2],
    pub disks: [(BTreeMap<Ipv4Addr, Lease>, Option<RelationshipRecord>); 2],
    conn: Option<ConnId>,
    next_conn: u64,
    /// Messages in flight towards each side (on `conn`).
    inflight: [VecDeque<fo::Message>; 2],
    /// Every failover message each side sent, in order.
    pub sent: [Vec<fo::Message>; 2],
    /// Every state each side has been in, in order (for "never passes through" checks).
    pub history: [Vec<ServerState>; 2],
}

pub const ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];

pub fn mac(n: u8) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x77, 0x00, n]
}

pub fn ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(POOL_START) + n)
}

impl Pair {
    /// Both servers fresh, connected and NORMAL. MCLT 60 s, default lease 600 s, 10 addresses.
    pub fn normal() -> Pair {
        Pair::normal_with(|_| {})
    }

    /// As [`Pair::normal`], with the scenario adjusted first.
    pub fn normal_with(adjust: impl FnOnce(&mut Scenario)) -> Pair {
        let mut sc = Scenario::fault_free(0);
        sc.pool_size = 10;
        sc.mclt = 60;
        sc.lease_time = 600;
        sc.split = 128;
        sc.max_unacked = 10;
        sc.max_response_delay = 20;
        adjust(&mut sc);
        let mut p = Pair {
            sc,
            now: T0,
            engines: [None, None],
            disks: Default::default(),
            conn: None,
            next_conn: 1,
            inflight: Default::default(),
            sent: Default::default(),
            history: Default::default(),
        };
        p.start(Side::Primary);
        p.start(Side::Secondary);
        p.connect();
        p.advance(5);
        assert_eq!(
            (p.state(Side::Primary), p.state(Side::Secondary)),
            (ServerState::Normal, ServerState::Normal)
        );
        p
    }

    pub fn engine(&self, side: Side) -> &Engine {
        self.engines[side as usize]
            .as_ref()
            .expect("server is down")
    }

    pub fn state(&self, side: Side) -> ServerState {
        self.engine(side).relationships()[0].my_state
    }

    pub fn lease(&self, side: Side, ip: Ipv4Addr) -> Option<Lease> {
        self.engine(side).lease(ip).cloned()
    }

    fn record_state(&mut self, side: Side) {
        if let Some(e) = &self.engines[side as usize] {
            let s = e.relationships()[0].my_state;
            if self.history[side as usize].last() != Some(&s) {
                self.history[side as usize].push(s);
            }
        }
    }

    /// Carry out `side`'s effects: write at once, queue sends, close.
    fn effects(&mut self, side: Side) {
        let Some(e) = self.engines[side as usize].as_mut() else {
            return;
        };
        let effects = e.poll_effects();
        for eff in effects {
            match eff {
                Effect::Persist(Persist::Lease(l)) => {
                    self.disks[side as usize].0.insert(l.ip, l);
                }
                Effect::Persist(Persist::Relationship(r)) => self.disks[side as usize].1 = Some(r),
                Effect::Send { conn, msg, .. } => {
                    self.sent[side as usize].push(msg.clone());
                    if Some(conn) == self.conn {
                        // Through the codec, as on the wire.
                        let Decoded::Message(m) = fo::decode(&msg.encode().unwrap()).unwrap()
                        else {
                            panic!("ignored")
                        };
                        self.inflight[side.other() as usize].push_back(m);
                    }
                }
                Effect::Close { conn, .. } => {
                    if Some(conn) == self.conn {
                        self.disconnect();
                    }
                }
            }
        }
        self.record_state(side);
    }

    pub fn start(&mut self, side: Side) {
        let (rows, rel) = &self.disks[side as usize];
        let cfg = dhcpair_sim::config(&self.sc, side).unwrap();
        let saved: Vec<RelationshipRecord> = rel.iter().cloned().collect();
        self.engines[side as usize] = Some(Engine::new(
            cfg,
            rows.values().cloned().collect(),
            &saved,
            self.now,
        ));
        self.effects(side);
    }

    /// Start `side` from a given disk (e.g. a saved state it crashed in).
    pub fn start_from(&mut self, side: Side, rel: Option<RelationshipRecord>) {
        self.disks[side as usize].1 = rel;
        self.start(side);
    }

    pub fn crash(&mut self, side: Side, lose_disk: bool) {
        self.engines[side as usize] = None;
        if lose_disk {
            self.disks[side as usize] = Default::default();
        }
        if let Some(c) = self.conn.take() {
            self.inflight = Default::default();
            self.call(side.other(), |e, now| e.handle_peer_closed(now, 0, c));
        }
    }

    pub fn connect(&mut self) {
        let c = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conn = Some(c);
        self.call(Side::Primary, |e, now| e.handle_peer_connected(now, 0, c));
        self.call(Side::Secondary, |e, now| e.handle_peer_connected(now, 0, c));
    }

    /// The link breaks: what is in flight is lost, both ends see the close.
    pub fn disconnect(&mut self) {
        if let Some(c) = self.conn.take() {
            self.inflight = Default::default();
            self.call(Side::Primary, |e, now| e.handle_peer_closed(now, 0, c));
            self.call(Side::Secondary, |e, now| e.handle_peer_closed(now, 0, c));
        }
    }

    pub fn call<R>(&mut self, side: Side, f: impl FnOnce(&mut Engine, Time) -> R) -> Option<R> {
        let now = self.now;
        let r = self.engines[side as usize].as_mut().map(|e| f(e, now));
        self.effects(side);
        r
    }

    /// Deliver the next message in flight towards `to`; false if there is none.
    pub fn deliver_one(&mut self, to: Side) -> bool {
        let (Some(c), Some(m)) = (self.conn, self.inflight[to as usize].pop_front()) else {
            return false;
        };
        self.call(to, |e, now| e.handle_peer_message(now, 0, c, m));
        true
    }

    /// Deliver everything in flight, alternating directions, until quiet. `each` runs after
    /// every delivery (for invariants that must hold at every step).
    pub fn sync_checking(&mut self, mut each: impl FnMut(&Pair)) {
        for _ in 0..100_000 {
            let a = self.deliver_one(Side::Primary);
            if a {
                each(self);
            }
            let b = self.deliver_one(Side::Secondary);
            if b {
                each(self);
            }
            if !a && !b {
                return;
            }
        }
        panic!("messages never stop");
    }

    pub fn sync(&mut self) {
        self.sync_checking(|_| {});
    }

    /// A message from a (pretend) partner straight to `to` on the current connection.
    pub fn inject(&mut self, to: Side, m: fo::Message) {
        let c = self.conn.expect("not connected");
        self.call(to, |e, now| e.handle_peer_message(now, 0, c, m));
    }

    /// Let `secs` seconds pass: ticks every second, reclaim every 10 s (when `reclaim`),
    /// messages delivered after each second.
    pub fn advance_with(&mut self, secs: u64, reclaim: bool, mut each: impl FnMut(&Pair)) {
        for _ in 0..secs {
            self.now += 1;
            for side in Side::BOTH {
                self.call(side, |e, now| e.handle_tick(now));
                if reclaim && self.now % 10 == 0 {
                    let rows = self
                        .call(side, |e, now| e.handle_reclaim(now))
                        .unwrap_or_default();
                    for l in rows {
                        self.disks[side as usize].0.insert(l.ip, l);
                    }
                    self.effects(side);
                }
            }
            self.sync_checking(&mut each);
            each(self);
        }
    }

    pub fn advance(&mut self, secs: u64) {
        self.advance_with(secs, true, |_| {});
    }

    /// One client packet to one server; writes are durable at once.
    pub fn dhcp(&mut self, side: Side, m: &Message) -> Decision {
        let addrs = [ADDRS[side as usize]];
        let d = self
            .call(side, |e, now| {
                e.handle_request(
                    now,
                    &Arrival {
                        interface_addrs: &addrs,
                    },
                    m,
                    None,
                )
            })
            .expect("server is down");
        if let Some(l) = &d.persist {
            self.disks[side as usize].0.insert(l.ip, l.clone());
        }
        d
    }

    /// DISCOVER (past loadBalanceMaxSeconds, so `side` answers) then REQUEST to `side`.
    /// Returns the address and the lease time, or the outcome that stopped it.
    pub fn obtain(
        &mut self,
        side: Side,
        client: [u8; 6],
        wanted: Option<Ipv4Addr>,
    ) -> Result<(Ipv4Addr, u32), Outcome> {
        let mut d = packet(client, DhcpType::Discover, Ipv4Addr::UNSPECIFIED);
        d.set_secs(30);
        if let Some(w) = wanted {
            d.opts_mut().insert(DhcpOption::RequestedIpAddress(w));
        }
        let offer = self.dhcp(side, &d);
        let Some(reply) = offer.reply.filter(|_| offer.outcome == Outcome::Offer) else {
            return Err(offer.outcome);
        };
        let mut r = packet(client, DhcpType::Request, Ipv4Addr::UNSPECIFIED);
        r.opts_mut()
            .insert(DhcpOption::ServerIdentifier(ADDRS[side as usize]));
        r.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(reply.msg.yiaddr()));
        acked(self.dhcp(side, &r))
    }

    /// RENEWING/REBINDING REQUEST (ciaddr set) to `side`.
    pub fn renew(
        &mut self,
        side: Side,
        client: [u8; 6],
        addr: Ipv4Addr,
    ) -> Result<(Ipv4Addr, u32), Outcome> {
        let r = packet(client, DhcpType::Request, addr);
        acked(self.dhcp(side, &r))
    }

    /// RELEASE of `addr` by `client` at `side`.
    pub fn release(&mut self, side: Side, client: [u8; 6], addr: Ipv4Addr) -> Decision {
        let mut r = packet(client, DhcpType::Release, addr);
        r.opts_mut()
            .insert(DhcpOption::ServerIdentifier(ADDRS[side as usize]));
        self.dhcp(side, &r)
    }

    /// INIT-REBOOT REQUEST for `addr` to `side`.
    pub fn reboot(
        &mut self,
        side: Side,
        client: [u8; 6],
        addr: Ipv4Addr,
    ) -> Result<(Ipv4Addr, u32), Outcome> {
        let mut r = packet(client, DhcpType::Request, Ipv4Addr::UNSPECIFIED);
        r.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
        acked(self.dhcp(side, &r))
    }

    /// A BNDUPD as the partner would send it, for tests of what the receiver accepts.
    pub fn bndupd(&self, l: &Lease, xid: u32) -> fo::Message {
        let mut chaddr = vec![l.htype];
        chaddr.extend_from_slice(&l.chaddr);
        let w = |t: Time| u32::try_from(t).unwrap();
        fo::Message {
            kind: MessageType::BndUpd,
            time: w(self.now),
            xid,
            options: fo::Options {
                assigned_ip: Some(l.ip),
                binding_status: Some(l.state as u8),
                chaddr: (!l.chaddr.is_empty()).then_some(chaddr),
                lease_expiry: Some(w(l.ends)),
                potential_expiry: Some(w(l.tstp)),
                stos: Some(w(l.starts)),
                cltt: (l.cltt != 0).then(|| w(l.cltt)),
                ..fo::Options::default()
            },
        }
    }

    /// The BNDACK `side` sent for `xid`, if any: Some(reject reason) or Some(None) for accept.
    pub fn bndack(&self, side: Side, xid: u32) -> Option<Option<u8>> {
        self.sent[side as usize]
            .iter()
            .rev()
            .find(|m| m.kind == MessageType::BndAck && m.xid == xid)
            .map(|m| m.options.reject_reason)
    }
}

fn acked(d: Decision) -> Result<(Ipv4Addr, u32), Outcome> {
    match (d.outcome, &d.reply) {
        (Outcome::Ack, Some(r)) => {
            let secs = match r
                .msg
                .opts()
                .get(dhcpair_wire::v4::OptionCode::AddressLeaseTime)
            {
                Some(DhcpOption::AddressLeaseTime(s)) => *s,
                _ => 0,
            };
            Ok((r.msg.yiaddr(), secs))
        }
        (o, _) => Err(o),
    }
}

pub fn packet(client: [u8; 6], kind: DhcpType, ciaddr: Ipv4Addr) -> Message {
    let z = Ipv4Addr::UNSPECIFIED;
    let mut m = Message::new_with_id(0x5151, ciaddr, z, z, z, &client);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m
}
