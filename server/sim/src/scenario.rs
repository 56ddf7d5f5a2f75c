//! What one run simulates: the pair's config, the clients, the clocks and the faults, all
//! drawn from the seed (or pinned by a test).

use crate::rng::Rng;

/// The faults the schedule draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The failover link breaks: what is in flight is lost and both ends see the close at once.
    AbruptPartition,
    /// The link goes silent: messages wait in the network, each end notices only through its
    /// own receive timeout, and at heal what is left is delivered (or the peer sees the reset).
    SilentPartition,
    /// A server dies with a commit pending: those writes, replies and sends never happen.
    CrashBeforeCommit,
    /// A server dies right after a commit, before it sent the replies and messages it released.
    CrashAfterCommit,
    /// A server dies and comes back with an empty disk: no leases, no relationship record.
    LostDisk,
    /// A server dies and the operator declares PARTNER-DOWN on the survivor (only while the
    /// peer really is down, and the network stays up until the pair is NORMAL again).
    PartnerDown,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::AbruptPartition,
        FaultKind::SilentPartition,
        FaultKind::CrashBeforeCommit,
        FaultKind::CrashAfterCommit,
        FaultKind::LostDisk,
        FaultKind::PartnerDown,
    ];
}

/// One run. Every field is public so that a test can pin what it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub seed: u64,
    /// DHCP clients on the shared link.
    pub clients: usize,
    /// Addresses in the one failover pool (10.0.0.100 upwards).
    pub pool_size: u32,
    /// Maximum client lead time, configured on the primary (the secondary learns it).
    pub mclt: u32,
    /// The pool's default lease time (what clients get once the MCLT rule allows it).
    pub lease_time: u32,
    /// ISC `split`: hash buckets below it are the primary's.
    pub split: u16,
    pub max_unacked: u32,
    pub max_response_delay: u32,
    /// Each server's clock minus the global clock, in seconds (primary, secondary).
    pub skew: [i64; 2],
    /// Sometimes open two connections at once (both servers dial), as ISC peers do.
    pub duplicate_connections: bool,
    /// Client packets lost, per mille, in each direction.
    pub udp_loss_per_mille: u64,
    /// Faults to draw from (empty: a fault-free run).
    pub faults: Vec<FaultKind>,
    /// How many faults the schedule tries to inject.
    pub fault_count: usize,
    /// Length of the fault phase, seconds; then everything heals and the pair must settle.
    pub fault_phase_secs: u64,
}

/// The relative clock offset the sim allows between the two servers. ISC (and the engine)
/// refuse CONNECT beyond 60 s, and a pair that cannot connect can never reach NORMAL.
pub const MAX_RELATIVE_SKEW: i64 = 50;

impl Scenario {
    /// Everything from the seed: sizes, timers, clocks, and faults of every kind.
    pub fn random(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let mut sc = Scenario::base(seed, &mut rng);
        sc.faults = FaultKind::ALL.to_vec();
        sc.fault_count = rng.range(2, 8) as usize;
        sc
    }

    /// Only the given fault kinds (and the seed's clocks and sizes).
    pub fn with_faults(seed: u64, faults: &[FaultKind]) -> Scenario {
        let mut rng = Rng::new(seed);
        let mut sc = Scenario::base(seed, &mut rng);
        sc.faults = faults.to_vec();
        sc.fault_count = rng.range(3, 8) as usize;
        sc
    }

    /// No faults at all, no skew, no loss, and enough addresses for every client.
    pub fn fault_free(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let mut sc = Scenario::base(seed, &mut rng);
        sc.clients = sc.clients.min(sc.pool_size as usize - 5);
        sc.skew = [0, 0];
        sc.udp_loss_per_mille = 0;
        sc.duplicate_connections = false;
        sc
    }

    fn base(seed: u64, rng: &mut Rng) -> Scenario {
        let mclt = [60, 120, 300][rng.range(0, 2) as usize];
        let skew = if rng.chance(1, 3) {
            [0, 0]
        } else {
            let p = rng.signed(60);
            let s = (p + rng.signed(MAX_RELATIVE_SKEW)).clamp(-60, 60);
            [p, s]
        };
        Scenario {
            seed,
            clients: rng.range(20, 60) as usize,
            pool_size: rng.range(30, 60) as u32,
            mclt,
            lease_time: [300, 600, 1200][rng.range(0, 2) as usize],
            split: [0, 64, 128, 128, 200, 256][rng.range(0, 5) as usize],
            max_unacked: [1, 3, 10, 100][rng.range(0, 3) as usize],
            max_response_delay: [9, 20, 30][rng.range(0, 2) as usize],
            skew,
            duplicate_connections: rng.chance(1, 2),
            udp_loss_per_mille: rng.range(0, 30),
            faults: Vec::new(),
            fault_count: 0,
            fault_phase_secs: rng.range(1200, 2400),
        }
    }

    /// The servers' clock disagreement in seconds.
    pub fn relative_skew(&self) -> u64 {
        (self.skew[0] - self.skew[1]).unsigned_abs()
    }

    /// How long after the last fault heals both servers must be NORMAL: two MCLTs (a
    /// RECOVER-WAIT, then a lease-time's worth of conflict resolution) plus five minutes for
    /// timeouts, reconnects and the update exchange.
    pub fn settle_bound_secs(&self) -> u64 {
        2 * u64::from(self.mclt) + 300
    }
}
