//! The sans-IO DHCPv4 engine: lease table, address allocation and DHCP decisions.
//!
//! No sockets, no clock, no tokio: every input carries `now` (UNIX seconds), every output is
//! a [`Decision`] the shell carries out: persist the lease, and only then send the reply.
//! Start reading at [`Engine::handle_request`]; the data model is in [`lease`], the
//! allocation indexes in `table.rs`.

mod dhcp;
pub mod failover;
mod reconfig;
mod table;

use std::net::Ipv4Addr;

use dhcpair_config::Config;
use dhcpair_wire::v4::Message;

pub use dhcp::{Arrival, Decision, Destination, DropReason, Outcome, Reply, FOREVER};
pub use dhcpair_model::{BindingState, ClientKey, Lease, RelationshipRecord, Time};
pub use dhcpair_wire::failover::ServerState;
pub use failover::{ConnId, Effect, Persist, RelationshipStatus};
pub use reconfig::{restart_reasons, ReconfigError, ReconfigReport};

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
    /// Build the engine from a validated config and what the store loaded: lease rows and
    /// each failover relationship's saved state. Relationships start in STARTUP.
    pub fn new(
        config: Config,
        rows: Vec<Lease>,
        saved: &[RelationshipRecord],
        now: Time,
    ) -> Engine {
        Engine {
            dhcp: dhcp::Dhcp::new(config, rows, saved, now),
        }
    }

    /// Effects queued by the last inputs, in order (persist before the sends that follow).
    pub fn poll_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.dhcp.effects)
    }

    /// Failover timers; call about once a second.
    pub fn handle_tick(&mut self, now: Time) {
        self.dhcp.handle_failover_tick(now);
    }

    /// A TCP connection with the partner of relationship `peer` is up.
    pub fn handle_peer_connected(&mut self, now: Time, peer: usize, conn: ConnId) {
        self.dhcp.handle_peer_connected(now, peer, conn);
    }

    pub fn handle_peer_closed(&mut self, now: Time, peer: usize, conn: ConnId) {
        self.dhcp.handle_peer_closed(now, peer, conn);
    }

    pub fn handle_peer_message(
        &mut self,
        now: Time,
        peer: usize,
        conn: ConnId,
        msg: dhcpair_wire::failover::Message,
    ) {
        self.dhcp.handle_peer_message(now, peer, conn, msg);
    }

    /// Administrative PARTNER-DOWN for relationship `peer`.
    pub fn handle_partner_down(&mut self, now: Time, peer: usize) -> Result<(), String> {
        self.dhcp.handle_partner_down(now, peer)
    }

    /// Graceful stop: tell every connected partner.
    pub fn handle_shutdown(&mut self, now: Time) {
        self.dhcp.handle_shutdown(now);
    }

    /// Does relationship `peer` have an established link?
    pub fn is_linked(&self, peer: usize) -> bool {
        self.dhcp.rels.get(peer).is_some_and(|r| r.is_linked())
    }

    /// Index of the relationship named `name`.
    pub fn relationship_index(&self, name: &str) -> Option<usize> {
        self.dhcp.config.peer_index(name)
    }

    pub fn relationships(&self) -> Vec<RelationshipStatus> {
        self.dhcp.rels.iter().map(|r| r.status()).collect()
    }

    pub fn config(&self) -> &Config {
        &self.dhcp.config
    }

    /// Configuration reload: apply `config` for the next packet, keeping every lease and the
    /// failover relationships as they are; refused (nothing changed) when it needs a restart.
    /// The rules are in `reconfig.rs`.
    pub fn reconfigure(
        &mut self,
        config: Config,
        now: Time,
    ) -> Result<ReconfigReport, ReconfigError> {
        self.dhcp.reconfigure(config, now)
    }

    /// One DHCP/BOOTP request. `relay_agent_info` is option 82 exactly as received.
    pub fn handle_request(
        &mut self,
        now: Time,
        arrival: &Arrival,
        msg: &Message,
        relay_agent_info: Option<Vec<u8>>,
    ) -> Decision {
        self.dhcp
            .handle_request(now, arrival, msg, relay_agent_info)
    }

    /// Periodic sweep: expired leases become `expired`, finished probations `free`.
    /// The returned rows must be persisted.
    pub fn handle_reclaim(&mut self, now: Time) -> Vec<Lease> {
        self.dhcp.handle_reclaim(now)
    }

    pub fn lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.dhcp.table.leases.get(&ip)
    }

    /// Every lease row (for tests, the simulator and `dhcpair leases`-like views).
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.dhcp.table.leases.values()
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
        let mut reset = vec![0u64; stats.len()];
        for l in table.leases.values() {
            let Some(p) = table.pool_of(l.ip) else {
                continue;
            };
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
                BindingState::Reset => reset[p] += 1,
                BindingState::Free => {}
            }
        }
        for (p, s) in stats.iter_mut().enumerate() {
            let reserved_in_range = table
                .reserved_ip
                .keys()
                .filter(|ip| table.pool_of(**ip) == Some(p))
                .count() as u64;
            s.free = if self.dhcp.pool_rel[p].is_some() {
                // Failover: FREE (the primary's) and BACKUP (the secondary's) apart, as ISC
                // counts them; expired/released/reset wait for the partner's ack.
                let used = s.active + s.expired + s.released + s.abandoned + s.backup + reset[p];
                s.total.saturating_sub(used + reserved_in_range)
            } else {
                // Without failover, expired, released and backup addresses are free to reuse.
                let used = s.active + s.abandoned + reserved_in_range;
                s.backup = 0;
                s.total.saturating_sub(used)
            };
        }
        stats
    }
}

#[cfg(test)]
mod tests;
