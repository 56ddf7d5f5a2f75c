//! The durable lease store: where leases and failover relationship state survive a crash.
//!
//! The engine decides; this crate remembers. A [`LeaseStore`] takes a batch of [`Write`]s and
//! makes it durable all-or-nothing ([`LeaseStore::commit`]); on start-up [`LeaseStore::load`]
//! hands back everything committed as a [`Snapshot`]. A DHCPACK may only leave the server after
//! the commit that records its lease has returned `Ok` (RFC 2131 §3.1 step 4: the server commits
//! the binding to persistent storage, then responds with the DHCPACK); failover's binding updates
//! follow the same rule.
//!
//! Backends: [`SqliteStore`] (production: SQLite in WAL mode, `synchronous=FULL`, one fsync per
//! commit) and [`MemStore`] (reference backend and test double, with a [`MemDisk`] that outlives
//! the store so tests can "crash" and reopen, and with fault injection). [`GroupCommitter`] puts
//! any backend behind one writer thread that folds concurrent submissions into one commit.
//!
//! This crate is synchronous and must never depend on tokio, sockets or a clock (it reads
//! `Instant` only to report commit durations). Async callers submit to the [`GroupCommitter`] and
//! await their callback.
//!
//! Where to start reading: [`LeaseStore`] and [`Write`] below, then `sqlite.rs`, then `group.rs`.
//! [`battery`] is the contract every backend must pass; `tests/contract.rs` runs it per backend.

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use dhcpair_model::{BindingState, ClientKey, Lease, Time};

pub mod battery;
mod group;
mod mem;
mod sqlite;

pub use group::{CommitCounters, CommitStats, Done, GroupCommitter};
pub use mem::{MemDisk, MemStore};
pub use sqlite::{SqliteStore, SCHEMA_VERSION};

/// The persisted state of one failover relationship: draft-ietf-dhc-failover-12 requires a server
/// to remember its failover state, and when it entered it, across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelationshipState {
    /// The relationship's name, unique per server.
    pub name: String,
    /// This server's failover state, as its draft-12 wire value.
    pub my_state: u8,
    /// The partner's last known failover state, as its draft-12 wire value.
    pub partner_state: u8,
    /// Start time of `my_state` (STOS), seconds since the UNIX epoch.
    pub stos: Time,
    /// Maximum client lead time (MCLT) in seconds.
    pub mclt: u32,
}

/// One change to the durable state. A batch of writes is applied in order, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Insert the lease, or replace the lease with the same `ip`.
    Lease(Lease),
    /// Remove the lease for this address; removing an absent lease is not an error.
    DeleteLease(Ipv4Addr),
    /// Insert the relationship, or replace the one with the same `name`.
    Relationship(RelationshipState),
}

/// Everything a store holds. Leases are sorted by address, relationships by name, so that two
/// backends holding the same data return equal snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub leases: Vec<Lease>,
    pub relationships: Vec<RelationshipState>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("lease store {path}: cannot {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("lease store {path}: cannot {op}: {source}")]
    Sqlite {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "lease store {path} has schema version {found}, newer than version {supported} that this \
         dhcpair understands; upgrade dhcpair or point it at another database"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("lease store {path} is not a dhcpair lease database: {reason}")]
    NotALeaseDatabase { path: PathBuf, reason: String },
    #[error("lease store {path}: corrupt lease row for {ip}, column {column}: {reason}")]
    CorruptLease {
        path: PathBuf,
        ip: Ipv4Addr,
        column: &'static str,
        reason: String,
    },
    #[error("lease store {path}: corrupt lease row, column ip holds {value}, not an ipv4 address")]
    CorruptLeaseIp { path: PathBuf, value: i64 },
    #[error("lease store {path}: corrupt relationship row {name:?}, column {column}: {reason}")]
    CorruptRelationship {
        path: PathBuf,
        name: String,
        column: &'static str,
        reason: String,
    },
    #[error("lease store {path} was opened read-only and cannot commit")]
    ReadOnly { path: PathBuf },
    #[error("injected commit failure (test fault injection)")]
    InjectedFailure,
    #[error("the store writer thread has stopped")]
    WriterStopped,
}

/// A durable home for leases and relationship state.
///
/// Implementations must make [`commit`](LeaseStore::commit) atomic (after a crash at any point
/// either every write of the batch is visible or none is) and durable (once it returns `Ok`, a
/// crash, including power loss where the backend can promise it, does not lose the batch). A
/// failed commit changes nothing, and the store stays usable.
pub trait LeaseStore: Send {
    /// Everything committed so far, leases sorted by address and relationships by name.
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Apply `writes` in order as one atomic, durable batch. An empty batch is a no-op.
    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError>;
}

impl<S: LeaseStore + ?Sized> LeaseStore for Box<S> {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        (**self).load()
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        (**self).commit(writes)
    }
}
