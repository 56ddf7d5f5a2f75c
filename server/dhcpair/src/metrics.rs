//! Prometheus metrics. Labels come from enums (message type, outcome, address state) and
//! from pool names in the config, never from error strings.

use dhcpair_engine::PoolStats;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum MsgType {
    discover,
    request,
    decline,
    release,
    inform,
    bootp,
    other,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PacketLabels {
    pub message_type: MsgType,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecodeLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AddrState {
    total,
    free,
    active,
    expired,
    released,
    abandoned,
    backup,
    reserved,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub subnet: String,
    pub state: AddrState,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelLabels {
    pub relationship: String,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Direction {
    sent,
    received,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelMsgLabels {
    pub relationship: String,
    pub direction: Direction,
    pub message_type: &'static str,
}

/// The result of a configuration reload (`dhcpair_config_reloads_total{result}`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReloadResult {
    /// Applied.
    ok,
    /// Did not parse or validate; the running configuration stays.
    invalid,
    /// Valid, but changes something that needs a restart; the running configuration stays.
    rejected,
    /// Valid, needs a restart, and the server stops for it (`--restart-on-change`).
    restart,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: ReloadResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigLabels {
    pub hash: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub config_reloads: Family<ReloadLabels, Counter>,
    pub config_last_success: Gauge,
    pub config_last_successful: Gauge,
    pub config_info: Family<ConfigLabels, Gauge>,
    pub fo_my_state: Family<RelLabels, Gauge>,
    pub fo_partner_state: Family<RelLabels, Gauge>,
    pub fo_unacked: Family<RelLabels, Gauge>,
    pub fo_queued: Family<RelLabels, Gauge>,
    pub fo_since_contact: Family<RelLabels, Gauge>,
    pub fo_skew: Family<RelLabels, Gauge>,
    pub fo_connected: Family<RelLabels, Gauge>,
    pub fo_messages: Family<RelMsgLabels, Counter>,
    pub packets: Family<PacketLabels, Counter>,
    pub decode_errors: Family<DecodeLabels, Counter>,
    pub reply_latency: Histogram,
    pub commit_latency: Histogram,
    pub commit_batch: Histogram,
    pub commit_errors: Counter,
    pub send_errors: Counter,
    pub pool_addresses: Family<PoolLabels, Gauge>,
    pub registry: Registry,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dhcpair");
        let packets = Family::<PacketLabels, Counter>::default();
        let decode_errors = Family::<DecodeLabels, Counter>::default();
        let reply_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let commit_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let commit_errors = Counter::default();
        let send_errors = Counter::default();
        let pool_addresses = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "packets",
            "DHCP requests by message type and outcome",
            packets.clone(),
        );
        registry.register(
            "decode_errors",
            "Packets dropped because they did not decode",
            decode_errors.clone(),
        );
        registry.register(
            "reply_latency_seconds",
            "From receipt of a request to the reply leaving",
            reply_latency.clone(),
        );
        registry.register(
            "store_commit_latency_seconds",
            "Duration of one group commit (transaction + fsync)",
            commit_latency.clone(),
        );
        registry.register(
            "store_commit_batch_writes",
            "Lease writes per group commit",
            commit_batch.clone(),
        );
        registry.register(
            "store_commit_errors",
            "Group commits that failed (their replies were not sent)",
            commit_errors.clone(),
        );
        registry.register(
            "send_errors",
            "Replies that could not be sent",
            send_errors.clone(),
        );
        registry.register(
            "pool_addresses",
            "Addresses per pool and state",
            pool_addresses.clone(),
        );
        let fo_my_state = Family::<RelLabels, Gauge>::default();
        let fo_partner_state = Family::<RelLabels, Gauge>::default();
        let fo_unacked = Family::<RelLabels, Gauge>::default();
        let fo_queued = Family::<RelLabels, Gauge>::default();
        let fo_since_contact = Family::<RelLabels, Gauge>::default();
        let fo_skew = Family::<RelLabels, Gauge>::default();
        let fo_connected = Family::<RelLabels, Gauge>::default();
        let fo_messages = Family::<RelMsgLabels, Counter>::default();
        registry.register("failover_my_state", "This server's failover state (draft-12 wire value: 2 normal, 3 communications-interrupted, 4 partner-down, 6 recover, 254 recover-wait, ...)", fo_my_state.clone());
        registry.register(
            "failover_partner_state",
            "The partner's last reported failover state (wire value)",
            fo_partner_state.clone(),
        );
        registry.register(
            "failover_unacked_updates",
            "BNDUPDs sent and not yet acknowledged",
            fo_unacked.clone(),
        );
        registry.register(
            "failover_queued_updates",
            "BNDUPDs waiting to be sent",
            fo_queued.clone(),
        );
        registry.register(
            "failover_seconds_since_contact",
            "Seconds since the last message from the partner (-1: never)",
            fo_since_contact.clone(),
        );
        registry.register(
            "failover_clock_skew_seconds",
            "Partner's clock minus ours, from the last message header",
            fo_skew.clone(),
        );
        registry.register(
            "failover_connected",
            "1 while the failover link is established",
            fo_connected.clone(),
        );
        registry.register(
            "failover_messages",
            "Failover messages by direction and type",
            fo_messages.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        let config_last_success = Gauge::default();
        let config_last_successful = Gauge::default();
        let config_info = Family::<ConfigLabels, Gauge>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads by result (ok, invalid, rejected: needs a restart, restart: stopping for it)",
            config_reloads.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (start or reload), UNIX seconds",
            config_last_success.clone(),
        );
        registry.register(
            "config_last_reload_successful",
            "1 if the last reload attempt was applied (or none was made), 0 if it was refused",
            config_last_successful.clone(),
        );
        registry.register(
            "config",
            "The running configuration: hash (FNV-1a 64) of the file it was read from",
            config_info.clone(),
        );
        Metrics {
            config_reloads,
            config_last_success,
            config_last_successful,
            config_info,
            fo_my_state,
            fo_partner_state,
            fo_unacked,
            fo_queued,
            fo_since_contact,
            fo_skew,
            fo_connected,
            fo_messages,
            packets,
            decode_errors,
            reply_latency,
            commit_latency,
            commit_batch,
            commit_errors,
            send_errors,
            pool_addresses,
            registry,
        }
    }

    /// A reload attempt that was not applied.
    pub fn reload(&self, result: ReloadResult) {
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        self.config_last_successful
            .set(i64::from(result == ReloadResult::ok));
    }

    /// The running configuration is now the file with `hash`, loaded at `now`; `reloaded`
    /// counts it as a reload (false at start).
    pub fn config_loaded(&self, hash: &str, now: u64, reloaded: bool) {
        if reloaded {
            self.reload(ReloadResult::ok);
        } else {
            self.config_last_successful.set(1);
        }
        self.config_last_success
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        self.config_info.clear();
        self.config_info
            .get_or_create(&ConfigLabels {
                hash: hash.to_string(),
            })
            .set(1);
    }

    /// Forget the pool series (after a reload removed or renamed pools).
    pub fn clear_pools(&self) {
        self.pool_addresses.clear();
    }

    pub fn set_pools(&self, stats: &[PoolStats]) {
        for s in stats {
            let set = |state: AddrState, v: u64| {
                self.pool_addresses
                    .get_or_create(&PoolLabels {
                        pool: s.name.clone(),
                        subnet: s.subnet.clone(),
                        state,
                    })
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            set(AddrState::total, s.total);
            set(AddrState::free, s.free);
            set(AddrState::active, s.active);
            set(AddrState::expired, s.expired);
            set(AddrState::released, s.released);
            set(AddrState::abandoned, s.abandoned);
            set(AddrState::backup, s.backup);
            set(AddrState::reserved, s.reserved);
        }
    }

    /// Failover gauges from the engine's status; message counters advance by the difference
    /// from what `seen` remembers.
    pub fn set_relationships(
        &self,
        rels: &[dhcpair_engine::RelationshipStatus],
        seen: &mut Vec<dhcpair_engine::failover::MessageCounts>,
        now: u64,
    ) {
        seen.resize(rels.len(), Default::default());
        for (r, last) in rels.iter().zip(seen.iter_mut()) {
            let l = RelLabels {
                relationship: r.name.clone(),
            };
            self.fo_my_state
                .get_or_create(&l)
                .set(i64::from(r.my_state.to_wire()));
            self.fo_partner_state
                .get_or_create(&l)
                .set(i64::from(r.partner_state.to_wire()));
            self.fo_unacked
                .get_or_create(&l)
                .set(r.unacked_updates as i64);
            self.fo_queued
                .get_or_create(&l)
                .set(r.queued_updates as i64);
            self.fo_since_contact
                .get_or_create(&l)
                .set(r.last_contact.map_or(-1, |t| now.saturating_sub(t) as i64));
            self.fo_skew.get_or_create(&l).set(r.skew);
            self.fo_connected
                .get_or_create(&l)
                .set(i64::from(r.connected));
            for (i, kind) in (1u8..=12).filter_map(|k| {
                dhcpair_wire::failover::MessageType::from_wire(k).map(|m| (k as usize, m))
            }) {
                for (dir, now_n, seen_n) in [
                    (Direction::sent, r.messages.sent[i], &mut last.sent[i]),
                    (
                        Direction::received,
                        r.messages.received[i],
                        &mut last.received[i],
                    ),
                ] {
                    if now_n > *seen_n {
                        self.fo_messages
                            .get_or_create(&RelMsgLabels {
                                relationship: r.name.clone(),
                                direction: dir,
                                message_type: kind.label(),
                            })
                            .inc_by(now_n - *seen_n);
                        *seen_n = now_n;
                    }
                }
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
