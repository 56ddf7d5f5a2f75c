//! RFC 3074 load balancing as the scenarios predict it, independent of the server under test:
//! the test crate's own copy of the RFC's Pearson hash over its own literal of the RFC's mixing
//! table (section 6), and ISC's `split N` (buckets `0..N` are the primary's).
//!
//! The server's implementation (`dhcpair_wire::hash`) is deliberately not used here: a
//! prediction computed by the code under test would agree with that code whatever it does.

/// RFC 3074 section 6, `loadb_mx_tbl`, sixteen a row.
#[rustfmt::skip]
const MIXING_TABLE: [u8; 256] = [
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

/// RFC 3074 section 6, `loadb_p_hash`: the hash starts at the key's length (mod 256) and walks
/// the key from its last byte to its first, `hash = T[hash ^ key[i]]`. The key is the whole
/// client identifier (option 61) when the client sends one, else the `chaddr` bytes.
pub fn bucket(key: &[u8]) -> u8 {
    let mut hash = (key.len() % 256) as u8;
    for &byte in key.iter().rev() {
        hash = MIXING_TABLE[usize::from(hash ^ byte)];
    }
    hash
}

/// With ISC's `split N` (and dhcpair's `split`), buckets `0..N` are the primary's.
pub fn primary_serves(key: &[u8], split: u16) -> bool {
    u16::from(bucket(key)) < split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_a_permutation() {
        let mut seen = [false; 256];
        for v in MIXING_TABLE {
            assert!(!seen[usize::from(v)], "{v} twice");
            seen[usize::from(v)] = true;
        }
    }

    #[test]
    fn hashes_worked_out_by_hand() {
        // T[1 ^ 0x00 = 1] = 175
        assert_eq!(bucket(&[0x00]), 175);
        // T[2 ^ 0x20 = 34] = 18; T[18 ^ 0x10 = 2] = 119
        assert_eq!(bucket(&[0x10, 0x20]), 119);
        // T[7] = 191; T[191] = 238; T[238] = 24; T[24] = 174; T[174 ^ 0x54 = 250] = 170;
        // T[170 ^ 0x52 = 248] = 149: ISC's secondary served 52:54:00:00:00:01 under split 128.
        assert_eq!(bucket(&[0x52, 0x54, 0, 0, 0, 1]), 149);
        assert!(!primary_serves(&[0x52, 0x54, 0, 0, 0, 1], 128));
        // ISC's lab (split 128): client id 01:02:00:00:00:00:01 went to the primary.
        assert_eq!(bucket(&[1, 2, 0, 0, 0, 0, 1]), 14);
        assert!(primary_serves(&[1, 2, 0, 0, 0, 0, 1], 128));
    }
}
