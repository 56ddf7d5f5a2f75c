//! Property: SQLite and the in-memory reference agree on any sequence of batches, including
//! across a reopen, and every lease value survives SQLite unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use dhcpair_store::{
    BindingState, ClientKey, Lease, LeaseStore, MemDisk, MemStore, RelationshipState, SqliteStore,
    Write,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn client_key() -> impl Strategy<Value = ClientKey> {
    prop_oneof![
        vec(any::<u8>(), 0..40).prop_map(ClientKey::ClientId),
        (any::<u8>(), vec(any::<u8>(), 0..24))
            .prop_map(|(htype, chaddr)| ClientKey::Hardware { htype, chaddr }),
    ]
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0..2_000_000_000u64, Just(u64::MAX), Just(0)]
}

/// Addresses from a small range so that batches overwrite and delete each other's leases.
fn ip() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        (0u8..16).prop_map(|d| Ipv4Addr::new(10, 0, 0, d)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn lease() -> impl Strategy<Value = Lease> {
    (
        ip(),
        proptest::sample::select(BindingState::ALL.to_vec()),
        option::of(client_key()),
        any::<u8>(),
        vec(any::<u8>(), 0..24),
        option::of(".{0,20}"),
        ".{0,12}",
        [time(), time(), time(), time(), time(), time()],
    )
        .prop_map(
            |(ip, state, client, htype, chaddr, hostname, pool, t)| Lease {
                ip,
                state,
                client,
                htype,
                chaddr,
                hostname,
                pool,
                starts: t[0],
                ends: t[1],
                tstp: t[2],
                tsfp: t[3],
                atsfp: t[4],
                cltt: t[5],
            },
        )
}

fn relationship() -> impl Strategy<Value = RelationshipState> {
    (
        proptest::sample::select(vec!["a", "b", "peer-ü"]),
        any::<u8>(),
        any::<u8>(),
        time(),
        any::<u32>(),
    )
        .prop_map(
            |(name, my_state, partner_state, stos, mclt)| RelationshipState {
                name: name.to_owned(),
                my_state,
                partner_state,
                stos,
                mclt,
            },
        )
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        4 => lease().prop_map(Write::Lease),
        2 => ip().prop_map(Write::DeleteLease),
        1 => relationship().prop_map(Write::Relationship),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_and_memory_agree_on_any_sequence_of_batches(
        batches in vec(vec(write(), 0..12), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.db");
        let disk = MemDisk::new();
        {
            let mut sqlite = SqliteStore::open(&path).unwrap();
            let mut memory = MemStore::open(disk.clone());
            for batch in &batches {
                sqlite.commit(batch).unwrap();
                memory.commit(batch).unwrap();
                prop_assert_eq!(sqlite.load().unwrap(), memory.load().unwrap());
            }
        }
        let reopened = SqliteStore::open(&path).unwrap().load().unwrap();
        prop_assert_eq!(reopened, MemStore::open(disk).load().unwrap());
    }
}
