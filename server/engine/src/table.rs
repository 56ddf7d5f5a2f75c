//! The lease table: every known binding plus the indexes that make allocation O(log n).
//!
//! Addresses in a pool's ranges with no row are free. An address is *allocatable* when it
//! has no live binding, is not abandoned, not reserved and not held by an offer; the table
//! keeps each pool's allocatable addresses in two ordered sets: never-used addresses first
//! (lowest first), then previously used ones, least recently freed first (ISC's choice, it
//! keeps affinity for returning clients as long as possible).

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use dhcpair_config::{Config, ReservationKey};

use dhcpair_model::{BindingState, ClientKey, Lease, Time};

/// An offered address, held in memory only (RFC 2131 §4.3.1 lets an offer be forgotten).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub client: ClientKey,
    pub expires: Time,
}

/// Allocatable addresses of one owner in one pool.
#[derive(Debug, Default)]
pub(crate) struct OwnerSet {
    pub fresh: BTreeSet<Ipv4Addr>,
    pub recycled: BTreeSet<(Time, Ipv4Addr)>,
    recycled_at: HashMap<Ipv4Addr, Time>,
}

impl OwnerSet {
    fn remove(&mut self, ip: Ipv4Addr) {
        self.fresh.remove(&ip);
        if let Some(t) = self.recycled_at.remove(&ip) {
            self.recycled.remove(&(t, ip));
        }
    }
    pub fn first(&self) -> Option<Ipv4Addr> {
        self.fresh
            .first()
            .copied()
            .or_else(|| self.recycled.first().map(|(_, ip)| *ip))
    }
    pub fn len(&self) -> usize {
        self.fresh.len() + self.recycled.len()
    }
    /// Every address, never-used first, then least recently freed first.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.fresh
            .iter()
            .copied()
            .chain(self.recycled.iter().map(|(_, ip)| *ip))
    }
}

/// Who may allocate a free address (draft-12 §5.4): FREE is the primary's, BACKUP the
/// secondary's. Pools without failover only use `Free`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Free = 0,
    Backup = 1,
}

#[derive(Debug, Default)]
pub(crate) struct PoolIndex {
    pub sets: [OwnerSet; 2],
    /// Failover pools keep EXPIRED/RELEASED/RESET out of use until the peer has acked them.
    pub failover: bool,
    /// Without failover: active and abandoned rows by the time they end. An address is
    /// reusable the moment its lease or its decline probation ends, before the reclaim sweep
    /// writes it down (as ISC and Kea do).
    ending: BTreeSet<(Time, Ipv4Addr)>,
    ending_at: HashMap<Ipv4Addr, Time>,
}

impl PoolIndex {
    fn unindex(&mut self, ip: Ipv4Addr) {
        for set in &mut self.sets {
            set.remove(ip);
        }
        if let Some(t) = self.ending_at.remove(&ip) {
            self.ending.remove(&(t, ip));
        }
    }
}

#[derive(Debug)]
pub(crate) struct Table {
    pub leases: HashMap<Ipv4Addr, Lease>,
    pub by_client: HashMap<ClientKey, Ipv4Addr>,
    pub offers: HashMap<Ipv4Addr, Offer>,
    pub offer_by_client: HashMap<ClientKey, Ipv4Addr>,
    pub pools: Vec<PoolIndex>,
    /// Sorted, non-overlapping ranges: (start, end, pool index).
    ranges: Vec<(u32, u32, usize)>,
    /// Reserved address -> (pool, reservation index).
    pub reserved_ip: HashMap<Ipv4Addr, (usize, usize)>,
    /// Reserved client -> (pool, reservation index).
    pub reserved_key: HashMap<ReservationKey, (usize, usize)>,
}

impl Table {
    pub fn new(config: &Config, rows: Vec<Lease>) -> Table {
        let mut leases = HashMap::with_capacity(rows.len());
        let mut by_client = HashMap::with_capacity(rows.len());
        // Oldest binding first, so that by_client ends up at each client's newest address.
        let mut rows = rows;
        rows.sort_by_key(|l| (l.cltt, l.starts));
        for l in rows {
            if let Some(c) = &l.client {
                if l.state != BindingState::Abandoned {
                    by_client.insert(c.clone(), l.ip);
                }
            }
            leases.insert(l.ip, l);
        }
        Table::indexed(config, leases, by_client)
    }

    /// The pool indexes of `config` over existing rows and client index, without offers: at
    /// start and on a configuration reload (`reconfig.rs`).
    pub fn indexed(
        config: &Config,
        leases: HashMap<Ipv4Addr, Lease>,
        by_client: HashMap<ClientKey, Ipv4Addr>,
    ) -> Table {
        let mut ranges = Vec::new();
        let mut reserved_ip = HashMap::new();
        let mut reserved_key = HashMap::new();
        for (p, pool) in config.pools.iter().enumerate() {
            for r in &pool.ranges {
                ranges.push((u32::from(r.start), u32::from(r.end), p));
            }
            for (i, res) in pool.reservations.iter().enumerate() {
                if let Some(ip) = res.ip {
                    reserved_ip.insert(ip, (p, i));
                }
                reserved_key.insert(res.key.clone(), (p, i));
            }
        }
        ranges.sort_unstable();
        let mut t = Table {
            leases,
            by_client,
            offers: HashMap::new(),
            offer_by_client: HashMap::new(),
            pools: config
                .pools
                .iter()
                .map(|p| PoolIndex {
                    failover: p.failover_peer.is_some(),
                    ..PoolIndex::default()
                })
                .collect(),
            ranges,
            reserved_ip,
            reserved_key,
        };
        for (p, pool) in config.pools.iter().enumerate() {
            for r in &pool.ranges {
                for ip in r.iter() {
                    t.reindex(p, ip);
                }
            }
        }
        t
    }

    /// Which pool's ranges hold `ip`.
    pub fn pool_of(&self, ip: Ipv4Addr) -> Option<usize> {
        let v = u32::from(ip);
        let i = self.ranges.partition_point(|(s, _, _)| *s <= v);
        let (s, e, p) = *self.ranges.get(i.checked_sub(1)?)?;
        (s <= v && v <= e).then_some(p)
    }

    /// Recompute `ip`'s place in its pool's allocatable sets from its row, reservation and offer.
    pub fn reindex(&mut self, pool: usize, ip: Ipv4Addr) {
        let Some(idx) = self.pools.get_mut(pool) else {
            return;
        };
        idx.unindex(ip);
        if self.reserved_ip.contains_key(&ip) || self.offers.contains_key(&ip) {
            return;
        }
        let Some(l) = self.leases.get(&ip) else {
            // Never used: FREE, the primary's (draft-12 §5.4) or ours without failover.
            idx.sets[Owner::Free as usize].fresh.insert(ip);
            return;
        };
        let owner = match (l.state, idx.failover) {
            (BindingState::Free, _) => Owner::Free,
            (BindingState::Backup, true) => Owner::Backup,
            (
                BindingState::Backup
                | BindingState::Expired
                | BindingState::Released
                | BindingState::Reset,
                false,
            ) => Owner::Free,
            (BindingState::Active | BindingState::Abandoned, false) => {
                idx.ending.insert((l.ends, ip));
                idx.ending_at.insert(ip, l.ends);
                return;
            }
            // Active leases come back through expiry, abandoned ones through probation,
            // transitional ones (failover) once the peer acked them.
            _ => return,
        };
        let t = l.ends.max(l.cltt).max(l.starts);
        let set = &mut idx.sets[owner as usize];
        set.recycled.insert((t, ip));
        set.recycled_at.insert(ip, t);
    }

    /// Store a row (after the engine decided it) and keep every index true.
    pub fn put(&mut self, lease: Lease) {
        let ip = lease.ip;
        if let Some(old) = self.leases.get(&ip) {
            if let Some(c) = &old.client {
                if lease.client.as_ref() != Some(c) && self.by_client.get(c) == Some(&ip) {
                    self.by_client.remove(c);
                }
            }
        }
        if let Some(c) = &lease.client {
            if lease.state == BindingState::Abandoned {
                if self.by_client.get(c) == Some(&ip) {
                    self.by_client.remove(c);
                }
            } else {
                self.by_client.insert(c.clone(), ip);
            }
        }
        self.leases.insert(ip, lease);
        if let Some(p) = self.pool_of(ip) {
            self.reindex(p, ip);
        }
    }

    pub fn hold_offer(&mut self, ip: Ipv4Addr, client: ClientKey, expires: Time) {
        self.drop_offer_of(&client);
        if let Some(old) = self.offers.insert(
            ip,
            Offer {
                client: client.clone(),
                expires,
            },
        ) {
            self.offer_by_client.remove(&old.client);
        }
        self.offer_by_client.insert(client, ip);
        if let Some(p) = self.pool_of(ip) {
            self.reindex(p, ip);
        }
    }

    pub fn drop_offer_of(&mut self, client: &ClientKey) {
        if let Some(ip) = self.offer_by_client.remove(client) {
            self.offers.remove(&ip);
            if let Some(p) = self.pool_of(ip) {
                self.reindex(p, ip);
            }
        }
    }

    /// Forget an offer of `ip` (the partner now holds a binding for it).
    pub fn drop_offer_at(&mut self, ip: Ipv4Addr) {
        if let Some(o) = self.offers.get(&ip) {
            let c = o.client.clone();
            self.drop_offer_of(&c);
        }
    }

    pub fn expire_offers(&mut self, now: Time) {
        let gone: Vec<ClientKey> = self
            .offers
            .values()
            .filter(|o| o.expires <= now)
            .map(|o| o.client.clone())
            .collect();
        for c in gone {
            self.drop_offer_of(&c);
        }
    }

    /// The best allocatable address of an owner: never used first, then least recently freed.
    pub fn pick_free(&self, pool: usize, owner: Owner) -> Option<Ipv4Addr> {
        self.pools.get(pool)?.sets[owner as usize].first()
    }

    /// Without failover, the address whose lease or probation ended first, if one has ended
    /// by `now` (least recently used first, as the free sets).
    pub fn pick_ended(&self, pool: usize, now: Time) -> Option<Ipv4Addr> {
        let (t, ip) = self.pools.get(pool)?.ending.first()?;
        (*t <= now).then_some(*ip)
    }

    pub fn free_count(&self, pool: usize, owner: Owner) -> usize {
        self.pools
            .get(pool)
            .map_or(0, |p| p.sets[owner as usize].len())
    }
}
