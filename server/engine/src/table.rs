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

use crate::lease::{BindingState, ClientKey, Lease, Time};

/// An offered address, held in memory only (RFC 2131 §4.3.1 lets an offer be forgotten).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    pub client: ClientKey,
    pub expires: Time,
}

#[derive(Debug, Default)]
pub(crate) struct PoolIndex {
    pub fresh: BTreeSet<Ipv4Addr>,
    pub recycled: BTreeSet<(Time, Ipv4Addr)>,
    recycled_at: HashMap<Ipv4Addr, Time>,
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
        let mut ranges = Vec::new();
        let mut reserved_ip = HashMap::new();
        let mut reserved_key = HashMap::new();
        for (p, pool) in config.pools.iter().enumerate() {
            for r in &pool.ranges {
                ranges.push((u32::from(r.start), u32::from(r.end), p));
            }
            for (i, res) in pool.reservations.iter().enumerate() {
                reserved_ip.insert(res.ip, (p, i));
                reserved_key.insert(res.key.clone(), (p, i));
            }
        }
        ranges.sort_unstable();
        let mut t = Table {
            leases: HashMap::with_capacity(rows.len()),
            by_client: HashMap::with_capacity(rows.len()),
            offers: HashMap::new(),
            offer_by_client: HashMap::new(),
            pools: (0..config.pools.len()).map(|_| PoolIndex::default()).collect(),
            ranges,
            reserved_ip,
            reserved_key,
        };
        // Oldest binding first, so that by_client ends up at each client's newest address.
        let mut rows = rows;
        rows.sort_by_key(|l| (l.cltt, l.starts));
        for l in rows {
            if let Some(c) = &l.client {
                if l.state != BindingState::Abandoned {
                    t.by_client.insert(c.clone(), l.ip);
                }
            }
            t.leases.insert(l.ip, l);
        }
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
        let Some(idx) = self.pools.get_mut(pool) else { return };
        idx.fresh.remove(&ip);
        if let Some(t) = idx.recycled_at.remove(&ip) {
            idx.recycled.remove(&(t, ip));
        }
        if self.reserved_ip.contains_key(&ip) || self.offers.contains_key(&ip) {
            return;
        }
        match self.leases.get(&ip) {
            None => {
                idx.fresh.insert(ip);
            }
            Some(l) => match l.state {
                BindingState::Free | BindingState::Expired | BindingState::Released => {
                    let t = l.ends.max(l.cltt);
                    idx.recycled.insert((t, ip));
                    idx.recycled_at.insert(ip, t);
                }
                // Active leases come back through expiry; abandoned ones through probation;
                // backup and reset belong to failover.
                BindingState::Active
                | BindingState::Abandoned
                | BindingState::Backup
                | BindingState::Reset => {}
            },
        }
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
        if let Some(old) = self.offers.insert(ip, Offer { client: client.clone(), expires }) {
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

    /// Take the best allocatable address of a pool: never used first, then least recently freed.
    pub fn pick_free(&self, pool: usize) -> Option<Ipv4Addr> {
        let idx = self.pools.get(pool)?;
        idx.fresh
            .first()
            .copied()
            .or_else(|| idx.recycled.first().map(|(_, ip)| *ip))
    }
}
