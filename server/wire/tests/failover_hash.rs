//! RFC 3074 hash and HBA layout: the mixing table entry by entry against RFC 3074 section 6,
//! hash results worked out by hand from the RFC's algorithm, and the vectors of reference
//! §7.1/§7.2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dhcpair_wire::hash::{bucket, lb_key, mixing_table, Hba};

/// RFC 3074 section 6, `loadb_mx_tbl`, typed in here from the RFC's text (the same 256 values
/// ISC dhcpd 4.4 carries in server/failover.c and Kea in its HA hook's query filter), sixteen a
/// row. Nothing in this file derives an expectation from the crate's own table.
#[rustfmt::skip]
const RFC_3074_TABLE: [u8; 256] = [
    251, 175, 119, 215,  81,  14,  79, 191, 103,  49, 181, 143, 186, 157,   0, 232, //   0..15
     31,  32,  55,  60, 152,  58,  17, 237, 174,  70, 160, 144, 220,  90,  57, 223, //  16..31
     59,   3,  18, 140, 111, 166, 203, 196, 134, 243, 124,  95, 222, 179, 197,  65, //  32..47
    180,  48,  36,  15, 107,  46, 233, 130, 165,  30, 123, 161, 209,  23,  97,  16, //  48..63
     40,  91, 219,  61, 100,  10, 210, 109, 250, 127,  22, 138,  29, 108, 244,  67, //  64..79
    207,   9, 178, 204,  74,  98, 126, 249, 167, 116,  34,  77, 193, 200, 121,   5, //  80..95
     20, 113,  71,  35, 128,  13, 182,  94,  25, 226, 227, 199,  75,  27,  41, 245, //  96..111
    230, 224,  43, 225, 177,  26, 155, 150, 212, 142, 218, 115, 241,  73,  88, 105, // 112..127
     39, 114,  62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122,  12,  84, // 128..143
     82, 163,  44, 139, 228, 236, 205, 242, 217,  11, 187, 146, 159,  64,  86, 239, // 144..159
    195,  42, 106, 198, 118, 112, 184, 172,  87,   2, 173, 117, 176, 229, 247, 253, // 160..175
    137, 185,  99, 164, 102, 147,  45,  66, 231,  52, 141, 211, 194, 206, 246, 238, // 176..191
     56, 110,  78, 248,  63, 240, 189,  93,  92,  51,  53, 183,  19, 171,  72,  50, // 192..207
     33, 104, 101,  69,   8, 252,  83, 120,  76, 135,  85,  54, 202, 125, 188, 213, // 208..223
     96, 235, 136, 208, 162, 129, 190, 132, 156,  38,  47,   1,   7, 254,  24,   4, // 224..239
    216, 131,  89,  21,  28, 133,  37, 153, 149,  80, 170,  68,   6, 169, 234, 151, // 240..255
];

/// RFC 3074 section 6, `loadb_p_hash`, written out again here over the RFC's table:
/// `hash = len; for (i = len; i > 0;) hash = loadb_mx_tbl[hash ^ key[--i]];`
fn rfc_3074_hash(key: &[u8]) -> u8 {
    // `unsigned char hash = len`: the length modulo 256.
    let mut hash = (key.len() % 256) as u8;
    let mut i = key.len();
    while i > 0 {
        i -= 1;
        hash = RFC_3074_TABLE[usize::from(hash ^ key[i])];
    }
    hash
}

#[test]
fn the_mixing_table_is_rfc_3074s_entry_by_entry() {
    let ours = mixing_table();
    let wrong: Vec<String> = (0..256)
        .filter(|&i| ours[i] != RFC_3074_TABLE[i])
        .map(|i| format!("[{i}]: ours {}, RFC {}", ours[i], RFC_3074_TABLE[i]))
        .collect();
    assert!(wrong.is_empty(), "entries differ from RFC 3074: {wrong:?}");
    // And the literal itself is a permutation of 0..=255, as the RFC says ("256 distinct
    // values"): a typo in it would show here.
    let mut seen = [false; 256];
    for v in RFC_3074_TABLE {
        assert!(!seen[usize::from(v)], "{v} appears twice in the literal");
        seen[usize::from(v)] = true;
    }
}

#[test]
fn hashes_worked_out_by_hand_from_the_rfc() {
    // T[i] below is RFC_3074_TABLE[i]; the hash starts at the key's length and walks the key
    // from its last byte to its first: hash = T[hash ^ byte].
    let by_hand: &[(&[u8], u8, &str)] = &[
        (&[], 0, "no bytes: the length, 0"),
        (&[0x00], 175, "T[1 ^ 0x00 = 1] = 175"),
        (&[0x42], 61, "T[1 ^ 0x42 = 67] = 61"),
        (
            &[0x10, 0x20],
            119,
            "T[2 ^ 0x20 = 34] = 18; T[18 ^ 0x10 = 2] = 119",
        ),
        (
            &[0x52, 0x54, 0x00, 0x00, 0x00, 0x01],
            149,
            "T[6 ^ 0x01 = 7] = 191; T[191 ^ 0 = 191] = 238; T[238] = 24; T[24] = 174; \
             T[174 ^ 0x54 = 250] = 170; T[170 ^ 0x52 = 248] = 149",
        ),
        (
            &[0x02, 0xe2, 0x70, 0x00, 0x00, 0x00],
            0,
            "T[6 ^ 0 = 6] = 79; T[79] = 67; T[67] = 61; T[61 ^ 0x70 = 77] = 108; \
             T[108 ^ 0xe2 = 142] = 12; T[12 ^ 0x02 = 14] = 0",
        ),
        (
            &[0xff; 6],
            79,
            "T[6 ^ 0xff = 249] = 80; T[80 ^ 0xff = 175] = 253; T[253 ^ 0xff = 2] = 119; \
             T[119 ^ 0xff = 136] = 168; T[168 ^ 0xff = 87] = 249; T[249 ^ 0xff = 6] = 79",
        ),
        (
            &[0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
            14,
            "T[7 ^ 0x01 = 6] = 79; T[79] = 67; T[67] = 61; T[61] = 23; T[23] = 237; \
             T[237 ^ 0x02 = 239] = 4; T[4 ^ 0x01 = 5] = 14",
        ),
    ];
    for &(key, want, how) in by_hand {
        assert_eq!(
            rfc_3074_hash(key),
            want,
            "the test's own RFC hash, key {key:02x?}: {how}"
        );
        assert_eq!(bucket(key), want, "key {key:02x?}: {how}");
    }
}

#[test]
fn the_hash_is_the_rfcs_for_every_short_key_and_many_long_ones() {
    // Every key of one and two bytes, then keys of every length up to 300 (the length wraps at
    // 256) from a fixed linear congruential sequence.
    for a in 0..=255u8 {
        assert_eq!(bucket(&[a]), rfc_3074_hash(&[a]), "key [{a:02x}]");
        for b in 0..=255u8 {
            assert_eq!(
                bucket(&[a, b]),
                rfc_3074_hash(&[a, b]),
                "key [{a:02x} {b:02x}]"
            );
        }
    }
    let mut x: u32 = 12345;
    for len in 0..300usize {
        let key: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        assert_eq!(
            bucket(&key),
            rfc_3074_hash(&key),
            "key of {len} bytes: {key:02x?}"
        );
    }
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
