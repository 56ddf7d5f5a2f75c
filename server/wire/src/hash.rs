//! RFC 3074 load balancing: the client hash and the hash-bucket-assignment (HBA) bitmap, as
//! ISC dhcpd 4.4 uses them (reference §7).
//!
//! Two ISC facts differ from the documents, and this module follows ISC:
//! - polarity: a **set** bit means the **primary** serves the bucket (draft-12 §12.11 says the
//!   secondary); the secondary serves the clear bits (reference §0 fact 4);
//! - bit order: bucket `b` is byte `b >> 3`, mask `1 << (b & 7)`, least-significant bit first
//!   (reference §0 fact 5, seen on the wire: `split 4` is `0f 00 …`).

use std::fmt;

/// RFC 3074 §5 mixing table: a permutation of 0..=255 used as a Pearson hash.
const MIXING_TABLE: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, 31, 32, 55, 60, 152,
    58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243,
    124, 95, 222, 179, 197, 65, 180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97,
    16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, 207, 9, 178, 204,
    74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, 20, 113, 71, 35, 128, 13, 182, 94, 25,
    226, 227, 199, 75, 27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241,
    73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, 82,
    163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118,
    112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66, 231,
    52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171,
    72, 50, 33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, 96, 235, 136,
    208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
    149, 80, 170, 68, 6, 169, 234, 151,
];

/// The RFC 3074 mixing table, for tests and tools.
pub fn mixing_table() -> &'static [u8; 256] {
    &MIXING_TABLE
}

/// RFC 3074 §5 hash of a client key to a bucket 0..=255 (reference §7.1).
///
/// `h` starts at the key length mod 256, and the key is walked from its **last** byte to its
/// first: `h = T[h ^ k[i]]`.
pub fn bucket(key: &[u8]) -> u8 {
    // Truncation is the algorithm: the initial value is the length modulo 256.
    let mut h = (key.len() & 0xff) as u8;
    for &k in key.iter().rev() {
        h = MIXING_TABLE[usize::from(h ^ k)];
    }
    h
}

/// The key ISC hashes for a client (reference §7.1): the whole option 61 value (type byte
/// included) when the client sent one, otherwise the `chaddr` bytes from the BOOTP header
/// (the first `hlen` bytes, **without** an htype byte).
///
/// For a stored lease, pass the lease's uid as `client_id` and its hardware address without
/// the leading htype byte as `chaddr`.
pub fn lb_key<'a>(client_id: Option<&'a [u8]>, chaddr: &'a [u8]) -> &'a [u8] {
    match client_id {
        Some(id) => id,
        None => chaddr,
    }
}

/// Length of a hash-bucket-assignment bitmap on the wire (draft-12 option 11).
pub const HBA_LEN: usize = 32;

/// A hash-bucket-assignment bitmap, in ISC's meaning: bit set ⇒ the primary serves the bucket.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hba([u8; HBA_LEN]);

impl Hba {
    /// ISC's `split N`: buckets `0..n` to the primary, the rest to the secondary. `n` above
    /// 256 is treated as 256 (all buckets to the primary).
    pub fn split(n: u16) -> Hba {
        let mut bits = [0u8; HBA_LEN];
        for b in 0..n.min(256) {
            bits[usize::from(b >> 3)] |= 1 << (b & 7);
        }
        Hba(bits)
    }

    /// The bitmap as received in CONNECT; `None` unless exactly 32 bytes (ISC then rejects the
    /// CONNECT with reason 18, "invalid HBA").
    pub fn from_bytes(bytes: &[u8]) -> Option<Hba> {
        <[u8; HBA_LEN]>::try_from(bytes).ok().map(Hba)
    }

    /// The 32 bytes as sent on the wire.
    pub fn as_bytes(&self) -> &[u8; HBA_LEN] {
        &self.0
    }

    /// Whether the primary serves `bucket` (bit set). The secondary serves it otherwise.
    pub fn primary_serves(&self, bucket: u8) -> bool {
        self.0[usize::from(bucket >> 3)] & (1 << (bucket & 7)) != 0
    }

    /// How many buckets the primary serves.
    pub fn primary_buckets(&self) -> u32 {
        self.0.iter().map(|b| b.count_ones()).sum()
    }
}

impl From<[u8; HBA_LEN]> for Hba {
    fn from(bytes: [u8; HBA_LEN]) -> Hba {
        Hba(bytes)
    }
}

impl fmt::Debug for Hba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hba(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}
