//! Configuration reload: a new validated [`Config`] applied in place, between two inputs.
//!
//! What a reload changes takes effect for the next packet: pools (added, removed, ranges grown
//! or shrunk), options, lease times, permit lists, reservations, shared networks and the
//! server settings the engine reads per request (`serverId`, `authoritative`,
//! `offerHoldTime`, `declineProbationPeriod`).
//!
//! What it never changes: the lease rows (every binding is kept as it is, in the table and so in
//! the store), the client index, and the failover relationships (their state, connections,
//! queued and unacknowledged updates). The rules:
//! - An address still inside a pool keeps its row and its binding.
//! - An address that left every pool is no longer offered, and a REQUEST for it is refused
//!   like any address outside the pools (NAK "address is not in any pool", as at start); its
//!   row stays until the binding ends (the sweep expires it) or the client releases it.
//! - A new reservation for an address leased to another client takes effect as at start: the
//!   holder is NAKed at its next REQUEST and moves to another address. Until the holder's
//!   binding ends or is released the reserved client is not answered (`reserved_in_use`): no
//!   address is ever held by two clients. Counted in the report.
//! - Offers (memory only) are kept for addresses still allocatable, dropped otherwise.
//! - Addresses of a new failover pool start as FREE (the primary's), exactly as at start; the
//!   primary's balancing then gives the partner its share.
//!
//! Refused ("needs a restart", nothing applied): a change of `peers:` (relationships are
//! indexed by the shell's connections), of the sockets and files in `server:` (interfaces,
//! ports, HTTP address, data directory, control token file), and any lease row whose address
//! would move to another failover relationship (or into or out of one) while staying in a
//! pool: its state would mean something else on the other side.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use dhcpair_config::{Config, Pool, ReservationKey};

use crate::dhcp::Dhcp;
use crate::table::Table;
use dhcpair_model::{BindingState, ClientKey, Lease, Time};

/// A reload that cannot be applied while running; the running configuration stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigError {
    /// Each entry names a field and what changed.
    #[error("needs a restart: {}", .0.join("; "))]
    NeedsRestart(Vec<String>),
}

/// What a reload changed, for the log line and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconfigReport {
    /// Pools in the new configuration.
    pub pools: usize,
    /// Addresses in all ranges of the new configuration.
    pub addresses: u64,
    pub reservations: usize,
    pub peers: usize,
    pub pools_added: Vec<String>,
    pub pools_removed: Vec<String>,
    /// Pools whose ranges changed.
    pub pools_resized: Vec<String>,
    /// Pools with other changes (options, lease times, permits, reservations, network), also
    /// when their ranges changed too.
    pub pools_changed: Vec<String>,
    /// Lease rows kept (all of them).
    pub leases_kept: usize,
    /// Bindings still active whose address is in no pool any more.
    pub active_outside_pools: usize,
    /// Bindings still active whose address is now reserved for another client.
    pub active_reserved_for_another: usize,
    /// Offers dropped because their address is no longer allocatable.
    pub offers_dropped: usize,
}

impl fmt::Display for ReconfigReport {
    /// `3 pools, 310 addresses, 2 reservations, 1 peers; pools added [a], removed [], resized
    /// [b], changed [c]; 12 leases kept, 0 active outside the pools, 0 active on an address
    /// reserved for another client`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pools, {} addresses, {} reservations, {} peers; pools added {:?}, removed {:?}, \
             resized {:?}, changed {:?}; {} leases kept, {} active outside the pools, {} active \
             on an address reserved for another client",
            self.pools,
            self.addresses,
            self.reservations,
            self.peers,
            self.pools_added,
            self.pools_removed,
            self.pools_resized,
            self.pools_changed,
            self.leases_kept,
            self.active_outside_pools,
            self.active_reserved_for_another,
        )
    }
}

/// Why `new` cannot replace `old` while running (empty: it can).
pub fn restart_reasons(old: &Config, new: &Config) -> Vec<String> {
    let mut why = Vec::new();
    let (a, b) = (&old.server, &new.server);
    let mut server = |field: &str, changed: bool, from: String, to: String| {
        if changed {
            why.push(format!("server.{field} changed ({from} -> {to})"));
        }
    };
    server(
        "interfaces",
        a.interfaces != b.interfaces,
        format!("{:?}", a.interfaces),
        format!("{:?}", b.interfaces),
    );
    server(
        "dataDir",
        a.data_dir != b.data_dir,
        a.data_dir.display().to_string(),
        b.data_dir.display().to_string(),
    );
    server(
        "http",
        a.http != b.http,
        format!("{:?}", a.http),
        format!("{:?}", b.http),
    );
    server(
        "port",
        a.port != b.port,
        a.port.to_string(),
        b.port.to_string(),
    );
    server(
        "clientPort",
        a.client_port != b.client_port,
        a.client_port.to_string(),
        b.client_port.to_string(),
    );
    server(
        "controlTokenFile",
        a.control_token_file != b.control_token_file,
        format!("{:?}", a.control_token_file),
        format!("{:?}", b.control_token_file),
    );
    if old.peers != new.peers {
        let names = |c: &Config| c.peers.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        let (on, nn) = (names(old), names(new));
        for n in &on {
            match new.peers.iter().find(|p| &p.name == n) {
                None => why.push(format!("peers: relationship {n:?} removed")),
                Some(p) if old.peers.iter().any(|o| o == p) => {}
                Some(_) => why.push(format!("peers: relationship {n:?} changed")),
            }
        }
        for n in nn.iter().filter(|n| !on.contains(n)) {
            why.push(format!("peers: relationship {n:?} added"));
        }
        if why.iter().all(|w| !w.starts_with("peers:")) {
            why.push(format!("peers: order changed ({on:?} -> {nn:?})"));
        }
    }
    for p in &new.pools {
        if let Some(o) = old.pools.iter().find(|o| o.name == p.name) {
            if o.failover_peer != p.failover_peer {
                why.push(format!(
                    "pools {:?}: failoverPeer changed ({:?} -> {:?})",
                    p.name, o.failover_peer, p.failover_peer
                ));
            }
        }
    }
    why
}

/// Does reservation `key` name the client of `l`? (The lookups of `Dhcp::reservation_of`.)
fn reserved_for(key: &ReservationKey, l: &Lease) -> bool {
    match key {
        ReservationKey::ClientId(id) => l.client == Some(ClientKey::ClientId(id.clone())),
        ReservationKey::HardwareAddress(mac) => l.htype == 1 && l.chaddr == mac,
    }
}

impl Dhcp {
    /// Is reserved address `ip` still actively leased to a client other than `client`? Only
    /// after a reservation was added over a live binding (reload, or restart): the reserved
    /// client waits until that binding ends or is released rather than share the address.
    pub(crate) fn reserved_held_by_another(
        &self,
        now: Time,
        ip: Ipv4Addr,
        client: &ClientKey,
    ) -> bool {
        self.table.leases.get(&ip).is_some_and(|l| {
            l.state == BindingState::Active && l.ends > now && l.client.as_ref() != Some(client)
        })
    }

    /// Replace the configuration in place (see the module doc for what is kept).
    pub(crate) fn reconfigure(
        &mut self,
        config: Config,
        now: Time,
    ) -> Result<ReconfigReport, ReconfigError> {
        let mut why = restart_reasons(&self.config, &config);
        // Rows whose address stays in a pool but changes relationship.
        let new_pool_of = |ip: Ipv4Addr| config.pools.iter().position(|p| p.in_range(ip));
        let mut moved: Vec<Ipv4Addr> = self
            .table
            .leases
            .values()
            .filter_map(|l| {
                let o = self.table.pool_of(l.ip)?;
                let n = new_pool_of(l.ip)?;
                (self.config.pools[o].failover_peer != config.pools[n].failover_peer)
                    .then_some(l.ip)
            })
            .collect();
        if !moved.is_empty() {
            moved.sort_unstable();
            why.push(format!(
                "{} leases would change failover relationship (first {})",
                moved.len(),
                moved[0]
            ));
        }
        if !why.is_empty() {
            return Err(ReconfigError::NeedsRestart(why));
        }

        let mut report = diff(&self.config, &config);
        let old = std::mem::replace(
            &mut self.table,
            Table::indexed(&config, Default::default(), Default::default()),
        );
        let mut table = Table::indexed(&config, old.leases, old.by_client);
        // Offers: kept where the address is still in a pool and not reserved.
        let mut offers: Vec<_> = old.offers.into_iter().collect();
        offers.sort_unstable_by_key(|(ip, _)| *ip);
        for (ip, o) in offers {
            if o.expires > now
                && table.pool_of(ip).is_some()
                && !table.reserved_ip.contains_key(&ip)
            {
                table.hold_offer(ip, o.client, o.expires);
            } else {
                report.offers_dropped += 1;
            }
        }
        report.leases_kept = table.leases.len();
        for l in table.leases.values() {
            if l.state != BindingState::Active || l.ends <= now {
                continue;
            }
            if table.pool_of(l.ip).is_none() {
                report.active_outside_pools += 1;
            }
            if let Some((p, i)) = table.reserved_ip.get(&l.ip) {
                if !reserved_for(&config.pools[*p].reservations[*i].key, l) {
                    report.active_reserved_for_another += 1;
                }
            }
        }
        self.table = table;

        self.config = config;
        // Pools of each relationship: the relationships themselves are untouched.
        self.assign_pools();
        Ok(report)
    }
}

/// The pool-level differences between two configurations.
fn diff(old: &Config, new: &Config) -> ReconfigReport {
    let new_names: HashSet<&str> = new.pools.iter().map(|p| p.name.as_str()).collect();
    let mut r = ReconfigReport {
        pools: new.pools.len(),
        addresses: new.pools.iter().map(|p| p.size()).sum(),
        reservations: new.pools.iter().map(|p| p.reservations.len()).sum(),
        peers: new.peers.len(),
        ..ReconfigReport::default()
    };
    for p in &new.pools {
        let Some(o) = old.pools.iter().find(|o| o.name == p.name) else {
            r.pools_added.push(p.name.clone());
            continue;
        };
        if o.ranges != p.ranges {
            r.pools_resized.push(p.name.clone());
        }
        let same_but_ranges = Pool {
            ranges: p.ranges.clone(),
            ..o.clone()
        };
        if &same_but_ranges != p {
            r.pools_changed.push(p.name.clone());
        }
    }
    r.pools_removed = old
        .pools
        .iter()
        .filter(|p| !new_names.contains(p.name.as_str()))
        .map(|p| p.name.clone())
        .collect();
    r
}

#[cfg(test)]
mod tests;
