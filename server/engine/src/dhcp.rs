//! DHCP decisions (RFC 2131 §4.3): one request in, one [`Decision`] out.

use std::net::Ipv4Addr;

use dhcpair_config::raw::code;
use dhcpair_config::{ClientFacts, Config, ReservationKey};
use dhcpair_wire::v4::{
    DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode, UnknownOption,
};
use dhcpair_wire::{relay, ReplyShape};

use crate::failover::{mclt_lease_time, Effect, Relationship};
use crate::table::{Owner, Table};
use dhcpair_model::{BindingState, ClientKey, Lease, RelationshipRecord, Time};

/// A lease that never ends (BOOTP, RFC 2131 §4.3 "infinite").
pub const FOREVER: Time = i64::MAX as Time;

/// Where the arrival interface is: its IPv4 addresses (the shell reads them at start).
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    pub interface_addrs: &'a [Ipv4Addr],
}

/// Where a reply goes (RFC 2131 §4.1). The shell maps these to socket addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To the relay agent's server port.
    Relay(Ipv4Addr),
    /// Unicast to the client's address, client port.
    Client(Ipv4Addr),
    /// Limited broadcast on the arrival interface, client port.
    Broadcast,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub msg: Message,
    pub dest: Destination,
    /// Option 82 exactly as received, to be echoed last (RFC 3046 §2.2).
    pub relay_agent_info: Option<Vec<u8>>,
    /// The option order and size limit the client asked for.
    pub shape: ReplyShape,
}

impl Reply {
    /// The reply's bytes, as the shell sends them and the simulator delivers them.
    pub fn encode(&self) -> Result<Vec<u8>, dhcpair_wire::EncodeError> {
        dhcpair_wire::encode_reply(&self.msg, self.relay_agent_info.as_deref(), &self.shape)
    }
}

/// Why a packet got no answer. Labels for metrics come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No configured subnet for the link (or relay) the packet came from.
    NoSubnet,
    /// The client selected another server, or a message carries another server's id.
    OtherServer,
    /// Every permitted pool on the link is exhausted.
    NoFreeAddress,
    /// A permit list refuses the client everywhere on the link.
    NotPermitted,
    /// A REQUEST without an address to confirm, or other missing fields.
    Malformed,
    /// A message type servers do not receive (OFFER, ACK, ...).
    UnexpectedType,
    /// Non-authoritative: a wrong request is ignored rather than NAKed.
    NotAuthoritative,
    /// RELEASE/DECLINE for an address the client does not hold.
    NoMatchingLease,
    /// Failover: this server does not answer in its current state (reference §5.1).
    NotResponding,
    /// Failover NORMAL: the RFC 3074 hash gives this client to the partner.
    LoadBalanced,
    /// Failover: the address is the partner's free lease, or waits for the partner's ack.
    OwnedByPeer,
    /// INIT-REBOOT from a client this server has no record of (RFC 2131 §4.3.2: silence).
    UnknownClient,
    /// The client's reserved address is still leased to another client (a reservation added
    /// to a running or restarted server) until that binding ends or is released.
    ReservedInUse,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoSubnet => "no_subnet",
            DropReason::OtherServer => "other_server",
            DropReason::NoFreeAddress => "no_free_address",
            DropReason::NotPermitted => "not_permitted",
            DropReason::Malformed => "malformed",
            DropReason::UnexpectedType => "unexpected_type",
            DropReason::NotAuthoritative => "not_authoritative",
            DropReason::NoMatchingLease => "no_matching_lease",
            DropReason::NotResponding => "not_responding",
            DropReason::LoadBalanced => "load_balanced",
            DropReason::OwnedByPeer => "owned_by_peer",
            DropReason::ReservedInUse => "reserved_in_use",
            DropReason::UnknownClient => "unknown_client",
        }
    }
}

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Offer,
    Ack,
    Nak,
    InformAck,
    Released,
    Declined,
    BootpReply,
    Dropped(DropReason),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Offer => "offer",
            Outcome::Ack => "ack",
            Outcome::Nak => "nak",
            Outcome::InformAck => "inform_ack",
            Outcome::Released => "released",
            Outcome::Declined => "declined",
            Outcome::BootpReply => "bootp_reply",
            Outcome::Dropped(r) => r.as_str(),
        }
    }
}

/// The engine's answer to one request. The shell persists `persist` (if any) and only then
/// sends `reply`: an ACK never leaves before its lease is durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reply: Option<Reply>,
    pub persist: Option<Lease>,
}

impl Decision {
    fn drop(r: DropReason) -> Decision {
        Decision {
            outcome: Outcome::Dropped(r),
            reply: None,
            persist: None,
        }
    }
}

/// Why a requested address cannot be confirmed (becomes a NAK when authoritative).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    WrongNetwork,
    NotOurs,
    TakenByAnother,
    ReservedForAnother,
    NotPermitted,
    Abandoned,
    /// Failover: not ours to give (partner's free lease, or in transition). Silent, as ISC.
    OwnedByPeer,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::WrongNetwork => "address is not on this network",
            Refusal::NotOurs => "address is not in any pool",
            Refusal::TakenByAnother => "address is leased to another client",
            Refusal::ReservedForAnother => "address is reserved for another client",
            Refusal::NotPermitted => "client is not permitted in this pool",
            Refusal::Abandoned => "address is abandoned",
            Refusal::OwnedByPeer => "lease owned by peer",
        }
    }
}

/// Facts derived once per request.
struct Ctx<'a> {
    msg: &'a Message,
    client: ClientKey,
    /// Pools on the client's network (its shared network), in config order.
    pools: Vec<usize>,
    server_id: Ipv4Addr,
    relay_agent_info: Option<Vec<u8>>,
    /// The client's reservation, if any: (pool, index).
    reservation: Option<(usize, usize)>,
    /// The failover relationship serving this network, if any.
    rel: Option<usize>,
    /// The option order and size the client asked for, read once per request.
    shape: ReplyShape,
}

impl Ctx<'_> {
    fn reply(&self, msg: Message, dest: Destination) -> Reply {
        Reply {
            msg,
            dest,
            relay_agent_info: self.relay_agent_info.clone(),
            shape: self.shape.clone(),
        }
    }
}

/// Option 61 if present and non-empty, else hardware type + chaddr (RFC 2131 §4.2).
pub fn client_key(msg: &Message) -> ClientKey {
    if let Some(DhcpOption::ClientIdentifier(id)) = msg.opts().get(OptionCode::ClientIdentifier) {
        if !id.is_empty() {
            return ClientKey::ClientId(id.clone());
        }
    }
    ClientKey::Hardware {
        htype: u8::from(msg.htype()),
        chaddr: msg.chaddr().to_vec(),
    }
}

/// Is `l` this client's binding? Client identifiers decide when both sides have one;
/// otherwise the hardware address does (as Kea's `belongsToClient`; ISC matches a lease
/// without an identifier by hardware address too). So a client that first came without
/// option 61 and now sends one, or releases without it, is still recognised.
fn belongs_to(l: &Lease, cx: &Ctx) -> bool {
    match (&l.client, &cx.client) {
        (Some(ClientKey::ClientId(a)), ClientKey::ClientId(b)) => a == b,
        (Some(c), k) if c == k => true,
        _ => {
            !l.chaddr.is_empty()
                && l.htype == u8::from(cx.msg.htype())
                && l.chaddr == cx.msg.chaddr()
        }
    }
}

fn requested_ip(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) if !ip.is_unspecified() => Some(*ip),
        _ => None,
    }
}

fn server_identifier(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    }
}

fn nonzero(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    (!ip.is_unspecified()).then_some(ip)
}

/// The engine's state: config, lease table, failover relationships, queued effects.
#[derive(Debug)]
pub struct Dhcp {
    pub(crate) config: Config,
    pub(crate) table: Table,
    pub(crate) rels: Vec<Relationship>,
    /// Pool index -> relationship index.
    pub(crate) pool_rel: Vec<Option<usize>>,
    pub(crate) effects: Vec<Effect>,
}

impl Dhcp {
    pub fn new(config: Config, rows: Vec<Lease>, saved: &[RelationshipRecord], now: Time) -> Dhcp {
        let table = Table::new(&config, rows);
        let rels: Vec<Relationship> = config
            .peers
            .iter()
            .map(|peer| {
                Relationship::new(
                    peer.clone(),
                    saved.iter().find(|r| r.name == peer.name),
                    now,
                )
            })
            .collect();
        let mut d = Dhcp {
            config,
            table,
            rels,
            pool_rel: Vec::new(),
            effects: Vec::new(),
        };
        d.assign_pools();
        // A relationship without saved state starts in RECOVER: persist that right away.
        for (i, peer) in d.config.peers.clone().iter().enumerate() {
            if !saved.iter().any(|r| r.name == peer.name) {
                d.effects
                    .push(Effect::Persist(crate::failover::Persist::Relationship(
                        dhcpair_model::RelationshipRecord {
                            name: peer.name.clone(),
                            my_state: d.rels[i].state().to_wire(),
                            partner_state: 0,
                            stos: now,
                            mclt: d.rels[i].mclt(),
                        },
                    )));
            }
        }
        d
    }

    /// Owners whose free leases this server may allocate in `pool` (draft-12 §5.4, reference
    /// §5.1): its own free state; in PARTNER-DOWN, once MCLT has passed, the partner's too.
    /// The relationship of each pool (`pool_rel`) and the pools of each relationship, from
    /// the configuration (at start and after a reload).
    pub(crate) fn assign_pools(&mut self) {
        let config = &self.config;
        self.pool_rel = config
            .pools
            .iter()
            .map(|p| {
                p.failover_peer
                    .as_deref()
                    .and_then(|n| config.peer_index(n))
            })
            .collect();
        for rel in &mut self.rels {
            rel.pools.clear();
        }
        for (p, r) in self.pool_rel.iter().enumerate() {
            if let Some(rel) = r.and_then(|r| self.rels.get_mut(r)) {
                rel.pools.push(p);
            }
        }
    }

    fn owners(&self, pool: usize, now: Time) -> Vec<Owner> {
        match self.pool_rel[pool] {
            None => vec![Owner::Free],
            Some(r) => {
                let rel = &self.rels[r];
                let mut v = vec![rel.my_owner()];
                if rel.state() == dhcpair_wire::failover::ServerState::PartnerDown
                    && now > rel.my_stos() + Time::from(rel.mclt())
                {
                    v.push(rel.peer_owner());
                }
                v
            }
        }
    }

    fn partner_down_in(&self, pool: usize) -> bool {
        self.pool_rel[pool].is_some_and(|r| {
            self.rels[r].state() == dhcpair_wire::failover::ServerState::PartnerDown
        })
    }

    /// In PARTNER-DOWN an address with a history may be reused once neither side can have
    /// promised it beyond what we know: MCLT after the later of its potential expirations
    /// (reference §5.1; draft-12 §5.2.1). Never-used addresses of our own are free at once.
    fn partner_down_reusable(&self, pool: usize, ip: Ipv4Addr, now: Time) -> bool {
        let Some(r) = self.pool_rel[pool] else {
            return true;
        };
        let mclt = Time::from(self.rels[r].mclt());
        match self.table.leases.get(&ip) {
            None => true,
            Some(l) => l.tstp.max(l.tsfp).max(l.ends).saturating_add(mclt) <= now,
        }
    }

    /// RFC 2131 §4.3.1 / ISC `locate_network`: the relay's address if relayed, the client's
    /// address if it has one in a configured subnet, else the arrival interface's subnets.
    /// The pools of the client's network: the one named by the relay's link selection
    /// sub-option (RFC 3527), else giaddr's, else ciaddr's or the arrival interface's.
    fn network_pools(
        &self,
        msg: &Message,
        arrival: &Arrival,
        link_selection: Option<Ipv4Addr>,
    ) -> Vec<usize> {
        let pools = &self.config.pools;
        let find = |ip: Ipv4Addr| pools.iter().position(|p| p.subnet.contains(&ip));
        let anchor = if let Some(l) = link_selection.filter(|_| nonzero(msg.giaddr()).is_some()) {
            find(l)
        } else if let Some(g) = nonzero(msg.giaddr()) {
            find(g)
        } else {
            nonzero(msg.ciaddr())
                .and_then(find)
                .or_else(|| arrival.interface_addrs.iter().find_map(|a| find(*a)))
        };
        let Some(anchor) = anchor else {
            return Vec::new();
        };
        let link = &pools[anchor].shared_network;
        (0..pools.len())
            .filter(|i| &pools[*i].shared_network == link)
            .collect()
    }

    fn reservation_of(&self, msg: &Message, client: &ClientKey) -> Option<(usize, usize)> {
        if let ClientKey::ClientId(id) = client {
            if let Some(r) = self
                .table
                .reserved_key
                .get(&ReservationKey::ClientId(id.clone()))
            {
                return Some(*r);
            }
        }
        if msg.htype() == HType::Eth && msg.chaddr().len() == 6 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(msg.chaddr());
            return self
                .table
                .reserved_key
                .get(&ReservationKey::HardwareAddress(mac))
                .copied();
        }
        None
    }

    /// Handle one decoded request that arrived on a server port.
    pub fn handle_request(
        &mut self,
        now: Time,
        arrival: &Arrival,
        msg: &Message,
        relay_agent_info: Option<Vec<u8>>,
    ) -> Decision {
        let relay_addr = |sub| {
            relay_agent_info
                .as_deref()
                .and_then(|r| dhcpair_wire::relay_sub_option_addr(r, sub))
        };
        let pools = self.network_pools(msg, arrival, relay_addr(relay::LINK_SELECTION));
        if pools.is_empty() {
            return Decision::drop(DropReason::NoSubnet);
        }
        let client = client_key(msg);
        let reservation = self.reservation_of(msg, &client);
        // RFC 5107: behind a relay that overrides it, the client knows us by the relay's
        // address; replies carry it and a REQUEST naming it is ours.
        let server_id = relay_addr(relay::SERVER_ID_OVERRIDE)
            .filter(|_| nonzero(msg.giaddr()).is_some())
            .or(self.config.server.server_id)
            .unwrap_or_else(|| {
                // The interface address inside the client's network, else the first one.
                let first = arrival
                    .interface_addrs
                    .first()
                    .copied()
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                arrival
                    .interface_addrs
                    .iter()
                    .copied()
                    .find(|a| {
                        pools
                            .iter()
                            .any(|p| self.config.pools[*p].subnet.contains(a))
                    })
                    .unwrap_or(first)
            });
        let rel = pools.iter().find_map(|p| self.pool_rel[*p]);
        if let Some(r) = rel {
            if !self.rels[r].responds() {
                return Decision::drop(DropReason::NotResponding);
            }
        }
        let cx = Ctx {
            msg,
            client,
            pools,
            server_id,
            relay_agent_info,
            reservation,
            rel,
            shape: ReplyShape::of(msg),
        };
        match msg.opts().msg_type() {
            None => self.handle_bootp(now, &cx),
            Some(MessageType::Discover) => self.handle_discover(now, &cx),
            Some(MessageType::Request) => self.handle_dhcp_request(now, &cx),
            Some(MessageType::Decline) => self.handle_decline(now, &cx),
            Some(MessageType::Release) => self.handle_release(now, &cx),
            Some(MessageType::Inform) => self.handle_inform(&cx),
            Some(_) => Decision::drop(DropReason::UnexpectedType),
        }
    }

    fn facts(&self, cx: &Ctx, bootp: bool) -> ClientFacts {
        ClientFacts {
            known: cx.reservation.is_some(),
            bootp,
        }
    }

    fn permitted(&self, pool: usize, facts: ClientFacts) -> bool {
        self.config.pools[pool].permits.permits(facts)
    }

    /// Is `ip` usable by this client right now? Ok(pool index of the address).
    fn check_address(
        &self,
        now: Time,
        cx: &Ctx,
        ip: Ipv4Addr,
        bootp: bool,
    ) -> Result<usize, Refusal> {
        let pools = &self.config.pools;
        if !cx.pools.iter().any(|p| pools[*p].subnet.contains(&ip)) {
            return Err(Refusal::WrongNetwork);
        }
        if let Some((rp, ri)) = cx.reservation {
            let res = &pools[rp].reservations[ri];
            if let Some(fixed) = res.ip.filter(|_| cx.pools.contains(&rp)) {
                return if fixed != ip {
                    Err(Refusal::ReservedForAnother)
                } else if self.reserved_held_by_another(now, ip, &cx.client) {
                    Err(Refusal::TakenByAnother)
                } else {
                    Ok(rp)
                };
            }
        }
        if self.table.reserved_ip.contains_key(&ip) {
            return Err(Refusal::ReservedForAnother);
        }
        let pool = match self.table.pool_of(ip) {
            Some(p) if cx.pools.contains(&p) => p,
            _ => return Err(Refusal::NotOurs),
        };
        let failover = self.pool_rel[pool].is_some();
        if bootp && failover {
            // A BOOTP lease never ends, and an infinite lease cannot be replicated under the
            // MCLT rule: dynamic BOOTP is never served from a failover pool (ISC 3.0 refused such
            // pools at start; later versions accept the configuration).
            return Err(Refusal::NotPermitted);
        }
        let lease = self.table.leases.get(&ip);
        let mine = lease.is_some_and(|l| belongs_to(l, cx));
        match lease.map(|l| (l.state, l)) {
            Some((BindingState::Abandoned, l)) if failover || l.ends > now => {
                return Err(Refusal::Abandoned)
            }
            Some((BindingState::Active, l)) if l.ends > now && !mine => {
                return Err(Refusal::TakenByAnother)
            }
            // Failover: an ACTIVE lease past its end is not free until its expiry has been
            // agreed with the partner (reference §4.2); only its own client may renew it.
            Some((BindingState::Active, _)) if failover && !mine => {
                return Err(Refusal::OwnedByPeer)
            }
            // Failover: an address whose partner has not acked its release/expiry is in
            // transition. Not even its last client may have it back: the partner may already
            // hold it as FREE and have given it away (the simulator found that case).
            Some((BindingState::Expired | BindingState::Released | BindingState::Reset, _))
                if failover =>
            {
                return Err(Refusal::OwnedByPeer)
            }
            Some((BindingState::Backup, _)) if !failover => {}
            Some((s @ (BindingState::Free | BindingState::Backup), _))
                if failover
                    && !mine
                    && self.partner_down_in(pool)
                    && self.pool_rel[pool].is_some_and(|r| {
                        let peer_state = if self.rels[r].peer_owner() == Owner::Free {
                            BindingState::Free
                        } else {
                            BindingState::Backup
                        };
                        s == peer_state
                    })
                    && !self.partner_down_reusable(pool, ip, now) =>
            {
                return Err(Refusal::OwnedByPeer)
            }
            Some((s @ (BindingState::Free | BindingState::Backup), _)) => {
                let owner = if s == BindingState::Free {
                    Owner::Free
                } else {
                    Owner::Backup
                };
                if !self.owners(pool, now).contains(&owner) {
                    return Err(Refusal::OwnedByPeer);
                }
            }
            None if !self.owners(pool, now).contains(&Owner::Free) => {
                return Err(Refusal::OwnedByPeer)
            }
            _ => {}
        }
        if let Some(o) = self.table.offers.get(&ip) {
            if o.client != cx.client && o.expires > now {
                return Err(Refusal::TakenByAnother);
            }
        }
        if !self.permitted(pool, self.facts(cx, bootp)) {
            return Err(Refusal::NotPermitted);
        }
        Ok(pool)
    }

    /// RFC 2131 §4.3.1 address choice: reservation, the client's current or previous
    /// binding, its pending offer, the address it asks for, then a free one.
    fn choose_address(
        &self,
        now: Time,
        cx: &Ctx,
        bootp: bool,
    ) -> Result<(Ipv4Addr, usize), DropReason> {
        if let Some((rp, ri)) = cx.reservation {
            if let Some(ip) = self.config.pools[rp].reservations[ri]
                .ip
                .filter(|_| cx.pools.contains(&rp))
            {
                if self.reserved_held_by_another(now, ip, &cx.client) {
                    return Err(DropReason::ReservedInUse);
                }
                return Ok((ip, rp));
            }
        }
        let candidates = [
            self.table.by_client.get(&cx.client).copied(),
            self.table.offer_by_client.get(&cx.client).copied(),
            requested_ip(cx.msg),
        ];
        for ip in candidates.into_iter().flatten() {
            if let Ok(p) = self.check_address(now, cx, ip, bootp) {
                return Ok((ip, p));
            }
        }
        let facts = self.facts(cx, bootp);
        let mut any_permitted = false;
        for &p in &cx.pools {
            if !self.permitted(p, facts) || (bootp && self.pool_rel[p].is_some()) {
                continue;
            }
            any_permitted = true;
            for owner in self.owners(p, now) {
                let peers = self.pool_rel[p].is_some_and(|r| owner == self.rels[r].peer_owner());
                let pick = if peers {
                    // PARTNER-DOWN, the partner's free leases: only those it cannot have
                    // handed out since we lost it (ISC: max(stos, tsfp) + MCLT); a scan, in an
                    // emergency only.
                    self.table.pools[p].sets[owner as usize]
                        .iter()
                        .find(|ip| self.partner_down_reusable(p, *ip, now))
                } else {
                    self.table
                        .pick_free(p, owner)
                        .or_else(|| self.table.pick_ended(p, now))
                };
                if let Some(ip) = pick {
                    return Ok((ip, p));
                }
            }
        }
        Err(if any_permitted {
            DropReason::NoFreeAddress
        } else {
            DropReason::NotPermitted
        })
    }

    /// Lease time per config and request; with failover, bounded by the MCLT rule.
    /// Returns (seconds to give, potential expiration for the partner or 0).
    ///
    /// The partner's acknowledged potential expiration counts only for the binding it was
    /// acknowledged for: a new client gets at most MCLT, whatever an earlier binding of the
    /// address was promised (the simulator's seed 97: a stale tsfp let a server cut off from its
    /// partner hand out a lease the partner no longer knew it had to honour).
    fn lease_time(&self, now: Time, cx: &Ctx, pool: usize, ip: Ipv4Addr) -> (u32, Time) {
        let msg = cx.msg;
        let t = self.config.pools[pool].lease_times;
        let desired = match msg.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(req)) => (*req).clamp(t.min, t.max),
            _ => t.default,
        };
        match self.pool_rel[pool] {
            None => (desired, 0),
            Some(r) => {
                let tsfp = self
                    .table
                    .leases
                    .get(&ip)
                    .filter(|l| {
                        l.state == BindingState::Active && l.client.as_ref() == Some(&cx.client)
                    })
                    .map_or(0, |l| l.tsfp);
                let (give, tstp) = mclt_lease_time(
                    now,
                    Time::from(desired),
                    tsfp,
                    Time::from(self.rels[r].mclt()),
                );
                (u32::try_from(give).unwrap_or(desired), tstp)
            }
        }
    }

    /// NORMAL with load balancing: is this DISCOVER the partner's? (RFC 3074, reference §7.3)
    fn load_balanced_away(&self, cx: &Ctx) -> bool {
        let Some(r) = cx.rel else { return false };
        let rel = &self.rels[r];
        let Some((lbms, hba)) = rel.load_balancing() else {
            return false;
        };
        if u32::from(cx.msg.secs()) > lbms {
            return false;
        }
        let id = match cx.msg.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) if !id.is_empty() => Some(id.as_slice()),
            _ => None,
        };
        let b = dhcpair_wire::hash::bucket(dhcpair_wire::hash::lb_key(id, cx.msg.chaddr()));
        let primary_serves = hba[usize::from(b >> 3)] & (1 << (b & 7)) != 0;
        let ours = primary_serves == (rel.my_owner() == Owner::Free);
        if ours {
            return false;
        }
        // "cancel load balance to peer - no free leases": answer if the partner has none.
        let peer_has_free = cx
            .pools
            .iter()
            .any(|p| self.table.free_count(*p, rel.peer_owner()) > 0);
        peer_has_free
    }

    fn handle_discover(&mut self, now: Time, cx: &Ctx) -> Decision {
        if self.load_balanced_away(cx) {
            return Decision::drop(DropReason::LoadBalanced);
        }
        let (ip, pool) = match self.choose_address(now, cx, false) {
            Ok(x) => x,
            Err(r) => return Decision::drop(r),
        };
        let hold = Time::from(self.config.server.offer_hold_time);
        self.table.hold_offer(ip, cx.client.clone(), now + hold);
        let (secs, _) = self.lease_time(now, cx, pool, ip);
        let reply = self.lease_reply(cx, MessageType::Offer, ip, pool, Some(secs));
        Decision {
            outcome: Outcome::Offer,
            reply: Some(reply),
            persist: None,
        }
    }

    /// REQUEST in SELECTING, INIT-REBOOT, RENEWING or REBINDING (RFC 2131 §4.3.2).
    fn handle_dhcp_request(&mut self, now: Time, cx: &Ctx) -> Decision {
        if let Some(sid) = server_identifier(cx.msg) {
            if sid != cx.server_id {
                // SELECTING another server's offer: ours is free again.
                self.table.drop_offer_of(&cx.client);
                return Decision::drop(DropReason::OtherServer);
            }
        }
        let Some(ip) = requested_ip(cx.msg).or_else(|| nonzero(cx.msg.ciaddr())) else {
            return Decision::drop(DropReason::Malformed);
        };
        // INIT-REBOOT: no server id, no ciaddr (RFC 2131 §4.3.2).
        let init_reboot = server_identifier(cx.msg).is_none() && nonzero(cx.msg.ciaddr()).is_none();
        let checked = self.check_address(now, cx, ip, false);
        if init_reboot
            && matches!(
                checked,
                Ok(_) | Err(Refusal::OwnedByPeer | Refusal::NotOurs)
            )
        {
            // "If the DHCP server has no record of this client, then it MUST remain silent."
            // That is for an address this server has nothing against (free, or not in its
            // pools): one it knows to be wrong for the client (another network, another
            // client's lease or reservation, abandoned) is NAKed below when authoritative,
            // as Kea and ISC both do. A client this server knows goes through the usual
            // check (in failover, its newest binding may still be on its way from the
            // partner, so "not the address we last saw" is no reason to NAK it).
            if !self.has_record_of(cx, ip) {
                return Decision::drop(DropReason::UnknownClient);
            }
        }
        let pool = match checked {
            Ok(p) => p,
            Err(Refusal::OwnedByPeer) => return Decision::drop(DropReason::OwnedByPeer),
            // RENEWING/REBINDING (ciaddr, no requested address) from off the network, not
            // through a relay: the server cannot tell where the client is (RFC 2131 §4.3.2
            // only asks it to check ciaddr), so it stays silent as Kea and ISC do; the
            // client falls back to INIT at the lease's end.
            Err(Refusal::WrongNetwork)
                if requested_ip(cx.msg).is_none() && nonzero(cx.msg.giaddr()).is_none() =>
            {
                return Decision::drop(DropReason::NoSubnet)
            }
            Err(refusal) => return self.nak(cx, refusal),
        };
        let (secs, tstp) = self.lease_time(now, cx, pool, ip);
        let lease = self.bind(now, cx, ip, pool, Time::from(secs), tstp);
        let reply = self.lease_reply(cx, MessageType::Ack, ip, pool, Some(secs));
        Decision {
            outcome: Outcome::Ack,
            reply: Some(reply),
            persist: Some(lease),
        }
    }

    /// Does this server have a record of the client asking for `ip`: a host entry, a
    /// binding in the table under its identity, or the row at `ip` being its own (whatever
    /// its state, and also under another form of identity: say, leased before it sent
    /// option 61)?
    fn has_record_of(&self, cx: &Ctx, ip: Ipv4Addr) -> bool {
        cx.reservation.is_some()
            || self.table.by_client.contains_key(&cx.client)
            || self
                .table
                .leases
                .get(&ip)
                .is_some_and(|l| belongs_to(l, cx))
    }

    /// Record an active binding in the table and return the row to persist. `tstp` is the
    /// potential expiration for the failover partner (0 without failover).
    fn bind(
        &mut self,
        now: Time,
        cx: &Ctx,
        ip: Ipv4Addr,
        pool: usize,
        secs: Time,
        tstp: Time,
    ) -> Lease {
        self.table.drop_offer_of(&cx.client);
        let prev = self.table.leases.get(&ip);
        let same_client =
            prev.is_some_and(|l| l.client.as_ref() == Some(&cx.client) && l.is_active_at(now));
        let starts = if same_client {
            prev.map_or(now, |l| l.starts)
        } else {
            now
        };
        let hostname = match cx.msg.opts().get(OptionCode::Hostname) {
            Some(DhcpOption::Hostname(h)) => Some(h.clone()),
            _ => None,
        };
        // What the partner acknowledged belongs to the binding it was acknowledged for.
        let tsfp = if same_client {
            prev.map_or(0, |l| l.tsfp)
        } else {
            0
        };
        let lease = Lease {
            ip,
            state: BindingState::Active,
            client: Some(cx.client.clone()),
            htype: u8::from(cx.msg.htype()),
            chaddr: cx.msg.chaddr().to_vec(),
            hostname,
            pool: self.config.pools[pool].name.clone(),
            starts,
            ends: now.saturating_add(secs).min(FOREVER),
            tstp,
            tsfp,
            atsfp: 0,
            cltt: now,
        };
        self.table.put(lease.clone());
        self.lease_changed(now, ip);
        lease
    }

    fn nak(&self, cx: &Ctx, refusal: Refusal) -> Decision {
        if !self.config.server.authoritative {
            return Decision::drop(DropReason::NotAuthoritative);
        }
        let mut m = self.reply_header(cx, MessageType::Nak);
        m.opts_mut()
            .insert(DhcpOption::Message(refusal.message().to_string()));
        // RFC 2131 §4.1: NAKs are broadcast when there is no relay; relays get the broadcast bit.
        let dest = match nonzero(cx.msg.giaddr()) {
            Some(g) => {
                m.set_flags(Flags::default().set_broadcast());
                Destination::Relay(g)
            }
            None => Destination::Broadcast,
        };
        Decision {
            outcome: Outcome::Nak,
            reply: Some(cx.reply(m, dest)),
            persist: None,
        }
    }

    fn handle_release(&mut self, now: Time, cx: &Ctx) -> Decision {
        let ip = cx.msg.ciaddr();
        match self.table.leases.get(&ip) {
            Some(l) if belongs_to(l, cx) && l.is_active_at(now) => {
                let mut l = l.clone();
                l.state = BindingState::Released;
                l.ends = now;
                l.cltt = now;
                l.tstp = now;
                l.atsfp = 0;
                self.table.put(l.clone());
                self.lease_changed(now, ip);
                Decision {
                    outcome: Outcome::Released,
                    reply: None,
                    persist: Some(l),
                }
            }
            _ => Decision::drop(DropReason::NoMatchingLease),
        }
    }

    /// DECLINE (RFC 2131 §4.3.3): the address is in use by someone unknown; keep it out of
    /// use for the probation period.
    fn handle_decline(&mut self, now: Time, cx: &Ctx) -> Decision {
        if server_identifier(cx.msg).is_some_and(|s| s != cx.server_id) {
            return Decision::drop(DropReason::OtherServer);
        }
        let Some(ip) = requested_ip(cx.msg) else {
            return Decision::drop(DropReason::Malformed);
        };
        match self.table.leases.get(&ip) {
            Some(l) if belongs_to(l, cx) && l.state == BindingState::Active => {
                let mut l = l.clone();
                l.state = BindingState::Abandoned;
                l.ends = now + Time::from(self.config.server.decline_probation_period);
                l.cltt = now;
                l.tstp = now;
                l.atsfp = 0;
                // An abandoned address belongs to no client (draft-12; ISC refuses otherwise).
                l.client = None;
                l.chaddr.clear();
                l.htype = 0;
                self.table.put(l.clone());
                self.lease_changed(now, ip);
                Decision {
                    outcome: Outcome::Declined,
                    reply: None,
                    persist: Some(l),
                }
            }
            _ => Decision::drop(DropReason::NoMatchingLease),
        }
    }

    /// INFORM (RFC 2131 §4.3.5): configuration only, no lease, no lease time.
    fn handle_inform(&self, cx: &Ctx) -> Decision {
        let pool = cx
            .reservation
            .map(|(p, _)| p)
            .filter(|p| cx.pools.contains(p))
            .unwrap_or_else(|| {
                let ci = cx.msg.ciaddr();
                cx.pools
                    .iter()
                    .copied()
                    .find(|p| self.config.pools[*p].subnet.contains(&ci))
                    .unwrap_or(cx.pools[0])
            });
        let mut m = self.reply_header(cx, MessageType::Ack);
        m.set_ciaddr(cx.msg.ciaddr());
        self.add_options(cx, &mut m, pool);
        // RFC 2131 §4.3.5: the ACK goes straight to ciaddr, also when a relay forwarded the
        // INFORM. Without ciaddr a relay can still broadcast it on the client's link; without
        // either there is nowhere correct to send it (Kea and ISC stay silent too).
        let dest = match (nonzero(cx.msg.ciaddr()), nonzero(cx.msg.giaddr())) {
            (Some(c), _) => Destination::Client(c),
            (None, Some(g)) => {
                m.set_flags(Flags::default().set_broadcast());
                Destination::Relay(g)
            }
            (None, None) => return Decision::drop(DropReason::Malformed),
        };
        Decision {
            outcome: Outcome::InformAck,
            reply: Some(cx.reply(m, dest)),
            persist: None,
        }
    }

    /// BOOTP (RFC 951, RFC 1497): reservations always; dynamic addresses only where a pool
    /// allows `dynamicBootpClients`, with an infinite lease.
    fn handle_bootp(&mut self, now: Time, cx: &Ctx) -> Decision {
        if self.load_balanced_away(cx) {
            return Decision::drop(DropReason::LoadBalanced);
        }
        let (ip, pool) = match self.choose_address(now, cx, true) {
            Ok(x) => x,
            Err(r) => return Decision::drop(r),
        };
        let tstp = if self.pool_rel[pool].is_some() {
            Time::from(0x7FFF_FFFFu32)
        } else {
            0
        };
        let lease = self.bind(now, cx, ip, pool, FOREVER, tstp);
        let mut m = self.reply_header(cx, MessageType::Ack);
        m.opts_mut().remove(OptionCode::MessageType);
        m.opts_mut().remove(OptionCode::ServerIdentifier);
        m.set_yiaddr(ip);
        self.add_options(cx, &mut m, pool);
        let dest = self.lease_destination(cx);
        Decision {
            outcome: Outcome::BootpReply,
            reply: Some(cx.reply(m, dest)),
            persist: Some(lease),
        }
    }

    fn reply_header(&self, cx: &Ctx, kind: MessageType) -> Message {
        let req = cx.msg;
        let mut m = Message::default();
        m.set_opcode(Opcode::BootReply)
            .set_htype(req.htype())
            .set_chaddr(req.chaddr())
            .set_xid(req.xid())
            .set_flags(req.flags())
            .set_giaddr(req.giaddr());
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(cx.server_id));
        // RFC 6842: the client identifier comes back in OFFER, ACK and NAK.
        if let Some(id @ DhcpOption::ClientIdentifier(_)) =
            req.opts().get(OptionCode::ClientIdentifier)
        {
            m.opts_mut().insert(id.clone());
        }
        m
    }

    /// RFC 2131 §4.1 for OFFER and ACK.
    fn lease_destination(&self, cx: &Ctx) -> Destination {
        let m = cx.msg;
        if let Some(g) = nonzero(m.giaddr()) {
            Destination::Relay(g)
        } else if let Some(c) = nonzero(m.ciaddr()) {
            Destination::Client(c)
        } else {
            // Without ARP injection a raw unicast to an unconfigured client is not possible;
            // RFC 2131 §4.1 allows broadcast in that case.
            Destination::Broadcast
        }
    }

    fn lease_reply(
        &self,
        cx: &Ctx,
        kind: MessageType,
        ip: Ipv4Addr,
        pool: usize,
        secs: Option<u32>,
    ) -> Reply {
        let mut m = self.reply_header(cx, kind);
        m.set_yiaddr(ip);
        if kind == MessageType::Ack {
            m.set_ciaddr(cx.msg.ciaddr());
        }
        if let Some(s) = secs {
            m.opts_mut().insert(DhcpOption::AddressLeaseTime(s));
            // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
            m.opts_mut().insert(DhcpOption::Renewal(s / 2));
            m.opts_mut()
                .insert(DhcpOption::Rebinding((u64::from(s) * 7 / 8) as u32));
        }
        self.add_options(cx, &mut m, pool);
        cx.reply(m, self.lease_destination(cx))
    }

    /// Configured options, innermost scope winning (global < subnet < pool < reservation),
    /// limited to the parameter request list when the client sent one (RFC 2132 §9.8).
    /// Options are matched by code number, whatever name dhcproto gives the code.
    fn add_options(&self, cx: &Ctx, m: &mut Message, pool: usize) {
        let p = &self.config.pools[pool];
        // The client's host entry applies on its network: on the pool of its fixed address,
        // and wherever a host entry without an address is served.
        let res = cx
            .reservation
            .filter(|(rp, _)| *rp == pool || cx.pools.contains(rp))
            .map(|(rp, ri)| &self.config.pools[rp].reservations[ri])
            .filter(|r| r.ip.is_none() || cx.reservation.is_some_and(|(rp, _)| rp == pool));
        let mut options = match res {
            Some(r) if !r.options.is_empty() => p.options.overlay(&r.options).encoded(),
            _ => p.options.encoded(),
        };
        if let Some(h) = res.and_then(|r| r.hostname.as_ref()) {
            options.retain(|(c, _)| *c != code::HOST_NAME);
            options.push((code::HOST_NAME, h.as_bytes().to_vec()));
        }
        let requested = &cx.shape.order;
        let out = m.opts_mut();
        for (c, bytes) in options {
            if requested.is_empty() || requested.contains(&c) {
                out.insert(DhcpOption::Unknown(UnknownOption::new(
                    OptionCode::from(c),
                    bytes,
                )));
            }
        }
    }

    /// When a lease may be expired here. Without failover, or in NORMAL, at its end. Cut off
    /// from the partner, the partner may have extended it (lazy update) up to what we
    /// acknowledged plus MCLT (draft-12 §7.1.5), so not before that either.
    fn expiry_due(&self, l: &Lease) -> Time {
        let rel = self.table.pool_of(l.ip).and_then(|p| self.pool_rel[p]);
        match rel.map(|r| &self.rels[r]) {
            Some(r)
                if r.state() != dhcpair_wire::failover::ServerState::Normal
                    && l.state == BindingState::Active =>
            {
                let mclt = Time::from(r.mclt());
                l.ends
                    .max(l.tstp.max(l.tsfp).saturating_add(mclt).min(FOREVER))
            }
            _ => l.ends,
        }
    }

    /// Reclaim expired leases and finished probations; forget stale offers.
    /// Returns the rows to persist.
    pub fn handle_reclaim(&mut self, now: Time) -> Vec<Lease> {
        self.table.expire_offers(now);
        let mut due: Vec<Ipv4Addr> = self
            .table
            .leases
            .values()
            .filter(|l| matches!(l.state, BindingState::Active | BindingState::Abandoned))
            .filter(|l| l.ends <= now && self.expiry_due(l) <= now)
            .map(|l| l.ip)
            .collect();
        // Address order: the same inputs always give the same BNDUPD order (replayable).
        due.sort_unstable();
        let mut out = Vec::with_capacity(due.len());
        for ip in due {
            let Some(mut l) = self.table.leases.get(&ip).cloned() else {
                continue;
            };
            let rel = self.table.pool_of(ip).and_then(|p| self.pool_rel[p]);
            if let Some(r) = rel {
                // Reference §4.2: in NORMAL the primary expires leases, not the secondary.
                let rel = &self.rels[r];
                if l.state == BindingState::Active
                    && rel.my_owner() == Owner::Backup
                    && rel.state() == dhcpair_wire::failover::ServerState::Normal
                {
                    continue;
                }
            }
            if l.state == BindingState::Abandoned {
                l.state = BindingState::Free;
                l.client = None;
            } else {
                l.state = BindingState::Expired;
            }
            if rel.is_some() {
                l.tstp = l.ends.min(now);
                l.atsfp = 0;
            }
            self.table.put(l.clone());
            self.lease_changed(now, ip);
            out.push(l);
        }
        out
    }
}
