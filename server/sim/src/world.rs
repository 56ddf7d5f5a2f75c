//! The world: two engines with their disks and commit buffers, the failover network between
//! them, the clients on the shared link, one virtual clock, and the fault schedule. Every
//! step is one event from a time-ordered queue; the checks of `check.rs` run after each.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::Ipv4Addr;

use dhcpair_config::Config;
use dhcpair_engine::{
    Arrival, BindingState, ConnId, Effect, Engine, Lease, Outcome, Persist, RelationshipRecord,
    ServerState, Time,
};
use dhcpair_wire::failover::{self as fo, Decoded};
use dhcpair_wire::v4::{Decodable, Encodable, Message};

use crate::client::{self, Client, To};
use crate::rng::Rng;
use crate::scenario::{FaultKind, Scenario};

/// The global clock starts here (UNIX seconds); servers add their skew.
pub const T0: Time = 1_800_000_000;
/// The pool: `pool_size` addresses from here.
pub const POOL_START: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
/// Events a failure prints by default.
const TRACE_LEN: usize = 30;
/// Events past the end of the fault phase plus this are a runaway run.
const HARD_LIMIT_MS: u64 = 8 * 3600 * 1000;

/// One of the two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Primary = 0,
    Secondary = 1,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Primary, Side::Secondary];

    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Secondary,
            Side::Secondary => Side::Primary,
        }
    }

    pub(crate) fn i(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Primary => "P",
            Side::Secondary => "S",
        })
    }
}

/// What a run saw, for tests that want to know a fault really happened.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Failover states each server was in at some point.
    pub states_seen: [BTreeSet<ServerState>; 2],
    pub faults: BTreeMap<FaultKind, u32>,
    pub acks: [u64; 2],
    /// ACKs of addresses that were in the partner's free state (PARTNER-DOWN takeover).
    pub takeover_acks: [u64; 2],
    pub partner_down_commands: u32,
    pub duplicate_connections: u32,
    pub clients_ever_bound: usize,
    pub clients_bound_at_end: usize,
    /// Seconds from the last fault healing to both servers NORMAL.
    pub settle_secs: Option<u64>,
    pub simulated_secs: u64,
    pub events: u64,
    /// FNV-1a of every trace line: equal for two runs of one seed iff they replayed alike.
    pub trace_hash: u64,
}

/// A broken invariant, with what led to it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub at_ms: u64,
    pub what: String,
    pub scenario: String,
    pub last_events: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} failed at {}: {}",
            self.seed,
            stamp(self.at_ms),
            self.what
        )?;
        writeln!(f, "scenario: {}", self.scenario)?;
        writeln!(f, "last {} events:", self.last_events.len())?;
        for e in &self.last_events {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

fn stamp(ms: u64) -> String {
    format!("{:>5}.{:03}s", ms / 1000, ms % 1000)
}

/// One step of the world. The `u64` of a server event is the server's epoch (its life since
/// the last crash): events of an earlier life are ignored.
#[derive(Debug)]
enum Ev {
    /// The one-second timer: failover timers, and the lease sweep every `reclaimInterval`.
    Tick(Side, u64),
    /// The group commit: pending writes become durable, then what waited on them leaves.
    Commit(Side, u64),
    /// The next frame in flight on a connection arrives at `Side` (if it is due).
    Tcp(ConnId, Side),
    ToServer(Side, Vec<u8>),
    ToClient(usize, Vec<u8>),
    /// A client timer; only the client's latest generation counts.
    ClientTimer(usize, u64),
    /// Dial if no connection is up; `true` for the periodic retry loop (one per world).
    Connect(bool),
    Fault,
    Heal,
    Restart(Side, u64),
    PartnerDown(Side),
}

/// A server's stable storage: what survives a crash (unless the disk is lost).
#[derive(Debug, Clone, Default)]
pub(crate) struct Disk {
    pub leases: BTreeMap<Ipv4Addr, Lease>,
    pub rel: Option<RelationshipRecord>,
}

/// Waiting for the next group commit, in the order the engine produced it.
#[derive(Debug)]
enum Out {
    Write(Persist),
    Send(ConnId, fo::Message),
    Close(ConnId),
    Reply(usize, Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrashPoint {
    BeforeCommit,
    AfterCommit,
}

#[derive(Debug)]
pub(crate) struct Server {
    config: Config,
    skew: i64,
    pub engine: Option<Engine>,
    /// Bumped at every crash; events of an earlier life are ignored.
    epoch: u64,
    pub disk: Disk,
    pending: Vec<Out>,
    commit_armed: bool,
    crash_armed: Option<(CrashPoint, u64)>,
    last_seen: Option<(ServerState, ServerState, bool)>,
    ticks: u64,
}

#[derive(Debug)]
enum Frame {
    Msg(Vec<u8>),
    Fin,
}

/// One TCP connection between the servers: per direction an ordered stream.
#[derive(Debug)]
struct Conn {
    id: ConnId,
    /// Each end's view: does it still have the connection open?
    open: [bool; 2],
    /// In flight towards each side, in order, each with its earliest delivery time.
    inflight: [VecDeque<(u64, Frame)>; 2],
    armed: [bool; 2],
}

/// One simulated run: build it with [`World::new`], then [`World::run`] it.
#[derive(Debug)]
pub struct World {
    pub(crate) sc: Scenario,
    rng: Rng,
    pub(crate) now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Ev>,
    pub(crate) servers: [Server; 2],
    conns: Vec<Conn>,
    next_conn: u64,
    /// Some(silent) while the failover link is cut.
    partition: Option<bool>,
    pub(crate) clients: Vec<Client>,
    trace: VecDeque<String>,
    trace_len: usize,
    pub(crate) report: Report,
    faults_left: usize,
    fault_end_ms: u64,
    /// The operator declared PARTNER-DOWN on this survivor: until both are NORMAL again the
    /// network stays up and the survivor stays up, so the declared-down peer can only come
    /// back by talking to it first (draft-12 §5.9: running while the partner is in
    /// PARTNER-DOWN is exactly what the declaration promises never happens).
    pd_survivor: Option<Side>,
    /// This server lost its disk and the pair has not been NORMAL since: the other one holds
    /// the only copy of the bindings, so it may crash but not lose its disk too (no protocol
    /// survives losing every copy).
    rebuilding: Option<Side>,
    calm_at: Option<u64>,
    pub(crate) settled_at: Option<u64>,
    end_ms: Option<u64>,
    pub(crate) tables_dirty: bool,
    pub(crate) failure: Option<String>,
    ever_bound: BTreeSet<usize>,
}

/// The config of one side of the simulated pair (as `pair.rs` in the engine's tests: the
/// primary has `mclt` and `split`, the secondary learns MCLT from CONNECT).
pub fn config(sc: &Scenario, side: Side) -> Result<Config, String> {
    let (role, me, peer) = match side {
        Side::Primary => ("primary", ADDRS[0], ADDRS[1]),
        Side::Secondary => ("secondary", ADDRS[1], ADDRS[0]),
    };
    let extra = match side {
        Side::Primary => format!(", mclt: {}, split: {}", sc.mclt, sc.split),
        Side::Secondary => String::new(),
    };
    let end = Ipv4Addr::from(u32::from(POOL_START) + sc.pool_size - 1);
    let text = format!(
        r#"
server: {{interfaces: [eth0], offerHoldTime: 30, reclaimInterval: 10}}
peers:
  - {{name: pair, role: {role}, address: {me}, peerAddress: {peer}, loadBalanceMaxSeconds: 3,
     maxUnackedUpdates: {mu}, maxResponseDelay: {mrd}{extra}}}
pools:
  - name: lan
    subnet: 10.0.0.0/24
    failoverPeer: pair
    ranges: [{{start: {POOL_START}, end: {end}}}]
    defaultLeaseTime: {lt}
    maxLeaseTime: {lt}
"#,
        mu = sc.max_unacked,
        mrd = sc.max_response_delay,
        lt = sc.lease_time,
    );
    Config::from_yaml("sim", &text).map_err(|e| e.to_string())
}

fn fnv(hash: u64, s: &str) -> u64 {
    s.bytes().fold(hash, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A short description of a failover message for the trace.
fn describe(m: &fo::Message) -> String {
    let o = &m.options;
    let mut s = format!("{} xid {}", m.kind, m.xid);
    if let Some(v) = o.server_state.and_then(ServerState::from_wire) {
        s += &format!(" {v}");
    }
    if o.server_flags == Some(1) {
        s += " (startup)";
    }
    if let Some(ip) = o.assigned_ip {
        s += &format!(" {ip}");
    }
    if let Some(b) = o.binding_status.and_then(BindingState::from_wire) {
        s += &format!(" {}", b.as_str());
    }
    if let Some(e) = o.lease_expiry.filter(|e| *e != 0) {
        s += &format!(" ends {:+}", i64::from(e) - T0 as i64);
    }
    if let Some(e) = o.potential_expiry.filter(|e| *e != 0) {
        s += &format!(" tstp {:+}", i64::from(e) - T0 as i64);
    }
    if let Some(r) = o.reject_reason {
        s += &format!(" REJECT {r} {}", o.message.clone().unwrap_or_default());
    }
    s
}

impl World {
    pub fn new(sc: Scenario) -> Result<World, Failure> {
        let fail = |what: String| Failure {
            seed: sc.seed,
            at_ms: 0,
            what,
            scenario: format!("{sc:?}"),
            last_events: Vec::new(),
        };
        let server = |side: Side| -> Result<Server, Failure> {
            Ok(Server {
                config: config(&sc, side).map_err(fail)?,
                skew: sc.skew[side.i()],
                engine: None,
                epoch: 0,
                disk: Disk::default(),
                pending: Vec::new(),
                commit_armed: false,
                crash_armed: None,
                last_seen: None,
                ticks: 0,
            })
        };
        let servers = [server(Side::Primary)?, server(Side::Secondary)?];
        let mut rng = Rng::new(sc.seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let clients = (0..sc.clients).map(|i| Client::new(i, &mut rng)).collect();
        let fault_end_ms = if sc.faults.is_empty() {
            0
        } else {
            sc.fault_phase_secs * 1000
        };
        Ok(World {
            faults_left: if sc.faults.is_empty() {
                0
            } else {
                sc.fault_count
            },
            sc,
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            servers,
            conns: Vec::new(),
            next_conn: 1,
            partition: None,
            clients,
            trace: VecDeque::new(),
            trace_len: TRACE_LEN,
            report: Report {
                trace_hash: 0xcbf2_9ce4_8422_2325,
                ..Report::default()
            },
            fault_end_ms,
            pd_survivor: None,
            rebuilding: None,
            calm_at: None,
            settled_at: None,
            end_ms: None,
            tables_dirty: false,
            failure: None,
            ever_bound: BTreeSet::new(),
        })
    }

    /// Keep the last `n` events for a failure report (default 30).
    pub fn keep_last(mut self, n: usize) -> World {
        self.trace_len = n.max(1);
        self
    }

    /// Run to the end: the fault phase, then calm until both are NORMAL and clients renewed.
    pub fn run(mut self) -> Result<Report, Failure> {
        for side in Side::BOTH {
            self.restart(side);
        }
        let t = self.rng.range(100, 1000);
        self.at(t, Ev::Connect(true));
        for c in 0..self.clients.len() {
            let t = self.rng.range(0, 60_000);
            self.at(t, Ev::ClientTimer(c, 0));
        }
        if self.faults_left > 0 {
            let gap = self.fault_end_ms / (self.faults_left as u64 + 1);
            let t = self.rng.range(gap / 2, gap * 3 / 2);
            self.at(t, Ev::Fault);
        }
        while let Some(((at, _), ev)) = self.queue.pop_first() {
            if self.end_ms.is_some_and(|e| at > e) {
                break;
            }
            if at > self.fault_end_ms + HARD_LIMIT_MS {
                self.failure = Some("runaway run: the pair never settled".into());
            } else {
                self.now = at;
                self.report.events += 1;
                self.step(ev);
                self.check_after_step();
            }
            if let Some(what) = self.failure.take() {
                return Err(self.fail(what));
            }
        }
        if self.settled_at.is_none() {
            return Err(self.fail("the run ended before the pair settled".into()));
        }
        self.report.simulated_secs = self.now / 1000;
        self.report.clients_ever_bound = self.ever_bound.len();
        let now = self.now;
        self.report.clients_bound_at_end = self
            .clients
            .iter()
            .filter(|c| c.holds(now).is_some())
            .count();
        Ok(self.report)
    }

    fn fail(&self, what: String) -> Failure {
        Failure {
            seed: self.sc.seed,
            at_ms: self.now,
            what,
            scenario: format!("{:?}", self.sc),
            last_events: self.trace.iter().cloned().collect(),
        }
    }

    pub(crate) fn note(&mut self, line: String) {
        let line = format!("{} {line}", stamp(self.now));
        self.report.trace_hash = fnv(self.report.trace_hash, &line);
        if self.trace.len() >= self.trace_len {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    fn at(&mut self, at_ms: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at_ms.max(self.now), self.seq), ev);
    }

    /// A server's clock: global time plus its skew, whole seconds.
    pub(crate) fn clock(&self, side: Side) -> Time {
        (T0 as i64 + (self.now / 1000) as i64 + self.servers[side.i()].skew) as Time
    }

    pub(crate) fn is_up(&self, side: Side) -> bool {
        self.servers[side.i()].engine.is_some()
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(side, epoch) => self.on_tick(side, epoch),
            Ev::Commit(side, epoch) => self.on_commit(side, epoch),
            Ev::Tcp(conn, to) => self.on_tcp(conn, to),
            Ev::ToServer(side, bytes) => self.on_request(side, &bytes),
            Ev::ToClient(c, bytes) => self.on_reply(c, &bytes),
            Ev::ClientTimer(c, generation) => {
                if self.clients[c].timer_gen == generation {
                    let calm = self.calm_at.is_some();
                    let step = self.clients[c].on_timer(self.now, &mut self.rng, calm);
                    self.client_step(c, step);
                }
            }
            Ev::Connect(periodic) => self.on_connect(periodic),
            Ev::Fault => self.on_fault(),
            Ev::Heal => self.heal(),
            Ev::Restart(side, epoch) => {
                if self.servers[side.i()].epoch == epoch {
                    self.restart(side);
                }
            }
            Ev::PartnerDown(side) => self.on_partner_down(side),
        }
    }

    // ------------------------------------------------------------------ engines and disks

    /// Call the engine of `side` (if it is up) and queue its effects for the next commit.
    fn drive<R>(&mut self, side: Side, f: impl FnOnce(&mut Engine, Time) -> R) -> Option<R> {
        let now = self.clock(side);
        let engine = self.servers[side.i()].engine.as_mut()?;
        let r = f(engine, now);
        let effects = engine.poll_effects();
        self.absorb(side, effects);
        Some(r)
    }

    fn absorb(&mut self, side: Side, effects: Vec<Effect>) {
        let s = &mut self.servers[side.i()];
        for e in effects {
            s.pending.push(match e {
                Effect::Persist(p) => {
                    self.tables_dirty |= matches!(p, Persist::Lease(_));
                    Out::Write(p)
                }
                Effect::Send { conn, msg, .. } => Out::Send(conn, msg),
                Effect::Close { conn, .. } => Out::Close(conn),
            });
        }
        self.arm_commit(side);
    }

    /// Group commit a few milliseconds after the first pending write (fsync latency).
    fn arm_commit(&mut self, side: Side) {
        let s = &self.servers[side.i()];
        if !s.pending.is_empty() && !s.commit_armed {
            let epoch = s.epoch;
            self.servers[side.i()].commit_armed = true;
            let t = self.now + self.rng.range(1, 20);
            self.at(t, Ev::Commit(side, epoch));
        }
    }

    /// Start (or restart) a server from its disk.
    fn restart(&mut self, side: Side) {
        let now = self.clock(side);
        let s = &mut self.servers[side.i()];
        if s.engine.is_some() {
            return;
        }
        let rows: Vec<Lease> = s.disk.leases.values().cloned().collect();
        let saved: Vec<RelationshipRecord> = s.disk.rel.iter().cloned().collect();
        let (n, state) = (rows.len(), saved.first().map(|r| r.my_state));
        let mut engine = Engine::new(s.config.clone(), rows, &saved, now);
        let effects = engine.poll_effects();
        s.engine = Some(engine);
        s.last_seen = None;
        let epoch = s.epoch;
        self.note(format!(
            "{side} starts from its disk: {n} leases, saved state {state:?}"
        ));
        self.absorb(side, effects);
        self.tables_dirty = true;
        let t = self.now + self.rng.range(1, 1000);
        self.at(t, Ev::Tick(side, epoch));
        let t = self.now + self.rng.range(100, 1500);
        self.at(t, Ev::Connect(false));
    }

    fn on_tick(&mut self, side: Side, epoch: u64) {
        if self.servers[side.i()].epoch != epoch || !self.is_up(side) {
            return;
        }
        self.drive(side, |e, now| e.handle_tick(now));
        let s = &mut self.servers[side.i()];
        s.ticks += 1;
        if s.ticks % u64::from(s.config.server.reclaim_interval) == 0 {
            let rows = self
                .drive(side, |e, now| e.handle_reclaim(now))
                .unwrap_or_default();
            if !rows.is_empty() {
                self.note(format!(
                    "{side} reclaims {:?}",
                    rows.iter().map(|l| l.ip).collect::<Vec<_>>()
                ));
                self.tables_dirty = true;
                self.servers[side.i()]
                    .pending
                    .extend(rows.into_iter().map(|l| Out::Write(Persist::Lease(l))));
                self.arm_commit(side);
            }
        }
        self.at(self.now + 1000, Ev::Tick(side, epoch));
    }

    fn on_commit(&mut self, side: Side, epoch: u64) {
        let s = &mut self.servers[side.i()];
        if s.epoch != epoch || s.engine.is_none() {
            return;
        }
        s.commit_armed = false;
        let batch = std::mem::take(&mut s.pending);
        if let Some((point, downtime)) = s.crash_armed.take() {
            let mut writes = 0;
            if point == CrashPoint::AfterCommit {
                for o in batch {
                    if let Out::Write(p) = o {
                        s.disk.apply(p);
                        writes += 1;
                    }
                }
            }
            let what = match point {
                CrashPoint::BeforeCommit => "before its commit".to_string(),
                CrashPoint::AfterCommit => {
                    format!("after committing {writes} writes, before sending")
                }
            };
            self.crash(side, false, downtime, &what);
            return;
        }
        let mut rest = Vec::new();
        for o in batch {
            match o {
                Out::Write(p) => s.disk.apply(p),
                other => rest.push(other),
            }
        }
        self.check_durable(side);
        for o in rest {
            match o {
                Out::Send(conn, msg) => self.tcp_send(side, conn, msg),
                Out::Close(conn) => self.tcp_close(side, conn),
                Out::Reply(c, bytes) => self.udp(Ev::ToClient(c, bytes)),
                Out::Write(_) => {}
            }
        }
    }

    /// The process dies: memory, pending commit and sockets are gone; the disk stays (or not).
    fn crash(&mut self, side: Side, lose_disk: bool, downtime_ms: u64, what: &str) {
        let s = &mut self.servers[side.i()];
        s.engine = None;
        s.epoch += 1;
        s.pending.clear();
        s.commit_armed = false;
        s.crash_armed = None;
        if lose_disk {
            s.disk = Disk::default();
        }
        let epoch = s.epoch;
        self.note(format!(
            "{side} crashes {what}{}; back in {} s",
            if lose_disk { " and loses its disk" } else { "" },
            downtime_ms / 1000
        ));
        let (me, peer) = (side.i(), side.other().i());
        let mut fins = Vec::new();
        for c in &mut self.conns {
            if c.open[me] {
                c.open[me] = false;
                c.inflight[me].clear();
                c.inflight[peer].clear();
                fins.push(c.id);
            }
        }
        for id in fins {
            self.push_frame(id, side.other(), Frame::Fin);
        }
        self.tables_dirty = true;
        self.at(self.now + downtime_ms, Ev::Restart(side, epoch));
    }

    // ------------------------------------------------------------------ the failover network

    fn tcp_delay(&mut self) -> u64 {
        if self.rng.chance(1, 20) {
            self.rng.range(100, 2000)
        } else {
            self.rng.range(1, 30)
        }
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    /// Queue a frame towards `to`, after everything already in flight that way.
    fn push_frame(&mut self, id: ConnId, to: Side, frame: Frame) {
        let delay = self.tcp_delay();
        let now = self.now;
        let Some(c) = self.conn_mut(id) else { return };
        let after = c.inflight[to.i()].back().map_or(0, |(t, _)| *t);
        c.inflight[to.i()].push_back(((now + delay).max(after), frame));
        self.arm(id, to);
    }

    fn arm(&mut self, id: ConnId, to: Side) {
        if self.partition.is_some() {
            return; // delivery resumes at heal
        }
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        if c.armed[to.i()] {
            return;
        }
        if let Some((t, _)) = c.inflight[to.i()].front() {
            let t = *t;
            c.armed[to.i()] = true;
            self.at(t, Ev::Tcp(id, to));
        }
    }

    fn tcp_send(&mut self, from: Side, id: ConnId, msg: fo::Message) {
        let bytes = match msg.encode() {
            Ok(b) => b,
            Err(e) => {
                self.failure = Some(format!(
                    "{from} produced a failover message the codec refuses ({e}): {msg:?}"
                ));
                return;
            }
        };
        if self.conns.iter().any(|c| c.id == id && c.open[from.i()]) {
            self.push_frame(id, from.other(), Frame::Msg(bytes));
        }
    }

    fn tcp_close(&mut self, from: Side, id: ConnId) {
        let was_open = match self.conn_mut(id) {
            Some(c) if c.open[from.i()] => {
                c.open[from.i()] = false;
                c.inflight[from.i()].clear();
                true
            }
            _ => false,
        };
        if was_open {
            self.note(format!("{from} closes conn {}", id.0));
            self.push_frame(id, from.other(), Frame::Fin);
            // Both ends see a connection closed, the closing one included.
            self.drive(from, |e, now| e.handle_peer_closed(now, 0, id));
        }
    }

    fn on_tcp(&mut self, id: ConnId, to: Side) {
        let now = self.now;
        let partitioned = self.partition.is_some();
        let Some(c) = self.conn_mut(id) else { return };
        c.armed[to.i()] = false;
        if partitioned {
            return;
        }
        let frame = match c.inflight[to.i()].front() {
            Some((t, _)) if *t <= now => c.inflight[to.i()].pop_front().map(|(_, f)| f),
            _ => None,
        };
        let open = c.open[to.i()];
        match frame {
            Some(Frame::Msg(bytes)) if open => match fo::decode(&bytes) {
                Ok(Decoded::Message(m)) => {
                    if m.kind != fo::MessageType::Contact {
                        self.note(format!(
                            "{} -> {to} conn {}: {}",
                            to.other(),
                            id.0,
                            describe(&m)
                        ));
                    }
                    self.drive(to, |e, now| e.handle_peer_message(now, 0, id, m));
                }
                other => {
                    self.failure = Some(format!(
                        "the codec does not read back what {} sent: {other:?}",
                        to.other()
                    ));
                }
            },
            Some(Frame::Fin) if open => {
                if let Some(c) = self.conn_mut(id) {
                    c.open[to.i()] = false;
                    c.inflight[to.i()].clear();
                }
                self.note(format!("{to} sees conn {} closed", id.0));
                self.drive(to, |e, now| e.handle_peer_closed(now, 0, id));
            }
            _ => {}
        }
        self.arm(id, to);
        self.conns
            .retain(|c| c.open.iter().any(|o| *o) || c.inflight.iter().any(|q| !q.is_empty()));
    }

    /// Both up, the link healthy and no connection open at both ends: dial (sometimes both
    /// servers at once, and the secondary must refuse the second CONNECT).
    fn on_connect(&mut self, periodic: bool) {
        if periodic {
            let t = self.now + self.rng.range(2000, 4000);
            self.at(t, Ev::Connect(true));
        }
        if self.partition.is_some() || !self.is_up(Side::Primary) || !self.is_up(Side::Secondary) {
            return;
        }
        if self.conns.iter().any(|c| c.open == [true, true]) {
            return;
        }
        let n = if self.sc.duplicate_connections && self.rng.chance(1, 3) {
            2
        } else {
            1
        };
        if n == 2 {
            self.report.duplicate_connections += 1;
        }
        for _ in 0..n {
            let id = ConnId(self.next_conn);
            self.next_conn += 1;
            self.conns.push(Conn {
                id,
                open: [true, true],
                inflight: [VecDeque::new(), VecDeque::new()],
                armed: [false, false],
            });
            self.note(format!("conn {} opens", id.0));
            let first = if self.rng.chance(1, 2) {
                Side::Primary
            } else {
                Side::Secondary
            };
            for side in [first, first.other()] {
                self.drive(side, |e, now| e.handle_peer_connected(now, 0, id));
            }
        }
    }

    fn start_partition(&mut self, silent: bool, until_ms: u64) {
        self.partition = Some(silent);
        self.note(format!(
            "{} partition until {}",
            if silent { "silent" } else { "abrupt" },
            stamp(until_ms)
        ));
        if !silent {
            let conns = std::mem::take(&mut self.conns);
            for c in conns {
                for side in Side::BOTH {
                    if c.open[side.i()] {
                        self.drive(side, |e, now| e.handle_peer_closed(now, 0, c.id));
                    }
                }
            }
        }
        self.at(until_ms, Ev::Heal);
    }

    fn heal(&mut self) {
        self.partition = None;
        self.note("partition heals".into());
        let t = self.now + self.rng.range(100, 1500);
        self.at(t, Ev::Connect(false));
        let base = self.now;
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            let delay = self.tcp_delay();
            let Some(c) = self.conn_mut(id) else { continue };
            for q in &mut c.inflight {
                let mut t = base + delay;
                for (at, _) in q.iter_mut() {
                    t = t.max(*at);
                    *at = t;
                }
            }
            c.armed = [false, false];
            for side in Side::BOTH {
                self.arm(id, side);
            }
        }
    }

    // ------------------------------------------------------------------ clients

    fn udp(&mut self, ev: Ev) {
        if !self.rng.chance(self.sc.udp_loss_per_mille, 1000) {
            let t = self.now + self.rng.range(1, 20);
            self.at(t, ev);
        }
    }

    pub(crate) fn client_step(&mut self, c: usize, step: client::Step) {
        for (to, m) in step.sends {
            let Ok(bytes) = m.to_vec() else {
                self.failure = Some(format!(
                    "client {c} built a packet dhcproto cannot encode: {m:?}"
                ));
                return;
            };
            let kind = m.opts().msg_type();
            match to {
                To::Broadcast => {
                    self.note(format!("client {c} broadcasts {kind:?} xid {:#x}", m.xid()));
                    for side in Side::BOTH {
                        self.udp(Ev::ToServer(side, bytes.clone()));
                    }
                }
                To::Server(ip) => {
                    if let Some(side) = Side::BOTH.into_iter().find(|s| ADDRS[s.i()] == ip) {
                        self.note(format!(
                            "client {c} sends {kind:?} xid {:#x} to {side}",
                            m.xid()
                        ));
                        self.udp(Ev::ToServer(side, bytes));
                    }
                }
            }
        }
        if let Some(t) = step.timer_ms {
            let cl = &mut self.clients[c];
            cl.timer_gen += 1;
            let generation = cl.timer_gen;
            self.at(t, Ev::ClientTimer(c, generation));
        }
        match step.event {
            Some(client::Event::Acked) => {
                self.ever_bound.insert(c);
                self.check_new_holding(c);
            }
            Some(client::Event::Nak { remaining_ms })
                if remaining_ms > self.sc.relative_skew() * 1000 + 2000 =>
            {
                self.check_client_liveness(
                    c,
                    &format!("got a NAK with {} s left on its lease", remaining_ms / 1000),
                )
            }
            Some(client::Event::Expired) => {
                self.check_client_liveness(c, "lost its lease while renewing")
            }
            _ => {}
        }
    }

    fn on_reply(&mut self, c: usize, bytes: &[u8]) {
        match Message::from_bytes(bytes) {
            Ok(m) => {
                let step = self.clients[c].on_reply(self.now, &m, &mut self.rng);
                self.client_step(c, step);
            }
            Err(e) => self.failure = Some(format!("client {c} cannot decode a reply: {e}")),
        }
    }

    fn on_request(&mut self, side: Side, bytes: &[u8]) {
        if !self.is_up(side) {
            return;
        }
        let inbound = match dhcpair_wire::decode_request(bytes) {
            Ok(i) => i,
            Err(e) => {
                self.failure = Some(format!("{side} cannot decode a client packet: {e}"));
                return;
            }
        };
        let msg = inbound.msg;
        let client = usize::from(msg.chaddr()[4]) << 8 | usize::from(msg.chaddr()[5]);
        let asked = match msg
            .opts()
            .get(dhcpair_wire::v4::OptionCode::RequestedIpAddress)
        {
            Some(dhcpair_wire::v4::DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
            _ => Some(msg.ciaddr()).filter(|ip| !ip.is_unspecified()),
        };
        let now = self.clock(side);
        let s = &mut self.servers[side.i()];
        let Some(engine) = s.engine.as_mut() else {
            return;
        };
        let before = asked.and_then(|ip| engine.lease(ip).cloned());
        let addrs = [ADDRS[side.i()]];
        let d = engine.handle_request(
            now,
            &Arrival {
                interface_addrs: &addrs,
            },
            &msg,
            inbound.relay_agent_info,
        );
        let effects = engine.poll_effects();
        self.note(format!(
            "{side} answers client {client} {:?}: {} {}",
            msg.opts().msg_type(),
            d.outcome.as_str(),
            d.reply
                .as_ref()
                .map(|r| r.msg.yiaddr().to_string())
                .unwrap_or_default()
        ));
        if d.outcome == Outcome::Ack {
            self.check_mclt(side, now, d.persist.as_ref(), before.as_ref(), asked);
        }
        // As ISC: the lease and the ACK first, the BNDUPD after (reference §4.5).
        let s = &mut self.servers[side.i()];
        if let Some(l) = d.persist {
            s.pending.push(Out::Write(Persist::Lease(l)));
            self.tables_dirty = true;
        }
        if let Some(r) = d.reply {
            match r.encode() {
                Ok(bytes) if client < self.clients.len() => {
                    s.pending.push(Out::Reply(client, bytes))
                }
                Ok(_) => {}
                Err(e) => self.failure = Some(format!("{side}'s reply does not encode: {e}")),
            }
        }
        self.absorb(side, effects);
    }

    // ------------------------------------------------------------------ faults

    fn on_fault(&mut self) {
        if self.faults_left == 0 || self.now >= self.fault_end_ms {
            return;
        }
        self.faults_left -= 1;
        if self.faults_left > 0 {
            let gap = self.fault_end_ms / (self.sc.fault_count as u64 + 1);
            let t = (self.now + self.rng.range(gap / 2, gap * 3 / 2)).min(self.fault_end_ms - 1);
            self.at(t, Ev::Fault);
        }
        let faults = self.sc.faults.clone();
        let Some(kind) = self.rng.pick(&faults) else {
            return;
        };
        let mclt_ms = u64::from(self.sc.mclt) * 1000;
        let up: Vec<Side> = Side::BOTH.into_iter().filter(|s| self.is_up(*s)).collect();
        let applied = match kind {
            FaultKind::AbruptPartition | FaultKind::SilentPartition => {
                if self.partition.is_some() || self.pd_survivor.is_some() {
                    false
                } else {
                    let until = self.now + self.rng.range(5_000, 3 * mclt_ms);
                    self.start_partition(kind == FaultKind::SilentPartition, until);
                    true
                }
            }
            FaultKind::CrashBeforeCommit | FaultKind::CrashAfterCommit => match self.victim(&up) {
                Some(side) => {
                    let point = if kind == FaultKind::CrashBeforeCommit {
                        CrashPoint::BeforeCommit
                    } else {
                        CrashPoint::AfterCommit
                    };
                    let downtime = self.rng.range(2_000, 2 * mclt_ms);
                    self.servers[side.i()].crash_armed = Some((point, downtime));
                    true
                }
                _ => false,
            },
            FaultKind::LostDisk => match self.victim(&up).filter(|_| self.rebuilding.is_none()) {
                Some(side) => {
                    self.rebuilding = Some(side);
                    let downtime = self.rng.range(2_000, 2 * mclt_ms);
                    self.crash(side, true, downtime, "now");
                    true
                }
                None => false,
            },
            FaultKind::PartnerDown => {
                if self.partition.is_some() || self.pd_survivor.is_some() {
                    false
                } else if up.len() == 2 {
                    let side = if self.rng.chance(1, 2) {
                        Side::Primary
                    } else {
                        Side::Secondary
                    };
                    let downtime = self.rng.range(mclt_ms, 4 * mclt_ms);
                    self.crash(side, false, downtime, "now");
                    let t = self.now + self.rng.range(5_000, 60_000);
                    self.at(t, Ev::PartnerDown(side.other()));
                    true
                } else if let [survivor] = up[..] {
                    let t = self.now + self.rng.range(1_000, 10_000);
                    self.at(t, Ev::PartnerDown(survivor));
                    true
                } else {
                    false
                }
            }
        };
        if applied {
            *self.report.faults.entry(kind).or_default() += 1;
        }
    }

    /// A server a crash may hit: any that is up, except a PARTNER-DOWN survivor.
    fn victim(&mut self, up: &[Side]) -> Option<Side> {
        let candidates: Vec<Side> = up
            .iter()
            .copied()
            .filter(|s| Some(*s) != self.pd_survivor && self.servers[s.i()].crash_armed.is_none())
            .collect();
        self.rng.pick(&candidates)
    }

    /// The operator runs `dhcpair partner-down` on `side`, having checked that the peer is
    /// down, the survivor healthy and the network up (see `pd_survivor`).
    fn on_partner_down(&mut self, side: Side) {
        let healthy = self.is_up(side) && self.servers[side.i()].crash_armed.is_none();
        if !healthy
            || self.is_up(side.other())
            || self.partition.is_some()
            || self.pd_survivor.is_some()
        {
            return;
        }
        match self.drive(side, |e, now| e.handle_partner_down(now, 0)) {
            Some(Ok(())) => {
                self.pd_survivor = Some(side);
                self.report.partner_down_commands += 1;
                self.note(format!("operator: partner-down on {side}"));
            }
            Some(Err(e)) => self.note(format!("operator: partner-down on {side} refused: {e}")),
            None => {}
        }
    }

    // ------------------------------------------------------------------ after every step

    fn check_after_step(&mut self) {
        for side in Side::BOTH {
            let seen = self.servers[side.i()].engine.as_ref().and_then(|e| {
                e.relationships()
                    .first()
                    .map(|r| (r.my_state, r.partner_state, r.connected))
            });
            if let Some(now_seen) = seen {
                if self.servers[side.i()].last_seen != Some(now_seen) {
                    self.servers[side.i()].last_seen = Some(now_seen);
                    self.report.states_seen[side.i()].insert(now_seen.0);
                    let (me, peer, linked) = now_seen;
                    self.note(format!(
                        "{side} is {me}, partner {peer}{}",
                        if linked { ", linked" } else { "" }
                    ));
                }
            }
        }
        if self.tables_dirty {
            self.tables_dirty = false;
            self.check_tables();
        }
        let normal = |w: &World, s: Side| {
            w.servers[s.i()].engine.as_ref().is_some_and(|e| {
                e.is_linked(0)
                    && e.relationships()
                        .first()
                        .is_some_and(|r| r.my_state == ServerState::Normal)
            })
        };
        let both_normal = normal(self, Side::Primary) && normal(self, Side::Secondary);
        if both_normal {
            self.pd_survivor = None;
            self.rebuilding = None;
        }
        let calm = self.now >= self.fault_end_ms
            && self.partition.is_none()
            && Side::BOTH
                .iter()
                .all(|s| self.is_up(*s) && self.servers[s.i()].crash_armed.is_none());
        if self.calm_at.is_none() && calm {
            self.calm_at = Some(self.now);
            self.note("calm: every fault healed".into());
        }
        let Some(calm_at) = self.calm_at else { return };
        // A silent partition shorter than maxResponseDelay leaves both NORMAL at the heal, but
        // a receive timeout armed during it may still fire before traffic resumes (seed 22077:
        // 28 s of silence, 30 s timeout, the delayed CONTACT 0.7 s late): settle only once
        // such a timeout has had its chance.
        let timeouts_done = self.now >= calm_at + u64::from(self.sc.max_response_delay) * 1000;
        match self.settled_at {
            None if both_normal && timeouts_done => {
                self.settled_at = Some(self.now);
                self.report.settle_secs = Some((self.now - calm_at) / 1000);
                // Long enough for every bound client to renew at least once in NORMAL.
                self.end_ms = Some(self.now + (u64::from(self.sc.lease_time) + 120) * 1000);
            }
            None if self.now > calm_at + self.sc.settle_bound_secs() * 1000 => {
                self.failure = Some(format!(
                    "liveness: not both NORMAL {} s after the last fault healed: {}",
                    self.sc.settle_bound_secs(),
                    self.states()
                ));
            }
            Some(_) if !both_normal => {
                self.failure = Some(format!(
                    "liveness: left NORMAL with no fault: {}",
                    self.states()
                ));
            }
            _ => {}
        }
    }

    pub(crate) fn states(&self) -> String {
        Side::BOTH
            .iter()
            .map(|s| match &self.servers[s.i()].engine {
                Some(e) => format!("{s} {:?}", e.relationships().first()),
                None => format!("{s} down"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Disk {
    fn apply(&mut self, p: Persist) {
        match p {
            Persist::Lease(l) => {
                self.leases.insert(l.ip, l);
            }
            Persist::Relationship(r) => self.rel = Some(r),
        }
    }
}
