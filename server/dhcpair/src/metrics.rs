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

#[derive(Debug)]
pub struct Metrics {
    pub packets: Family<PacketLabels, Counter>,
    pub decode_errors: Family<DecodeLabels, Counter>,
    pub queue_drops: Counter,
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
        let queue_drops = Counter::default();
        let reply_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let commit_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let commit_errors = Counter::default();
        let send_errors = Counter::default();
        let pool_addresses = Family::<PoolLabels, Gauge>::default();
        registry.register("packets", "DHCP requests by message type and outcome", packets.clone());
        registry.register("decode_errors", "Packets dropped because they did not decode", decode_errors.clone());
        registry.register("queue_drops", "Packets dropped because the engine queue was full", queue_drops.clone());
        registry.register("reply_latency_seconds", "From receipt of a request to the reply leaving", reply_latency.clone());
        registry.register("store_commit_latency_seconds", "Duration of one group commit (transaction + fsync)", commit_latency.clone());
        registry.register("store_commit_batch_writes", "Lease writes per group commit", commit_batch.clone());
        registry.register("store_commit_errors", "Group commits that failed (their replies were not sent)", commit_errors.clone());
        registry.register("send_errors", "Replies that could not be sent", send_errors.clone());
        registry.register("pool_addresses", "Addresses per pool and state", pool_addresses.clone());
        Metrics {
            packets,
            decode_errors,
            queue_drops,
            reply_latency,
            commit_latency,
            commit_batch,
            commit_errors,
            send_errors,
            pool_addresses,
            registry,
        }
    }

    pub fn set_pools(&self, stats: &[PoolStats]) {
        for s in stats {
            let set = |state: AddrState, v: u64| {
                self.pool_addresses
                    .get_or_create(&PoolLabels { pool: s.name.clone(), subnet: s.subnet.clone(), state })
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

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
