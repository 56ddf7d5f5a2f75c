//! The in-memory reference backend.
//!
//! A [`MemDisk`] plays the part of the disk: it outlives any [`MemStore`] opened on it, so a test
//! can drop a store mid-run ("crash") and open a new one that sees exactly the committed writes.
//! Commits apply under one lock, so they are atomic by construction; [`MemDisk::fail_next_commit`]
//! injects failures.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{Lease, LeaseStore, RelationshipState, Snapshot, StoreError, Write};

/// Shared, cloneable "disk" for [`MemStore`]s. Clones see the same data.
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    inner: Arc<Mutex<DiskState>>,
}

#[derive(Debug, Default)]
struct DiskState {
    leases: BTreeMap<Ipv4Addr, Lease>,
    relationships: BTreeMap<String, RelationshipState>,
    /// Commits still to fail before commits succeed again.
    failures_armed: usize,
    commits: u64,
}

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// Make the next commit on any store of this disk fail with
    /// [`StoreError::InjectedFailure`], changing nothing. Calls add up: arming twice fails the
    /// next two commits.
    pub fn fail_next_commit(&self) {
        self.lock().failures_armed += 1;
    }

    /// Number of commits that succeeded on this disk (empty batches included).
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // Nothing panics while the lock is held, and every mutation leaves the state whole, so
        // a poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`LeaseStore`] over a [`MemDisk`].
#[derive(Debug)]
pub struct MemStore {
    disk: MemDisk,
}

impl MemStore {
    pub fn open(disk: MemDisk) -> MemStore {
        MemStore { disk }
    }
}

impl LeaseStore for MemStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        let state = self.disk.lock();
        Ok(Snapshot {
            leases: state.leases.values().cloned().collect(),
            relationships: state.relationships.values().cloned().collect(),
        })
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let mut state = self.disk.lock();
        if state.failures_armed > 0 {
            state.failures_armed -= 1;
            return Err(StoreError::InjectedFailure);
        }
        for write in writes {
            match write {
                Write::Lease(lease) => {
                    state.leases.insert(lease.ip, lease.clone());
                }
                Write::DeleteLease(ip) => {
                    state.leases.remove(ip);
                }
                Write::Relationship(rel) => {
                    state.relationships.insert(rel.name.clone(), rel.clone());
                }
            }
        }
        state.commits += 1;
        Ok(())
    }
}
