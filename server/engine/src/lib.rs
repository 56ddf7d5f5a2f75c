//! The sans-IO DHCPv4 engine: lease table, address allocation and DHCP decisions.
//!
//! No sockets, no clock, no tokio: every input carries `now` (UNIX seconds), every output is
//! a [`Decision`] the shell carries out: persist the lease, and only then send the reply.
//! Start reading at [`Engine::handle_request`]; the data model is in [`lease`], the
//! allocation indexes in `table.rs`.

mod dhcp;
pub mod lease;
mod table;

use std::net::Ipv4Addr;

use dhcpair_config::Config;
use dhcpair_wire::v4::Message;

pub use dhcp::{Arrival, Decision, Destination, DropReason, Outcome, Reply, FOREVER};
pub use lease::{BindingState, ClientKey, Lease, Time};

/// Address counts of one pool, for metrics, `/v1/status` and ISC's pool log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolStats {
    pub name: String,
    pub subnet: String,
    pub total: u64,
    pub free: u64,
    pub active: u64,
    pub expired: u64,
    pub released: u64,
    pub abandoned: u64,
    pub backup: u64,
    pub reserved: u64,
}

/// The engine: one instance owns all mutable DHCP state of a server.
#[derive(Debug)]
pub struct Engine {
    dhcp: dhcp::Dhcp,
}

impl Engine {
    /// Build the engine from a validated config and the rows loaded from the store.
    pub fn new(config: Config, rows: Vec<Lease>) -> Engine {
        Engine { dhcp: dhcp::Dhcp::new(config, rows) }
    }

    pub fn config(&self) -> &Config {
        &self.dhcp.config
    }

    /// One DHCP/BOOTP request. `relay_agent_info` is option 82 exactly as received.
    pub fn handle_request(
        &mut self,
        now: Time,
        arrival: &Arrival,
        msg: &Message,
        relay_agent_info: Option<Vec<u8>>,
    ) -> Decision {
        self.dhcp.handle_request(now, arrival, msg, relay_agent_info)
    }

    /// Periodic sweep: expired leases become `expired`, finished probations `free`.
    /// The returned rows must be persisted.
    pub fn handle_reclaim(&mut self, now: Time) -> Vec<Lease> {
        self.dhcp.handle_reclaim(now)
    }

    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.dhcp.table.leases.get(&ip)
    }

    /// Counts per pool at `now` (a lease past its end counts as expired before the sweep).
    pub fn pool_stats(&self, now: Time) -> Vec<PoolStats> {
        let cfg = &self.dhcp.config;
        let table = &self.dhcp.table;
        let mut stats: Vec<PoolStats> = cfg
            .pools
            .iter()
            .map(|p| PoolStats {
                name: p.name.clone(),
                subnet: p.subnet.to_string(),
                total: p.size(),
                reserved: p.reservations.len() as u64,
                ..PoolStats::default()
            })
            .collect();
        for l in table.leases.values() {
            let Some(p) = table.pool_of(l.ip) else { continue };
            if table.reserved_ip.contains_key(&l.ip) {
                continue;
            }
            let s = &mut stats[p];
            match l.state {
                BindingState::Active if l.ends > now => s.active += 1,
                BindingState::Active | BindingState::Expired => s.expired += 1,
                BindingState::Released => s.released += 1,
                BindingState::Abandoned => s.abandoned += 1,
                BindingState::Backup => s.backup += 1,
                BindingState::Free | BindingState::Reset => {}
            }
        }
        for (p, s) in stats.iter_mut().enumerate() {
            let reserved_in_range =
                table.reserved_ip.keys().filter(|ip| table.pool_of(**ip) == Some(p)).count() as u64;
            let used = s.active + s.abandoned + s.backup + reserved_in_range;
            s.free = s.total.saturating_sub(used);
        }
        stats
    }
}

#[cfg(test)]
mod tests;
