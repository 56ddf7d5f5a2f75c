//! RFC 3074 hash and HBA layout: the vectors of reference §7.1/§7.2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dhcpair_wire::hash::{bucket, lb_key, mixing_table, Hba};

#[test]
fn mixing_table_is_the_rfc_3074_permutation() {
    let t = mixing_table();
    let mut seen = [false; 256];
    for &v in t.iter() {
        assert!(!seen[usize::from(v)], "{v} appears twice");
        seen[usize::from(v)] = true;
    }
    assert_eq!(t.iter().map(|&v| u32::from(v)).sum::<u32>(), 32640);
    assert_eq!(t[..8], [251, 175, 119, 215, 81, 14, 79, 191]);
    assert_eq!(t[248..], [149, 80, 170, 68, 6, 169, 234, 151]);
}

#[test]
fn hash_matches_the_reference_vectors() {
    let vectors: &[(&[u8], u8)] = &[
        (&[], 0),
        (&[0x00], 175),
        (&[0x0e], 232),
        (&[0, 0, 0, 0, 0, 0], 254),
        (&[0xff; 6], 79),
        (&[1, 2, 3, 4, 5, 6], 179),
        (&[2, 0, 0, 0, 0, 1], 133),
        (&[1, 2, 0, 0, 0, 0, 1], 14),
        (&[1, 2, 0, 0, 0, 0, 2], 66),
        (&[1, 2, 0, 0, 0, 0, 3], 222),
        (&[1, 2, 0, 0, 0, 0, 4], 186),
    ];
    for &(key, want) in vectors {
        assert_eq!(bucket(key), want, "key {key:02x?}");
    }
}

#[test]
fn key_is_walked_from_the_last_byte_with_the_length_as_seed() {
    // A one-byte key k hashes to T[1 ^ k]; two bytes [a, b] to T[T[2 ^ b] ^ a].
    let t = mixing_table();
    assert_eq!(bucket(&[0x42]), t[1 ^ 0x42]);
    assert_eq!(bucket(&[0x10, 0x20]), t[usize::from(t[2 ^ 0x20] ^ 0x10)]);
    // Length is taken mod 256.
    let long = vec![0u8; 256];
    let mut h = 0u8;
    for _ in 0..256 {
        h = t[usize::from(h)];
    }
    assert_eq!(bucket(&long), h);
}

#[test]
fn split_128_gives_the_low_half_to_the_primary() {
    let hba = Hba::split(128);
    let mut want = [0u8; 32];
    want[..16].fill(0xff);
    assert_eq!(hba.as_bytes(), &want);
    assert!(hba.primary_serves(0) && hba.primary_serves(127));
    assert!(!hba.primary_serves(128) && !hba.primary_serves(255));
    assert_eq!(hba.primary_buckets(), 128);
}

#[test]
fn split_4_sets_the_low_bits_of_byte_0() {
    let hba = Hba::split(4);
    let mut want = [0u8; 32];
    want[0] = 0x0f;
    assert_eq!(hba.as_bytes(), &want);
    assert!((0..4).all(|b| hba.primary_serves(b)));
    assert!((4..=255).all(|b| !hba.primary_serves(b)));
}

#[test]
fn split_bounds() {
    assert_eq!(Hba::split(0).as_bytes(), &[0u8; 32]);
    assert_eq!(Hba::split(256).as_bytes(), &[0xffu8; 32]);
    assert_eq!(Hba::split(1000), Hba::split(256));
    let h = Hba::split(9);
    assert_eq!(h.as_bytes()[..2], [0xff, 0x01]);
}

#[test]
fn bit_b_lives_in_byte_b_over_8_least_significant_first() {
    for b in 0..=255u8 {
        let mut bytes = [0u8; 32];
        bytes[usize::from(b >> 3)] = 1 << (b & 7);
        let hba = Hba::from_bytes(&bytes).unwrap();
        for other in 0..=255u8 {
            assert_eq!(hba.primary_serves(other), other == b);
        }
    }
}

#[test]
fn from_bytes_wants_exactly_32() {
    assert!(Hba::from_bytes(&[0; 31]).is_none());
    assert!(Hba::from_bytes(&[0; 33]).is_none());
    assert_eq!(Hba::from_bytes(&[0xff; 32]), Some(Hba::split(256)));
}

#[test]
fn lab_clients_hash_as_isc_served_them() {
    // Reference §7.1 [LAB], split 128: client ids ...01 and ...02 went to the primary,
    // ...03 and ...04 to the secondary.
    let hba = Hba::split(128);
    let id = |n: u8| [1, 2, 0, 0, 0, 0, n];
    assert!(hba.primary_serves(bucket(lb_key(Some(&id(1)), &[]))));
    assert!(hba.primary_serves(bucket(lb_key(Some(&id(2)), &[]))));
    assert!(!hba.primary_serves(bucket(lb_key(Some(&id(3)), &[]))));
    assert!(!hba.primary_serves(bucket(lb_key(Some(&id(4)), &[]))));
}

#[test]
fn capture_clients_without_client_id_hash_by_chaddr() {
    // isc-pair capture (split 128): dhclient sent no option 61; 52:54:00:00:00:01 was served
    // by the secondary (its BNDUPD ACTIVE came from 10.77.0.2), ...02 and ...03 by the primary.
    // After client 1 released, the primary moved the lease to BACKUP (MAC affinity), which
    // again means the key hashes to the secondary.
    let hba = Hba::split(128);
    let mac = |n: u8| [0x52, 0x54, 0, 0, 0, n];
    let m1 = mac(1);
    let m2 = mac(2);
    let m3 = mac(3);
    assert!(!hba.primary_serves(bucket(lb_key(None, &m1))));
    assert!(hba.primary_serves(bucket(lb_key(None, &m2))));
    assert!(hba.primary_serves(bucket(lb_key(None, &m3))));
}

#[test]
fn lb_key_prefers_the_whole_client_id() {
    let id = [1u8, 0x52, 0x54, 0, 0, 0, 1];
    let mac = [0x52u8, 0x54, 0, 0, 0, 1];
    assert_eq!(lb_key(Some(&id), &mac), &id);
    assert_eq!(lb_key(None, &mac), &mac);
}
