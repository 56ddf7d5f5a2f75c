//! The failover engine: draft-ietf-dhc-failover-12 as ISC dhcpd 4.4.3 speaks it.
//!
//! Sans-IO like the rest of the engine: TCP connections are `ConnId`s the shell opens and
//! closes, messages arrive decoded, and everything the engine wants done comes out as
//! [`Effect`]s in order: persist (lease or relationship state), then send or close. The shell
//! makes every `Persist` durable before it performs any later `Send`, so a BNDACK or STATE
//! never promises what a crash could lose.
//!
//! Start at `handle_peer_message`; the reaction tables are in `states.rs`.

mod states;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;

use dhcpair_config::{Peer, Role};
use dhcpair_wire::failover::{Message, MessageType, Options, ServerState};
use tracing::{info, warn};

use crate::dhcp::Dhcp;
use crate::table::Owner;
use dhcpair_model::{BindingState, ClientKey, Lease, RelationshipRecord, Time};

use states::Reaction;

/// Clocks may disagree by this much at CONNECT/CONNECTACK (reference §0 fact 8).
const MAX_SKEW: i64 = 60;
/// ISC's startup and link-startup timers (reference §1.1, §5.2).
const STARTUP_SECS: Time = 15;
/// How long to wait before sending again the updates a partner refused as unknown addresses.
const UNKNOWN_RETRY_SECS: Time = 60;
/// ISC's infinite time on the wire.
const WIRE_FOREVER: u32 = 0x7FFF_FFFF;
const VENDOR_CLASS: &str = concat!("dhcpair-", env!("CARGO_PKG_VERSION"));

/// A TCP connection to a partner, named by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// Something to make durable.
#[derive(Debug, Clone, PartialEq)]
pub enum Persist {
    Lease(Lease),
    Relationship(RelationshipRecord),
}

/// What the engine asks the shell to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Persist(Persist),
    /// Send after every earlier `Persist` is durable.
    Send {
        peer: usize,
        conn: ConnId,
        msg: Message,
    },
    Close {
        peer: usize,
        conn: ConnId,
    },
}

/// What one BNDUPD we sent carried, to match its BNDACK.
#[derive(Debug, Clone, Copy)]
struct Sent {
    xid: u32,
    tstp: Time,
    state: BindingState,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    opened: Time,
    xid: u32,
}

#[derive(Debug)]
struct Link {
    conn: ConnId,
    xid: u32,
    partner_max_unacked: u32,
    partner_receive_timer: u32,
    last_recv: Time,
    last_sent: Time,
    requested_all: bool,
}

impl Link {
    /// The link over `conn`, with the partner's parameters from its CONNECT or CONNECTACK.
    /// Reference §0 fact 9: ISC starts both at 0 when absent; we assume 1 update and our own
    /// timer rather than never sending or timing out at once.
    fn new(rel: &Relationship, conn: ConnId, o: &Options, now: Time) -> Link {
        Link {
            conn,
            xid: conn_xid(rel, conn),
            partner_max_unacked: o.max_unacked.unwrap_or(1),
            partner_receive_timer: o.receive_timer.unwrap_or(rel.cfg.max_response_delay),
            last_recv: now,
            last_sent: now,
            requested_all: false,
        }
    }
}

/// A running UPDREQ/UPDREQALL from the partner: UPDDONE goes out when all are acked.
#[derive(Debug)]
struct UpdateRequest {
    xid: u32,
    remaining: HashSet<Ipv4Addr>,
}

/// Counters for metrics and `dhcpair status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub sent: [u64; 13],
    pub received: [u64; 13],
}

#[derive(Debug)]
pub(crate) struct Relationship {
    pub cfg: Peer,
    mclt: u32,
    hba: Option<[u8; 32]>,
    me: ServerState,
    my_stos: Time,
    /// In STARTUP (we report `me` with the STARTUP flag and do not serve).
    startup_until: Option<Time>,
    partner: ServerState,
    partner_stos: Time,
    partner_startup: bool,
    conns: Vec<Conn>,
    link: Option<Link>,
    queue: VecDeque<Ipv4Addr>,
    queued: HashSet<Ipv4Addr>,
    unacked: HashMap<Ipv4Addr, Sent>,
    update_request: Option<UpdateRequest>,
    auto_partner_down_at: Option<Time>,
    /// Move to NORMAL once every queued update is acknowledged (ISC: "sends its queued
    /// updates, then NORMAL"), so the partner has our bindings before it serves again.
    normal_when_synced: bool,
    next_balance: Option<Time>,
    /// Addresses whose update the partner refused as unknown (a pool added or grown on our
    /// side first, during a rolling reload); sent again at `retry_unknown_at`.
    unknown_to_partner: BTreeSet<Ipv4Addr>,
    retry_unknown_at: Option<Time>,
    last_contact: Option<Time>,
    skew: i64,
    counts: MessageCounts,
    /// Pools of this relationship (indexes into the config).
    pub pools: Vec<usize>,
}

/// A relationship as `dhcpair status`, metrics and the operator see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipStatus {
    pub name: String,
    pub role: Role,
    pub my_state: ServerState,
    pub startup: bool,
    pub my_stos: Time,
    pub partner_state: ServerState,
    pub partner_stos: Time,
    pub connected: bool,
    pub mclt: u32,
    pub unacked_updates: usize,
    pub queued_updates: usize,
    pub last_contact: Option<Time>,
    pub skew: i64,
    pub messages: MessageCounts,
}

fn state_from(v: u8) -> ServerState {
    ServerState::from_wire(v).unwrap_or(ServerState::Unknown)
}

fn wire_time(t: Time) -> u32 {
    u32::try_from(t).unwrap_or(WIRE_FOREVER).min(WIRE_FOREVER)
}

/// A time from the partner's clock on ours: `skew` is the partner's clock minus ours, measured
/// on every message header. `margin` seconds are added where later is the safe side (lease
/// ends), covering the one-second granularity of the measurement. 0 stays "never/unset".
fn partner_time(t: u32, skew: i64, margin: Time) -> Time {
    match t {
        0 => 0,
        t if t >= WIRE_FOREVER => crate::dhcp::FOREVER,
        t => Time::try_from((i64::from(t) - skew).max(1)).unwrap_or(1) + margin,
    }
}

impl Relationship {
    pub fn new(cfg: Peer, saved: Option<&RelationshipRecord>, now: Time) -> Relationship {
        // No saved state: ISC starts in RECOVER with stos = now (reference §5.2).
        let (me, stos, partner, mclt) = match saved {
            Some(r) => (
                state_from(r.my_state),
                r.stos,
                state_from(r.partner_state),
                r.mclt,
            ),
            None => (ServerState::Recover, now, ServerState::Unknown, 0),
        };
        let mclt = cfg.mclt.unwrap_or(mclt);
        Relationship {
            hba: cfg.hba,
            cfg,
            mclt,
            me,
            my_stos: stos,
            startup_until: Some(now + STARTUP_SECS),
            partner,
            partner_stos: 0,
            partner_startup: false,
            conns: Vec::new(),
            link: None,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            unacked: HashMap::new(),
            update_request: None,
            auto_partner_down_at: None,
            normal_when_synced: false,
            next_balance: None,
            unknown_to_partner: BTreeSet::new(),
            retry_unknown_at: None,
            last_contact: None,
            skew: 0,
            counts: MessageCounts::default(),
            pools: Vec::new(),
        }
    }

    fn primary(&self) -> bool {
        self.cfg.role == Role::Primary
    }

    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The free state this server may allocate from.
    pub fn my_owner(&self) -> Owner {
        if self.primary() {
            Owner::Free
        } else {
            Owner::Backup
        }
    }

    pub fn peer_owner(&self) -> Owner {
        if self.primary() {
            Owner::Backup
        } else {
            Owner::Free
        }
    }

    pub fn is_linked(&self) -> bool {
        self.link.is_some()
    }

    pub fn in_startup(&self) -> bool {
        self.startup_until.is_some()
    }

    pub fn state(&self) -> ServerState {
        self.me
    }

    pub fn mclt(&self) -> u32 {
        self.mclt
    }

    pub fn my_stos(&self) -> Time {
        self.my_stos
    }

    /// Reference §5.1: who answers DHCP clients.
    pub fn responds(&self) -> bool {
        !self.in_startup() && states::responds(self.me, self.partner)
    }

    /// RFC 3074 load balancing applies: NORMAL with load balancing configured.
    pub fn load_balancing(&self) -> Option<(u32, &[u8; 32])> {
        let lbms = self.cfg.load_balance_max_seconds;
        if self.me != ServerState::Normal || lbms == 0 {
            return None;
        }
        self.hba.as_ref().map(|h| (lbms, h))
    }

    fn record(&self) -> RelationshipRecord {
        RelationshipRecord {
            name: self.cfg.name.clone(),
            my_state: self.me.to_wire(),
            partner_state: self.partner.to_wire(),
            stos: self.my_stos,
            mclt: self.mclt,
        }
    }

    pub fn status(&self) -> RelationshipStatus {
        RelationshipStatus {
            name: self.cfg.name.clone(),
            role: self.cfg.role,
            my_state: self.me,
            startup: self.in_startup(),
            my_stos: self.my_stos,
            partner_state: self.partner,
            partner_stos: self.partner_stos,
            connected: self.link.is_some(),
            mclt: self.mclt,
            unacked_updates: self.unacked.len(),
            queued_updates: self.queue.len(),
            last_contact: self.last_contact,
            skew: self.skew,
            messages: self.counts.clone(),
        }
    }

    /// Queue a lease for a BNDUPD (deduplicated; order of first queueing kept).
    fn enqueue(&mut self, ip: Ipv4Addr) {
        if self.queued.insert(ip) {
            self.queue.push_back(ip);
        }
    }
}

/// The MCLT rule as ISC implements it in `ack_lease` (reference §4.4): `desired` is the lease
/// time the config would give, `tsfp` what the partner has acknowledged for this lease.
/// Returns (seconds to give the client, potential expiration to send the partner).
pub fn mclt_lease_time(now: Time, desired: Time, tsfp: Time, mclt: Time) -> (Time, Time) {
    let give = if desired > mclt {
        if tsfp <= now {
            mclt
        } else if now + desired > tsfp + mclt {
            tsfp - now + mclt
        } else {
            desired
        }
    } else {
        desired
    };
    let tstp = if desired >= crate::dhcp::FOREVER - now {
        Time::from(WIRE_FOREVER)
    } else {
        (now + desired + give / 2).min(Time::from(WIRE_FOREVER - 1))
    };
    (give, tstp)
}

impl Dhcp {
    fn rel(&self, peer: usize) -> &Relationship {
        &self.rels[peer]
    }

    fn log_move(&self, peer: usize, from: &str, to: ServerState) {
        info!(
            "failover peer {}: I move from {} to {}",
            self.rels[peer].name(),
            from,
            to
        );
    }

    /// Send a message we originate (fresh xid) on the established link.
    fn send_new(&mut self, now: Time, peer: usize, kind: MessageType, options: Options) {
        let Some(link) = self.rels[peer].link.as_mut() else {
            return;
        };
        let mut xid = link.xid;
        if kind == MessageType::BndUpd && xid == 0 {
            xid = 1; // reference §1.5: BNDUPD never uses xid 0
        }
        link.xid = xid.wrapping_add(1);
        let conn = link.conn;
        self.send_on(now, peer, conn, kind, xid, options);
    }

    /// Send on a given connection with a given xid (responses, handshake).
    fn send_on(
        &mut self,
        now: Time,
        peer: usize,
        conn: ConnId,
        kind: MessageType,
        xid: u32,
        options: Options,
    ) {
        let rel = &mut self.rels[peer];
        if let Some(link) = rel.link.as_mut().filter(|l| l.conn == conn) {
            link.last_sent = now;
        }
        rel.counts.sent[kind.to_wire() as usize] += 1;
        let msg = Message {
            kind,
            time: wire_time(now),
            xid,
            options,
        };
        self.effects.push(Effect::Send { peer, conn, msg });
    }

    fn persist_relationship(&mut self, peer: usize) {
        let r = self.rels[peer].record();
        self.effects.push(Effect::Persist(Persist::Relationship(r)));
    }

    fn state_message(&self, peer: usize) -> Options {
        let rel = self.rel(peer);
        Options {
            server_state: Some(rel.me.to_wire()),
            server_flags: Some(u8::from(rel.in_startup())),
            stos: Some(wire_time(rel.my_stos)),
            ..Options::default()
        }
    }

    fn send_state(&mut self, now: Time, peer: usize) {
        if self.rels[peer].link.is_some() {
            let o = self.state_message(peer);
            self.send_new(now, peer, MessageType::State, o);
        }
    }

    /// Move to a new state: persist it, log it in ISC's words, tell the partner, act on entry.
    pub(crate) fn set_state(&mut self, now: Time, peer: usize, to: ServerState) {
        let rel = &mut self.rels[peer];
        let leaving_startup = rel.startup_until.take().is_some();
        let from = rel.me;
        if from == to && !leaving_startup {
            return;
        }
        rel.me = to;
        // STOS is kept when entering RECOVER-WAIT and when only leaving STARTUP (reference §5.2).
        if from != to && to != ServerState::RecoverWait {
            rel.my_stos = now;
        }
        rel.auto_partner_down_at = None;
        self.persist_relationship(peer);
        let from_name = if leaving_startup {
            "startup".to_string()
        } else {
            from.to_string()
        };
        self.log_move(peer, &from_name, to);
        self.send_state(now, peer);
        if from != to || leaving_startup {
            if to == ServerState::Normal
                && matches!(
                    from,
                    ServerState::CommunicationsInterrupted | ServerState::PartnerDown
                )
            {
                self.pin_uncertain_leases(now, peer);
            }
            self.on_enter(now, peer);
        }
    }

    /// Back to NORMAL after being cut off: the partner may have extended any running lease
    /// (lazy update) up to the potential expiration it acknowledged plus MCLT, and if it lost
    /// its database it can no longer tell us. Keep such leases running until then (draft-12
    /// §7.1.5), so NORMAL expiry at the old end never frees an address a client still holds.
    fn pin_uncertain_leases(&mut self, now: Time, peer: usize) {
        let mclt = Time::from(self.rels[peer].mclt);
        self.rewrite_leases(peer, |l| {
            let bound = l
                .tstp
                .max(l.tsfp)
                .saturating_add(mclt)
                .min(crate::dhcp::FOREVER);
            (l.state == BindingState::Active && bound > l.ends && bound > now).then(|| Lease {
                ends: bound,
                ..l.clone()
            })
        });
    }

    /// A partner asking for every binding may have lost its database, and with it the
    /// renewals it granted while cut off from us. A binding it took for running (an active
    /// one, or one whose release or expiry it never confirmed) it may have renewed, MCLT at a
    /// time, up to MCLT past the potential expiration we last exchanged, or until it lost its
    /// database (before now): seed 28228. Only that client can hold the address (seed 97:
    /// released at our side, renewed at the partner's), so the binding runs for that client
    /// until then; the partner learns it with the rest of the update. An address the partner
    /// knew to be FREE is not held here: it could have gone to anyone, and the PARTNER-DOWN
    /// and RECOVER-WAIT waits already cover what the partner may have handed out from its own
    /// pool (seed 14968: holding such an address for its last client gave it back to a client
    /// that had released it while another one held it).
    fn hold_for_amnesic_partner(&mut self, now: Time, peer: usize) {
        let mclt = Time::from(self.rels[peer].mclt);
        let held = self.rewrite_leases(peer, |l| {
            let running = matches!(
                l.state,
                BindingState::Active | BindingState::Expired | BindingState::Released
            );
            let base = l.tsfp.max(l.tstp).max(now);
            let bound = base.saturating_add(mclt).min(crate::dhcp::FOREVER);
            (running && l.client.is_some() && (l.state != BindingState::Active || bound > l.ends))
                .then(|| Lease {
                    state: BindingState::Active,
                    ends: bound.max(l.ends),
                    tstp: base,
                    atsfp: 0,
                    ..l.clone()
                })
        });
        if held > 0 {
            info!(
                "failover peer {}: partner may have lost its database: {held} bindings it may have renewed run until MCLT past their last potential expiration or now",
                self.rels[peer].name()
            );
        }
    }

    /// Replace, in address order, each row of the relationship's pools that `f` rewrites, and
    /// persist it. Returns how many rows changed.
    fn rewrite_leases(&mut self, peer: usize, f: impl Fn(&Lease) -> Option<Lease>) -> usize {
        let pools = &self.rels[peer].pools;
        let mut rows: Vec<Lease> = self
            .table
            .leases
            .values()
            .filter(|l| self.table.pool_of(l.ip).is_some_and(|p| pools.contains(&p)))
            .filter_map(f)
            .collect();
        rows.sort_unstable_by_key(|l| l.ip);
        let n = rows.len();
        for l in rows {
            self.table.drop_offer_at(l.ip);
            self.table.put(l.clone());
            self.effects.push(Effect::Persist(Persist::Lease(l)));
        }
        n
    }

    fn on_enter(&mut self, now: Time, peer: usize) {
        let me = self.rels[peer].me;
        let primary = self.rels[peer].primary();
        match me {
            ServerState::Normal => {
                if self.rels[peer].partner == ServerState::Normal {
                    info!(
                        "failover peer {}: Both servers normal",
                        self.rels[peer].name()
                    );
                }
                self.queue_pending(peer);
                self.rels[peer].next_balance = Some(now);
                self.balance(now, peer, false);
                self.pump(now, peer);
            }
            ServerState::Recover => self.request_all(now, peer),
            ServerState::CommunicationsInterrupted => {
                let apd = self.rels[peer].cfg.auto_partner_down;
                if apd > 0 {
                    self.rels[peer].auto_partner_down_at = Some(now + Time::from(apd));
                }
            }
            ServerState::PotentialConflict
                if primary || self.rels[peer].partner == ServerState::ConflictDone =>
            {
                self.send_new(now, peer, MessageType::UpdReq, Options::default());
                info!("Sent update request message to {}", self.rels[peer].name());
            }
            _ => {}
        }
    }

    fn request_all(&mut self, now: Time, peer: usize) {
        let Some(link) = self.rels[peer].link.as_mut() else {
            return;
        };
        if link.requested_all {
            return;
        }
        link.requested_all = true;
        info!(
            "failover peer {}: requesting full update from peer",
            self.rels[peer].name()
        );
        self.send_new(now, peer, MessageType::UpdReqAll, Options::default());
    }

    /// Every lease whose last change the partner has not acknowledged.
    fn queue_pending(&mut self, peer: usize) {
        let pools = self.rels[peer].pools.clone();
        let mut ips: Vec<Ipv4Addr> = self
            .table
            .leases
            .values()
            .filter(|l| self.table.pool_of(l.ip).is_some_and(|p| pools.contains(&p)))
            .filter(|l| {
                l.tstp > l.atsfp
                    || matches!(
                        l.state,
                        BindingState::Expired | BindingState::Released | BindingState::Reset
                    )
            })
            .map(|l| l.ip)
            .collect();
        ips.sort_unstable();
        let rel = &mut self.rels[peer];
        for ip in ips {
            if !rel.unacked.contains_key(&ip) {
                rel.enqueue(ip);
            }
        }
    }

    /// Send queued BNDUPDs within the partner's max-unacked window (reference §4.5).
    fn pump(&mut self, now: Time, peer: usize) {
        loop {
            let rel = &self.rels[peer];
            let Some(link) = rel.link.as_ref() else {
                return;
            };
            // ISC sends updates whenever linked (PARTNER-DOWN included), not only in NORMAL.
            let may_send = !rel.in_startup()
                && (matches!(
                    rel.me,
                    ServerState::Normal
                        | ServerState::PartnerDown
                        | ServerState::CommunicationsInterrupted
                ) || rel.update_request.is_some());
            if !may_send || rel.unacked.len() >= link.partner_max_unacked.max(1) as usize {
                return;
            }
            let rel = &mut self.rels[peer];
            let Some(ip) = rel.queue.pop_front() else {
                self.maybe_update_done(now, peer);
                self.maybe_synced(now, peer);
                return;
            };
            rel.queued.remove(&ip);
            let lease = self.lease_or_virgin(ip);
            let options = bndupd_options(&lease);
            // The xid send_new will use (never 0 for a BNDUPD), recorded to match the BNDACK.
            let xid = self.rels[peer].link.as_ref().map_or(1, |l| l.xid.max(1));
            self.rels[peer].unacked.insert(
                ip,
                Sent {
                    xid,
                    tstp: lease.tstp,
                    state: lease.state,
                },
            );
            self.send_new(now, peer, MessageType::BndUpd, options);
        }
    }

    /// The address's row, or the never-used FREE one it stands for.
    fn lease_or_virgin(&self, ip: Ipv4Addr) -> Lease {
        self.table
            .leases
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| self.virgin(ip))
    }

    /// A never-used address: FREE with every time 0 (reference §3.2).
    fn virgin(&self, ip: Ipv4Addr) -> Lease {
        let pool = self
            .table
            .pool_of(ip)
            .map(|p| self.config.pools[p].name.clone())
            .unwrap_or_default();
        Lease {
            ip,
            state: BindingState::Free,
            client: None,
            htype: 0,
            chaddr: Vec::new(),
            hostname: None,
            pool,
            starts: 0,
            ends: 0,
            tstp: 0,
            tsfp: 0,
            atsfp: 0,
            cltt: 0,
        }
    }

    fn maybe_update_done(&mut self, now: Time, peer: usize) {
        let rel = &self.rels[peer];
        if let Some(req) = &rel.update_request {
            if req.remaining.is_empty() {
                let xid = req.xid;
                self.rels[peer].update_request = None;
                if let Some(conn) = self.rels[peer].link.as_ref().map(|l| l.conn) {
                    self.send_on(
                        now,
                        peer,
                        conn,
                        MessageType::UpdDone,
                        xid,
                        Options::default(),
                    );
                    info!("Sent update done message to {}", self.rels[peer].name());
                }
            }
        }
    }

    fn maybe_synced(&mut self, now: Time, peer: usize) {
        let rel = &self.rels[peer];
        if rel.normal_when_synced
            && rel.link.is_some()
            && rel.queue.is_empty()
            && rel.unacked.is_empty()
        {
            self.rels[peer].normal_when_synced = false;
            self.set_state(now, peer, ServerState::Normal);
        }
    }

    /// A lease of a failover pool changed here: the partner must hear of it.
    pub(crate) fn lease_changed(&mut self, now: Time, ip: Ipv4Addr) {
        let Some(peer) = self.table.pool_of(ip).and_then(|p| self.pool_rel[p]) else {
            return;
        };
        self.rels[peer].enqueue(ip);
        self.pump(now, peer);
    }

    // ---------------------------------------------------------------- connections

    /// A TCP connection to or from the partner is up (the shell has checked the source address).
    pub fn handle_peer_connected(&mut self, now: Time, peer: usize, conn: ConnId) {
        let Some(rel) = self.rels.get_mut(peer) else {
            return;
        };
        rel.conns.push(Conn {
            id: conn,
            opened: now,
            xid: 0,
        });
        // Reference §1.1: the primary sends CONNECT on every new connection, inbound or not.
        if rel.primary() {
            let o = Options {
                relationship_name: Some(rel.cfg.name.as_bytes().to_vec()),
                max_unacked: Some(rel.cfg.max_unacked_updates),
                receive_timer: Some(rel.cfg.max_response_delay),
                vendor_class: Some(VENDOR_CLASS.as_bytes().to_vec()),
                protocol_version: Some(1),
                tls_request: Some(0),
                mclt: Some(rel.mclt),
                hba: rel.hba.map(|h| h.to_vec()),
                ..Options::default()
            };
            let xid = next_conn_xid(rel, conn);
            self.send_on(now, peer, conn, MessageType::Connect, xid, o);
        }
    }

    /// The shell lost a connection (closed by either side).
    pub fn handle_peer_closed(&mut self, now: Time, peer: usize, conn: ConnId) {
        let Some(rel) = self.rels.get_mut(peer) else {
            return;
        };
        rel.conns.retain(|c| c.id != conn);
        if rel.link.as_ref().is_some_and(|l| l.conn == conn) {
            rel.link = None;
            info!("peer {}: disconnected", rel.cfg.name);
            self.communications_failed(now, peer);
        }
    }

    fn close(&mut self, peer: usize, conn: ConnId) {
        self.effects.push(Effect::Close { peer, conn });
    }

    fn communications_failed(&mut self, now: Time, peer: usize) {
        let rel = &mut self.rels[peer];
        rel.link = None;
        rel.update_request = None;
        rel.normal_when_synced = false;
        // Reference §4.5: sent but unacked updates go back to the front of the queue.
        let mut back: Vec<Ipv4Addr> = rel.unacked.drain().map(|(ip, _)| ip).collect();
        back.sort_unstable();
        for ip in back.into_iter().rev() {
            if rel.queued.insert(ip) {
                rel.queue.push_front(ip);
            }
        }
        if rel.in_startup() {
            return;
        }
        let to = states::on_comm_failure(rel.me);
        self.set_state(now, peer, to);
    }

    /// One decoded message from the partner on `conn`.
    pub fn handle_peer_message(&mut self, now: Time, peer: usize, conn: ConnId, m: Message) {
        let Some(rel) = self.rels.get_mut(peer) else {
            return;
        };
        rel.counts.received[m.kind.to_wire() as usize] += 1;
        rel.last_contact = Some(now);
        rel.skew = i64::from(m.time) - now as i64;
        let on_link = rel.link.as_ref().is_some_and(|l| l.conn == conn);
        if let Some(link) = rel.link.as_mut().filter(|l| l.conn == conn) {
            link.last_recv = now;
        }
        match m.kind {
            MessageType::Connect => return self.on_connect(now, peer, conn, &m),
            MessageType::ConnectAck => return self.on_connectack(now, peer, conn, &m),
            MessageType::Disconnect => {
                let reason = m.options.reject_reason.unwrap_or(0);
                let text = m.options.message.clone().unwrap_or_default();
                warn!(
                    "Failover DISCONNECT from {}: {} {}",
                    self.rels[peer].name(),
                    reason,
                    text
                );
                self.close(peer, conn);
                return self.handle_peer_closed(now, peer, conn);
            }
            _ if !on_link => return, // nothing but the handshake before the link is up
            _ => {}
        }
        match m.kind {
            MessageType::State => self.on_state(now, peer, &m),
            MessageType::BndUpd => self.on_bndupd(now, peer, conn, &m),
            MessageType::BndAck => self.on_bndack(now, peer, &m),
            MessageType::PoolReq => {
                let given = if self.rels[peer].me == ServerState::Normal {
                    self.balance(now, peer, false)
                } else {
                    0
                };
                if given == 0 {
                    info!("peer {}: Got POOLREQ, answering negatively!  Peer may be out of leases or database inconsistent.", self.rels[peer].name());
                }
                let o = Options {
                    addresses_transferred: Some(given),
                    ..Options::default()
                };
                self.send_on(now, peer, conn, MessageType::PoolResp, m.xid, o);
                self.pump(now, peer);
            }
            MessageType::PoolResp => {
                info!(
                    "pool response: {} leases",
                    m.options.addresses_transferred.unwrap_or(0)
                );
            }
            MessageType::UpdReq | MessageType::UpdReqAll => self.on_update_request(now, peer, &m),
            MessageType::UpdDone => self.on_update_done(now, peer),
            MessageType::Contact => {}
            MessageType::Connect | MessageType::ConnectAck | MessageType::Disconnect => {}
        }
    }

    fn reject_connect(
        &mut self,
        now: Time,
        peer: usize,
        conn: ConnId,
        m: &Message,
        reason: u8,
        text: &str,
    ) {
        let rel = &mut self.rels[peer];
        warn!("Failover CONNECT from {}: {}", rel.cfg.name, text);
        let name = if reason == 8 {
            m.options.relationship_name.clone()
        } else {
            Some(rel.cfg.name.as_bytes().to_vec())
        };
        let o = Options {
            relationship_name: name,
            vendor_class: Some(VENDOR_CLASS.as_bytes().to_vec()),
            protocol_version: Some(1),
            tls_reply: m.options.tls_request.map(|_| 0),
            reject_reason: Some(reason),
            message: Some(text.to_string()),
            ..Options::default()
        };
        self.send_on(now, peer, conn, MessageType::ConnectAck, m.xid, o);
        self.close(peer, conn);
        self.rels[peer].conns.retain(|c| c.id != conn);
    }

    /// Reference §1.6: the secondary's checks, in ISC's order.
    fn on_connect(&mut self, now: Time, peer: usize, conn: ConnId, m: &Message) {
        let rel = &self.rels[peer];
        if rel.primary() {
            // Two primaries: refuse as ISC refuses an unknown partner.
            return self.reject_connect(
                now,
                peer,
                conn,
                m,
                8,
                "both servers are configured as primary",
            );
        }
        match &m.options.relationship_name {
            None => return self.reject_connect(now, peer, conn, m, 8, "missing relationship-name"),
            Some(n) if n.as_slice() != rel.cfg.name.as_bytes() => {
                return self.reject_connect(
                    now,
                    peer,
                    conn,
                    m,
                    8,
                    "unknown failover relationship name",
                )
            }
            Some(_) => {}
        }
        if (i64::from(m.time) - now as i64).abs() > MAX_SKEW {
            return self.reject_connect(now, peer, conn, m, 4, "time offset too large");
        }
        let hba: [u8; 32] = match m.options.hba.as_deref().map(<[u8; 32]>::try_from) {
            Some(Ok(h)) => h,
            _ => return self.reject_connect(now, peer, conn, m, 18, "invalid HBA"),
        };
        if rel.link.is_some() {
            return self.reject_connect(now, peer, conn, m, 7, "already connected");
        }
        let Some(mclt) = m.options.mclt else {
            return self.reject_connect(now, peer, conn, m, 5, "no MCLT provided");
        };
        let rel = &mut self.rels[peer];
        rel.hba = Some(hba);
        let mclt_changed = rel.mclt != mclt;
        rel.mclt = mclt;
        rel.link = Some(Link::new(rel, conn, &m.options, now));
        let o = Options {
            relationship_name: Some(rel.cfg.name.as_bytes().to_vec()),
            max_unacked: Some(rel.cfg.max_unacked_updates),
            receive_timer: Some(rel.cfg.max_response_delay),
            vendor_class: Some(VENDOR_CLASS.as_bytes().to_vec()),
            protocol_version: Some(1),
            tls_reply: m.options.tls_request.map(|_| 0),
            ..Options::default()
        };
        if mclt_changed {
            self.persist_relationship(peer);
        }
        self.send_on(now, peer, conn, MessageType::ConnectAck, m.xid, o);
        self.link_up(now, peer);
    }

    fn disconnect(&mut self, now: Time, peer: usize, conn: ConnId, reason: u8, text: &str) {
        warn!(
            "Failover CONNECTACK from {}: {}",
            self.rels[peer].name(),
            text
        );
        let o = Options {
            reject_reason: Some(reason),
            message: Some(text.to_string()),
            ..Options::default()
        };
        let xid = next_conn_xid(&mut self.rels[peer], conn);
        self.send_on(now, peer, conn, MessageType::Disconnect, xid, o);
        self.close(peer, conn);
        self.rels[peer].conns.retain(|c| c.id != conn);
    }

    /// Reference §1.6: the primary's checks of CONNECTACK.
    fn on_connectack(&mut self, now: Time, peer: usize, conn: ConnId, m: &Message) {
        let rel = &self.rels[peer];
        if !rel.primary() {
            return self.disconnect(now, peer, conn, 8, "CONNECTACK sent to a secondary");
        }
        let Some(name) = &m.options.relationship_name else {
            return self.disconnect(now, peer, conn, 8, "missing relationship-name");
        };
        if let Some(reason) = m.options.reject_reason {
            warn!(
                "Failover CONNECT to {} rejected: {} {}",
                rel.cfg.name,
                reason,
                m.options.message.clone().unwrap_or_default()
            );
            self.close(peer, conn);
            self.rels[peer].conns.retain(|c| c.id != conn);
            return;
        }
        if name.as_slice() != rel.cfg.name.as_bytes() {
            let text = format!(
                "remote failover relationship name {} does not match",
                String::from_utf8_lossy(name)
            );
            return self.disconnect(now, peer, conn, 8, &text);
        }
        if rel.link.is_some() {
            return self.disconnect(now, peer, conn, 7, "already connected");
        }
        if (i64::from(m.time) - now as i64).abs() > MAX_SKEW {
            return self.disconnect(now, peer, conn, 4, "time offset too large");
        }
        let rel = &mut self.rels[peer];
        rel.link = Some(Link::new(rel, conn, &m.options, now));
        self.link_up(now, peer);
    }

    fn link_up(&mut self, now: Time, peer: usize) {
        let rel = &self.rels[peer];
        info!(
            "failover peer {}: link up ({})",
            rel.cfg.name,
            if rel.primary() {
                "primary"
            } else {
                "secondary"
            }
        );
        self.send_state(now, peer);
        if !self.rels[peer].in_startup() && self.rels[peer].me == ServerState::Recover {
            self.request_all(now, peer);
        }
    }

    fn on_state(&mut self, now: Time, peer: usize, m: &Message) {
        let raw = m.options.server_state.unwrap_or(0);
        let Some(new) = ServerState::from_wire(raw) else {
            warn!(
                "failover peer {}: Invalid state: {raw}",
                self.rels[peer].name()
            );
            return self.set_state(now, peer, ServerState::Shutdown);
        };
        let startup_flag = m.options.server_flags.unwrap_or(0) & 1 == 1;
        let rel = &mut self.rels[peer];
        let old = rel.partner;
        rel.partner = new;
        rel.partner_startup = startup_flag;
        rel.partner_stos = now; // ISC ignores the STOS sent and uses its receive time
        if old != new {
            info!(
                "failover peer {}: peer moves from {} to {}",
                rel.cfg.name, old, new
            );
            self.persist_relationship(peer);
        }
        let rel = &self.rels[peer];
        let was_startup = rel.in_startup();
        let before = rel.me;
        let reaction = states::on_peer_state(rel.me, new, startup_flag, was_startup, rel.primary());
        match reaction {
            // Leaving STARTUP straight into the state the partner's report calls for.
            Reaction::MoveTo(to) => self.set_state(now, peer, to),
            other => {
                if was_startup {
                    // Back to the saved state (reference §5.2), then act.
                    self.set_state(now, peer, before);
                }
                match other {
                    Reaction::RequestAll => self.request_all(now, peer),
                    Reaction::Request => {
                        self.send_new(now, peer, MessageType::UpdReq, Options::default());
                        info!("Sent update request message to {}", self.rels[peer].name());
                    }
                    Reaction::SyncThenNormal => {
                        self.queue_pending(peer);
                        self.rels[peer].normal_when_synced = true;
                        self.pump(now, peer);
                        self.maybe_synced(now, peer);
                    }
                    Reaction::Stay | Reaction::MoveTo(_) => {}
                }
            }
        }
        // Already NORMAL and the partner just became NORMAL (entering NORMAL logs it itself).
        if before == ServerState::Normal && !was_startup && new == ServerState::Normal && old != new
        {
            info!(
                "failover peer {}: Both servers normal",
                self.rels[peer].name()
            );
            self.rels[peer].next_balance = Some(now);
        }
        self.pump(now, peer);
    }

    fn on_update_request(&mut self, now: Time, peer: usize, m: &Message) {
        let all = m.kind == MessageType::UpdReqAll;
        let name = self.rels[peer].name().to_string();
        if self.rels[peer].update_request.is_some() {
            info!("Received update request while old update still flying!  Silently discarding old request.");
        }
        let mut ips: Vec<Ipv4Addr> = Vec::new();
        let pools = self.rels[peer].pools.clone();
        if all {
            self.hold_for_amnesic_partner(now, peer);
            // Reference §2: free, active, expired/released/reset, abandoned, backup.
            let rank = |s: BindingState| match s {
                BindingState::Free => 0,
                BindingState::Active => 1,
                BindingState::Expired | BindingState::Released | BindingState::Reset => 2,
                BindingState::Abandoned => 3,
                BindingState::Backup => 4,
            };
            let mut all_ips: Vec<(u8, Ipv4Addr)> = Vec::new();
            for &p in &pools {
                for r in &self.config.pools[p].ranges {
                    for ip in r.iter() {
                        if self.table.reserved_ip.contains_key(&ip) {
                            continue;
                        }
                        let s = self
                            .table
                            .leases
                            .get(&ip)
                            .map_or(BindingState::Free, |l| l.state);
                        all_ips.push((rank(s), ip));
                    }
                }
            }
            all_ips.sort_unstable();
            ips.extend(all_ips.into_iter().map(|(_, ip)| ip));
        } else {
            self.queue_pending(peer);
        }
        let rel = &mut self.rels[peer];
        for ip in ips {
            rel.enqueue(ip);
        }
        let remaining: HashSet<Ipv4Addr> = rel
            .queue
            .iter()
            .copied()
            .chain(rel.unacked.keys().copied())
            .collect();
        info!(
            "Update request{} from {}: {}",
            if all { " all" } else { "" },
            name,
            if remaining.is_empty() {
                "nothing pending"
            } else {
                "sending update"
            }
        );
        rel.update_request = Some(UpdateRequest {
            xid: m.xid,
            remaining,
        });
        self.pump(now, peer);
        self.maybe_update_done(now, peer);
    }

    fn on_update_done(&mut self, now: Time, peer: usize) {
        let rel = &mut self.rels[peer];
        info!("failover peer {}: peer update completed.", rel.cfg.name);
        if let Some(l) = rel.link.as_mut() {
            l.requested_all = false;
        }
        match rel.me {
            ServerState::Recover => {
                let waiting = rel.my_stos + Time::from(rel.mclt) > now
                    && !matches!(rel.partner, ServerState::Recover | ServerState::RecoverDone);
                let to = if waiting {
                    ServerState::RecoverWait
                } else {
                    ServerState::RecoverDone
                };
                self.set_state(now, peer, to);
                if to == ServerState::RecoverDone
                    && self.rels[peer].partner == ServerState::RecoverDone
                {
                    info!(
                        "failover peer {}: Both servers have entered recover-done!",
                        self.rels[peer].name()
                    );
                    self.set_state(now, peer, ServerState::Normal);
                }
            }
            ServerState::PotentialConflict => {
                if rel.primary() {
                    self.set_state(now, peer, ServerState::ConflictDone);
                } else if rel.partner == ServerState::ConflictDone {
                    self.set_state(now, peer, ServerState::Normal);
                } else {
                    info!("Spurious update-done message.");
                }
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- bindings

    fn bndack(
        &mut self,
        now: Time,
        peer: usize,
        conn: ConnId,
        xid: u32,
        ip: Ipv4Addr,
        reject: Option<(u8, &str)>,
    ) {
        let o = Options {
            assigned_ip: Some(ip),
            reject_reason: reject.map(|r| r.0),
            message: reject.map(|r| r.1.to_string()),
            ..Options::default()
        };
        if let Some((_, text)) = reject {
            info!(
                "bind update on {ip} from {} rejected: {text}",
                self.rels[peer].name()
            );
        }
        self.send_on(now, peer, conn, MessageType::BndAck, xid, o);
    }

    /// A binding update from the partner (reference §4.2).
    fn on_bndupd(&mut self, now: Time, peer: usize, conn: ConnId, m: &Message) {
        let o = &m.options;
        let (Some(ip), Some(status)) = (o.assigned_ip, o.binding_status) else {
            let ip = o.assigned_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            return self.bndack(
                now,
                peer,
                conn,
                m.xid,
                ip,
                Some((3, "missing binding information")),
            );
        };
        let Some(new) = BindingState::from_wire(status) else {
            return self.bndack(
                now,
                peer,
                conn,
                m.xid,
                ip,
                Some((2, "invalid binding status")),
            );
        };
        let in_rel = self
            .table
            .pool_of(ip)
            .is_some_and(|p| self.pool_rel[p] == Some(peer));
        if !in_rel || self.table.reserved_ip.contains_key(&ip) {
            return self.bndack(now, peer, conn, m.xid, ip, Some((1, "unknown IP address")));
        }
        if new == BindingState::Abandoned && (o.chaddr.is_some() || o.client_id.is_some()) {
            return self.bndack(
                now,
                peer,
                conn,
                m.xid,
                ip,
                Some((6, "BNDUPD to ABANDONED with a CHADDR or client-id")),
            );
        }
        let needs_chaddr = matches!(
            new,
            BindingState::Active | BindingState::Expired | BindingState::Released
        );
        if needs_chaddr && o.chaddr.as_ref().is_none_or(|c| c.is_empty()) {
            return self.bndack(
                now,
                peer,
                conn,
                m.xid,
                ip,
                Some((3, "BNDUPD without CHADDR")),
            );
        }
        if o.chaddr.as_ref().is_some_and(|c| c.len() > 17) {
            return self.bndack(now, peer, conn, m.xid, ip, Some((6, "chaddr too long")));
        }
        // Every time the partner sends is on its clock; ours from here on (draft-12 §5.10).
        let skew = self.rels[peer].skew;
        let tsfp = o.potential_expiry.map_or(0, |t| partner_time(t, skew, 1));
        let cur = self.lease_or_virgin(ip);
        let rel = &self.rels[peer];
        let incoming_cltt = o.cltt.map(|t| partner_time(t, skew, 0));
        if let Err((reason, text)) = transition_allowed(rel, &cur, new, tsfp, incoming_cltt, now) {
            return self.bndack(now, peer, conn, m.xid, ip, Some((reason, &text)));
        }
        // Duelling updates: both sides changed the lease (reference §4.2).
        if let Some(sent) = rel.unacked.get(&ip) {
            let incoming_cltt = incoming_cltt.unwrap_or(0);
            let incoming_wins = match (new, sent.state) {
                (BindingState::Active, BindingState::Active) => {
                    incoming_cltt > cur.cltt || (incoming_cltt == cur.cltt && !rel.primary())
                }
                (BindingState::Active, _) => true,
                (BindingState::Expired, BindingState::Active) => true,
                _ => !rel.primary(),
            };
            if !incoming_wins {
                return self.bndack(
                    now,
                    peer,
                    conn,
                    m.xid,
                    ip,
                    Some((16, "incoming update is less critical than outgoing update")),
                );
            }
        }
        let client = match (&o.client_id, &o.chaddr) {
            (Some(id), _) => Some(ClientKey::ClientId(id.clone())),
            (None, Some(c))
                if c.len() > 1
                    && matches!(
                        new,
                        BindingState::Active | BindingState::Expired | BindingState::Released
                    ) =>
            {
                Some(ClientKey::Hardware {
                    htype: c[0],
                    chaddr: c[1..].to_vec(),
                })
            }
            // "A missing client-id clears ISC's stored uid, except for FREE, BACKUP and RESET."
            (None, _)
                if matches!(
                    new,
                    BindingState::Free | BindingState::Backup | BindingState::Reset
                ) =>
            {
                cur.client.clone()
            }
            (None, _) => None,
        };
        // Two running bindings of different clients (a conflict after a partition): the newer
        // one wins (draft-12 §7.1.3, time(1)). Taking the partner's older one would end ours, a
        // client we still serve, at the older binding's end (seed 3777).
        if new == BindingState::Active
            && cur.state == BindingState::Active
            && cur.client != client
            && cur.ends > now
            && incoming_cltt.is_some_and(|c| c < cur.cltt)
        {
            return self.bndack(
                now,
                peer,
                conn,
                m.xid,
                ip,
                Some((
                    15,
                    "outdated binding information: a newer binding of another client runs here",
                )),
            );
        }
        // The receiver records EXPIRED, RELEASED and RESET as FREE at once (reference §4.2).
        let state = match new {
            BindingState::Expired | BindingState::Released | BindingState::Reset => {
                BindingState::Free
            }
            s => s,
        };
        let (htype, chaddr) = match &o.chaddr {
            Some(c) if !c.is_empty() => (c[0], c[1..].to_vec()),
            _ if state == BindingState::Abandoned => (0, Vec::new()),
            _ => (cur.htype, cur.chaddr.clone()),
        };
        // Draft-12 §7.1.5: an older update for the same running binding never shortens it.
        let incoming_ends = o
            .lease_expiry
            .map_or(cur.ends, |t| partner_time(t, skew, 1));
        let same_binding = state == BindingState::Active
            && cur.state == BindingState::Active
            && cur.client == client;
        let (mut ends, tsfp) = if same_binding {
            (incoming_ends.max(cur.ends), tsfp.max(cur.tsfp))
        } else {
            (incoming_ends, tsfp)
        };
        // Recovering from a lost database: we may have extended this lease ourselves before
        // the crash, up to what the partner acknowledged plus MCLT, or MCLT at a time until
        // the crash (before now); keep it until then.
        if state == BindingState::Active && self.rels[peer].me == ServerState::Recover {
            let bound = tsfp
                .max(now)
                .saturating_add(Time::from(self.rels[peer].mclt))
                .min(crate::dhcp::FOREVER);
            ends = ends.max(bound);
        }
        let lease = Lease {
            ip,
            state,
            client,
            htype,
            chaddr,
            hostname: if state == BindingState::Active {
                cur.hostname.clone()
            } else {
                None
            },
            pool: cur.pool.clone(),
            starts: o.stos.map_or(cur.starts, |t| partner_time(t, skew, 0)),
            ends,
            // Not ours to send back: what the partner holds is what we hold.
            tstp: tsfp,
            tsfp,
            atsfp: tsfp,
            cltt: incoming_cltt.unwrap_or(cur.cltt),
        };
        let rel = &mut self.rels[peer];
        // The partner's binding supersedes what we had queued for this address; an update
        // request in progress no longer waits for it either.
        if rel.queued.remove(&ip) {
            rel.queue.retain(|q| *q != ip);
            if let Some(req) = rel.update_request.as_mut() {
                req.remaining.remove(&ip);
            }
        }
        self.table.drop_offer_at(ip);
        self.table.put(lease.clone());
        self.effects.push(Effect::Persist(Persist::Lease(lease)));
        self.bndack(now, peer, conn, m.xid, ip, None);
        self.maybe_update_done(now, peer);
    }

    fn on_bndack(&mut self, now: Time, peer: usize, m: &Message) {
        let Some(ip) = m.options.assigned_ip else {
            return;
        };
        let rel = &mut self.rels[peer];
        match rel.unacked.get(&ip) {
            Some(s) if s.xid == m.xid => {}
            Some(_) => {
                warn!(
                    "bind update on {ip} got ack from {}: xid mismatch.",
                    rel.cfg.name
                );
                return;
            }
            None => return,
        }
        let Some(sent) = rel.unacked.remove(&ip) else {
            return;
        };
        if let Some(req) = rel.update_request.as_mut() {
            req.remaining.remove(&ip);
        }
        if let Some(reason) = m.options.reject_reason {
            let text = m
                .options
                .message
                .clone()
                .unwrap_or_else(|| format!("reason {reason}"));
            // The partner does not know the address yet: its configuration lags ours (a pool
            // added or grown on one side first). Try again later rather than never.
            if reason == 1 {
                rel.unknown_to_partner.insert(ip);
                rel.retry_unknown_at.get_or_insert(now + UNKNOWN_RETRY_SECS);
            }
            // Reason 16 is the routine duel of a fresh synchronisation (reference §4.2).
            if reason == 16 {
                info!("bind update on {ip} from {} rejected: {text}", rel.cfg.name);
            } else {
                warn!("bind update on {ip} from {} rejected: {text}", rel.cfg.name);
            }
        } else if let Some(mut l) = self.table.leases.get(&ip).cloned() {
            // The partner may still extend the binding it knew up to the largest potential
            // expiration either side acknowledged (plus MCLT); a RELEASED or EXPIRED ack never
            // lowers that (the simulator's seed 97: a lowered tsfp let PARTNER-DOWN reuse an
            // address a client still held from the partner).
            l.tsfp = if sent.state == BindingState::Active {
                sent.tstp
            } else {
                l.tsfp.max(sent.tstp)
            };
            l.atsfp = sent.tstp;
            // The sender records EXPIRED/RELEASED/RESET as FREE once acked (reference §4.2),
            // but not on the word of a partner in RECOVER: having lost its database, it cannot
            // know whether it renewed the binding before (seed 1013). Its UPDREQALL holds the
            // address (`hold_for_amnesic_partner`) until that can no longer matter.
            let amnesic = self.rels[peer].partner == ServerState::Recover;
            if !amnesic
                && l.state == sent.state
                && matches!(
                    l.state,
                    BindingState::Expired | BindingState::Released | BindingState::Reset
                )
            {
                l.state = BindingState::Free;
            }
            self.table.put(l.clone());
            self.effects.push(Effect::Persist(Persist::Lease(l)));
        }
        self.pump(now, peer);
        self.maybe_update_done(now, peer);
        self.maybe_synced(now, peer);
    }

    // ---------------------------------------------------------------- balancing

    /// ISC's `dhcp_failover_pool_dobalance` (reference §6.1), simplified to its second pass:
    /// the server holding more free-state leases gives leases to the other until balanced.
    /// Returns how many leases were given. Only the periodic run (`from_timer`) may ask the
    /// partner for leases with POOLREQ, as in ISC.
    fn balance(&mut self, now: Time, peer: usize, from_timer: bool) -> u32 {
        let rel = &self.rels[peer];
        if rel.me != ServerState::Normal {
            return 0;
        }
        let (mine_owner, theirs_owner) = (rel.my_owner(), rel.peer_owner());
        let theirs_state = if theirs_owner == Owner::Free {
            BindingState::Free
        } else {
            BindingState::Backup
        };
        let own_pct = i64::from(rel.cfg.max_lease_ownership);
        let misbal_pct = i64::from(rel.cfg.max_lease_misbalance);
        let pools = rel.pools.clone();
        let mut given = 0u32;
        let mut want_poolreq = false;
        for p in pools {
            let mine = self.table.free_count(p, mine_owner) as i64;
            let theirs = self.table.free_count(p, theirs_owner) as i64;
            // lts, hold and thresh count free-state leases; the log's total is the pool's size.
            let total = mine + theirs;
            let pool_size = self.config.pools[p].size();
            let mut lts = (mine - theirs) / 2;
            let hold = (total * own_pct + 50) / 100;
            let thresh = (total * misbal_pct + 50) / 100;
            let panic = if thresh == 0 { -1 } else { -2 * thresh };
            let net = self.config.pools[p].shared_network.clone();
            info!(
                "balancing pool {} {}  total {}  free {}  backup {}  lts {}  max-own (+/-){}{}",
                self.config.pools[p].name,
                net,
                pool_size,
                if mine_owner == Owner::Free {
                    mine
                } else {
                    theirs
                },
                if mine_owner == Owner::Free {
                    theirs
                } else {
                    mine
                },
                lts,
                hold,
                if lts < panic && from_timer {
                    "  (requesting peer rebalance!)"
                } else {
                    ""
                }
            );
            if lts < panic && from_timer {
                want_poolreq = true;
            }
            if lts <= 0 {
                continue;
            }
            let candidates: Vec<(Ipv4Addr, bool)> = self.table.pools[p].sets[mine_owner as usize]
                .iter()
                .map(|ip| (ip, self.table.leases.get(&ip).is_some_and(|l| l.ends != 0)))
                .collect();
            for (ip, used) in candidates {
                if lts <= 0 || (used && lts <= hold) {
                    continue;
                }
                let mut l = self.lease_or_virgin(ip);
                l.state = theirs_state;
                l.starts = now;
                l.tstp = now;
                l.atsfp = 0;
                self.table.put(l.clone());
                self.effects.push(Effect::Persist(Persist::Lease(l)));
                self.rels[peer].enqueue(ip);
                lts -= 1;
                given += 1;
            }
            info!(
                "balanced pool {} {}  total {}  free {}  backup {}  lts {}  max-misbal {}",
                self.config.pools[p].name,
                net,
                pool_size,
                self.table.free_count(p, Owner::Free),
                self.table.free_count(p, Owner::Backup),
                lts,
                thresh
            );
        }
        if want_poolreq {
            self.send_new(now, peer, MessageType::PoolReq, Options::default());
        }
        let rel = &mut self.rels[peer];
        rel.next_balance = Some(now + Time::from(rel.cfg.min_balance.max(1)));
        self.pump(now, peer);
        given
    }

    // ---------------------------------------------------------------- time and admin

    /// Timers: startup, link keepalive and timeout, RECOVER-WAIT, auto-partner-down, balancing.
    pub fn handle_failover_tick(&mut self, now: Time) {
        for peer in 0..self.rels.len() {
            let rel = &mut self.rels[peer];
            if rel.startup_until.is_some_and(|t| now >= t) {
                let to = states::on_comm_failure(rel.me);
                self.set_state(now, peer, to);
            }
            // Half-open connections that never completed the handshake.
            let stale: Vec<ConnId> = self.rels[peer]
                .conns
                .iter()
                .filter(|c| now >= c.opened + STARTUP_SECS)
                .map(|c| c.id)
                .filter(|c| self.rels[peer].link.as_ref().is_none_or(|l| l.conn != *c))
                .collect();
            for c in stale {
                info!("failover: link startup timeout");
                self.rels[peer].conns.retain(|x| x.id != c);
                self.close(peer, c);
            }
            let rel = &self.rels[peer];
            if let Some(link) = &rel.link {
                let timeout = Time::from(rel.cfg.max_response_delay);
                if now > link.last_recv + timeout {
                    warn!("timeout waiting for failover peer {}", rel.cfg.name);
                    let conn = link.conn;
                    self.close(peer, conn);
                    self.handle_peer_closed(now, peer, conn);
                } else if now
                    >= link.last_sent + Time::from((link.partner_receive_timer / 3).max(1))
                {
                    self.send_new(now, peer, MessageType::Contact, Options::default());
                }
            }
            let rel = &self.rels[peer];
            if rel.me == ServerState::RecoverWait && now >= rel.my_stos + Time::from(rel.mclt) {
                self.set_state(now, peer, ServerState::RecoverDone);
            }
            let rel = &self.rels[peer];
            if rel.me == ServerState::CommunicationsInterrupted
                && rel.auto_partner_down_at.is_some_and(|t| now >= t)
            {
                self.set_state(now, peer, ServerState::PartnerDown);
            }
            let rel = &self.rels[peer];
            if rel.me == ServerState::Normal
                && rel.link.is_some()
                && rel.next_balance.is_some_and(|t| now >= t)
            {
                self.balance(now, peer, true);
            }
            self.retry_unknown_to_partner(now, peer);
            self.pump(now, peer);
        }
    }

    /// Send again the updates the partner refused as unknown addresses, once per
    /// `UNKNOWN_RETRY_SECS` while linked, for those still in this relationship's pools.
    fn retry_unknown_to_partner(&mut self, now: Time, peer: usize) {
        let rel = &self.rels[peer];
        if rel.link.is_none() || rel.retry_unknown_at.is_none_or(|t| now < t) {
            return;
        }
        let ips = std::mem::take(&mut self.rels[peer].unknown_to_partner);
        self.rels[peer].retry_unknown_at = None;
        let ours: Vec<Ipv4Addr> = ips
            .into_iter()
            .filter(|ip| {
                self.table
                    .pool_of(*ip)
                    .is_some_and(|p| self.pool_rel[p] == Some(peer))
            })
            .collect();
        if ours.is_empty() {
            return;
        }
        info!(
            "failover peer {}: sending again {} bind updates the peer did not know the addresses of (is its configuration behind ours?)",
            self.rels[peer].name(),
            ours.len()
        );
        let rel = &mut self.rels[peer];
        for ip in ours {
            rel.enqueue(ip);
        }
    }

    /// `dhcpair partner-down NAME`: the operator vouches that the partner is down.
    pub fn handle_partner_down(&mut self, now: Time, peer: usize) -> Result<(), String> {
        let rel = self.rels.get(peer).ok_or("no such relationship")?;
        match rel.me {
            ServerState::PartnerDown => Ok(()),
            // Only a server that holds its bindings and has lost contact may take over the
            // partner's share (draft-12 §5.8). From RECOVER it would hand out addresses it
            // knows nothing about.
            ServerState::CommunicationsInterrupted | ServerState::ResolutionInterrupted if rel.link.is_none() => {
                self.set_state(now, peer, ServerState::PartnerDown);
                Ok(())
            }
            ServerState::CommunicationsInterrupted | ServerState::ResolutionInterrupted => {
                Err("the partner is connected; partner-down would risk duplicate addresses".into())
            }
            other => Err(format!(
                "partner-down is possible from communications-interrupted or resolution-interrupted, not from {}",
                other.isc_name()
            )),
        }
    }

    /// Graceful stop: tell the partner we pause (it moves to COMMUNICATIONS-INTERRUPTED and
    /// keeps serving), without persisting PAUSED, so a restart resumes the saved state.
    pub fn handle_shutdown(&mut self, now: Time) {
        for peer in 0..self.rels.len() {
            if self.rels[peer].link.is_some() {
                let o = Options {
                    server_state: Some(ServerState::Paused.to_wire()),
                    server_flags: Some(0),
                    stos: Some(wire_time(now)),
                    ..Options::default()
                };
                self.send_new(now, peer, MessageType::State, o);
                if let Some(conn) = self.rels[peer].link.as_ref().map(|l| l.conn) {
                    self.close(peer, conn);
                }
            }
        }
    }
}

fn conn_xid(rel: &Relationship, conn: ConnId) -> u32 {
    rel.conns.iter().find(|c| c.id == conn).map_or(0, |c| c.xid)
}

fn next_conn_xid(rel: &mut Relationship, conn: ConnId) -> u32 {
    match rel.conns.iter_mut().find(|c| c.id == conn) {
        Some(c) => {
            let x = c.xid;
            c.xid = c.xid.wrapping_add(1);
            x
        }
        None => 0,
    }
}

/// Reference §4.2: which binding changes from the partner we accept.
fn transition_allowed(
    rel: &Relationship,
    cur: &Lease,
    new: BindingState,
    tsfp: Time,
    incoming_cltt: Option<Time>,
    now: Time,
) -> Result<(), (u8, String)> {
    use BindingState as B;
    if cur.state == new {
        return Ok(());
    }
    let refuse = || {
        Err((
            2,
            format!(
                "{}: invalid state transition: {} to {}",
                cur.ip,
                cur.state.as_str(),
                new.as_str()
            ),
        ))
    };
    // Times are already on our clock (see `partner_time`): a running lease is refused.
    let ended = cur.ends <= now;
    // Draft-12 Fig. 7.1.3-1 time(1): a release or expiry must be newer than our binding.
    if cur.state == B::Active
        && matches!(new, B::Released | B::Expired)
        && incoming_cltt.is_some_and(|c| c < cur.cltt)
    {
        return Err((15, format!("{}: outdated binding information", cur.ip)));
    }
    if rel.me != ServerState::Normal {
        return match (cur.state, new) {
            (B::Active, B::Free | B::Backup) => refuse(),
            (B::Active, B::Expired) if !ended => refuse(),
            _ => Ok(()),
        };
    }
    match cur.state {
        B::Free | B::Abandoned | B::Released => Ok(()),
        B::Backup => Ok(()),
        B::Active if rel.primary() => match new {
            B::Released | B::Abandoned => Ok(()),
            _ => refuse(),
        },
        B::Active => match new {
            B::Released | B::Abandoned | B::Reset | B::Active => Ok(()),
            B::Expired if ended => Ok(()),
            // Never free a lease we still know to be running (Fig. 7.1.3-1 time(2)).
            B::Free | B::Backup if tsfp <= now && ended => Ok(()),
            _ => refuse(),
        },
        B::Expired | B::Reset => match new {
            B::Free | B::Backup if tsfp > now => refuse(),
            _ => Ok(()),
        },
    }
}

/// A BNDUPD for one lease, fields as ISC sends them (reference §3.2).
fn bndupd_options(l: &Lease) -> Options {
    let abandoned = l.state == BindingState::Abandoned;
    let client_id = match &l.client {
        Some(ClientKey::ClientId(id)) if !abandoned => Some(id.clone()),
        _ => None,
    };
    let chaddr = if abandoned || l.chaddr.is_empty() {
        None
    } else {
        let mut c = Vec::with_capacity(l.chaddr.len() + 1);
        c.push(l.htype);
        c.extend_from_slice(&l.chaddr);
        Some(c)
    };
    Options {
        assigned_ip: Some(l.ip),
        binding_status: Some(l.state as u8),
        client_id,
        chaddr,
        lease_expiry: Some(wire_time(l.ends)),
        potential_expiry: Some(wire_time(l.tstp)),
        stos: Some(wire_time(l.starts)),
        cltt: (l.cltt != 0).then(|| wire_time(l.cltt)),
        ..Options::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_lease_lasts_mclt_and_later_ones_are_bounded_by_what_the_peer_acked() {
        let now = 1_000_000;
        // Seed 004 / lab: MCLT 300, default lease 3600: first lease 300 s, tstp now+3600+150.
        assert_eq!(mclt_lease_time(now, 3600, 0, 300), (300, now + 3600 + 150));
        // After the partner acked now+3750, a renewal at T1 (half of 300 s later) gets 3600.
        let later = now + 150;
        assert_eq!(mclt_lease_time(later, 3600, now + 3750, 300).0, 3600);
        // Partner acked only a little: bounded by tsfp + MCLT.
        assert_eq!(mclt_lease_time(now, 3600, now + 100, 300).0, 400);
        // Short leases are not limited.
        assert_eq!(mclt_lease_time(now, 200, 0, 300).0, 200);
    }
}
