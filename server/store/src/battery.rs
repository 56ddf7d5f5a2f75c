//! The contract every [`LeaseStore`] backend must pass, as plain functions that panic on a
//! violation. A backend's test file stamps out one `#[test]` per function (see
//! `tests/contract.rs`), so each backend runs the same tests under the same names.
//!
//! Every function takes `open`, which opens a store on the *same* underlying disk each time it is
//! called: dropping a store and calling `open` again is a crash and restart (no clean close is
//! ever asked for).

// This module is test code that lives in the library so that other crates' backends can run it;
// a panic is how it reports a broken contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use crate::{BindingState, ClientKey, Lease, LeaseStore, RelationshipState, Snapshot, Write};

/// A plausible active lease for `10.0.0.0 + n`, distinct in every field for distinct `n`.
pub fn sample_lease(n: u32) -> Lease {
    let mac = [
        0x02,
        0x00,
        (n >> 24) as u8,
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ];
    let starts = 1_700_000_000 + u64::from(n);
    Lease {
        ip: Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)),
        state: BindingState::Active,
        client: Some(ClientKey::Hardware {
            htype: 1,
            chaddr: mac.to_vec(),
        }),
        htype: 1,
        chaddr: mac.to_vec(),
        hostname: Some(format!("host-{n}")),
        pool: "lan".to_owned(),
        starts,
        ends: starts + 3600,
        tstp: starts + 3600,
        tsfp: starts + 1800,
        atsfp: starts + 1800,
        cltt: starts,
    }
}

/// A relationship named `name` with distinct values derived from `n`.
pub fn sample_relationship(name: &str, n: u8) -> RelationshipState {
    RelationshipState {
        name: name.to_owned(),
        my_state: n,
        partner_state: n.wrapping_add(1),
        stos: 1_700_000_000 + u64::from(n),
        mclt: 3600 + u32::from(n),
    }
}

fn load(open: &impl Fn() -> Box<dyn LeaseStore>) -> Snapshot {
    open().load().unwrap()
}

fn commit(store: &mut dyn LeaseStore, writes: &[Write]) {
    store.commit(writes).unwrap();
}

fn leases(ns: &[u32]) -> Vec<Lease> {
    ns.iter().map(|&n| sample_lease(n)).collect()
}

fn upserts(leases: &[Lease]) -> Vec<Write> {
    leases.iter().cloned().map(Write::Lease).collect()
}

pub fn empty_store_loads_empty(open: impl Fn() -> Box<dyn LeaseStore>) {
    assert_eq!(open().load().unwrap(), Snapshot::default());
    assert_eq!(load(&open), Snapshot::default(), "after reopen");
}

pub fn upsert_then_reopen_returns_the_same_lease(open: impl Fn() -> Box<dyn LeaseStore>) {
    let lease = sample_lease(7);
    let mut store = open();
    commit(&mut *store, &[Write::Lease(lease.clone())]);
    assert_eq!(store.load().unwrap().leases, vec![lease.clone()]);
    drop(store);
    assert_eq!(load(&open).leases, vec![lease]);
}

pub fn upsert_overwrites_the_lease_with_the_same_ip(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut store = open();
    commit(&mut *store, &upserts(&leases(&[1, 2])));
    let mut renewed = sample_lease(1);
    renewed.state = BindingState::Expired;
    renewed.client = None;
    renewed.hostname = None;
    renewed.ends += 7200;
    commit(&mut *store, &[Write::Lease(renewed.clone())]);
    let expected = vec![renewed, sample_lease(2)];
    assert_eq!(store.load().unwrap().leases, expected);
    drop(store);
    assert_eq!(load(&open).leases, expected);
}

pub fn delete_removes_only_that_lease(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut store = open();
    commit(&mut *store, &upserts(&leases(&[1, 2, 3])));
    commit(&mut *store, &[Write::DeleteLease(sample_lease(2).ip)]);
    assert_eq!(store.load().unwrap().leases, leases(&[1, 3]));
    drop(store);
    assert_eq!(load(&open).leases, leases(&[1, 3]));
}

pub fn deleting_a_missing_lease_is_not_an_error(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut store = open();
    commit(&mut *store, &upserts(&leases(&[1])));
    commit(
        &mut *store,
        &[Write::DeleteLease(Ipv4Addr::new(192, 0, 2, 1))],
    );
    assert_eq!(store.load().unwrap().leases, leases(&[1]));
}

pub fn an_empty_commit_changes_nothing(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut store = open();
    commit(&mut *store, &[]);
    assert_eq!(store.load().unwrap(), Snapshot::default());
    commit(&mut *store, &upserts(&leases(&[1])));
    commit(&mut *store, &[]);
    drop(store);
    assert_eq!(load(&open).leases, leases(&[1]));
}

pub fn every_binding_state_round_trips(open: impl Fn() -> Box<dyn LeaseStore>) {
    let expected: Vec<Lease> = BindingState::ALL
        .into_iter()
        .zip(0u32..)
        .map(|(state, n)| Lease {
            state,
            ..sample_lease(n)
        })
        .collect();
    commit(&mut *open(), &upserts(&expected));
    assert_eq!(load(&open).leases, expected);
}

pub fn every_field_round_trips(open: impl Fn() -> Box<dyn LeaseStore>) {
    let ip = |d| Ipv4Addr::new(192, 0, 2, d);
    let expected = vec![
        // Everything empty or zero.
        Lease {
            ip: ip(1),
            state: BindingState::Free,
            client: None,
            htype: 0,
            chaddr: vec![],
            hostname: None,
            pool: String::new(),
            starts: 0,
            ends: 0,
            tstp: 0,
            tsfp: 0,
            atsfp: 0,
            cltt: 0,
        },
        // A long client id, a chaddr longer than BOOTP's 16 bytes, non-ASCII text, and times
        // at and beyond the signed 64-bit edge.
        Lease {
            ip: ip(2),
            state: BindingState::Active,
            client: Some(ClientKey::ClientId((0..=255u8).collect())),
            htype: 255,
            chaddr: (0..64u8).collect(),
            hostname: Some("hôte-ñ.example".to_owned()),
            pool: "pool with spaces/ünïcode".to_owned(),
            starts: i64::MAX as u64,
            ends: i64::MAX as u64 + 1,
            tstp: u64::MAX,
            tsfp: u64::MAX - 1,
            atsfp: 1,
            cltt: u32::MAX as u64 + 1,
        },
        // An empty client id and an empty hostname are not the same as none.
        Lease {
            ip: ip(3),
            state: BindingState::Backup,
            client: Some(ClientKey::ClientId(vec![])),
            htype: 1,
            chaddr: vec![0; 16],
            hostname: Some(String::new()),
            ..sample_lease(3)
        },
        // A hardware key, also one whose chaddr differs from the lease's own.
        Lease {
            ip: ip(4),
            state: BindingState::Released,
            client: Some(ClientKey::Hardware {
                htype: 6,
                chaddr: vec![0xff; 20],
            }),
            ..sample_lease(4)
        },
        Lease {
            ip: ip(5),
            state: BindingState::Abandoned,
            client: Some(ClientKey::Hardware {
                htype: 0,
                chaddr: vec![],
            }),
            ..sample_lease(5)
        },
        // The edges of the address space.
        Lease {
            ip: Ipv4Addr::UNSPECIFIED,
            ..sample_lease(6)
        },
        Lease {
            ip: Ipv4Addr::BROADCAST,
            ..sample_lease(7)
        },
    ];
    commit(&mut *open(), &upserts(&expected));
    let mut sorted = expected;
    sorted.sort_by_key(|l| l.ip);
    assert_eq!(load(&open).leases, sorted);
}

pub fn load_returns_leases_in_address_order(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut store = open();
    commit(&mut *store, &upserts(&leases(&[300, 2, 70_000, 1])));
    commit(&mut *store, &upserts(&leases(&[5])));
    assert_eq!(
        store.load().unwrap().leases,
        leases(&[1, 2, 5, 300, 70_000])
    );
}

pub fn relationships_upsert_and_reload(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut store = open();
    commit(
        &mut *store,
        &[
            Write::Relationship(sample_relationship("b-peer", 1)),
            Write::Relationship(sample_relationship("a-peer", 2)),
        ],
    );
    let changed = RelationshipState {
        my_state: 254,
        partner_state: 0,
        stos: u64::MAX,
        mclt: u32::MAX,
        ..sample_relationship("b-peer", 1)
    };
    commit(&mut *store, &[Write::Relationship(changed.clone())]);
    let expected = vec![sample_relationship("a-peer", 2), changed];
    assert_eq!(store.load().unwrap().relationships, expected);
    drop(store);
    let snapshot = load(&open);
    assert_eq!(snapshot.relationships, expected);
    assert!(snapshot.leases.is_empty());
}

pub fn writes_in_a_batch_apply_in_order(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut a2 = sample_lease(1);
    a2.hostname = Some("second".to_owned());
    commit(
        &mut *open(),
        &[
            // Upsert twice: the last one wins.
            Write::Lease(sample_lease(1)),
            Write::Lease(a2.clone()),
            // Upsert then delete: gone.
            Write::Lease(sample_lease(2)),
            Write::DeleteLease(sample_lease(2).ip),
            // Delete then upsert: present.
            Write::DeleteLease(sample_lease(3).ip),
            Write::Lease(sample_lease(3)),
            Write::Relationship(sample_relationship("peer", 1)),
            Write::Relationship(sample_relationship("peer", 2)),
        ],
    );
    let snapshot = load(&open);
    assert_eq!(snapshot.leases, vec![a2, sample_lease(3)]);
    assert_eq!(snapshot.relationships, vec![sample_relationship("peer", 2)]);
}

/// `arm_failure(ip)` must make the next commit that writes `ip` fail (a backend may fail the
/// whole next commit instead). The failed batch changes other leases, deletes one and touches
/// relationships before reaching `ip`, and none of that may survive.
pub fn a_failed_commit_changes_nothing_and_the_store_stays_usable(
    open: impl Fn() -> Box<dyn LeaseStore>,
    arm_failure: impl Fn(Ipv4Addr),
) {
    let mut store = open();
    commit(
        &mut *store,
        &[
            Write::Lease(sample_lease(1)),
            Write::Lease(sample_lease(3)),
            Write::Relationship(sample_relationship("peer", 1)),
        ],
    );
    let before = store.load().unwrap();

    let poison = sample_lease(99);
    arm_failure(poison.ip);
    let mut changed = sample_lease(1);
    changed.state = BindingState::Released;
    let batch = [
        Write::Lease(changed),
        Write::Lease(sample_lease(2)),
        Write::DeleteLease(sample_lease(3).ip),
        Write::Relationship(sample_relationship("peer", 9)),
        Write::Relationship(sample_relationship("other", 1)),
        Write::Lease(poison),
        Write::Lease(sample_lease(4)),
    ];
    assert!(store.commit(&batch).is_err(), "the armed commit must fail");
    assert_eq!(store.load().unwrap(), before, "same store after failure");

    commit(&mut *store, &[Write::Lease(sample_lease(2))]);
    drop(store);
    let after = load(&open);
    assert_eq!(after.leases, leases(&[1, 2, 3]));
    assert_eq!(after.relationships, before.relationships);
}

pub fn committed_data_survives_drop_and_reopen(open: impl Fn() -> Box<dyn LeaseStore>) {
    let mut store = open();
    commit(&mut *store, &upserts(&leases(&[1, 2])));
    commit(
        &mut *store,
        &[
            Write::Lease(sample_lease(3)),
            Write::DeleteLease(sample_lease(1).ip),
            Write::Relationship(sample_relationship("peer", 4)),
        ],
    );
    let committed = store.load().unwrap();
    // No close, no flush: the store just goes away, as in a crash.
    drop(store);
    assert_eq!(load(&open), committed);
    assert_eq!(committed.leases, leases(&[2, 3]));
}

pub fn a_reopened_store_keeps_writing(open: impl Fn() -> Box<dyn LeaseStore>) {
    commit(&mut *open(), &upserts(&leases(&[1])));
    let mut store = open();
    commit(&mut *store, &upserts(&leases(&[2])));
    let second = open().load().unwrap();
    assert_eq!(
        second.leases,
        leases(&[1, 2]),
        "a second handle sees commits"
    );
    drop(store);
    assert_eq!(load(&open).leases, leases(&[1, 2]));
}

pub fn ten_thousand_lease_batch_commits_and_reloads(open: impl Fn() -> Box<dyn LeaseStore>) {
    let expected: Vec<Lease> = (0..10_000).map(sample_lease).collect();
    commit(&mut *open(), &upserts(&expected));
    let snapshot = load(&open);
    assert_eq!(snapshot.leases.len(), expected.len());
    assert_eq!(snapshot.leases, expected);

    let deletes: Vec<Write> = expected
        .iter()
        .step_by(2)
        .map(|l| Write::DeleteLease(l.ip))
        .collect();
    commit(&mut *open(), &deletes);
    let odd: Vec<Lease> = expected.into_iter().skip(1).step_by(2).collect();
    assert_eq!(load(&open).leases, odd);
}
